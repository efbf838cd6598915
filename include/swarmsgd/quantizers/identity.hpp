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
/// equals the input, so averaging with it is exact.
template <tensor_value V>
class identity_quantizer {
public:
    using value_type = V;  ///< Element type.

    /// Format id written in every payload.
    static constexpr std::uint16_t format_id = 1;

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
        write_payload_header(out, {format_id, sizeof(V), values.size()});
        if (!values.empty())
            std::memcpy(out.data() + payload_header_size, values.data(), values.size() * sizeof(V));
        return bytes;
    }

    /// Validates the payload and copies the values to `out` (the reference is not needed).
    decode_result decode(std::span<const std::byte> payload, std::span<const V> /*reference*/,
                         std::span<V> out) const {
        (void)read_payload_header(payload, format_id, "identity", sizeof(V), out.size());
        const std::size_t expected = max_encoded_size(out.size());
        detail::require<message_error>(payload.size() == expected, "identity payload has ",
                                       payload.size(), " bytes, expected ", expected, " for ",
                                       out.size(), " elements");
        if (!out.empty())
            std::memcpy(out.data(), payload.data() + payload_header_size, out.size() * sizeof(V));
        return {};
    }
};

}  // namespace swarmsgd
