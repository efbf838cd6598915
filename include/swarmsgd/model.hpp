#pragma once
/// \file model.hpp
/// The model concept: what one node trains and averages. A model is either one tensor or a
/// list of tensors (a random-access range, e.g. `std::vector<Eigen::Map<VectorXf>>`) treated
/// as one vector: the concatenation of its parts in order.

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

namespace detail {
template <class M>
struct model_value;
template <class M>
    requires tensor<M>
struct model_value<M> {
    using type = tensor_value_t<M>;
};
template <class M>
    requires tensor_list<M>
struct model_value<M> {
    using type = tensor_value_t<std::ranges::range_value_t<std::remove_cv_t<M>>>;
};
}  // namespace detail

/// Element type (float or double) of a model.
template <model M>
using model_value_t = typename detail::model_value<std::remove_cv_t<M>>::type;

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

/// Total number of elements of a model (sum over its parts).
template <class M>
    requires model<std::remove_cv_t<M>>
[[nodiscard]] std::size_t model_size(const M& m) {
    std::size_t n = 0;
    for_each_part(m, [&](auto part, std::size_t) { n += part.size(); });
    return n;
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
