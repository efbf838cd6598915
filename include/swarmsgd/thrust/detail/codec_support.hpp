#pragma once
/// \file thrust/detail/codec_support.hpp
/// Helpers of the system codecs: unaligned loads and stores usable in device code, the
/// payload prefix (header and parameters) written on the host, payloads staged into a system,
/// per-bucket scratch, and the launch of a functor over n items.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../../detail/bitpack.hpp"
#include "../../detail/config.hpp"
#include "../../detail/quantizer_support.hpp"
#include "../model_ops.hpp"
#include "../system.hpp"
#include "../system_buffer.hpp"

namespace swarmsgd::detail {

/// T at byte address p (any alignment), in host or device code. In device code a memcpy from
/// an address of unknown alignment becomes byte loads; an aligned p (the usual case: system
/// buffers are aligned, the payload layouts keep fields aligned to their size) gets one load.
template <class T>
[[nodiscard]] SWARMSGD_HOST_DEVICE inline T load_any(const std::byte* p) noexcept {
    T v;
#if defined(__CUDA_ARCH__)
    if (reinterpret_cast<std::uintptr_t>(p) % alignof(T) == 0) {
        std::memcpy(&v, __builtin_assume_aligned(p, alignof(T)), sizeof(T));
        return v;
    }
#endif
    std::memcpy(&v, p, sizeof(T));
    return v;
}

/// Stores v at byte address p (any alignment), in host or device code (one store when p is
/// aligned, as load_any).
template <class T>
SWARMSGD_HOST_DEVICE inline void store_any(std::byte* p, T v) noexcept {
#if defined(__CUDA_ARCH__)
    if (reinterpret_cast<std::uintptr_t>(p) % alignof(T) == 0) {
        std::memcpy(__builtin_assume_aligned(p, alignof(T)), &v, sizeof(T));
        return;
    }
#endif
    std::memcpy(p, &v, sizeof(T));
}

/// Largest header-plus-parameters prefix of the library's payloads (lattice: 32 bytes).
inline constexpr std::size_t max_payload_prefix = 32;

/// A payload prefix assembled in host memory with the host writers of message.hpp, then copied
/// to the payload in S.
struct payload_prefix {
    std::byte bytes[max_payload_prefix] = {};
    /// The first n bytes, writable by the host writers.
    [[nodiscard]] std::span<std::byte> first(std::size_t n) noexcept { return {bytes, n}; }
    /// Copies the first n bytes to `out` (in S).
    template <class S>
    void copy_to(std::size_t n, std::byte* out) const {
        system_ops<S>::to_system(bytes, n, out);
    }
};

/// A payload (in host memory, where messages arrive) made readable by code running in S: the
/// very bytes in a host-accessible system, `in_system` when the caller already has them in S,
/// an uploaded copy otherwise.
template <class S>
class staged_payload {
public:
    /// The payload's bytes as seen from S.
    const std::byte* stage(std::span<const std::byte> payload,
                           const std::byte* in_system = nullptr) {
        if (in_system != nullptr) return in_system;
        if constexpr (host_accessible_system_v<S>) {
            return payload.data();
        } else {
            copy_.resize(payload.size());
            system_ops<S>::to_system(payload.data(), payload.size(), copy_.data());
            return copy_.data();
        }
    }

private:
    system_buffer<std::byte, S> copy_;
};

/// Elements per inner chunk of the codecs' loops in system S: 256 where S runs on the CPU (a
/// vectorizable loop over an L1-resident array of codes, packed once per chunk), 8 on a GPU
/// (one group of 8 codes in registers per step). A multiple of 8, so chunks that start on a
/// multiple of 8 start on a byte of the packed stream.
template <class S>
inline constexpr std::size_t inner_chunk = host_accessible_system_v<S> ? 256 : 8;

/// Calls f(m): with m = Chunk as a compile-time constant (std::integral_constant) when the
/// group is full, as a run-time value for the last, partial group. A loop over a full group
/// then has a fixed trip count, which lets a GPU keep the group's array of codes in registers
/// rather than in local memory.
template <std::size_t Chunk, class F>
SWARMSGD_HOST_DEVICE inline void with_group_size(std::size_t m, F&& f) {
    if (m == Chunk)
        f(std::integral_constant<std::size_t, Chunk>{});
    else
        f(m);
}

/// True when m is a group size known at compile time (with_group_size's full group).
template <class M>
inline constexpr bool full_group_v = !std::is_same_v<M, std::size_t>;

/// v[0, m) = x[0, m). A full group of floats at a 16-byte aligned address is read with vector
/// loads on a GPU: a warp's lanes then read whole consecutive lines, not one float in each.
template <std::size_t Chunk, class V, class M>
SWARMSGD_HOST_DEVICE inline void load_group(V (&v)[Chunk], const V* x, M m) noexcept {
#if defined(__CUDA_ARCH__)
    if constexpr (full_group_v<M> && std::is_same_v<V, float> && Chunk % 4 == 0) {
        if (reinterpret_cast<std::uintptr_t>(x) % 16 == 0) {
            for (std::size_t q = 0; q < Chunk / 4; ++q) {
                const float4 f = reinterpret_cast<const float4*>(x)[q];
                v[4 * q] = f.x;
                v[4 * q + 1] = f.y;
                v[4 * q + 2] = f.z;
                v[4 * q + 3] = f.w;
            }
            return;
        }
    }
#endif
    for (std::size_t i = 0; i < m; ++i) v[i] = x[i];
}

/// x[0, m) = v[0, m), with vector stores where load_group uses vector loads.
template <std::size_t Chunk, class V, class M>
SWARMSGD_HOST_DEVICE inline void store_group(V* x, const V (&v)[Chunk], M m) noexcept {
#if defined(__CUDA_ARCH__)
    if constexpr (full_group_v<M> && std::is_same_v<V, float> && Chunk % 4 == 0) {
        if (reinterpret_cast<std::uintptr_t>(x) % 16 == 0) {
            for (std::size_t q = 0; q < Chunk / 4; ++q)
                reinterpret_cast<float4*>(x)[q] =
                    make_float4(v[4 * q], v[4 * q + 1], v[4 * q + 2], v[4 * q + 3]);
            return;
        }
    }
#endif
    for (std::size_t i = 0; i < m; ++i) x[i] = v[i];
}

/// The word that packed codes of `bytes` bytes are moved in: the unsigned type of that size
/// (1, 2, 4 or 8 bytes), 8-byte words for a multiple of 8, void otherwise.
template <std::size_t bytes>
using packed_word_t = std::conditional_t<
    bytes == 1, std::uint8_t,
    std::conditional_t<
        bytes == 2, std::uint16_t,
        std::conditional_t<bytes == 4, std::uint32_t,
                           std::conditional_t<bytes % 8 == 0, std::uint64_t, void>>>>;

/// Packs codes[0, m) (B bits each) to out: a full group whose codes fill whole bytes is packed
/// in registers and stored with aligned word stores on a GPU; byte by byte otherwise.
template <unsigned B, std::size_t Chunk, class C, class M>
SWARMSGD_HOST_DEVICE inline void pack_group(const C (&codes)[Chunk], M m, std::byte* out) noexcept {
#if defined(__CUDA_ARCH__)
    constexpr std::size_t bytes = Chunk * B / 8;
    using W = packed_word_t<bytes>;
    if constexpr (full_group_v<M> && (Chunk * B) % 8 == 0 && !std::is_void_v<W>) {
        constexpr std::size_t words = bytes / sizeof(W);
        W packed[words];
        pack_block<B>(codes, Chunk, reinterpret_cast<std::byte*>(packed));
        if (reinterpret_cast<std::uintptr_t>(out) % sizeof(W) == 0) {
            for (std::size_t w = 0; w < words; ++w) reinterpret_cast<W*>(out)[w] = packed[w];
            return;
        }
    }
#endif
    pack_block<B>(codes, m, out);
}

/// Unpacks m codes of B bits from in (the inverse of pack_group, with aligned word loads where
/// pack_group has word stores).
template <unsigned B, std::size_t Chunk, class C, class M>
SWARMSGD_HOST_DEVICE inline void unpack_group(const std::byte* in, M m,
                                              C (&codes)[Chunk]) noexcept {
#if defined(__CUDA_ARCH__)
    constexpr std::size_t bytes = Chunk * B / 8;
    using W = packed_word_t<bytes>;
    if constexpr (full_group_v<M> && (Chunk * B) % 8 == 0 && !std::is_void_v<W>) {
        constexpr std::size_t words = bytes / sizeof(W);
        if (reinterpret_cast<std::uintptr_t>(in) % sizeof(W) == 0) {
            W packed[words];
            for (std::size_t w = 0; w < words; ++w) packed[w] = reinterpret_cast<const W*>(in)[w];
            unpack_block<B>(reinterpret_cast<const std::byte*>(packed), Chunk, codes);
            return;
        }
    }
#endif
    unpack_block<B>(in, m, codes);
}

/// Elements per group of the codecs' loops for B-bit codes in S: inner_chunk<S>, except in a
/// system with the GPU's groups of 8, where 4 codes of B bits fill whole bytes (B = 2, 4, 8,
/// 16): there a group is 4 elements, so that a lane's floats are one 16-byte access and a
/// warp's lanes read consecutive 16-byte pieces (fully used lines) rather than every other one.
template <class S, unsigned B>
inline constexpr std::size_t group_size = inner_chunk<S> == 8 && (4 * B) % 8 == 0 ? std::size_t{4}
                                                                                  : inner_chunk<S>;

/// Number of pieces of `size` in n: ceil(n / size).
[[nodiscard]] constexpr std::size_t count_of(std::size_t n, std::size_t size) noexcept {
    return n / size + (n % size != 0 ? 1 : 0);
}

template <class T>
struct flagged {
    const T* flags;
    SWARMSGD_HOST_DEVICE bool operator()(std::size_t k) const { return flags[k] != 0; }
};

/// Index of the first nonzero flag among flags[0, n) (in S), or n.
template <class S, class T>
[[nodiscard]] std::size_t first_flagged(const T* flags, std::size_t n) {
    return first_index_where<S>(n, flagged<T>{flags});
}

/// The per-bucket part of a decoder's payload check, run where the payload is: `invalid(b)`
/// (in S) is true for a bucket whose parameters cannot be decoded. On the first such bucket
/// `host_check()`, the quantizer's own check of the host bytes, throws its exception (the CPU's
/// message); should the host bytes pass, the system's copy differs from them: message_error.
template <class S, class Invalid, class HostCheck>
void check_buckets_in_system(std::string_view quantizer, std::size_t buckets, Invalid invalid,
                             HostCheck&& host_check) {
    const std::size_t bad = first_index_where<S>(buckets, invalid);
    if (bad == buckets) return;
    host_check();
    raise<message_error>(quantizer, " payload bucket ", bad,
                         " is invalid in the system's copy of the payload");
}

/// The cold path of a bucketed encoder that flagged bucket b: copies its values (m elements
/// from element b0) out of S and throws non_finite_error, as the CPU encoders do, at the first
/// NaN/inf. Returns the copy when every value is finite: the caller raises its own error.
template <class V, class S>
[[nodiscard]] std::vector<V> flagged_bucket_on_host(std::string_view quantizer, const V* values,
                                                    std::size_t b0, std::size_t m) {
    std::vector<V> xb(m);
    system_ops<S>::to_host(values + b0, m, xb.data());
    for (std::size_t j = 0; j < m; ++j)
        if (!std::isfinite(xb[j]))
            raise<non_finite_error>(quantizer, " encode: element ", b0 + j, " is ",
                                    exact_text(xb[j]), "; only finite values can be sent");
    return xb;
}

}  // namespace swarmsgd::detail
