#pragma once
// identity_quantizer WITHOUT the exact_reconstruction capability: a swarm_node that uses it takes
// its general path (gather, encode, decode, apply through its own buffers) while sending the very
// same wire bytes as identity_quantizer, which takes the fused path. Comparing a run with each
// checks that the fused path computes exactly what the general path computes
// (tests/unit/test_exact_path.cpp, and the start-up check of bench/bench_averaging.cpp).

#include <swarmsgd/message.hpp>
#include <swarmsgd/quantizer.hpp>
#include <swarmsgd/quantizers/identity.hpp>
#include <swarmsgd/random.hpp>
#include <swarmsgd/tensor_traits.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace test_support {

/// Forwards id(), name(), max_encoded_size, encode and decode to identity_quantizer<V>, and
/// nothing else: no `exact_reconstruction`, write_raw_header or check_raw_payload, so
/// swarmsgd::exact_quantizer_for is false and swarm_node never takes its fused path with it.
/// Same id and name as identity, so payloads, error messages and failure replies are the same.
template <swarmsgd::tensor_value V>
struct general_identity {
    using value_type = V;  ///< Element type.

    swarmsgd::identity_quantizer<V> q;  ///< the quantizer every call is forwarded to

    /// identity's format id.
    [[nodiscard]] std::uint16_t id() const noexcept { return q.id(); }
    /// "identity".
    [[nodiscard]] std::string_view name() const noexcept { return q.name(); }
    /// identity's payload bytes for n elements.
    [[nodiscard]] std::size_t max_encoded_size(std::size_t n) const noexcept {
        return q.max_encoded_size(n);
    }
    /// identity's encode (header and raw values; `values` unchanged).
    std::size_t encode(std::span<V> values, std::span<std::byte> out, swarmsgd::rng& random) const {
        return q.encode(values, out, random);
    }
    /// identity's decode (validation, then a copy of the values).
    swarmsgd::decode_result decode(std::span<const std::byte> payload, std::span<const V> reference,
                                   std::span<V> out) const {
        return q.decode(payload, reference, out);
    }
};

static_assert(swarmsgd::exact_quantizer_for<swarmsgd::identity_quantizer<float>, float>);
static_assert(swarmsgd::quantizer_for<general_identity<float>, float> &&
              !swarmsgd::exact_quantizer_for<general_identity<float>, float>);
static_assert(swarmsgd::quantizer_for<general_identity<double>, double> &&
              !swarmsgd::exact_quantizer_for<general_identity<double>, double>);

}  // namespace test_support
