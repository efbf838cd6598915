#pragma once
/// \file thrust/quantizers/cast16.hpp
/// fp16_quantizer and bf16_quantizer in a Thrust system: one fused pass per element with the
/// quantizer's own kernel (fp16_kernel / bf16_kernel: encode, decode, max_abs_bits), the
/// largest magnitude reduced on the way to detect values outside the format's range, exactly
/// as detail::cast16_encode_block does on the CPU. One element per work item: on a GPU that
/// measured faster than groups of 4 or 8 with vector accesses (docs/thrust.md).

#include <thrust/functional.h>
#include <thrust/transform_reduce.h>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../../detail/cast16.hpp"
#include "../../detail/quantizer_support.hpp"
#include "../../quantizers/bf16.hpp"
#include "../../quantizers/fp16.hpp"
#include "../codec.hpp"
#include "../detail/codec_support.hpp"

namespace swarmsgd {

namespace detail {

/// Encodes element k: the code to the payload, the reconstruction to x[k] when representable
/// (kept otherwise, so an error can name it); returns the magnitude bits for the range check.
template <class K, class V>
struct cast16_encode_op {
    V* x;
    std::byte* codes;
    SWARMSGD_HOST_DEVICE std::uint32_t operator()(std::size_t k) const {
        const V v = x[k];
        const float f = to_float(v);
        const std::uint32_t magnitude = std::bit_cast<std::uint32_t>(f) & 0x7FFFFFFFu;
        const std::uint16_t h = K::encode(f);
        store_any<std::uint16_t>(codes + 2 * k, h);
        x[k] = magnitude <= K::max_abs_bits ? static_cast<V>(K::decode(h)) : v;
        return magnitude;
    }
};

template <class K, class V>
struct cast16_decode_op {
    const std::byte* codes;
    V* y;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t k) const {
        y[k] = static_cast<V>(K::decode(load_any<std::uint16_t>(codes + 2 * k)));
    }
};

template <class K, class V>
struct cast16_unrepresentable_at {
    const V* x;
    SWARMSGD_HOST_DEVICE bool operator()(std::size_t k) const {
        return !K::representable(to_float(x[k]));
    }
};

/// The codec of a 16-bit cast quantizer Q (kernel Q::kernel_type) in S.
template <class Q, class S>
struct cast16_codec {
    using V = typename Q::value_type;
    using K = typename Q::kernel_type;

    std::size_t encode(const Q& q, system_span<V, S> values, system_span<std::byte, S> out,
                       rng& /*unused*/) {
        const std::size_t n = values.size();
        const std::size_t bytes = cast16_payload_size(n);
        require<message_error>(out.size() >= bytes, K::name, " encode: output of ", out.size(),
                               " bytes, needs ", bytes, " for ", n, " elements");
        payload_prefix prefix;
        write_payload_header(prefix.first(payload_header_size), {q.id(), sizeof(V), n});
        device_call("swarmsgd: 16-bit cast encode", [&] {
            prefix.copy_to<S>(payload_header_size, out.data());
            if (n == 0) return;
            const std::uint32_t largest = thrust::transform_reduce(
                system_ops<S>::policy(), index_iterator(0), index_iterator(n),
                cast16_encode_op<K, V>{values.data(), out.data() + payload_header_size},
                std::uint32_t{0}, thrust::maximum<std::uint32_t>());
            if (largest > K::max_abs_bits) raise_at(values);
        });
        return bytes;
    }

    /// As the quantizer's decode: the payload validated on the host (same exceptions, `out`
    /// untouched on error), then decoded in S.
    /// `payload_in_system`: as system_codec's decode (thrust/codec.hpp).
    decode_result decode(const Q& q, std::span<const std::byte> payload,
                         system_span<const V, S> /*reference*/, system_span<V, S> out,
                         const std::byte* payload_in_system = nullptr) {
        (void)read_payload_header(payload, q.id(), K::name, sizeof(V), out.size());
        const std::size_t n = out.size();
        const std::size_t expected = cast16_payload_size(n);
        require<message_error>(payload.size() == expected, K::name, " payload has ", payload.size(),
                               " bytes, expected ", expected, " for ", n, " elements");
        device_call("swarmsgd: 16-bit cast decode", [&] {
            const std::byte* p = staged_.stage(payload, payload_in_system);
            system_for_each<S>(n, cast16_decode_op<K, V>{p + payload_header_size, out.data()});
        });
        return {};
    }

private:
    /// The error detail::cast16_encode reports: the first element outside the range.
    [[noreturn]] static void raise_at(system_span<V, S> values) {
        const std::size_t n = values.size();
        const std::size_t k =
            first_index_where<S>(n, cast16_unrepresentable_at<K, V>{values.data()});
        if (k == n)
            raise<invalid_argument_error>(K::name, " encode: internal error, no bad element among ",
                                          n);
        const V v = element_at<S>(values.data(), k);
        if (!std::isfinite(v))
            raise<non_finite_error>(K::name, " encode: element ", k, " is ", exact_text(v),
                                    "; only finite values can be sent");
        raise<invalid_argument_error>(K::name, " encode: element ", k, " is ", exact_text(v),
                                      ", outside the ", K::name, " range (", K::range_text, "); ",
                                      K::advice);
    }

    staged_payload<S> staged_;
};

}  // namespace detail

/// cast16_quantizer<Format, V> (fp16_quantizer<V>, bf16_quantizer<V>) in system S.
template <class Format, tensor_value V, class S>
struct system_codec<cast16_quantizer<Format, V>, S>
    : detail::cast16_codec<cast16_quantizer<Format, V>, S> {};

}  // namespace swarmsgd
