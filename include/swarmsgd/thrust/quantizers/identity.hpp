#pragma once
/// \file thrust/quantizers/identity.hpp
/// identity_quantizer in a Thrust system: the payload header written on the host, the values
/// copied within the system (encode) or from the message into the output (decode), after the
/// quantizer's own validation of the payload.

#include <cstddef>
#include <span>

#include "../../quantizers/identity.hpp"
#include "../codec.hpp"
#include "../detail/codec_support.hpp"

namespace swarmsgd {

/// identity_quantizer<V> in system S.
template <tensor_value V, class S>
struct system_codec<identity_quantizer<V>, S> {
    /// Header, then the values verbatim; `values` is unchanged.
    std::size_t encode(const identity_quantizer<V>& q, system_span<V, S> values,
                       system_span<std::byte, S> out, rng& /*unused*/) {
        const std::size_t n = values.size();
        const std::size_t bytes = q.max_encoded_size(n);
        detail::require<message_error>(out.size() >= bytes, "identity encode: output of ",
                                       out.size(), " bytes, needs ", bytes);
        const std::size_t header = bytes - n * sizeof(V);
        detail::payload_prefix prefix;
        q.write_raw_header(prefix.first(header), n);
        detail::device_call("swarmsgd: identity encode", [&] {
            prefix.copy_to<S>(header, out.data());
            detail::system_ops<S>::within(reinterpret_cast<const std::byte*>(values.data()),
                                          n * sizeof(V), out.data() + header);
        });
        return bytes;
    }

    /// Validates the payload as identity_quantizer::decode does, then copies its values (from
    /// `payload_in_system`, the same bytes already in S, when given).
    decode_result decode(const identity_quantizer<V>& q, std::span<const std::byte> payload,
                         system_span<const V, S> /*reference*/, system_span<V, S> out,
                         const std::byte* payload_in_system = nullptr) {
        const std::size_t n = out.size();
        q.check_raw_payload(payload, n);
        const std::size_t header = q.max_encoded_size(n) - n * sizeof(V);
        detail::device_call("swarmsgd: identity decode", [&] {
            auto* to = reinterpret_cast<std::byte*>(out.data());
            if (payload_in_system != nullptr)
                detail::system_ops<S>::within(payload_in_system + header, n * sizeof(V), to);
            else
                detail::system_ops<S>::to_system(payload.data() + header, n * sizeof(V), to);
        });
        return {};
    }
};

}  // namespace swarmsgd
