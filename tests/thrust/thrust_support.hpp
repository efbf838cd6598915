#pragma once
// Helpers of the Thrust tests: building system models (single vectors and lists) from host
// values and reading them back, a problem whose gradient reads any model type, and the model
// types the typed tests run over.

#include <doctest/doctest.h>

#include <thrust/device_vector.h>
#include <thrust/system/cpp/vector.h>
#include <cmath>
#include <cstddef>
#include <span>
#include <swarmsgd/thrust.hpp>
#include <vector>
#if defined(_OPENMP)
#include <thrust/system/omp/vector.h>
#endif

namespace test_support::thrust_models {

/// Part sizes of a list model of n elements: uneven parts, the last one takes the rest.
inline std::vector<std::size_t> part_sizes(std::size_t n) {
    std::vector<std::size_t> sizes;
    std::size_t left = n;
    for (std::size_t want : {std::size_t{7}, std::size_t{1}, std::size_t{300}}) {
        const std::size_t take = want < left ? want : left;
        sizes.push_back(take);
        left -= take;
    }
    sizes.push_back(left);
    return sizes;
}

template <class M>
struct maker;

/// A single system vector.
template <class M>
    requires swarmsgd::system_tensor<M>
struct maker<M> {
    using value_type = swarmsgd::system_tensor_value_t<M>;
    static M make(const std::vector<value_type>& host) {
        M m(host.size());
        swarmsgd::from_host(std::span<const value_type>(host), m);
        return m;
    }
};

/// A list of system vectors (uneven parts).
template <class M>
    requires swarmsgd::system_tensor_list<M>
struct maker<M> {
    using part = typename M::value_type;
    using value_type = swarmsgd::system_tensor_value_t<part>;
    static M make(const std::vector<value_type>& host) {
        M m;
        for (std::size_t size : part_sizes(host.size())) m.emplace_back(size);
        swarmsgd::from_host(std::span<const value_type>(host), m);
        return m;
    }
};

/// A system model holding `host`.
template <class M, class V>
M make_model(const std::vector<V>& host) {
    return maker<M>::make(host);
}

/// The model's values, on the host.
template <class M>
std::vector<swarmsgd::model_value_t<M>> host_values(const M& m) {
    std::vector<swarmsgd::model_value_t<M>> out(swarmsgd::model_size(m));
    swarmsgd::to_host(m, std::span<swarmsgd::model_value_t<M>>(out));
    return out;
}

/// Host models as flat vectors of V.
template <class V>
using host_models = std::vector<std::vector<V>>;

/// Node i's objective 0.5 ||x - c_i||^2 (c_i[k] = sin(i + k)), gradient computed on a host copy
/// of the model (any model type), plus a little seeded noise.
struct noisy_quadratic {
    template <class M, class V>
    double gradient(std::size_t node, const M& x, std::span<V> g, swarmsgd::rng& random) const {
        std::vector<V> h(g.size());
        if constexpr (swarmsgd::system_model<M>)
            swarmsgd::to_host(x, std::span<V>(h));
        else
            swarmsgd::gather(x, std::span<V>(h));
        double loss = 0;
        for (std::size_t k = 0; k < h.size(); ++k) {
            g[k] = h[k] - static_cast<V>(std::sin(double(node + k))) +
                   static_cast<V>(0.01 * (random.uniform01() - 0.5));
            loss += 0.5 * double(g[k]) * double(g[k]);
        }
        return loss;
    }
};

}  // namespace test_support::thrust_models

// The model types of the typed tests: the device system of this build (CPP or OMP), the CPP
// system explicitly, the OMP system when OpenMP is on, and lists of vectors.
#if defined(_OPENMP)
#define SWARMSGD_THRUST_OMP_TYPES \
    , thrust::omp::vector<float>, std::vector<thrust::omp::vector<double>>
#else
#define SWARMSGD_THRUST_OMP_TYPES
#endif
#define SWARMSGD_THRUST_MODEL_TYPES                                            \
    thrust::device_vector<float>, thrust::device_vector<double>,               \
        std::vector<thrust::device_vector<float>>, thrust::cpp::vector<float>, \
        std::vector<thrust::cpp::vector<double>> SWARMSGD_THRUST_OMP_TYPES
