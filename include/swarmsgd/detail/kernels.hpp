#pragma once
/// \file detail/kernels.hpp
/// Element-wise host kernels of the hot paths. Plain counted loops over restrict pointers
/// that GCC and Clang vectorize at -O2/-O3; nothing here allocates.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../tensor_traits.hpp"

namespace swarmsgd::detail {

/// dst[k] = src[k]
template <tensor_value V>
inline void copy(const V* __restrict src, V* __restrict dst, std::size_t n) noexcept {
    if (n != 0) std::memcpy(dst, src, n * sizeof(V));
}

/// x[k] += (received[k] - own[k]) / 2: the averaging update of the snapshot protocol.
template <tensor_value V>
inline void add_half_difference(V* __restrict x, const V* __restrict received,
                                const V* __restrict own, std::size_t n) noexcept {
    for (std::size_t k = 0; k < n; ++k) x[k] += (received[k] - own[k]) * V(0.5);
}

/// sum_k (a[k] - b[k])^2, accumulated in double.
template <tensor_value V>
[[nodiscard]] inline double squared_distance(const V* __restrict a, const V* __restrict b,
                                             std::size_t n) noexcept {
    double sum = 0;
    for (std::size_t k = 0; k < n; ++k) {
        const double d = static_cast<double>(a[k]) - static_cast<double>(b[k]);
        sum += d * d;
    }
    return sum;
}

/// Unsigned integer of the same width as V (for bit tests).
template <tensor_value V>
using bits_of = std::conditional_t<sizeof(V) == 4, std::uint32_t, std::uint64_t>;

/// Index of the first NaN or infinity in x[0, n), or n when all are finite.
/// Scans in blocks with a branch-free test so the common all-finite case vectorizes.
template <tensor_value V>
[[nodiscard]] inline std::size_t first_non_finite(const V* x, std::size_t n) noexcept {
    using U = bits_of<V>;
    constexpr U exponent = sizeof(V) == 4 ? U(0x7F800000u) : U(0x7FF0000000000000ull);
    constexpr std::size_t block = 1024;
    for (std::size_t start = 0; start < n; start += block) {
        const std::size_t end = start + block < n ? start + block : n;
        U bad = 0;
        for (std::size_t k = start; k < end; ++k) {
            U bits;
            std::memcpy(&bits, x + k, sizeof(V));
            bad |= static_cast<U>((bits & exponent) == exponent);
        }
        if (bad != 0) {
            for (std::size_t k = start; k < end; ++k) {
                U bits;
                std::memcpy(&bits, x + k, sizeof(V));
                if ((bits & exponent) == exponent) return k;
            }
        }
    }
    return n;
}

}  // namespace swarmsgd::detail
