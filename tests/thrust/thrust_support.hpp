#pragma once
// Helpers of the Thrust tests: building system models (single vectors and lists) from host
// values and reading them back, and the model types the typed tests run over.

#include <doctest/doctest.h>

#include <thrust/device_vector.h>
#include <thrust/system/cpp/vector.h>
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
