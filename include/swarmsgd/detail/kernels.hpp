#pragma once
/// \file detail/kernels.hpp
/// Element-wise host kernels of the hot paths. Plain counted loops over restrict pointers
/// that GCC and Clang vectorize at -O2/-O3; nothing here allocates. The per-element functions
/// marked SWARMSGD_HOST_DEVICE (non_finite_bit, half_difference_step) are shared with the
/// Thrust back end (swarmsgd/thrust/), so both compute the same bits.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../tensor_traits.hpp"
#include "config.hpp"

namespace swarmsgd::detail {

/// dst[k] = src[k]
template <tensor_value V>
inline void copy(const V* SWARMSGD_RESTRICT src, V* SWARMSGD_RESTRICT dst, std::size_t n) noexcept {
    if (n != 0) std::memcpy(dst, src, n * sizeof(V));
}

/// sum_k (a[k] - b[k])^2, accumulated in double.
template <tensor_value V>
[[nodiscard]] inline double squared_distance(const V* SWARMSGD_RESTRICT a,
                                             const V* SWARMSGD_RESTRICT b, std::size_t n) noexcept {
    double sum = 0;
    for (std::size_t k = 0; k < n; ++k) {
        const double d = static_cast<double>(a[k]) - static_cast<double>(b[k]);
        sum += d * d;
    }
    return sum;
}

/// sum_k a[k]^2, accumulated in double.
template <tensor_value V>
[[nodiscard]] inline double squared_norm(const V* a, std::size_t n) noexcept {
    double sum = 0;
    for (std::size_t k = 0; k < n; ++k)
        sum += static_cast<double>(a[k]) * static_cast<double>(a[k]);
    return sum;
}

/// Unsigned integer of the same width as V (for bit tests).
template <tensor_value V>
using bits_of = std::conditional_t<sizeof(V) == 4, std::uint32_t, std::uint64_t>;

/// 1 when v is a NaN or an infinity (all exponent bits set), else 0; branch-free.
template <tensor_value V>
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr bits_of<V> non_finite_bit(V v) noexcept {
    using U = bits_of<V>;
    constexpr U exponent = sizeof(V) == 4 ? U(0x7F800000u) : U(0x7FF0000000000000ull);
    return static_cast<U>((std::bit_cast<U>(v) & exponent) == exponent);
}

/// Element k of a packed array of V at byte address p (any alignment; wire payloads are only
/// 8-byte aligned). Compiles to (vector) unaligned loads.
template <tensor_value V>
[[nodiscard]] inline V load_raw(const std::byte* p, std::size_t k) noexcept {
    V v;
    std::memcpy(&v, p + k * sizeof(V), sizeof(V));
    return v;
}

/// Stores v as element k of a packed array of V at byte address p (any alignment).
template <tensor_value V>
inline void store_raw(std::byte* p, std::size_t k, V v) noexcept {
    std::memcpy(p + k * sizeof(V), &v, sizeof(V));
}

/// Elements per block of the blocked kernels: 4 KiB of fp32 per stream, L1-resident.
inline constexpr std::size_t kernel_block = 1024;

/// Calls f(start, len) for the blocks [start, start + len) of [0, n), in order; full blocks get
/// `len` as a compile-time constant (std::integral_constant), so that loops `k < len` have a
/// constant trip count: GCC's -O2 vectorizer (cost model "very cheap") takes no loop that needs
/// a scalar epilogue, and would otherwise leave these kernels scalar. Stops at the first block
/// for which f returns false and returns its start; returns n when none did.
/// The loops themselves live in the *_block functions below, whose pointer parameters are
/// __restrict: GCC keeps that guarantee when it inlines a function, not for __restrict locals
/// of an inlined lambda (and without it, it does not vectorize at -O2).
template <class F>
inline std::size_t for_each_block(std::size_t n, F&& f) {
    std::size_t start = 0;
    for (; n - start >= kernel_block; start += kernel_block)
        if (!f(start, std::integral_constant<std::size_t, kernel_block>{})) return start;
    if (start != n && !f(start, n - start)) return start;
    return n;
}

/// The averaging update of one element, x + (received - own) / 2: the arithmetic of every
/// averaging kernel here and of the Thrust back end.
template <tensor_value V>
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr V half_difference_step(V x, V received,
                                                                    V own) noexcept {
    return x + (received - own) * V(0.5);
}

template <tensor_value V, class Len>
inline void add_half_difference_block(V* SWARMSGD_RESTRICT x, const V* SWARMSGD_RESTRICT received,
                                      const V* SWARMSGD_RESTRICT own, Len len) noexcept {
    for (std::size_t k = 0; k < len; ++k) x[k] = half_difference_step(x[k], received[k], own[k]);
}

/// x[k] += (received[k] - own[k]) / 2: the averaging update of the snapshot protocol.
template <tensor_value V>
inline void add_half_difference(V* SWARMSGD_RESTRICT x, const V* SWARMSGD_RESTRICT received,
                                const V* SWARMSGD_RESTRICT own, std::size_t n) noexcept {
    (void)for_each_block(n, [&](std::size_t start, auto len) {
        add_half_difference_block(x + start, received + start, own + start, len);
        return true;
    });
}

/// Index of the first NaN or infinity among element(0..n-1), or n when all are finite.
/// Scans in blocks with a branch-free test so the common all-finite case vectorizes.
template <tensor_value V, class Load>
[[nodiscard]] inline std::size_t first_non_finite_of(Load element, std::size_t n) noexcept {
    const std::size_t bad_block = for_each_block(n, [&](std::size_t start, auto len) {
        bits_of<V> bad = 0;
        for (std::size_t k = 0; k < len; ++k) bad |= non_finite_bit<V>(element(start + k));
        return bad == 0;
    });
    for (std::size_t k = bad_block; k < n; ++k)
        if (non_finite_bit<V>(element(k)) != 0) return k;
    return n;
}

/// Index of the first NaN or infinity in x[0, n), or n when all are finite.
template <tensor_value V>
[[nodiscard]] inline std::size_t first_non_finite(const V* x, std::size_t n) noexcept {
    return first_non_finite_of<V>([x](std::size_t k) { return x[k]; }, n);
}

/// Index of the first NaN or infinity in the packed array of n values V at `raw`, or n.
template <tensor_value V>
[[nodiscard]] inline std::size_t first_non_finite_raw(const std::byte* raw,
                                                      std::size_t n) noexcept {
    return first_non_finite_of<V>([raw](std::size_t k) { return load_raw<V>(raw, k); }, n);
}

/// sum_k (raw[k] - b[k])^2 in double, raw a packed array of V at any alignment.
template <tensor_value V>
[[nodiscard]] inline double squared_distance_raw(const std::byte* raw, const V* b,
                                                 std::size_t n) noexcept {
    double sum = 0;
    for (std::size_t k = 0; k < n; ++k) {
        const double d = static_cast<double>(load_raw<V>(raw, k)) - static_cast<double>(b[k]);
        sum += d * d;
    }
    return sum;
}

// ---------------------------------------------------------------------------------------------
// Fused kernels of swarm_node's path for exact quantizers (exact_quantizer_for): they read and
// write the wire payload (a packed array of V at any alignment) directly, one pass over
// memory each, with the finiteness check OR-reduced inside the copy loop (a separate check
// loop over the same block measured ~1.2x slower). See docs/performance.md.
// ---------------------------------------------------------------------------------------------

template <tensor_value V, class Len>
[[nodiscard]] inline bits_of<V> copy_out_block(const V* SWARMSGD_RESTRICT x,
                                               V* SWARMSGD_RESTRICT snapshot,
                                               std::byte* SWARMSGD_RESTRICT raw, Len len) noexcept {
    bits_of<V> bad = 0;
    for (std::size_t k = 0; k < len; ++k) {
        const V v = x[k];
        snapshot[k] = v;
        store_raw<V>(raw, k, v);
        bad |= non_finite_bit<V>(v);
    }
    return bad;
}

template <tensor_value V, class Len>
[[nodiscard]] inline bits_of<V> copy_out_block(const V* SWARMSGD_RESTRICT x,
                                               std::byte* SWARMSGD_RESTRICT raw, Len len) noexcept {
    bits_of<V> bad = 0;
    for (std::size_t k = 0; k < len; ++k) {
        const V v = x[k];
        store_raw<V>(raw, k, v);
        bad |= non_finite_bit<V>(v);
    }
    return bad;
}

/// raw[k] = x[k] (and snapshot[k] = x[k] when `snapshot` is not null) for k in [0, n),
/// checking finiteness on the way. Returns n, or the index of the first non-finite x[k]: the
/// outputs are then written up to the end of that element's block only.
template <tensor_value V>
[[nodiscard]] inline std::size_t copy_out_checked(const V* SWARMSGD_RESTRICT x,
                                                  V* SWARMSGD_RESTRICT snapshot,
                                                  std::byte* SWARMSGD_RESTRICT raw,
                                                  std::size_t n) noexcept {
    const std::size_t bad_block = for_each_block(n, [&](std::size_t start, auto len) {
        return (snapshot != nullptr
                    ? copy_out_block(x + start, snapshot + start, raw + start * sizeof(V), len)
                    : copy_out_block(x + start, raw + start * sizeof(V), len)) == 0;
    });
    return bad_block == n ? n : bad_block + first_non_finite(x + bad_block, n - bad_block);
}

template <tensor_value V, class Len>
[[nodiscard]] inline bits_of<V> exchange_block(V* SWARMSGD_RESTRICT x,
                                               std::byte* SWARMSGD_RESTRICT raw,
                                               V* SWARMSGD_RESTRICT scratch, Len len) noexcept {
    bits_of<V> bad = 0;
    for (std::size_t k = 0; k < len; ++k) {
        const V r = load_raw<V>(raw, k);
        const V own = x[k];
        scratch[k] = r;
        store_raw<V>(raw, k, own);
        x[k] = half_difference_step(own, r, own);
        bad |= non_finite_bit<V>(r) | non_finite_bit<V>(own);
    }
    return bad;
}

/// The responder's whole work on one contiguous range, in place: on entry raw[k] is the
/// partner's value r[k]; on success raw[k] holds the old x[k] (the reply) and
/// x[k] = x[k] + (r[k] - x[k]) / 2, the same arithmetic as add_half_difference with own = x.
/// Block by block: r is kept in an L1 scratch, raw receives x, x is updated, and the block's
/// finiteness (of x and r) is OR-reduced in the same loop. Returns n on success. On a
/// non-finite value it undoes the failing block (x and raw restored from raw and the scratch)
/// and returns that block's first index b: then x[b, n) and raw[b, n) are as on entry, while
/// x[0, b) is updated and raw[0, b) holds its old values (the caller restores x from there).
template <tensor_value V>
[[nodiscard]] inline std::size_t exchange_and_average(V* SWARMSGD_RESTRICT x,
                                                      std::byte* SWARMSGD_RESTRICT raw,
                                                      std::size_t n) noexcept {
    alignas(64) V scratch[kernel_block];
    return for_each_block(n, [&](std::size_t start, auto len) {
        V* const xb = x + start;
        std::byte* const rb = raw + start * sizeof(V);
        if (exchange_block(xb, rb, scratch, len) == 0) return true;
        std::memcpy(xb, rb, len * sizeof(V));
        std::memcpy(rb, scratch, len * sizeof(V));
        return false;
    });
}

template <tensor_value V, class Len>
inline void add_half_difference_raw_block(V* SWARMSGD_RESTRICT x,
                                          const std::byte* SWARMSGD_RESTRICT raw,
                                          const V* SWARMSGD_RESTRICT own, Len len) noexcept {
    for (std::size_t k = 0; k < len; ++k)
        x[k] = half_difference_step(x[k], load_raw<V>(raw, k), own[k]);
}

/// x[k] += (raw[k] - own[k]) / 2: add_half_difference with the received values read in place
/// from a packed array (the initiator applying a reply against its snapshot).
template <tensor_value V>
inline void add_half_difference_raw(V* SWARMSGD_RESTRICT x, const std::byte* SWARMSGD_RESTRICT raw,
                                    const V* SWARMSGD_RESTRICT own, std::size_t n) noexcept {
    (void)for_each_block(n, [&](std::size_t start, auto len) {
        add_half_difference_raw_block(x + start, raw + start * sizeof(V), own + start, len);
        return true;
    });
}

template <tensor_value V, class Len>
inline void average_with_raw_block(V* SWARMSGD_RESTRICT x, const std::byte* SWARMSGD_RESTRICT raw,
                                   Len len) noexcept {
    for (std::size_t k = 0; k < len; ++k) {
        const V own = x[k];
        x[k] = half_difference_step(own, load_raw<V>(raw, k), own);
    }
}

/// x[k] += (raw[k] - x[k]) / 2: add_half_difference against x itself (a pull reply).
template <tensor_value V>
inline void average_with_raw(V* SWARMSGD_RESTRICT x, const std::byte* SWARMSGD_RESTRICT raw,
                             std::size_t n) noexcept {
    (void)for_each_block(n, [&](std::size_t start, auto len) {
        average_with_raw_block(x + start, raw + start * sizeof(V), len);
        return true;
    });
}

/// x[k] = raw[k] for k in [0, n).
template <tensor_value V>
inline void copy_in_raw(const std::byte* SWARMSGD_RESTRICT raw, V* SWARMSGD_RESTRICT x,
                        std::size_t n) noexcept {
    if (n != 0) std::memcpy(x, raw, n * sizeof(V));
}

}  // namespace swarmsgd::detail
