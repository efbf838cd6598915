#pragma once
/// \file quantizers/qsgd.hpp
/// QSGD (Alistarh et al. 2017), id 5: per bucket, the L2 norm (fp32) and for each element a
/// sign and a level l in [0, s], stochastically rounded so the reconstruction is unbiased:
///   l = floor(|x| / norm * s + u),  u uniform in [0, 1)      (E[l] = |x| / norm * s)
///   reconstruction = sign * (norm / s) * l,                  |error| < norm / s
/// Meant for gradients: on models, whose norm is large compared with the distance between two
/// nodes' models, it loses far more than the lattice quantizer (see the design notes).
///
/// Wire format (little-endian):
///   payload header (16) | u16 levels s | u16 0 | u32 bucket |
///   for each bucket: f32 norm | packed codes of 1 + ceil(log2(s+1)) bits
/// Code layout: bit 0 = sign (1 = negative), bits 1.. = level. s = 127 gives 8-bit codes;
/// s = 1 gives 2-bit codes (ternary). The bucket is a multiple of 8 so each bucket's codes
/// start on a byte boundary.
///
/// Exact reconstruction: unit = norm / s is one float division and the value unit * l one
/// float multiplication (each rounded once, nothing an FMA contraction could fuse), then the
/// sign is applied; encode writes back exactly this, the same function decode uses.
/// The stored "norm" is the bucket's L2 norm rounded to float, raised to s * 2^-126 for tiny
/// nonzero buckets (so s / norm stays finite; any stored norm >= max|x| keeps the scheme
/// unbiased). V = double is converted to float.

#include <bit>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "../detail/bitpack.hpp"
#include "../detail/config.hpp"
#include "../detail/counter_rng.hpp"
#include "../detail/kernels.hpp"
#include "../detail/quantizer_support.hpp"
#include "../errors.hpp"
#include "../message.hpp"
#include "../quantizer.hpp"

namespace swarmsgd {

/// Options of qsgd_quantizer.
struct qsgd_options {
    unsigned levels = 127;     ///< s, 1..32767 (bits per element: 1 + ceil(log2(s + 1)))
    std::size_t bucket = 512;  ///< elements per bucket: a multiple of 8, 8..2^31
};

namespace detail {

/// Element kernel of qsgd_quantizer for one bucket. Codes are (level << 1) | sign.
/// Precondition of the encoder: |x| <= about norm (the bucket's own elements), so
/// |x| * s / norm stays far below 2^31; the level is clamped to [0, s] in the integer domain.
struct qsgd_kernel {
    float unit = 0;           ///< norm / s: the value of one level
    float inv_unit = 0;       ///< s / norm (0 for a zero bucket)
    std::int32_t levels = 0;  ///< s

    /// Kernel of a bucket with stored norm `norm` (finite, 0 or >= s * 2^-126).
    [[nodiscard]] SWARMSGD_HOST_DEVICE static qsgd_kernel make(float norm,
                                                               unsigned levels) noexcept {
        qsgd_kernel k;
        const auto s = static_cast<float>(levels);
        k.levels = static_cast<std::int32_t>(levels);
        k.unit = norm / s;
        k.inv_unit = norm > 0 ? s / norm : 0.0f;
        return k;
    }

    /// Stochastically rounded code of x given u uniform in [0, 1).
    [[nodiscard]] SWARMSGD_HOST_DEVICE constexpr std::uint32_t encode(float x,
                                                                      float u) const noexcept {
        const std::uint32_t bits = std::bit_cast<std::uint32_t>(x);
        const float magnitude = std::bit_cast<float>(bits & 0x7FFFFFFFu);
        std::int32_t l = stochastic_round(magnitude * inv_unit, u);
        // min(l, levels) (the float norm may round below max|x|), branch-free: see
        // min_max_kernel::clamp for why not a select.
        const std::int32_t excess = l - levels;
        l -= excess & ~(excess >> 31);
        return (static_cast<std::uint32_t>(l) << 1) | (bits >> 31);
    }
    /// Reconstruction of code c: (-1)^sign * (unit * level), one float multiplication (a single
    /// rounding that no FMA contraction can change), the sign applied exactly.
    [[nodiscard]] SWARMSGD_HOST_DEVICE constexpr float decode(std::uint32_t c) const noexcept {
        const float mag = unit * static_cast<float>(c >> 1);
        return std::bit_cast<float>(std::bit_cast<std::uint32_t>(mag) | ((c & 1u) << 31));
    }
};

/// Bits per QSGD code for s levels: 1 + ceil(log2(s + 1)).
[[nodiscard]] constexpr unsigned qsgd_code_bits(unsigned levels) noexcept {
    return 1u + static_cast<unsigned>(std::bit_width(levels));
}

/// Fused encode of one chunk (out of line so the kernel stays opaque to the vectorizer).
template <tensor_value V>
[[gnu::noinline]] void qsgd_encode_chunk(const qsgd_kernel kernel, V* SWARMSGD_RESTRICT x,
                                         std::uint16_t* SWARMSGD_RESTRICT codes, std::size_t m,
                                         std::uint64_t key, std::uint64_t base) noexcept {
    for (std::size_t j = 0; j < m; ++j) {
        const auto c =
            static_cast<std::uint16_t>(kernel.encode(to_float(x[j]), uniform01_at(key, base + j)));
        codes[j] = c;
        x[j] = static_cast<V>(kernel.decode(c));
    }
}

/// Decode of one chunk of unpacked codes.
template <tensor_value V>
[[gnu::noinline]] void qsgd_decode_chunk(const qsgd_kernel kernel,
                                         const std::uint16_t* SWARMSGD_RESTRICT codes,
                                         V* SWARMSGD_RESTRICT y, std::size_t m) noexcept {
    for (std::size_t j = 0; j < m; ++j) y[j] = static_cast<V>(kernel.decode(codes[j]));
}

}  // namespace detail

/// Parameters of a validated QSGD payload (qsgd_quantizer::check_payload).
struct qsgd_payload_info {
    unsigned levels = 0;     ///< s, 1..32767
    unsigned bits = 0;       ///< code width of s levels (sign included)
    std::size_t bucket = 0;  ///< elements per bucket
    std::size_t stride = 0;  ///< bytes per bucket: its norm, then its packed codes
};

/// QSGD with s levels per bucket (see the file comment).
template <tensor_value V>
class qsgd_quantizer {
public:
    using value_type = V;                     ///< Element type.
    using kernel_type = detail::qsgd_kernel;  ///< Per-element math of one bucket.

    /// Format id written in every payload.
    static constexpr std::uint16_t format_id = 5;
    /// Bytes of parameters after the payload header.
    static constexpr std::size_t params_size = 8;
    /// Bytes of per-bucket metadata (norm).
    static constexpr std::size_t bucket_meta_size = 4;

    /// Bytes of the payload header and parameter block that begin every payload.
    static constexpr std::size_t prefix_size = payload_header_size + params_size;

    /// s = 127 (8-bit codes), bucket 512.
    qsgd_quantizer() : qsgd_quantizer(qsgd_options{}) {}

    /// Throws invalid_argument_error for s outside 1..32767 or a bucket that is not a multiple
    /// of 8 in 8..2^31.
    explicit qsgd_quantizer(qsgd_options options) : options_(options) {
        detail::require<invalid_argument_error>(options.levels >= 1 && options.levels <= 32767,
                                                "qsgd_quantizer: levels = ", options.levels,
                                                " is outside 1..32767");
        detail::require_byte_aligned_bucket("qsgd_quantizer", options.bucket);
        name_ = detail::concat("qsgd(", options.levels, " levels, bucket ", options.bucket, ")");
    }

    /// The options given at construction.
    [[nodiscard]] const qsgd_options& options() const noexcept { return options_; }
    /// Bits per element on the wire.
    [[nodiscard]] unsigned code_bits() const noexcept {
        return detail::qsgd_code_bits(options_.levels);
    }

    /// Format id written in every payload.
    [[nodiscard]] std::uint16_t id() const noexcept { return format_id; }
    /// "qsgd(<s> levels, bucket <bucket>)".
    [[nodiscard]] std::string_view name() const noexcept { return name_; }

    /// Payload bytes for n elements (exact): 24 + 4*ceil(n/bucket) + ceil(n*bits/8).
    [[nodiscard]] std::size_t max_encoded_size(std::size_t n) const noexcept {
        return payload_size(n, code_bits(), options_.bucket);
    }

    /// Payload bytes of n elements with the given parameters.
    [[nodiscard]] static constexpr std::size_t payload_size(std::size_t n, unsigned bits,
                                                            std::size_t bucket) noexcept {
        const std::size_t buckets = n / bucket + (n % bucket != 0);
        return payload_header_size + params_size + bucket_meta_size * buckets +
               detail::packed_bytes(n, bits);
    }

    /// The start of encode, shared with the Thrust codec: throws message_error unless an
    /// output of `out_size` bytes holds the payload of n elements, then writes the payload
    /// header and the parameter block to `prefix` (prefix_size bytes). Returns the payload size.
    std::size_t write_prefix(std::size_t n, std::size_t out_size, std::byte* prefix) const {
        const std::size_t bytes = max_encoded_size(n);
        detail::require_encode_output(name_, out_size, bytes, n);
        write_payload_header({prefix, payload_header_size}, {format_id, sizeof(V), n});
        std::byte* params = prefix + payload_header_size;
        detail::store<std::uint16_t>(params, static_cast<std::uint16_t>(options_.levels));
        detail::store<std::uint16_t>(params + 2, 0);
        detail::store<std::uint32_t>(params + 4, static_cast<std::uint32_t>(options_.bucket));
        return bytes;
    }

    /// Encodes `values` (one 64-bit key drawn from `random`); on return they hold the
    /// reconstruction decode will produce. Throws message_error when `out` is too small,
    /// non_finite_error for NaN/inf and invalid_argument_error for a bucket whose norm
    /// overflows float; buckets before the failing one then already hold their reconstruction.
    std::size_t encode(std::span<V> values, std::span<std::byte> out, rng& random) const {
        const std::size_t n = values.size();
        const std::size_t bytes = write_prefix(n, out.size(), out.data());
        const std::uint64_t key = random();
        detail::bitpack_dispatch(code_bits(), [&](auto B) {
            if constexpr (B() >= 2)
                encode_impl<B()>(values.data(), n, out.data() + prefix_size, key);
        });
        return bytes;
    }

    /// Validates a payload of n elements without decoding it: header, parameters, total size,
    /// every bucket norm finite and >= 0, zero padding (the levels of the codes are checked
    /// while decoding). Throws message_error / size_mismatch_error naming the numbers. Shared by
    /// every back end of the decoder.
    [[nodiscard]] static qsgd_payload_info check_payload(std::span<const std::byte> payload,
                                                         std::size_t n) {
        const qsgd_payload_info info = check_payload_layout(payload, n);
        const std::byte* data = payload.data() + payload_header_size + params_size;
        for (std::size_t b0 = 0, b = 0; b0 < n; b0 += info.bucket, ++b)
            check_bucket_norm(detail::load<float>(data + b * info.stride), b, info.levels);
        return info;
    }

    /// check_payload without the buckets' norms: O(1) on the host, for a back end that checks
    /// the norms where the payload lives (bucket_norm_valid) and calls check_payload for the
    /// exception when one fails.
    [[nodiscard]] static qsgd_payload_info check_payload_layout(std::span<const std::byte> payload,
                                                                std::size_t n) {
        using detail::require;
        (void)read_payload_header(payload, format_id, "qsgd", sizeof(V), n);
        require<message_error>(payload.size() >= payload_header_size + params_size,
                               "qsgd payload of ", payload.size(),
                               " bytes is too short for its parameters (",
                               payload_header_size + params_size, " bytes)");
        const std::byte* params = payload.data() + payload_header_size;
        const unsigned levels = detail::load<std::uint16_t>(params);
        const unsigned reserved = detail::load<std::uint16_t>(params + 2);
        const std::size_t bucket = detail::load<std::uint32_t>(params + 4);
        require<message_error>(levels >= 1 && levels <= 32767 && reserved == 0, "qsgd payload has ",
                               levels, " levels and reserved ", reserved,
                               ", expected 1..32767 and 0");
        require<message_error>(bucket >= 8 && bucket % 8 == 0, "qsgd payload has bucket ", bucket,
                               ", expected a multiple of 8 >= 8");
        const unsigned bits = detail::qsgd_code_bits(levels);
        const std::size_t expected = payload_size(n, bits, bucket);
        require<message_error>(payload.size() == expected, "qsgd payload has ", payload.size(),
                               " bytes, expected ", expected, " for ", n, " elements (", levels,
                               " levels, bucket ", bucket, ")");
        const std::byte* data = params + params_size;
        const std::size_t stride = bucket_meta_size + detail::packed_bytes(bucket, bits);
        if (n != 0) {
            const std::size_t last = (n - 1) / bucket;
            require<message_error>(detail::padding_is_zero(data + last * stride + bucket_meta_size,
                                                           n - last * bucket, bits),
                                   "qsgd payload has non-zero padding bits after its last code");
        }
        return {levels, bits, bucket, stride};
    }

    /// True when a bucket's norm can be decoded with `levels` levels: finite, >= 0, with a
    /// finite top level.
    [[nodiscard]] SWARMSGD_HOST_DEVICE static bool bucket_norm_valid(float norm,
                                                                     unsigned levels) noexcept {
        const float top = (norm / static_cast<float>(levels)) * static_cast<float>(levels);
        return norm >= 0 && detail::non_finite_bit<float>(norm) == 0 &&
               detail::non_finite_bit<float>(top) == 0;
    }

    /// Throws message_error naming bucket b unless its norm is valid.
    static void check_bucket_norm(float norm, std::size_t b, unsigned levels) {
        detail::require<message_error>(bucket_norm_valid(norm, levels), "qsgd payload bucket ", b,
                                       " has norm ", detail::exact_text(norm),
                                       ", expected a finite value >= 0 whose top level stays "
                                       "finite");
    }

    /// Validates the whole payload (header, parameters, size, every norm finite and >= 0,
    /// every level <= s, zero padding) BEFORE writing to `out`; throws message_error /
    /// size_mismatch_error and leaves `out` untouched on error. The reference is not used.
    decode_result decode(std::span<const std::byte> payload, std::span<const V> /*reference*/,
                         std::span<V> out) const {
        using detail::require;
        const std::size_t n = out.size();
        const qsgd_payload_info info = check_payload(payload, n);
        const unsigned levels = info.levels, bits = info.bits;
        const std::size_t bucket = info.bucket;
        const std::byte* data = payload.data() + payload_header_size + params_size;
        detail::bitpack_dispatch(bits, [&](auto B) {
            if constexpr (B() >= 2) {
                // Every code field can hold a level above s unless s + 1 is a power of two.
                if (((levels + 1) & levels) != 0) {
                    const auto bad = first_bad_level<B()>(data, n, bucket, levels);
                    require<message_error>(bad == n, "qsgd payload element ", bad,
                                           " has a level above ", levels);
                }
                decode_impl<B()>(data, n, bucket, levels, out.data());
            }
        });
        return {};
    }

private:
    template <unsigned B>
    void encode_impl(V* x, std::size_t n, std::byte* data, std::uint64_t key) const {
        const unsigned levels = options_.levels;
        const std::size_t bucket = options_.bucket;
        const std::size_t stride = bucket_meta_size + detail::packed_bytes(bucket, B);
        const float min_norm = static_cast<float>(levels) * FLT_MIN;  // exact
        for (std::size_t b0 = 0, b = 0; b0 < n; b0 += bucket, ++b) {
            const std::size_t m = bucket < n - b0 ? bucket : n - b0;
            V* xb = x + b0;
            const double sum = detail::sum_of_squares(xb, m);
            if (!std::isfinite(sum)) raise_bad_bucket(xb, m, b0, b);
            float norm = static_cast<float>(std::sqrt(sum));
            if (!std::isfinite(norm)) raise_bad_bucket(xb, m, b0, b);
            if (norm > 0 && norm < min_norm) norm = min_norm;
            const auto kernel = kernel_type::make(norm, levels);
            // (norm / s) * s can overflow when norm is within a rounding of FLT_MAX: the top
            // level would reconstruct to inf (found by fuzzing).
            if (!std::isfinite(kernel.unit * static_cast<float>(levels)))
                raise_bad_bucket(xb, m, b0, b);
            std::byte* meta = data + b * stride;
            detail::store<float>(meta, norm);
            std::byte* codes_out = meta + bucket_meta_size;
            std::uint16_t codes[detail::quantizer_chunk];
            for (std::size_t c0 = 0; c0 < m; c0 += detail::quantizer_chunk) {
                const std::size_t mc =
                    detail::quantizer_chunk < m - c0 ? detail::quantizer_chunk : m - c0;
                detail::qsgd_encode_chunk(kernel, xb + c0, codes, mc, key, b0 + c0);
                detail::pack_block<B>(codes, mc, codes_out + detail::packed_bytes(c0, B));
            }
        }
    }

    template <unsigned B>
    static std::size_t first_bad_level(const std::byte* data, std::size_t n, std::size_t bucket,
                                       unsigned levels) {
        const std::size_t stride = bucket_meta_size + detail::packed_bytes(bucket, B);
        std::uint16_t codes[detail::quantizer_chunk];
        const unsigned limit = levels << 1 | 1u;  // largest valid code
        for (std::size_t b0 = 0, b = 0; b0 < n; b0 += bucket, ++b) {
            const std::size_t m = bucket < n - b0 ? bucket : n - b0;
            const std::byte* codes_in = data + b * stride + bucket_meta_size;
            for (std::size_t c0 = 0; c0 < m; c0 += detail::quantizer_chunk) {
                const std::size_t mc =
                    detail::quantizer_chunk < m - c0 ? detail::quantizer_chunk : m - c0;
                detail::unpack_block<B>(codes_in + detail::packed_bytes(c0, B), mc, codes);
                unsigned worst = 0;
                for (std::size_t j = 0; j < mc; ++j) worst = codes[j] > worst ? codes[j] : worst;
                if (worst > limit)
                    for (std::size_t j = 0; j < mc; ++j)
                        if (codes[j] > limit) return b0 + c0 + j;
            }
        }
        return n;
    }

    template <unsigned B>
    static void decode_impl(const std::byte* data, std::size_t n, std::size_t bucket,
                            unsigned levels, V* y) {
        const std::size_t stride = bucket_meta_size + detail::packed_bytes(bucket, B);
        std::uint16_t codes[detail::quantizer_chunk];
        for (std::size_t b0 = 0, b = 0; b0 < n; b0 += bucket, ++b) {
            const std::size_t m = bucket < n - b0 ? bucket : n - b0;
            const std::byte* meta = data + b * stride;
            const auto kernel = kernel_type::make(detail::load<float>(meta), levels);
            const std::byte* codes_in = meta + bucket_meta_size;
            for (std::size_t c0 = 0; c0 < m; c0 += detail::quantizer_chunk) {
                const std::size_t mc =
                    detail::quantizer_chunk < m - c0 ? detail::quantizer_chunk : m - c0;
                detail::unpack_block<B>(codes_in + detail::packed_bytes(c0, B), mc, codes);
                detail::qsgd_decode_chunk(kernel, codes, y + b0 + c0, mc);
            }
        }
    }

    [[noreturn, gnu::cold, gnu::noinline]] void raise_bad_bucket(const V* xb, std::size_t m,
                                                                 std::size_t b0,
                                                                 std::size_t b) const {
        for (std::size_t j = 0; j < m; ++j)
            if (!std::isfinite(xb[j]))
                detail::raise<non_finite_error>(name_, " encode: element ", b0 + j, " is ",
                                                detail::exact_text(xb[j]),
                                                "; only finite values can be sent");
        detail::raise<invalid_argument_error>(name_, " encode: the L2 norm of bucket ", b,
                                              " (elements ", b0, "..", b0 + m - 1,
                                              ") overflows float");
    }

    qsgd_options options_;
    std::string name_;
};

}  // namespace swarmsgd
