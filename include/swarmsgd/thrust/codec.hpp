#pragma once
/// \file thrust/codec.hpp
/// `system_codec<Q, S>`: quantizer Q's encode and decode running in memory system S, and the
/// concept `system_quantizer_for<Q, V, S>` that a device model's quantizer must satisfy.
///
/// A codec is the back end of ONE quantizer type in one system. The library specializes it for
/// every quantizer it ships (swarmsgd/thrust/quantizers/); each specialization runs the
/// quantizer's own element kernels (the SWARMSGD_HOST_DEVICE functions of quantizers/*.hpp and
/// detail/bitpack.hpp) with Thrust algorithms, so that for the same inputs (and the same rng
/// state) it writes BYTE-IDENTICAL payloads, leaves identical reconstructions, decodes
/// identical values and reports the same failed ranges as the CPU path (tests/thrust/). Its
/// interface:
/// \code
/// template <> struct swarmsgd::system_codec<my_quantizer, S> {
///     // Encodes `values` (in S) into `out` (in S, at least q.max_encoded_size(n) bytes) and
///     // returns the bytes written; `values` becomes the reconstruction, as Q::encode does.
///     std::size_t encode(const my_quantizer& q, system_span<float, S> values,
///                        system_span<std::byte, S> out, rng& random);
///     // Validates the payload (HOST memory: it arrived in a message) and decodes it against
///     // `reference` into `out` (both in S); same exceptions as Q::decode, `out` untouched on
///     // error. The library's codecs also take an optional last argument,
///     // `const std::byte* payload_in_system`: nullptr (upload `payload`), or the same
///     // payload.size() bytes already in S (uploaded ahead, overlapped with other work, or
///     // received straight into S), decoded from there; validation still reads the host bytes.
///     decode_result decode(const my_quantizer& q, std::span<const std::byte> payload,
///                          system_span<const float, S> reference, system_span<float, S> out);
/// };
/// \endcode
/// A codec object holds its scratch memory in S (and, for error_feedback, the residual), so a
/// node keeps one per quantizer. The primary template has no members: a quantizer without a
/// codec is host-only, and a swarm_node over a system model rejects it at compile time.

#include <cstddef>
#include <span>

#include "../quantizer.hpp"
#include "../random.hpp"
#include "system_buffer.hpp"

namespace swarmsgd {

/// The back end of quantizer Q in memory system S (see the file comment). Not defined for
/// host-only quantizers.
template <class Q, class S>
struct system_codec {
    /// Marks the primary template: Q has no back end in S.
    static constexpr bool host_only = true;
};

/// Q quantizes models of value type V in memory system S: it is a quantizer and
/// system_codec<Q, S> is specialized with encode and decode.
template <class Q, class V, class S>
concept system_quantizer_for =
    quantizer_for<Q, V> && std::default_initializable<system_codec<Q, S>> && !requires {
    system_codec<Q, S>::host_only;
}
&&requires(system_codec<Q, S>& codec, Q& q, system_span<V, S> values, system_span<std::byte, S> out,
           std::span<const std::byte> payload, system_span<const V, S> reference, rng& random) {
    { codec.encode(q, values, out, random) } -> std::convertible_to<std::size_t>;
    { codec.decode(q, payload, reference, values) } -> std::same_as<decode_result>;
};

}  // namespace swarmsgd
