#pragma once
/// \file detail/cast16.hpp
/// Shared encode/decode loops of the 16-bit cast quantizers (fp16, bf16). A cast kernel `K`
/// provides, all constexpr and SWARMSGD_HOST_DEVICE:
///   static std::uint16_t encode(float)      round to nearest even
///   static float decode(std::uint16_t)      exact widening
///   static bool representable(float)        encode(x) is finite and within the format's range
///   static constexpr std::uint32_t max_abs_bits   the largest representable |x|, as float bits
///   optionally hardware_encode / hardware_decode (see cast16_encode_block)
///   static constexpr const char* name, const char* range_text, const char* advice
/// Payload: payload header (16 bytes) | n little-endian 16-bit codes. No parameters.

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <type_traits>

#include "../errors.hpp"
#include "../message.hpp"
#include "../quantizer.hpp"
#include "../tensor_traits.hpp"
#include "quantizer_support.hpp"

namespace swarmsgd::detail {

/// Payload bytes of a 16-bit cast of n elements.
[[nodiscard]] constexpr std::size_t cast16_payload_size(std::size_t n) noexcept {
    return payload_header_size + 2 * n;
}

template <class K, tensor_value V>
[[noreturn, gnu::cold, gnu::noinline]] void cast16_raise(const V* x, std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) {
        if (K::representable(to_float(x[k]))) continue;
        if (!std::isfinite(x[k]))
            raise<non_finite_error>(K::name, " encode: element ", k, " is ", exact_text(x[k]),
                                    "; only finite values can be sent");
        raise<invalid_argument_error>(K::name, " encode: element ", k, " is ", exact_text(x[k]),
                                      ", outside the ", K::name, " range (", K::range_text, "); ",
                                      K::advice);
    }
    raise<invalid_argument_error>(K::name, " encode: internal error, no bad element among ", n);
}

/// One fused pass: code k to the payload, and x[k] replaced by its reconstruction when it is
/// representable (kept as it is otherwise, so an error can name it). Returns false when some
/// element is not representable. A single pass matters: a separate checking pass costs about
/// a quarter of the throughput on memory-bound models. The range test is on the magnitude
/// bits (a max-reduction), K::max_abs_bits being the largest representable |x| (as float
/// bits). A kernel may process a prefix with hardware conversions (K::hardware_encode,
/// identical results) and leave the rest to the portable loop.
template <class K, tensor_value V>
[[gnu::noinline]] bool cast16_encode_block(V* SWARMSGD_RESTRICT x, std::byte* SWARMSGD_RESTRICT p,
                                           std::size_t n) noexcept {
    std::uint32_t largest = 0;
    std::size_t k = 0;
    if constexpr (std::is_same_v<V, float> &&
                  requires(float* f, std::byte* b, std::size_t m, std::uint32_t& l) {
                      K::hardware_encode(f, b, m, l);
                  })
        k = K::hardware_encode(x, p, n, largest);
    for (; k < n; ++k) {
        const V v = x[k];
        const float f = to_float(v);
        const std::uint32_t magnitude = std::bit_cast<std::uint32_t>(f) & 0x7FFFFFFFu;
        largest = magnitude > largest ? magnitude : largest;
        const std::uint16_t h = K::encode(f);
        std::memcpy(p + 2 * k, &h, 2);
        x[k] = magnitude <= K::max_abs_bits ? static_cast<V>(K::decode(h)) : v;
    }
    return largest <= K::max_abs_bits;
}

/// Encodes `values` as 16-bit codes after a payload header; on return `values` holds the
/// reconstruction (exactly what cast16_decode yields). Throws invalid_argument_error for a
/// finite value outside the format's range and non_finite_error for NaN/inf, naming the first
/// such index and its value; then every other element already holds its reconstruction (its
/// own rounding) and the offending ones keep their values.
template <class K, tensor_value V>
std::size_t cast16_encode(std::uint16_t id, std::span<V> values, std::span<std::byte> out) {
    const std::size_t n = values.size();
    const std::size_t bytes = cast16_payload_size(n);
    require<message_error>(out.size() >= bytes, K::name, " encode: output of ", out.size(),
                           " bytes, needs ", bytes, " for ", n, " elements");
    write_payload_header(out, {id, sizeof(V), n});
    if (!cast16_encode_block<K>(values.data(), out.data() + payload_header_size, n))
        cast16_raise<K>(values.data(), n);
    return bytes;
}

/// y[k] = decode(code k of p).
template <class K, tensor_value V>
[[gnu::noinline]] void cast16_decode_block(const std::byte* SWARMSGD_RESTRICT p,
                                           V* SWARMSGD_RESTRICT y, std::size_t n) noexcept {
    std::size_t k = 0;
    if constexpr (std::is_same_v<V, float> &&
                  requires(const std::byte* b, float* f, std::size_t m) {
                      K::hardware_decode(b, f, m);
                  })
        k = K::hardware_decode(p, y, n);
    for (; k < n; ++k) {
        std::uint16_t h;
        std::memcpy(&h, p + 2 * k, 2);
        y[k] = static_cast<V>(K::decode(h));
    }
}

/// Validates header and size, then widens the codes into `out` (untouched on error). Raw
/// 16-bit codes cannot be checked further: a code of an infinity or NaN (never produced by
/// encode) decodes to that value; the caller checks finiteness (swarm_node does, and rejects
/// the message without touching its model).
template <class K, tensor_value V>
decode_result cast16_decode(std::uint16_t id, std::span<const std::byte> payload,
                            std::span<V> out) {
    (void)read_payload_header(payload, id, K::name, sizeof(V), out.size());
    const std::size_t n = out.size();
    const std::size_t expected = cast16_payload_size(n);
    require<message_error>(payload.size() == expected, K::name, " payload has ", payload.size(),
                           " bytes, expected ", expected, " for ", n, " elements");
    cast16_decode_block<K>(payload.data() + payload_header_size, out.data(), n);
    return {};
}

}  // namespace swarmsgd::detail
