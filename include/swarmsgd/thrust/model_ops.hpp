#pragma once
/// \file thrust/model_ops.hpp
/// The tensor operations of the algorithm on system models (Thrust device vectors and lists of
/// them), run IN THE MODEL'S MEMORY SYSTEM with Thrust algorithms over the element functions
/// shared with the CPU path (detail/kernels.hpp): snapshot copies (gather / scatter /
/// copy_model), axpby, the averaging step, squared distance, max |difference| and the
/// all-finite check. Nothing here copies a model through host memory (model.hpp's to_host /
/// from_host exist to do exactly that, for evaluation and statistics).
///
/// Every model argument of one call must have the same layout (the same parts, of the same
/// sizes); flat buffers (system_span) have model_size elements. Mismatches throw
/// size_mismatch_error naming the sizes.

#include <thrust/extrema.h>
#include <thrust/find.h>
#include <thrust/for_each.h>
#include <thrust/functional.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/transform_reduce.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "../detail/config.hpp"
#include "../detail/kernels.hpp"
#include "../errors.hpp"
#include "../model.hpp"
#include "detail/team.hpp"
#include "system.hpp"
#include "system_buffer.hpp"

namespace swarmsgd {

namespace detail {

/// Counting iterator over element indices.
using index_iterator = thrust::counting_iterator<std::size_t>;

/// Runs f(k) for k in [0, n) in system S.
template <class S, class F>
void system_for_each(std::size_t n, F f) {
    if (n == 0) return;
    thrust::for_each_n(system_ops<S>::policy(), index_iterator(0), n, f);
}

/// Index of the first k in [0, n) with pred(k) (pred runs in S), or n.
template <class S, class P>
[[nodiscard]] std::size_t first_index_where(std::size_t n, P pred) {
    if (n == 0) return 0;
    return static_cast<std::size_t>(
        *thrust::find_if(system_ops<S>::policy(), index_iterator(0), index_iterator(n), pred));
}

/// Runs f(item, team) for item in [0, items) in system S, one team per item
/// (thrust/detail/team.hpp): a warp on a GPU (system_ops<S>::team_for_each), one thread
/// otherwise.
template <class S, class F>
void system_team_for_each(std::size_t items, F f) {
    if (items == 0) return;
    if constexpr (requires { system_ops<S>::team_for_each(items, f); })
        system_ops<S>::team_for_each(items, f);
    else
        thrust::for_each_n(system_ops<S>::policy(), index_iterator(0), items,
                           serial_team_call<F>{f});
}

template <class V>
struct half_difference_op {
    V* x;
    const V* received;
    const V* own;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t k) const {
        x[k] = half_difference_step(x[k], received[k], own[k]);
    }
};

template <class V>
struct axpby_op {
    V a, b;
    const V* x;
    V* y;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t k) const { y[k] = a * x[k] + b * y[k]; }
};

template <class V>
struct average_op {
    V* x;
    V* y;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t k) const {
        const V own = x[k];
        const V mean = half_difference_step(own, y[k], own);
        x[k] = mean;
        y[k] = mean;
    }
};

template <class V>
struct fill_value {
    V* x;
    V value;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t k) const { x[k] = value; }
};

template <class V>
struct non_finite_at {
    const V* x;
    SWARMSGD_HOST_DEVICE bool operator()(std::size_t k) const {
        return non_finite_bit<V>(x[k]) != 0;
    }
};

template <class V>
struct squared_difference_at {
    const V* a;
    const V* b;
    SWARMSGD_HOST_DEVICE double operator()(std::size_t k) const {
        const double d = static_cast<double>(a[k]) - static_cast<double>(b[k]);
        return d * d;
    }
};

template <class V>
struct square_at {
    const V* a;
    SWARMSGD_HOST_DEVICE double operator()(std::size_t k) const {
        return static_cast<double>(a[k]) * static_cast<double>(a[k]);
    }
};

template <class V>
struct abs_difference_at {
    const V* a;
    const V* b;
    SWARMSGD_HOST_DEVICE double operator()(std::size_t k) const {
        const double d = static_cast<double>(a[k]) - static_cast<double>(b[k]);
        return d < 0 ? -d : d;  // NaN stays NaN
    }
};

/// max that propagates NaN (associative and commutative, so any reduction order gives it).
struct nan_max {
    SWARMSGD_HOST_DEVICE double operator()(double a, double b) const {
        if (a != a) return a;
        if (b != b) return b;
        return a < b ? b : a;
    }
};

// --- flat operations on n elements at system pointers -----------------------------------------

/// x[k] = x[k] + (received[k] - own[k]) / 2 (in place: received or own may be x).
template <class S, class V>
void flat_add_half_difference(V* x, const V* received, const V* own, std::size_t n) {
    system_for_each<S>(n, half_difference_op<V>{x, received, own});
}

/// Index of the first NaN or infinity among x[0, n), or n.
template <class S, class V>
[[nodiscard]] std::size_t flat_first_non_finite(const V* x, std::size_t n) {
    return first_index_where<S>(n, non_finite_at<V>{x});
}

/// sum_k (a[k] - b[k])^2 in double (the order of the sum is the system's).
template <class S, class V>
[[nodiscard]] double flat_squared_distance(const V* a, const V* b, std::size_t n) {
    if (n == 0) return 0;
    return thrust::transform_reduce(system_ops<S>::policy(), index_iterator(0), index_iterator(n),
                                    squared_difference_at<V>{a, b}, 0.0, thrust::plus<double>());
}

/// sum_k a[k]^2 in double (the order of the sum is the system's).
template <class S, class V>
[[nodiscard]] double flat_squared_norm(const V* a, std::size_t n) {
    if (n == 0) return 0;
    return thrust::transform_reduce(system_ops<S>::policy(), index_iterator(0), index_iterator(n),
                                    square_at<V>{a}, 0.0, thrust::plus<double>());
}

/// max_k |a[k] - b[k]| in double; NaN when some difference is NaN (as
/// lattice_quantizer::max_abs_difference).
template <class S, class V>
[[nodiscard]] double flat_max_abs_difference(const V* a, const V* b, std::size_t n) {
    if (n == 0) return 0;
    return thrust::transform_reduce(system_ops<S>::policy(), index_iterator(0), index_iterator(n),
                                    abs_difference_at<V>{a, b}, 0.0, nan_max{});
}

/// One element of system memory, read from the host (for error messages).
template <class S, class V>
[[nodiscard]] V element_at(const V* x, std::size_t k) {
    V v{};
    system_ops<S>::to_host(x + k, 1, &v);
    return v;
}

/// Calls f(part_a, part_b, n, offset) for the parts of two models of one layout (size-checked).
template <class MA, class MB, class F>
void for_each_part_pair(MA& a, MB& b, const char* what, F&& f) {
    using VB = std::conditional_t<std::is_const_v<MB>, const model_value_t<std::remove_cv_t<MB>>,
                                  model_value_t<std::remove_cv_t<MB>>>;
    std::vector<std::pair<std::size_t, std::size_t>> parts;  // (size, offset) of b's parts
    std::vector<VB*> pointers;
    for_each_system_part(b, [&](VB* p, std::size_t n, std::size_t offset) {
        pointers.push_back(p);
        parts.emplace_back(n, offset);
    });
    std::size_t i = 0;
    for_each_system_part(a, [&](auto* p, std::size_t n, std::size_t offset) {
        require<size_mismatch_error>(
            i < parts.size() && parts[i].first == n && parts[i].second == offset, what,
            ": the models have different layouts (part ", i, " of ", n, " elements at offset ",
            offset, ")");
        f(p, pointers[i], n, offset);
        ++i;
    });
    require<size_mismatch_error>(i == parts.size(), what, ": the models have ", i, " and ",
                                 parts.size(), " parts");
}

}  // namespace detail

/// The flat buffer type of a system model: a system_buffer of its value type in its system.
template <system_model M>
using model_buffer_t = system_buffer<model_value_t<M>, model_system_t<M>>;

/// Snapshot copy: the model (all parts in order) into the flat buffer `out` of model_size
/// elements, in the model's system.
template <system_model M>
void gather(const M& m, system_span<model_value_t<M>, model_system_t<M>> out) {
    using S = model_system_t<M>;
    detail::require<size_mismatch_error>(model_size(m) == out.size(), "gather: model has ",
                                         model_size(m), " elements, buffer ", out.size());
    detail::device_call("swarmsgd: gather", [&] {
        for_each_system_part(m, [&](const auto* p, std::size_t n, std::size_t offset) {
            detail::system_ops<S>::within(p, n, out.data() + offset);
        });
    });
}

/// The flat buffer `in` (model_size elements, in the model's system) into the model.
template <system_model M>
void scatter(system_span<const model_value_t<M>, model_system_t<M>> in, M& m) {
    using S = model_system_t<M>;
    detail::require<size_mismatch_error>(model_size(m) == in.size(), "scatter: model has ",
                                         model_size(m), " elements, buffer ", in.size());
    detail::device_call("swarmsgd: scatter", [&] {
        for_each_system_part(m, [&](auto* p, std::size_t n, std::size_t offset) {
            detail::system_ops<S>::within(in.data() + offset, n, p);
        });
    });
}

/// to = from (same layout), in the system.
template <system_model M>
void copy_model(const M& from, M& to) {
    using S = model_system_t<M>;
    detail::device_call("swarmsgd: copy_model", [&] {
        detail::for_each_part_pair(to, from, "copy_model",
                                   [&](auto* t, const auto* f, std::size_t n, std::size_t) {
                                       detail::system_ops<S>::within(f, n, t);
                                   });
    });
}

/// y = a * x + b * y element-wise (same layout), in the system.
template <system_model M>
void axpby(model_value_t<M> a, const M& x, model_value_t<M> b, M& y) {
    using S = model_system_t<M>;
    using V = model_value_t<M>;
    detail::device_call("swarmsgd: axpby", [&] {
        detail::for_each_part_pair(
            y, x, "axpby", [&](V* py, const V* px, std::size_t n, std::size_t) {
                detail::system_for_each<S>(n, detail::axpby_op<V>{a, b, px, py});
            });
    });
}

/// The averaging step of the protocol: x += (received - own) / 2, with received and own flat
/// buffers of model_size elements (what swarm_node applies), in the system.
template <system_model M>
void add_half_difference(M& x, system_span<const model_value_t<M>, model_system_t<M>> received,
                         system_span<const model_value_t<M>, model_system_t<M>> own) {
    using S = model_system_t<M>;
    const std::size_t n = model_size(x);
    detail::require<size_mismatch_error>(
        received.size() == n && own.size() == n, "add_half_difference: model has ", n,
        " elements, buffers ", received.size(), " and ", own.size());
    detail::device_call("swarmsgd: add_half_difference", [&] {
        for_each_system_part(x, [&](auto* p, std::size_t m, std::size_t offset) {
            detail::flat_add_half_difference<S>(p, received.data() + offset, own.data() + offset,
                                                m);
        });
    });
}

/// x = y = (x + y) / 2 element-wise (same layout), computed as x + (y - x) / 2 like the node's
/// update, in the system.
template <system_model M>
void average(M& x, M& y) {
    using S = model_system_t<M>;
    using V = model_value_t<M>;
    detail::device_call("swarmsgd: average", [&] {
        detail::for_each_part_pair(x, y, "average", [&](V* px, V* py, std::size_t n, std::size_t) {
            detail::system_for_each<S>(n, detail::average_op<V>{px, py});
        });
    });
}

/// sum_k (a_k - b_k)^2 over the models (same layout), accumulated in double in the system (the
/// order of the sum, hence its last bits, is the system's).
template <system_model M>
[[nodiscard]] double squared_distance(const M& a, const M& b) {
    using S = model_system_t<M>;
    double sum = 0;
    detail::device_call("swarmsgd: squared_distance", [&] {
        detail::for_each_part_pair(a, b, "squared_distance",
                                   [&](const auto* pa, const auto* pb, std::size_t n, std::size_t) {
                                       sum += detail::flat_squared_distance<S>(pa, pb, n);
                                   });
    });
    return sum;
}

/// max_k |a_k - b_k| (same layout) in double, NaN when some difference is NaN.
template <system_model M>
[[nodiscard]] double max_abs_difference(const M& a, const M& b) {
    using S = model_system_t<M>;
    double result = 0;
    detail::device_call("swarmsgd: max_abs_difference", [&] {
        detail::for_each_part_pair(a, b, "max_abs_difference",
                                   [&](const auto* pa, const auto* pb, std::size_t n, std::size_t) {
                                       result = detail::nan_max{}(
                                           result, detail::flat_max_abs_difference<S>(pa, pb, n));
                                   });
    });
    return result;
}

/// Index (in the concatenated model) of the first NaN or infinity, or model_size(m).
template <system_model M>
[[nodiscard]] std::size_t first_non_finite(const M& m) {
    using S = model_system_t<M>;
    std::size_t found = model_size(m);
    detail::device_call("swarmsgd: first_non_finite", [&] {
        for_each_system_part(m, [&](const auto* p, std::size_t n, std::size_t offset) {
            if (found != model_size(m)) return;
            if (const auto k = detail::flat_first_non_finite<S>(p, n); k != n) found = offset + k;
        });
    });
    return found;
}

/// True when every element is finite.
template <system_model M>
[[nodiscard]] bool all_finite(const M& m) {
    return first_non_finite(m) == model_size(m);
}

}  // namespace swarmsgd
