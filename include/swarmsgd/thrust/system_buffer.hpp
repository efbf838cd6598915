#pragma once
/// \file thrust/system_buffer.hpp
/// `system_span<T, S>` (a view of n elements in memory system S) and `system_buffer<T, S>` (an
/// owning, growable array in S): the flat buffers of the Thrust back end (snapshots, decoded
/// models, encoded payloads, per-bucket scratch).

#include <thrust/memory.h>

#include <cstddef>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

#include "../errors.hpp"
#include "../tensor_traits.hpp"
#include "system.hpp"

namespace swarmsgd {

/// A non-owning view of `size()` elements of type T in memory system S. The pointer is only
/// meaningful to code running in S (host code may read it only when
/// host_accessible_system_v<S>). Converts to its const counterpart.
template <class T, class S>
class system_span {
public:
    using element_type = T;  ///< element type (possibly const)
    using system = S;        ///< memory system

    constexpr system_span() noexcept = default;
    /// A view of n elements at `data` (in S).
    constexpr system_span(T* data, std::size_t n) noexcept : data_(data), size_(n) {}
    /// Mutable to const.
    template <class U>
        requires std::is_same_v<const U, T> &&(!std::is_same_v<U, T>)constexpr system_span(
            system_span<U, S> other) noexcept  // NOLINT(implicit)
            : data_(other.data()), size_(other.size()) {}

        /// Pointer to the first element (in S).
        [[nodiscard]] constexpr T* data() const noexcept { return data_; }
        /// Number of elements.
        [[nodiscard]] constexpr std::size_t size() const noexcept { return size_; }
        /// True when the view has no element.
        [[nodiscard]] constexpr bool empty() const noexcept { return size_ == 0; }
        /// Elements [offset, offset + n).
        [[nodiscard]] constexpr system_span subspan(std::size_t offset,
                                                    std::size_t n) const noexcept {
            return {data_ + offset, n};
        }

    private:
        T* data_ = nullptr;
        std::size_t size_ = 0;
};

/// An owning array of T in memory system S (allocated with thrust::malloc in S). Copying copies
/// the elements within S; resize() keeps the first min(old, new) elements; new elements are
/// uninitialized; a failed allocation throws device_error naming the size (and, on CUDA, the
/// runtime's error). T must be trivially copyable.
template <class T, class S>
class system_buffer {
    static_assert(std::is_trivially_copyable_v<T>, "system_buffer holds trivially copyable T");

public:
    using value_type = T;  ///< element type
    using system = S;      ///< memory system

    system_buffer() noexcept = default;
    /// n uninitialized elements.
    explicit system_buffer(std::size_t n) { resize(n); }
    /// A copy (within S).
    system_buffer(const system_buffer& other) : system_buffer(other.size_) {
        detail::system_ops<S>::within(other.data_, size_, data_);
    }
    system_buffer(system_buffer&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)),
          size_(std::exchange(other.size_, 0)),
          capacity_(std::exchange(other.capacity_, 0)) {}
    system_buffer& operator=(const system_buffer& other) {
        if (this != &other) {
            resize(other.size_);
            detail::system_ops<S>::within(other.data_, size_, data_);
        }
        return *this;
    }
    system_buffer& operator=(system_buffer&& other) noexcept {
        if (this != &other) {
            release();
            data_ = std::exchange(other.data_, nullptr);
            size_ = std::exchange(other.size_, 0);
            capacity_ = std::exchange(other.capacity_, 0);
        }
        return *this;
    }
    ~system_buffer() { release(); }

    /// Changes the size; reallocates (keeping the first elements) only when it grows beyond
    /// the capacity.
    void resize(std::size_t n) {
        if (n > capacity_) {
            T* fresh = nullptr;
            try {
                fresh = detail::device_call("swarmsgd: allocating a system buffer", [&] {
                    return thrust::malloc<T>(detail::system_ops<S>::policy(), n).get();
                });
            } catch (const std::bad_alloc& e) {  // Thrust's carries the CUDA error text
                throw device_error(detail::concat("swarmsgd: could not allocate ", n * sizeof(T),
                                                  " bytes in the memory system: ", e.what()));
            }
            if (fresh == nullptr)
                throw device_error(detail::concat("swarmsgd: could not allocate ", n * sizeof(T),
                                                  " bytes in the memory system"));
            detail::system_ops<S>::within(data_, size_ < n ? size_ : n, fresh);
            release();
            data_ = fresh;
            capacity_ = n;
        }
        size_ = n;
    }

    /// Pointer to the first element (in S).
    [[nodiscard]] T* data() noexcept { return data_; }
    /// Pointer to the first element (in S).
    [[nodiscard]] const T* data() const noexcept { return data_; }
    /// Number of elements.
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// True when empty.
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    /// A view of every element.
    [[nodiscard]] system_span<T, S> span() noexcept { return {data_, size_}; }
    /// A read-only view of every element.
    [[nodiscard]] system_span<const T, S> span() const noexcept { return {data_, size_}; }
    /// Implicit view.
    operator system_span<T, S>() noexcept { return span(); }  // NOLINT(implicit)
    /// Implicit read-only view.
    operator system_span<const T, S>() const noexcept { return span(); }  // NOLINT(implicit)

private:
    void release() noexcept {
        if (data_ != nullptr) {
            try {
                thrust::free(detail::system_ops<S>::policy(), thrust::pointer<T, S>(data_));
            } catch (...) {  // a failing free (CUDA context gone at exit) must not terminate
            }
        }
        data_ = nullptr;
        size_ = 0;
        capacity_ = 0;
    }

    T* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

/// `system_span<float|double, S>` is a system tensor: a view into memory of S the caller keeps
/// alive (for instance a gradient, or one layer of a parameter buffer).
template <tensor_value V, class S>
struct tensor_traits<system_span<V, S>> {
    using value_type = V;     ///< Element type.
    using memory_system = S;  ///< Memory system.
    /// Number of elements.
    static std::size_t size(const system_span<V, S>& t) noexcept { return t.size(); }
    /// Storage in S (a view: its constness does not protect the elements).
    static V* system_data(const system_span<V, S>& t) noexcept { return t.data(); }
    /// Copies the values to host memory.
    static void copy_to_host(const system_span<V, S>& t, V* out) {
        detail::system_ops<S>::to_host(t.data(), t.size(), out);
    }
    /// Copies host values into the viewed memory.
    static void copy_from_host(const V* in, const system_span<V, S>& t) {
        detail::system_ops<S>::to_system(in, t.size(), t.data());
    }
};

/// `system_buffer<float|double, S>` is a system tensor.
template <tensor_value V, class S>
struct tensor_traits<system_buffer<V, S>> {
    using value_type = V;     ///< Element type.
    using memory_system = S;  ///< Memory system.
    /// Number of elements.
    static std::size_t size(const system_buffer<V, S>& t) noexcept { return t.size(); }
    /// Storage in S.
    static V* system_data(system_buffer<V, S>& t) noexcept { return t.data(); }
    /// Storage in S (read-only).
    static const V* system_data(const system_buffer<V, S>& t) noexcept { return t.data(); }
    /// Copies the values to host memory.
    static void copy_to_host(const system_buffer<V, S>& t, V* out) {
        detail::system_ops<S>::to_host(t.data(), t.size(), out);
    }
    /// Copies host values into the buffer.
    static void copy_from_host(const V* in, system_buffer<V, S>& t) {
        detail::system_ops<S>::to_system(in, t.size(), t.data());
    }
};

/// Copies `from` (system memory) into the host span `to` of the same size.
template <class T, class S>
void copy_to_host(system_span<const T, S> from, std::span<std::remove_const_t<T>> to) {
    detail::require<size_mismatch_error>(from.size() == to.size(), "copy_to_host: ", from.size(),
                                         " elements to a host buffer of ", to.size());
    detail::device_call("swarmsgd: copying to the host", [&] {
        detail::system_ops<S>::to_host(from.data(), from.size(), to.data());
    });
}

/// Copies the host span `from` into `to` (system memory) of the same size.
template <class T, class S>
void copy_to_system(std::span<const T> from, system_span<T, S> to) {
    detail::require<size_mismatch_error>(from.size() == to.size(), "copy_to_system: ", from.size(),
                                         " host elements to a system buffer of ", to.size());
    detail::device_call("swarmsgd: copying to the memory system", [&] {
        detail::system_ops<S>::to_system(from.data(), from.size(), to.data());
    });
}

}  // namespace swarmsgd
