#pragma once
/// \file tensor_traits.hpp
/// The tensor customization point. A tensor is one contiguous block of float or double
/// values that the algorithm may read and write in place. Adapters (Eigen, std::vector,
/// your own type) specialize `swarmsgd::tensor_traits`.

#include <concepts>
#include <cstddef>
#include <span>
#include <type_traits>
#include <vector>

namespace swarmsgd {

/// Specialize for your tensor type `T`. A specialization provides:
/// \code
/// template <> struct swarmsgd::tensor_traits<my_tensor> {
///     using value_type = float;                              // float or double
///     static std::size_t size(const my_tensor& t);           // number of elements
///     static float* data(my_tensor& t);                      // contiguous storage
///     static const float* data(const my_tensor& t);
/// };
/// \endcode
/// The primary template is deliberately empty: a type without a specialization is not a tensor.
template <class T>
struct tensor_traits {};

/// Element types the algorithm supports.
template <class V>
concept tensor_value = std::same_as<V, float> || std::same_as<V, double>;

/// A type whose `tensor_traits` specialization gives size and contiguous data of float/double.
template <class T>
concept tensor = requires(T& t, const T& ct) {
    typename tensor_traits<std::remove_cv_t<T>>::value_type;
    requires tensor_value<typename tensor_traits<std::remove_cv_t<T>>::value_type>;
    { tensor_traits<std::remove_cv_t<T>>::size(ct) } -> std::convertible_to<std::size_t>;
    {
        tensor_traits<std::remove_cv_t<T>>::data(t)
        } -> std::same_as<typename tensor_traits<std::remove_cv_t<T>>::value_type*>;
    {
        tensor_traits<std::remove_cv_t<T>>::data(ct)
        } -> std::convertible_to<const typename tensor_traits<std::remove_cv_t<T>>::value_type*>;
};

/// Element type of a tensor.
template <tensor T>
using tensor_value_t = typename tensor_traits<std::remove_cv_t<T>>::value_type;

/// Mutable contiguous view of a tensor's elements.
template <tensor T>
[[nodiscard]] std::span<tensor_value_t<T>> as_span(T& t) {
    using traits = tensor_traits<std::remove_cv_t<T>>;
    return {traits::data(t), static_cast<std::size_t>(traits::size(t))};
}

/// Read-only contiguous view of a tensor's elements.
template <tensor T>
[[nodiscard]] std::span<const tensor_value_t<T>> as_span(const T& t) {
    using traits = tensor_traits<std::remove_cv_t<T>>;
    return {traits::data(t), static_cast<std::size_t>(traits::size(t))};
}

/// A tensor whose elements live in memory that host code must not dereference, for instance a
/// `thrust::device_vector<float>` (adapter `<swarmsgd/thrust.hpp>`). Its `tensor_traits`
/// specialization provides, instead of `data`:
/// \code
/// template <> struct swarmsgd::tensor_traits<my_device_tensor> {
///     using value_type = float;                              // float or double
///     using memory_system = my_system_tag;                   // where the elements live
///     static std::size_t size(const my_device_tensor& t);    // number of elements
///     static float* system_data(my_device_tensor& t);        // contiguous, in that system
///     static const float* system_data(const my_device_tensor& t);
///     static void copy_to_host(const my_device_tensor& t, float* out);    // size(t) values
///     static void copy_from_host(const float* in, my_device_tensor& t);   // size(t) values
/// };
/// \endcode
/// The pointers are only meaningful to code running in `memory_system` (Thrust algorithms or
/// kernels of that system); copy_to_host / copy_from_host move the values across, for
/// evaluation, I/O and statistics (never used by the algorithm itself). Such a tensor is
/// deliberately NOT a `tensor`: every host loop of the library (gather, the CPU quantizers,
/// consensus) takes `tensor`s only, so device memory can never reach one by accident; a swarm_node
/// runs a system tensor's operations through the back end of its memory system (docs/thrust.md).
template <class T>
concept system_tensor = requires(T& t, const T& ct) {
    typename tensor_traits<std::remove_cv_t<T>>::value_type;
    typename tensor_traits<std::remove_cv_t<T>>::memory_system;
    requires tensor_value<typename tensor_traits<std::remove_cv_t<T>>::value_type>;
    { tensor_traits<std::remove_cv_t<T>>::size(ct) } -> std::convertible_to<std::size_t>;
    {
        tensor_traits<std::remove_cv_t<T>>::system_data(t)
        } -> std::same_as<typename tensor_traits<std::remove_cv_t<T>>::value_type*>;
    {
        tensor_traits<std::remove_cv_t<T>>::system_data(ct)
        } -> std::convertible_to<const typename tensor_traits<std::remove_cv_t<T>>::value_type*>;
    tensor_traits<std::remove_cv_t<T>>::copy_to_host(
        ct, static_cast<typename tensor_traits<std::remove_cv_t<T>>::value_type*>(nullptr));
    tensor_traits<std::remove_cv_t<T>>::copy_from_host(
        static_cast<const typename tensor_traits<std::remove_cv_t<T>>::value_type*>(nullptr), t);
};

/// Element type of a system tensor.
template <system_tensor T>
using system_tensor_value_t = typename tensor_traits<std::remove_cv_t<T>>::value_type;

/// Memory system (a tag type) of a system tensor.
template <system_tensor T>
using memory_system_t = typename tensor_traits<std::remove_cv_t<T>>::memory_system;

/// `std::vector<float>` and `std::vector<double>` are tensors.
template <tensor_value V, class Alloc>
struct tensor_traits<std::vector<V, Alloc>> {
    using value_type = V;  ///< Element type.
    /// Number of elements.
    static std::size_t size(const std::vector<V, Alloc>& t) noexcept { return t.size(); }
    /// Contiguous storage.
    static V* data(std::vector<V, Alloc>& t) noexcept { return t.data(); }
    /// Contiguous storage (read-only).
    static const V* data(const std::vector<V, Alloc>& t) noexcept { return t.data(); }
};

/// `std::span<float>` and `std::span<double>` (dynamic extent) are tensors: non-owning views
/// into a buffer the caller keeps alive, for instance one parameter buffer cut into layers.
template <tensor_value V>
struct tensor_traits<std::span<V>> {
    using value_type = V;  ///< Element type.
    /// Number of elements.
    static std::size_t size(const std::span<V>& t) noexcept { return t.size(); }
    /// Contiguous storage (a span is a view: constness of the span does not protect elements).
    static V* data(const std::span<V>& t) noexcept { return t.data(); }
};

}  // namespace swarmsgd
