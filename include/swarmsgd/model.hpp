#pragma once
/// \file model.hpp
/// The model concept: what one node trains and averages. A model is either one tensor or a
/// list of tensors (a random-access range, e.g. `std::vector<Eigen::Map<VectorXf>>`) treated
/// as one vector: the concatenation of its parts in order. A system model is the same made of
/// system tensors (device memory, e.g. Thrust device vectors; see tensor_traits.hpp).

#include <cstddef>
#include <ranges>
#include <span>
#include <type_traits>

#include "detail/kernels.hpp"
#include "errors.hpp"
#include "tensor_traits.hpp"

namespace swarmsgd {

/// A random-access range whose elements are tensors of one value type.
template <class M>
concept tensor_list = !tensor<M> && std::ranges::random_access_range<std::remove_cv_t<M>> &&
                      tensor<std::ranges::range_value_t<std::remove_cv_t<M>>>;

/// One tensor, or a list of tensors treated as one model.
template <class M>
concept model = tensor<M> || tensor_list<M>;

/// A random-access range whose elements are system tensors of one type (so of one value type
/// and one memory system), e.g. `std::vector<thrust::device_vector<float>>`.
template <class M>
concept system_tensor_list =
    !system_tensor<M> && std::ranges::random_access_range<std::remove_cv_t<M>> &&
    system_tensor<std::ranges::range_value_t<std::remove_cv_t<M>>>;

/// A model whose elements live in a memory system other than the host's (see system_tensor):
/// one system tensor or a list of them, treated as one vector as for `model`.
template <class M>
concept system_model = system_tensor<M> || system_tensor_list<M>;

/// A host model or a system model: what a swarm_node (and the drivers) accept.
template <class M>
concept any_model = model<M> || system_model<M>;

/// The memory system of host models (tensor, tensor_list): host code reads them directly.
struct host_memory {};

namespace detail {
template <class M>
struct model_value;
template <class M>
    requires tensor<M>
struct model_value<M> {
    using type = tensor_value_t<M>;
    using system = host_memory;
};
template <class M>
    requires tensor_list<M>
struct model_value<M> {
    using type = tensor_value_t<std::ranges::range_value_t<std::remove_cv_t<M>>>;
    using system = host_memory;
};
template <class M>
    requires system_tensor<M>
struct model_value<M> {
    using type = system_tensor_value_t<M>;
    using system = memory_system_t<M>;
};
template <class M>
    requires system_tensor_list<M>
struct model_value<M> {
    using part = std::ranges::range_value_t<std::remove_cv_t<M>>;
    using type = system_tensor_value_t<part>;
    using system = memory_system_t<part>;
};
}  // namespace detail

/// Element type (float or double) of a model (host or system).
template <any_model M>
using model_value_t = typename detail::model_value<std::remove_cv_t<M>>::type;

/// Memory system of a model: `host_memory` for host models, the tensors' memory_system for
/// system models.
template <any_model M>
using model_system_t = typename detail::model_value<std::remove_cv_t<M>>::system;

/// Calls `f(part_span, offset)` for each part of the model, where `offset` is the index of
/// the part's first element in the concatenated model. Works for mutable and const models.
template <class M, class F>
    requires model<std::remove_cv_t<M>>
void for_each_part(M& m, F&& f) {
    if constexpr (tensor<std::remove_cv_t<M>>) {
        f(as_span(m), std::size_t{0});
    } else {
        std::size_t offset = 0;
        for (auto& part : m) {
            auto view = as_span(part);
            f(view, offset);
            offset += view.size();
        }
    }
}

/// Calls `f(pointer, n, offset)` for each part of a system model: `pointer` addresses the
/// part's n elements IN THE MODEL'S MEMORY SYSTEM (never dereference it in host code), `offset`
/// is the index of its first element in the concatenated model. Mutable and const models.
template <class M, class F>
    requires system_model<std::remove_cv_t<M>>
void for_each_system_part(M& m, F&& f) {
    auto visit = [&](auto& part, std::size_t offset) {
        using traits = tensor_traits<std::remove_cv_t<std::remove_reference_t<decltype(part)>>>;
        const auto n = static_cast<std::size_t>(traits::size(part));
        f(traits::system_data(part), n, offset);
        return n;
    };
    if constexpr (system_tensor<std::remove_cv_t<M>>) {
        (void)visit(m, 0);
    } else {
        std::size_t offset = 0;
        for (auto& part : m) offset += visit(part, offset);
    }
}

/// Total number of elements of a model, host or system (sum over its parts).
template <class M>
    requires any_model<std::remove_cv_t<M>>
[[nodiscard]] std::size_t model_size(const M& m) {
    std::size_t n = 0;
    if constexpr (model<std::remove_cv_t<M>>)
        for_each_part(m, [&](auto part, std::size_t) { n += part.size(); });
    else
        for_each_system_part(m, [&](const auto*, std::size_t part, std::size_t) { n += part; });
    return n;
}

/// Copies a system model into host memory (`out` has model_size elements), through its
/// tensor_traits' copy_to_host: for evaluation, I/O and consensus statistics; the algorithm
/// never does it.
template <class M>
    requires system_model<M>
void to_host(const M& m, std::span<model_value_t<M>> out) {
    detail::require<size_mismatch_error>(model_size(m) == out.size(), "to_host: model has ",
                                         model_size(m), " elements, buffer ", out.size());
    auto copy = [&](const auto& part, std::size_t offset) {
        using traits = tensor_traits<std::remove_cv_t<std::remove_reference_t<decltype(part)>>>;
        traits::copy_to_host(part, out.data() + offset);
        return static_cast<std::size_t>(traits::size(part));
    };
    if constexpr (system_tensor<M>) {
        (void)copy(m, 0);
    } else {
        std::size_t offset = 0;
        for (const auto& part : m) offset += copy(part, offset);
    }
}

/// Copies host values (model_size of them) into a system model (copy_from_host).
template <class M>
    requires system_model<M>
void from_host(std::span<const model_value_t<M>> in, M& m) {
    detail::require<size_mismatch_error>(model_size(m) == in.size(), "from_host: model has ",
                                         model_size(m), " elements, buffer ", in.size());
    auto copy = [&](auto& part, std::size_t offset) {
        using traits = tensor_traits<std::remove_cv_t<std::remove_reference_t<decltype(part)>>>;
        traits::copy_from_host(in.data() + offset, part);
        return static_cast<std::size_t>(traits::size(part));
    };
    if constexpr (system_tensor<M>) {
        (void)copy(m, 0);
    } else {
        std::size_t offset = 0;
        for (auto& part : m) offset += copy(part, offset);
    }
}

/// Copies a model into one contiguous buffer (`out.size()` must equal the model size).
template <class M, class V>
    requires model<std::remove_cv_t<M>>
void gather(const M& m, std::span<V> out) {
    detail::require<size_mismatch_error>(model_size(m) == out.size(), "gather: model has ",
                                         model_size(m), " elements, buffer ", out.size());
    for_each_part(m, [&](auto part, std::size_t offset) {
        detail::copy(part.data(), out.data() + offset, part.size());
    });
}

/// Copies a contiguous buffer into a model (`in.size()` must equal the model size).
template <class M, class V>
    requires model<M>
void scatter(std::span<const V> in, M& m) {
    detail::require<size_mismatch_error>(model_size(m) == in.size(), "scatter: model has ",
                                         model_size(m), " elements, buffer ", in.size());
    for_each_part(m, [&](auto part, std::size_t offset) {
        detail::copy(in.data() + offset, part.data(), part.size());
    });
}

}  // namespace swarmsgd
