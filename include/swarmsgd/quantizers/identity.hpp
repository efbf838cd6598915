#pragma once
/// \file quantizers/identity.hpp
/// The identity quantizer: values travel at full precision (fp32 or fp64).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "../detail/kernels.hpp"
#include "../errors.hpp"
#include "../message.hpp"
#include "../quantizer.hpp"

namespace swarmsgd {

/// Sends the model as it is. Encode copies, decode validates and copies; the reconstruction
/// equals the input, so averaging with it is exact. It has the exact_reconstruction capability
/// (quantizer.hpp): swarm_node then reads and writes its payloads in place, without encoding
/// or decoding through intermediate buffers.
template <tensor_value V>
class identity_quantizer {
public:
    using value_type = V;  ///< Element type.

    /// Format id written in every payload.
    static constexpr std::uint16_t format_id = 1;

    /// The payload is the payload header followed by the raw values (see exact_quantizer_for).
    static constexpr bool exact_reconstruction = true;

    /// Format id written in every payload.
    [[nodiscard]] std::uint16_t id() const noexcept { return format_id; }
    /// "identity".
    [[nodiscard]] std::string_view name() const noexcept { return "identity"; }

    /// Payload bytes for n elements: header plus n raw values.
    [[nodiscard]] std::size_t max_encoded_size(std::size_t n) const noexcept {
        return payload_header_size + n * sizeof(V);
    }

    /// Writes header and raw values; `values` is left unchanged (it is its own reconstruction).
    std::size_t encode(std::span<V> values, std::span<std::byte> out, rng& /*unused*/) const {
        const std::size_t bytes = max_encoded_size(values.size());
        detail::require<message_error>(out.size() >= bytes, "identity encode: output of ",
                                       out.size(), " bytes, needs ", bytes);
        write_raw_header(out, values.size());
        if (!values.empty())
            std::memcpy(out.data() + payload_header_size, values.data(), values.size() * sizeof(V));
        return bytes;
    }

    /// Validates the payload and copies the values to `out` (the reference is not needed).
    decode_result decode(std::span<const std::byte> payload, std::span<const V> /*reference*/,
                         std::span<V> out) const {
        check_raw_payload(payload, out.size());
        if (!out.empty())
            std::memcpy(out.data(), payload.data() + payload_header_size, out.size() * sizeof(V));
        return {};
    }

    /// Writes the payload header of n values (the first payload_header_size bytes of `out`).
    void write_raw_header(std::span<std::byte> out, std::size_t n) const {
        write_payload_header(out, {format_id, sizeof(V), n});
    }

    /// Validates a payload of n values exactly as decode does (header, then total size);
    /// throws message_error or size_mismatch_error.
    void check_raw_payload(std::span<const std::byte> payload, std::size_t n) const {
        (void)read_payload_header(payload, format_id, "identity", sizeof(V), n);
        const std::size_t expected = max_encoded_size(n);
        detail::require<message_error>(payload.size() == expected, "identity payload has ",
                                       payload.size(), " bytes, expected ", expected, " for ", n,
                                       " elements");
    }
};

static_assert(exact_quantizer_for<identity_quantizer<float>, float>);
static_assert(exact_quantizer_for<identity_quantizer<double>, double>);

}  // namespace swarmsgd
