#pragma once
/// \file detail/bitpack.hpp
/// Packing of b-bit unsigned codes (b = 1..16) into a byte stream and back.
///
/// Bit order: LSB-first, little-endian. Code k occupies bits [k*b, (k+1)*b) of the stream,
/// where bit j of the stream is bit (j % 8) of byte j / 8, and a code's own bit 0 comes first.
/// So for b = 4, byte 0 holds code 0 in its low nibble and code 1 in its high nibble; for
/// b = 16, codes are plain little-endian uint16. The unused high bits of the last byte are zero
/// (`pack` writes them as zero; `padding_is_zero` lets a strict decoder check it).
/// n codes take `packed_bytes(n, b)` = ceil(n*b / 8) bytes.
///
/// Block alignment: 8 codes of b bits are exactly b bytes, so a block that starts at a code
/// index that is a MULTIPLE OF 8 starts on a byte boundary, at byte `packed_bytes(k, b)` =
/// k*b/8. Quantizers therefore make their buckets (and the chunks of their fused loops)
/// multiples of 8 codes and pack each chunk independently with `pack_block` at that offset:
///
///     std::uint8_t codes[256];                      // L1-resident chunk, no full-size array
///     for (std::size_t k = 0; k < n; k += 256) {    // k is a multiple of 8
///         const std::size_t m = std::min<std::size_t>(256, n - k);
///         ... compute codes[0, m) ...
///         bitpack_dispatch(bits, [&](auto B) {
///             pack_block<B()>(codes, m, out + packed_bytes(k, bits));
///         });
///     }
///
/// Only the LAST block of a stream may have a length that is not a multiple of 8.
///
/// Two layers:
/// - checked span API: `pack`, `unpack` (validate bits and buffer sizes, throw);
/// - unchecked block API for fused loops: `pack_block<B>` / `unpack_block<B>` (compile-time b)
///   and `pack_block` / `unpack_block` (run-time b), raw pointers, noexcept, no allocation.
/// Code type C is std::uint8_t (b <= 8) or std::uint16_t (b <= 16). Codes wider than b bits
/// are MASKED to their low b bits by the packers (never spill into a neighbour).
/// Fast paths: b = 8 and 16 (byte copies / widening), b = 4, 2, 1 (several codes per byte,
/// vectorizable shifts and ors); every other b goes through a generic group-of-8 path
/// (8 codes <-> b bytes through a 64- or 128-bit accumulator).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <utility>

#include "../errors.hpp"
#include "../random.hpp"  // detail::uint128
#include "config.hpp"

namespace swarmsgd::detail {

/// Smallest and largest supported code widths.
inline constexpr unsigned bitpack_min_bits = 1;
inline constexpr unsigned bitpack_max_bits = 16;

/// Bytes taken by n codes of `bits` bits: ceil(n*bits/8). Computed without overflowing for
/// every n whose result fits in size_t.
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr std::size_t packed_bytes(std::size_t n,
                                                                      unsigned bits) noexcept {
    return (n / 8) * bits + ((n % 8) * bits + 7) / 8;
}

/// Code types the packers accept.
template <class C>
concept bitpack_code = std::is_same_v<C, std::uint8_t> || std::is_same_v<C, std::uint16_t>;

namespace bitpack_impl {

template <unsigned B>
using group_word = std::conditional_t<(B <= 8), std::uint64_t, uint128>;

template <unsigned B>
inline constexpr unsigned code_mask = (1u << B) - 1u;

/// Packs 8 codes into B bytes (generic path).
template <unsigned B, class C>
[[gnu::always_inline]] SWARMSGD_HOST_DEVICE inline void pack_group(
    const C* SWARMSGD_RESTRICT c, std::byte* SWARMSGD_RESTRICT out) noexcept {
    using W = group_word<B>;
    W acc = 0;
    for (unsigned i = 0; i < 8; ++i) acc |= static_cast<W>(c[i] & code_mask<B>) << (i * B);
    std::memcpy(out, &acc, B);  // little-endian host (static_assert in message.hpp)
}

/// Unpacks B bytes into 8 codes (generic path).
template <unsigned B, class C>
[[gnu::always_inline]] SWARMSGD_HOST_DEVICE inline void unpack_group(
    const std::byte* SWARMSGD_RESTRICT in, C* SWARMSGD_RESTRICT c) noexcept {
    using W = group_word<B>;
    W acc = 0;
    std::memcpy(&acc, in, B);
    for (unsigned i = 0; i < 8; ++i) c[i] = static_cast<C>((acc >> (i * B)) & code_mask<B>);
}

/// Packs the last `rem` < 8 codes (zero-padded) and writes packed_bytes(rem, B) bytes.
template <unsigned B, class C>
SWARMSGD_HOST_DEVICE inline void pack_tail(const C* c, std::size_t rem, std::byte* out) noexcept {
    if (rem == 0) return;
    C tmp[8] = {};
    std::byte bytes[16] = {};
    for (std::size_t i = 0; i < rem; ++i) tmp[i] = c[i];
    pack_group<B>(tmp, bytes);
    std::memcpy(out, bytes, packed_bytes(rem, B));
}

/// Unpacks the last `rem` < 8 codes from packed_bytes(rem, B) bytes.
template <unsigned B, class C>
SWARMSGD_HOST_DEVICE inline void unpack_tail(const std::byte* in, std::size_t rem, C* c) noexcept {
    if (rem == 0) return;
    C tmp[8] = {};
    std::byte bytes[16] = {};
    std::memcpy(bytes, in, packed_bytes(rem, B));
    unpack_group<B>(bytes, tmp);
    for (std::size_t i = 0; i < rem; ++i) c[i] = tmp[i];
}

}  // namespace bitpack_impl

/// Packs n codes of B bits from `codes` into packed_bytes(n, B) bytes at `out`. Unchecked:
/// `out` must hold packed_bytes(n, B) bytes. Only the last block of a stream may have n % 8 != 0.
/// Host and device code (the Thrust back end packs each group of 8 codes with it).
template <unsigned B, bitpack_code C>
SWARMSGD_HOST_DEVICE inline void pack_block(const C* SWARMSGD_RESTRICT codes, std::size_t n,
                                            std::byte* SWARMSGD_RESTRICT out) noexcept {
    static_assert(B >= bitpack_min_bits && B <= bitpack_max_bits, "bits must be 1..16");
    static_assert(B <= 8 * sizeof(C), "8-bit code type holds at most 8-bit codes");
    using namespace bitpack_impl;
    auto* o = reinterpret_cast<unsigned char*>(out);
    if constexpr (B == 8) {
        if constexpr (sizeof(C) == 1) {
            if (n != 0) std::memcpy(out, codes, n);
        } else {
            for (std::size_t i = 0; i < n; ++i) o[i] = static_cast<unsigned char>(codes[i]);
        }
    } else if constexpr (B == 16) {
        if constexpr (sizeof(C) == 2) {
            if (n != 0) std::memcpy(out, codes, 2 * n);
        }  // (C = uint8 with B = 16 is rejected by the static_assert above)
    } else if constexpr (B == 4 || B == 2 || B == 1) {
        constexpr std::size_t per = 8 / B;  // codes per byte
        const std::size_t full = n / per;
        for (std::size_t j = 0; j < full; ++j) {
            unsigned v = 0;
            for (std::size_t i = 0; i < per; ++i)
                v |= static_cast<unsigned>(codes[j * per + i] & code_mask<B>) << (i * B);
            o[j] = static_cast<unsigned char>(v);
        }
        const std::size_t rem = n - full * per;
        if (rem != 0) {
            unsigned v = 0;
            for (std::size_t i = 0; i < rem; ++i)
                v |= static_cast<unsigned>(codes[full * per + i] & code_mask<B>) << (i * B);
            o[full] = static_cast<unsigned char>(v);
        }
    } else {
        const std::size_t groups = n / 8;
        for (std::size_t g = 0; g < groups; ++g) pack_group<B>(codes + 8 * g, out + B * g);
        pack_tail<B>(codes + 8 * groups, n % 8, out + B * groups);
    }
}

/// Unpacks n codes of B bits from packed_bytes(n, B) bytes at `in` into `codes`. Unchecked.
/// Host and device code.
template <unsigned B, bitpack_code C>
SWARMSGD_HOST_DEVICE inline void unpack_block(const std::byte* SWARMSGD_RESTRICT in, std::size_t n,
                                              C* SWARMSGD_RESTRICT codes) noexcept {
    static_assert(B >= bitpack_min_bits && B <= bitpack_max_bits, "bits must be 1..16");
    static_assert(B <= 8 * sizeof(C), "8-bit code type holds at most 8-bit codes");
    using namespace bitpack_impl;
    const auto* p = reinterpret_cast<const unsigned char*>(in);
    if constexpr (B == 8) {
        if constexpr (sizeof(C) == 1) {
            if (n != 0) std::memcpy(codes, in, n);
        } else {
            for (std::size_t i = 0; i < n; ++i) codes[i] = static_cast<C>(p[i]);
        }
    } else if constexpr (B == 16) {
        if constexpr (sizeof(C) == 2) {
            if (n != 0) std::memcpy(codes, in, 2 * n);
        }
    } else if constexpr (B == 4 || B == 2 || B == 1) {
        constexpr std::size_t per = 8 / B;
        const std::size_t full = n / per;
        for (std::size_t j = 0; j < full; ++j) {
            const unsigned v = p[j];
            for (std::size_t i = 0; i < per; ++i)
                codes[j * per + i] = static_cast<C>((v >> (i * B)) & code_mask<B>);
        }
        const std::size_t rem = n - full * per;
        if (rem != 0) {
            const unsigned v = p[full];
            for (std::size_t i = 0; i < rem; ++i)
                codes[full * per + i] = static_cast<C>((v >> (i * B)) & code_mask<B>);
        }
    } else {
        const std::size_t groups = n / 8;
        for (std::size_t g = 0; g < groups; ++g) unpack_group<B>(in + B * g, codes + 8 * g);
        unpack_tail<B>(in + B * groups, n % 8, codes + 8 * groups);
    }
}

/// Calls `fn(std::integral_constant<unsigned, B>{})` with B == bits (1..16), so a fused loop
/// can be instantiated once per width and dispatched once per call, not per element.
/// `bits` must be in 1..16 (unchecked; the behaviour is undefined otherwise).
template <class Fn>
inline decltype(auto) bitpack_dispatch(unsigned bits, Fn&& fn) {
    switch (bits) {
        case 1: return fn(std::integral_constant<unsigned, 1>{});
        case 2: return fn(std::integral_constant<unsigned, 2>{});
        case 3: return fn(std::integral_constant<unsigned, 3>{});
        case 4: return fn(std::integral_constant<unsigned, 4>{});
        case 5: return fn(std::integral_constant<unsigned, 5>{});
        case 6: return fn(std::integral_constant<unsigned, 6>{});
        case 7: return fn(std::integral_constant<unsigned, 7>{});
        case 8: return fn(std::integral_constant<unsigned, 8>{});
        case 9: return fn(std::integral_constant<unsigned, 9>{});
        case 10: return fn(std::integral_constant<unsigned, 10>{});
        case 11: return fn(std::integral_constant<unsigned, 11>{});
        case 12: return fn(std::integral_constant<unsigned, 12>{});
        case 13: return fn(std::integral_constant<unsigned, 13>{});
        case 14: return fn(std::integral_constant<unsigned, 14>{});
        case 15: return fn(std::integral_constant<unsigned, 15>{});
        default: return fn(std::integral_constant<unsigned, 16>{});
    }
}

/// Same as bitpack_dispatch but only for 1..8 (instantiates nothing wider, for uint8 codes).
template <class Fn>
inline decltype(auto) bitpack_dispatch8(unsigned bits, Fn&& fn) {
    switch (bits) {
        case 1: return fn(std::integral_constant<unsigned, 1>{});
        case 2: return fn(std::integral_constant<unsigned, 2>{});
        case 3: return fn(std::integral_constant<unsigned, 3>{});
        case 4: return fn(std::integral_constant<unsigned, 4>{});
        case 5: return fn(std::integral_constant<unsigned, 5>{});
        case 6: return fn(std::integral_constant<unsigned, 6>{});
        case 7: return fn(std::integral_constant<unsigned, 7>{});
        default: return fn(std::integral_constant<unsigned, 8>{});
    }
}

/// Run-time-width block packer (unchecked; bits in 1..16, and 1..8 for uint8 codes).
template <bitpack_code C>
inline void pack_block(const C* codes, std::size_t n, unsigned bits, std::byte* out) noexcept {
    if constexpr (sizeof(C) == 1)
        bitpack_dispatch8(bits, [&](auto B) { pack_block<B()>(codes, n, out); });
    else
        bitpack_dispatch(bits, [&](auto B) { pack_block<B()>(codes, n, out); });
}

/// Run-time-width block unpacker (unchecked; bits in 1..16, and 1..8 for uint8 codes).
template <bitpack_code C>
inline void unpack_block(const std::byte* in, std::size_t n, unsigned bits, C* codes) noexcept {
    if constexpr (sizeof(C) == 1)
        bitpack_dispatch8(bits, [&](auto B) { unpack_block<B()>(in, n, codes); });
    else
        bitpack_dispatch(bits, [&](auto B) { unpack_block<B()>(in, n, codes); });
}

/// True when the unused high bits of the last byte of a stream of n codes are zero (what
/// `pack` writes); a strict decoder uses it to reject corrupted padding. `in` must hold
/// packed_bytes(n, bits) bytes (unchecked).
[[nodiscard]] inline bool padding_is_zero(const std::byte* in, std::size_t n,
                                          unsigned bits) noexcept {
    const std::size_t used_bits = (n % 8) * bits % 8;  // bits used in the last byte, 0 = all
    if (used_bits == 0) return true;
    const auto last = static_cast<unsigned>(in[packed_bytes(n, bits) - 1]);
    return (last >> used_bits) == 0;
}

namespace bitpack_impl {
template <class C>
inline void check_bits(unsigned bits, const char* what) {
    constexpr unsigned widest = sizeof(C) == 1 ? 8u : 16u;
    require<invalid_argument_error>(bits >= bitpack_min_bits && bits <= widest, what,
                                    ": code width of ", bits, " bits is outside 1..", widest,
                                    " for ", 8 * sizeof(C), "-bit codes");
}
}  // namespace bitpack_impl

/// Packs `codes` (each masked to `bits` bits) into `out`; returns the bytes written,
/// packed_bytes(codes.size(), bits). Throws invalid_argument_error for bits outside 1..16
/// (1..8 for uint8 codes) and message_error when `out` is smaller than needed.
template <bitpack_code C>
inline std::size_t pack(std::span<const C> codes, unsigned bits, std::span<std::byte> out) {
    bitpack_impl::check_bits<C>(bits, "bitpack pack");
    const std::size_t bytes = packed_bytes(codes.size(), bits);
    require<message_error>(out.size() >= bytes, "bitpack pack: output of ", out.size(), " bytes, ",
                           codes.size(), " codes of ", bits, " bits need ", bytes);
    pack_block(codes.data(), codes.size(), bits, out.data());
    return bytes;
}

/// Unpacks codes.size() codes of `bits` bits from `in`, which must hold EXACTLY
/// packed_bytes(codes.size(), bits) bytes. Throws invalid_argument_error for a bad width and
/// message_error (naming both sizes) when `in` is truncated or oversized; `codes` is untouched
/// on error. Padding bits of the last byte are ignored (see padding_is_zero).
template <bitpack_code C>
inline void unpack(std::span<const std::byte> in, unsigned bits, std::span<C> codes) {
    bitpack_impl::check_bits<C>(bits, "bitpack unpack");
    const std::size_t bytes = packed_bytes(codes.size(), bits);
    require<message_error>(in.size() == bytes, "bitpack unpack: input of ", in.size(), " bytes, ",
                           codes.size(), " codes of ", bits, " bits take ", bytes);
    unpack_block(in.data(), codes.size(), bits, codes.data());
}

// Overloads that deduce from containers of mutable codes (span<C> -> span<const C>).
template <bitpack_code C>
inline std::size_t pack(std::span<C> codes, unsigned bits, std::span<std::byte> out) {
    return pack(std::span<const C>(codes), bits, out);
}

}  // namespace swarmsgd::detail
