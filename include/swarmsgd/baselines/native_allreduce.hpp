#pragma once
/// \file baselines/native_allreduce.hpp
/// OPTIONAL capability of a communicator: a native, non-blocking allreduce (sum), such as
/// MPI_Iallreduce. The ring allreduce (ring_allreduce.hpp) uses it instead of its own ring of
/// point-to-point messages when the communicator has it and the quantizer is exact (identity),
/// unless the algorithm's options say `use_native_collective = false`.

#include <concepts>
#include <span>
#include <type_traits>
#include <utility>

#include "../tensor_traits.hpp"

namespace swarmsgd {

/// A handle on a running native allreduce: `test()` returns true once the result is in place
/// (and keeps returning true). Movable; what its destructor does with an incomplete operation
/// is the communicator's business (it must not wait forever).
template <class R>
concept allreduce_request = std::movable<R> && requires(R& r) {
    { r.test() } -> std::same_as<bool>;
};

/// A communicator with a native allreduce for value type V: `c.iallreduce_sum(data)` starts
/// summing `data` elementwise over every node, in place, and returns an allreduce_request.
/// `data` must stay valid until the request's test() returned true. Every node calls it in the
/// same order, with the same number of elements (the call is collective), and every node gets
/// the same result bit for bit (the MPI libraries we test do; a communicator that cannot
/// promise it must not offer the capability).
template <class C, class V>
concept native_allreduce = tensor_value<V> && requires(C& c, std::span<V> data) {
    { c.iallreduce_sum(data) } -> allreduce_request;
};

namespace detail {
/// Stands for the request type of a communicator without the capability.
struct no_native_request {
    [[nodiscard]] bool test() noexcept { return true; }
};

/// The request type of C's native allreduce for V, or no_native_request.
template <class C, class V>
struct native_request {
    using type = no_native_request;
};
template <class C, class V>
    requires native_allreduce<C, V>
struct native_request<C, V> {
    using type = decltype(std::declval<C&>().iallreduce_sum(std::declval<std::span<V>>()));
};
}  // namespace detail

}  // namespace swarmsgd
