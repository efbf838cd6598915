#pragma once
/// \file quantizers/cast16.hpp
/// cast16_quantizer<Format, V>: rounds every value to a 16-bit floating-point format and
/// sends 2 bytes per value: payload header (16 bytes) | n little-endian 16-bit codes. The two
/// formats, with their ranges, errors and ids, are `fp16_quantizer<V>` (quantizers/fp16.hpp,
/// IEEE binary16, id 2) and `bf16_quantizer<V>` (quantizers/bf16.hpp, bfloat16, id 3), both
/// aliases of this template; the format's element kernel (detail::fp16_kernel,
/// detail::bf16_kernel) is the only difference between them.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "../detail/cast16.hpp"
#include "../quantizer.hpp"
#include "../random.hpp"
#include "../tensor_traits.hpp"

namespace swarmsgd {

/// A 16-bit cast quantizer. `Format` is an element kernel: `format_id`, `name`, `range_text`,
/// `advice`, `max_abs_bits`, `representable(float)`, `encode(float)` and `decode(code)` (see
/// detail::fp16_kernel); V is float or double (double is rounded to float first).
template <class Format, tensor_value V>
class cast16_quantizer {
public:
    using value_type = V;        ///< Element type.
    using kernel_type = Format;  ///< Per-element conversion.

    /// Format id written in every payload.
    static constexpr std::uint16_t format_id = Format::format_id;

    /// Format id written in every payload.
    [[nodiscard]] std::uint16_t id() const noexcept { return format_id; }
    /// The format's name ("fp16", "bf16").
    [[nodiscard]] std::string_view name() const noexcept { return Format::name; }

    /// Payload bytes for n elements: header plus 2 bytes per element (exact, not just a bound).
    [[nodiscard]] std::size_t max_encoded_size(std::size_t n) const noexcept {
        return detail::cast16_payload_size(n);
    }

    /// Writes the codes; `values` becomes the reconstruction. Throws message_error when `out`
    /// is too small, invalid_argument_error for a value outside the format's range (its
    /// message names the index, the value and the range), non_finite_error for NaN/inf (see
    /// detail::cast16_encode for the state of `values` after a throw).
    std::size_t encode(std::span<V> values, std::span<std::byte> out, rng& /*unused*/) const {
        return detail::cast16_encode<kernel_type>(format_id, values, out);
    }

    /// Validates header and size (message_error / size_mismatch_error, `out` untouched on
    /// error) and widens the codes. The reference is not used. Finiteness of the result is
    /// left to the caller (encode never produces the code of an infinity or a NaN).
    decode_result decode(std::span<const std::byte> payload, std::span<const V> /*reference*/,
                         std::span<V> out) const {
        return detail::cast16_decode<kernel_type>(format_id, payload, out);
    }
};

}  // namespace swarmsgd
