#pragma once
/// \file quantizers/min_max.hpp
/// Min-max uniform quantizer, id 4 (as in CGX and Bagua's MinMaxUInt8): the model is cut into
/// buckets of `bucket` elements; each bucket is sent as its minimum `lo` and step `scale`
/// (fp32 each) and one b-bit code per element, code = round((x - lo) / scale) with
/// scale = (max - min) / (2^b - 1). Deterministic rounding (to nearest) gives
/// |error| <= scale/2; stochastic rounding (floor(t) + [u < frac(t)], u uniform from the
/// counter RNG, which is floor(t + u) in distribution) is unbiased with |error| < scale. Both up
/// to the float rounding of the reconstruction (about one ulp of max(|lo|, |hi|)).
///
/// Wire format (all little-endian):
///   payload header (16) | u8 bits | u8 flags (bit 0: stochastic) | u16 0 | u32 bucket |
///   for each bucket: f32 lo | f32 scale (at most 16 significant bits) |
///                    packed codes (bitpack.hpp, LSB first)
/// The bucket is a multiple of 8, so every bucket's codes start on a byte boundary and the
/// payload is exactly 24 + 8*ceil(n/bucket) + ceil(n*bits/8) bytes. 8 bits, bucket 512:
/// 0.254x the fp32 size. The decoder reads bits and bucket from the payload (it does not need
/// the sender's options) and validates everything before writing to its output.
///
/// Exact reconstruction: encode writes back lo + code*scale evaluated by the same function
/// decode uses (min_max_kernel::decode). The scale is rounded UP to 16 significant bits
/// (relative change <= 2^-15, the bounds above use the stored scale), so code*scale is exact
/// in float and lo + code*scale is rounded once whether or not the compiler contracts it into
/// an FMA: sender and receiver agree bit for bit, across builds and machines. A decoder
/// rejects a scale with more significant bits.
/// Degenerate buckets: a constant bucket has scale 0 (every code 0, reconstruction exact); a
/// bucket narrower than (2^b - 1) * 2^-126 uses scale = 2^-126 so 1/scale stays finite.
/// V = double is converted to float (the wire carries fp32 parameters; values beyond the float
/// range are rejected).

#include <bit>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "../detail/bitpack.hpp"
#include "../detail/config.hpp"
#include "../detail/counter_rng.hpp"
#include "../detail/quantizer_support.hpp"
#include "../errors.hpp"
#include "../message.hpp"
#include "../quantizer.hpp"

namespace swarmsgd {

/// Options of min_max_quantizer.
struct min_max_options {
    unsigned bits = 8;         ///< code width, 1..8
    std::size_t bucket = 512;  ///< elements per bucket: a multiple of 8, 8..2^31
    bool stochastic = false;   ///< stochastic (unbiased) instead of nearest rounding
};

namespace detail {

/// Element kernel of min_max_quantizer for one bucket.
///
/// Precondition of the encoders: lo <= x <= hi for the [lo, hi] the kernel was made from (the
/// bucket's own minimum and maximum), so (x - lo) / scale lies in [0, levels * (1 + 2^-22)];
/// results are clamped to [0, levels] in the integer domain (see stochastic_round for why).
struct min_max_kernel {
    float lo = 0;             ///< bucket minimum (reconstruction of code 0)
    float scale = 0;          ///< step between levels (0 for a constant bucket)
    float inv_scale = 0;      ///< 1 / scale, 0 for a constant bucket
    std::int32_t levels = 0;  ///< 2^bits - 1, the largest code

    /// Low mantissa bits of a valid scale that must be zero: a scale has at most 16
    /// significant bits, so code * scale (code <= 255, 8 bits) is exact in float.
    static constexpr std::uint32_t scale_low_mask = 0xFFu;

    /// Rounds a positive finite scale UP to 16 significant bits (may give infinity).
    [[nodiscard]] SWARMSGD_HOST_DEVICE static constexpr float round_scale_up(float s) noexcept {
        return std::bit_cast<float>((std::bit_cast<std::uint32_t>(s) + scale_low_mask) &
                                    ~scale_low_mask);
    }

    /// Kernel of a bucket whose float values lie in [lo, hi] (finite, hi - lo <= FLT_MAX).
    /// The scale is (hi - lo) / levels rounded up to 16 significant bits and at least 2^-126
    /// (when nonzero), so 1/scale is finite and the reconstruction exact (see decode).
    [[nodiscard]] SWARMSGD_HOST_DEVICE static min_max_kernel make(float lo, float hi,
                                                                  unsigned levels) noexcept {
        min_max_kernel k;
        k.lo = lo;
        k.levels = static_cast<std::int32_t>(levels);
        // A multiplication by 1/levels (a constant once inlined) rather than a division: the
        // last-bit difference is irrelevant, the scale is rounded up to 16 bits below.
        // The floor applies before the conversion to float: a range narrower than levels *
        // 2^-150 would otherwise round to a zero scale and lose the bucket (found by fuzzing).
        const double exact = (static_cast<double>(hi) - static_cast<double>(lo)) *
                             (1.0 / static_cast<double>(levels));
        float scale =
            exact > 0 && exact < static_cast<double>(FLT_MIN) ? FLT_MIN : static_cast<float>(exact);
        scale = round_scale_up(scale);
        k.scale = scale;
        k.inv_scale = scale > 0 ? 1.0f / scale : 0.0f;
        return k;
    }

    /// True when the parameters can be decoded: lo and scale finite, scale >= 0 with at most
    /// 16 significant bits, levels * scale finite and the top level lo + levels*scale finite.
    [[nodiscard]] SWARMSGD_HOST_DEVICE bool valid() const noexcept {
        const auto top = static_cast<double>(levels) * static_cast<double>(scale);
        const double highest = static_cast<double>(lo) + top;
        return lo - lo == 0.0f && scale >= 0.0f && top <= static_cast<double>(FLT_MAX) &&
               (std::bit_cast<std::uint32_t>(scale) & scale_low_mask) == 0 &&
               highest <= static_cast<double>(FLT_MAX) && highest >= -static_cast<double>(FLT_MAX);
    }

    /// Kernel that decodes with the given (validated) parameters.
    [[nodiscard]] SWARMSGD_HOST_DEVICE static constexpr min_max_kernel for_decode(
        float lo, float scale, unsigned levels) noexcept {
        return {lo, scale, 0.0f, static_cast<std::int32_t>(levels)};
    }

    /// Clamps a code c >= 0 (guaranteed by the precondition) to [0, levels]. Branch-free
    /// arithmetic rather than a select: GCC otherwise threads the select and hoists the
    /// decode of the constant code out of the loop, which defeats its vectorizer.
    [[nodiscard]] SWARMSGD_HOST_DEVICE constexpr std::uint32_t clamp(
        std::int32_t c) const noexcept {
        const std::int32_t excess = c - levels;  // > 0 when c is above the top level
        return static_cast<std::uint32_t>(c - (excess & ~(excess >> 31)));  // c - max(excess, 0)
    }
    /// Nearest code, ties to even.
    [[nodiscard]] SWARMSGD_HOST_DEVICE constexpr std::uint32_t encode_nearest(
        float x) const noexcept {
        // For 0 <= t < 2^22, t + 1.5*2^23 rounds t to the nearest integer (ties to even) in
        // the low mantissa bits: read them off instead of subtracting and converting.
        const float t = (x - lo) * inv_scale;
        return clamp(std::bit_cast<std::int32_t>(t + 0x1.8p23f) - 0x4B400000);
    }
    /// Stochastically rounded code given u uniform in [0, 1): unbiased.
    [[nodiscard]] SWARMSGD_HOST_DEVICE constexpr std::uint32_t encode(float x,
                                                                      float u) const noexcept {
        return clamp(stochastic_round((x - lo) * inv_scale, u));
    }
    /// Reconstruction of code c: lo + c*scale. For a valid kernel the product is exact in float
    /// (c has at most 8 significant bits, scale at most 16, no overflow or underflow), so the
    /// sum is rounded once whether or not the compiler contracts it into an FMA: sender and
    /// receiver compute the same bits on every build.
    [[nodiscard]] SWARMSGD_HOST_DEVICE constexpr float decode(std::uint32_t c) const noexcept {
        return lo + static_cast<float>(c) * scale;
    }
};

/// Range and finiteness of a bucket (finite = no NaN or infinity anywhere in it).
template <tensor_value V>
struct bucket_range {
    V lo, hi;     ///< minimum and maximum (meaningful only when finite)
    bool finite;  ///< no NaN or infinity in the bucket
};

/// Signed integer whose order matches the order of the floats: for non-negative x the bits,
/// for negative x the bits with the magnitude bits flipped. An involution. Integer min/max
/// reductions vectorize without -ffast-math (float ones need -ffinite-math-only).
template <tensor_value V>
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr auto ordered_key(V x) noexcept {
    using I = std::conditional_t<sizeof(V) == 4, std::int32_t, std::int64_t>;
    constexpr I magnitude = std::numeric_limits<I>::max();
    const I i = std::bit_cast<I>(x);
    return static_cast<I>(i ^ ((i >> (8 * sizeof(V) - 1)) & magnitude));
}

/// Inverse of ordered_key.
template <tensor_value V, class I>
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr V from_ordered_key(I key) noexcept {
    constexpr I magnitude = std::numeric_limits<I>::max();
    return std::bit_cast<V>(static_cast<I>(key ^ ((key >> (8 * sizeof(V) - 1)) & magnitude)));
}

/// Extreme ordered keys (ordered_key) of a range of elements: lo > hi when it is empty.
template <tensor_value V>
struct bucket_keys {
    using key_type = decltype(ordered_key(V{}));
    key_type lo = std::numeric_limits<key_type>::max();
    key_type hi = std::numeric_limits<key_type>::min();
};

/// Extreme keys of x[0, n) in one vectorizable pass. Integer min/max is exact and independent
/// of order: the keys of pieces of a bucket combine into those of the bucket.
template <tensor_value V>
[[nodiscard]] SWARMSGD_HOST_DEVICE inline bucket_keys<V> scan_bucket_keys(
    const V* SWARMSGD_RESTRICT x, std::size_t n) noexcept {
    using I = typename bucket_keys<V>::key_type;
    I lo = std::numeric_limits<I>::max(), hi = std::numeric_limits<I>::min();
    for (std::size_t k = 0; k < n; ++k) {
        const I key = ordered_key(x[k]);
        lo = key < lo ? key : lo;
        hi = key > hi ? key : hi;
    }
    return {lo, hi};
}

/// Min, max and finiteness from the extreme keys of a non-empty bucket. NaNs and infinities
/// have keys beyond those of every finite value, so finiteness follows from them alone.
template <tensor_value V>
[[nodiscard]] SWARMSGD_HOST_DEVICE inline bucket_range<V> bucket_range_of(
    bucket_keys<V> keys) noexcept {
    constexpr V inf = std::numeric_limits<V>::infinity();
    const bool finite = keys.lo > ordered_key(-inf) && keys.hi < ordered_key(inf);
    return {from_ordered_key<V>(keys.lo), from_ordered_key<V>(keys.hi), finite};
}

/// Min, max and finiteness of x[0, n), n > 0, in one vectorizable pass (integer keys).
template <tensor_value V>
[[nodiscard]] SWARMSGD_HOST_DEVICE inline bucket_range<V> scan_bucket(const V* SWARMSGD_RESTRICT x,
                                                                      std::size_t n) noexcept {
    return bucket_range_of(scan_bucket_keys(x, n));
}

/// Fused encode of one chunk: codes[j] = code of x[j], x[j] = its reconstruction. Kept out of
/// line on purpose: GCC vectorizes it when the kernel arrives as an opaque argument, but not
/// when it can see (and specialize on) how the kernel was built.
template <bool Stochastic, tensor_value V>
[[gnu::noinline]] void min_max_encode_chunk(const min_max_kernel kernel, V* SWARMSGD_RESTRICT x,
                                            std::uint8_t* SWARMSGD_RESTRICT codes, std::size_t m,
                                            std::uint64_t key, std::uint64_t base) noexcept {
    if constexpr (Stochastic) {
        for (std::size_t j = 0; j < m; ++j) {
            const auto c = static_cast<std::uint8_t>(
                kernel.encode(to_float(x[j]), uniform01_at(key, base + j)));
            codes[j] = c;
            x[j] = static_cast<V>(kernel.decode(c));
        }
    } else {
        (void)key;
        (void)base;
        for (std::size_t j = 0; j < m; ++j) {
            const auto c = static_cast<std::uint8_t>(kernel.encode_nearest(to_float(x[j])));
            codes[j] = c;
            x[j] = static_cast<V>(kernel.decode(c));
        }
    }
}

/// Decode of one chunk of B-bit codes straight from the packed bytes.
template <unsigned B, tensor_value V>
[[gnu::noinline]] void min_max_decode_chunk(const min_max_kernel kernel,
                                            const std::byte* SWARMSGD_RESTRICT in,
                                            V* SWARMSGD_RESTRICT y, std::size_t m) noexcept {
    if constexpr (B == 8) {
        const auto* p = reinterpret_cast<const unsigned char*>(in);
        for (std::size_t j = 0; j < m; ++j) y[j] = static_cast<V>(kernel.decode(p[j]));
    } else if constexpr (B == 4) {
        // Two codes per byte, decoded in place of an unpack pass.
        const auto* p = reinterpret_cast<const unsigned char*>(in);
        const std::size_t pairs = m / 2;
        for (std::size_t j = 0; j < pairs; ++j) {
            const unsigned v = p[j];
            y[2 * j] = static_cast<V>(kernel.decode(v & 15u));
            y[2 * j + 1] = static_cast<V>(kernel.decode(v >> 4));
        }
        if (m % 2 != 0) y[m - 1] = static_cast<V>(kernel.decode(p[pairs] & 15u));
    } else {
        std::uint8_t codes[quantizer_chunk];
        unpack_block<B>(in, m, codes);
        for (std::size_t j = 0; j < m; ++j) y[j] = static_cast<V>(kernel.decode(codes[j]));
    }
}

}  // namespace detail

/// Parameters of a validated min-max payload (min_max_quantizer::check_payload).
struct min_max_payload_info {
    unsigned bits = 0;       ///< code width, 1..8
    std::size_t bucket = 0;  ///< elements per bucket
    std::size_t stride = 0;  ///< bytes per bucket: metadata, then its packed codes
};

/// b-bit min-max quantizer with per-bucket fp32 minimum and step (see the file comment).
template <tensor_value V>
class min_max_quantizer {
public:
    using value_type = V;                        ///< Element type.
    using kernel_type = detail::min_max_kernel;  ///< Per-element math of one bucket.

    /// Format id written in every payload.
    static constexpr std::uint16_t format_id = 4;
    /// Bytes of parameters after the payload header.
    static constexpr std::size_t params_size = 8;
    /// Bytes of per-bucket metadata (lo, scale).
    static constexpr std::size_t bucket_meta_size = 8;

    /// Bytes of the payload header and parameter block that begin every payload.
    static constexpr std::size_t prefix_size = payload_header_size + params_size;

    /// 8 bits, bucket 512, nearest rounding.
    min_max_quantizer() : min_max_quantizer(min_max_options{}) {}

    /// Throws invalid_argument_error for bits outside 1..8 or a bucket that is not a
    /// multiple of 8 in 8..2^31.
    explicit min_max_quantizer(min_max_options options) : options_(options) {
        detail::require<invalid_argument_error>(options.bits >= 1 && options.bits <= 8,
                                                "min_max_quantizer: bits = ", options.bits,
                                                " is outside 1..8");
        detail::require_byte_aligned_bucket("min_max_quantizer", options.bucket);
        name_ = detail::concat("min_max(", options.bits, " bits, bucket ", options.bucket,
                               options.stochastic ? ", stochastic)" : ")");
    }

    /// The options given at construction.
    [[nodiscard]] const min_max_options& options() const noexcept { return options_; }

    /// Format id written in every payload.
    [[nodiscard]] std::uint16_t id() const noexcept { return format_id; }
    /// "min_max(<bits> bits, bucket <bucket>[, stochastic])".
    [[nodiscard]] std::string_view name() const noexcept { return name_; }

    /// Payload bytes for n elements (exact): 24 + 8*ceil(n/bucket) + ceil(n*bits/8).
    [[nodiscard]] std::size_t max_encoded_size(std::size_t n) const noexcept {
        return payload_size(n, options_.bits, options_.bucket);
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
        detail::store<std::uint8_t>(params, static_cast<std::uint8_t>(options_.bits));
        detail::store<std::uint8_t>(params + 1, options_.stochastic ? 1 : 0);
        detail::store<std::uint16_t>(params + 2, 0);
        detail::store<std::uint32_t>(params + 4, static_cast<std::uint32_t>(options_.bucket));
        return bytes;
    }

    /// Encodes `values`; on return they hold the reconstruction decode will produce. Draws one
    /// 64-bit key from `random` when stochastic. Throws message_error when `out` is too small,
    /// non_finite_error for a NaN/inf element and invalid_argument_error for a bucket whose
    /// range exceeds the float range; buckets before the failing one then already hold their
    /// reconstruction, the failing one and later ones are unchanged.
    std::size_t encode(std::span<V> values, std::span<std::byte> out, rng& random) const {
        const std::size_t n = values.size();
        const std::size_t bytes = write_prefix(n, out.size(), out.data());
        std::byte* data = out.data() + prefix_size;
        if (options_.stochastic) {
            const std::uint64_t key = random();
            detail::bitpack_dispatch8(options_.bits, [&](auto B) {
                encode_impl<B(), true>(values.data(), n, data, key);
            });
        } else {
            detail::bitpack_dispatch8(
                options_.bits, [&](auto B) { encode_impl<B(), false>(values.data(), n, data, 0); });
        }
        return bytes;
    }

    /// Validates a payload of n elements without decoding it: header, parameters, total size,
    /// every bucket's min and scale, zero padding. Throws message_error / size_mismatch_error
    /// naming the numbers. Shared by every back end of the decoder.
    [[nodiscard]] static min_max_payload_info check_payload(std::span<const std::byte> payload,
                                                            std::size_t n) {
        const min_max_payload_info info = check_payload_layout(payload, n);
        const std::byte* data = payload.data() + payload_header_size + params_size;
        const unsigned levels = (1u << info.bits) - 1u;
        for (std::size_t b0 = 0, b = 0; b0 < n; b0 += info.bucket, ++b)
            check_bucket_meta(data + b * info.stride, b, levels);
        return info;
    }

    /// check_payload without the buckets' min and scale: O(1) on the host, for a back end
    /// that checks the buckets where the payload lives (bucket_meta_valid) and calls
    /// check_payload for the exception when one fails.
    [[nodiscard]] static min_max_payload_info check_payload_layout(
        std::span<const std::byte> payload, std::size_t n) {
        using detail::require;
        (void)read_payload_header(payload, format_id, "min_max", sizeof(V), n);
        require<message_error>(payload.size() >= payload_header_size + params_size,
                               "min_max payload of ", payload.size(),
                               " bytes is too short for its parameters (",
                               payload_header_size + params_size, " bytes)");
        const std::byte* params = payload.data() + payload_header_size;
        const unsigned bits = detail::load<std::uint8_t>(params);
        const unsigned flags = detail::load<std::uint8_t>(params + 1);
        const unsigned reserved = detail::load<std::uint16_t>(params + 2);
        const std::size_t bucket = detail::load<std::uint32_t>(params + 4);
        require<message_error>(bits >= 1 && bits <= 8, "min_max payload has ", bits,
                               " bits per code, expected 1..8");
        require<message_error>(flags <= 1 && reserved == 0, "min_max payload has flags ", flags,
                               " and reserved ", reserved, ", expected flags 0/1, reserved 0");
        require<message_error>(bucket >= 8 && bucket % 8 == 0, "min_max payload has bucket ",
                               bucket, ", expected a multiple of 8 >= 8");
        const std::size_t expected = payload_size(n, bits, bucket);
        require<message_error>(payload.size() == expected, "min_max payload has ", payload.size(),
                               " bytes, expected ", expected, " for ", n, " elements (", bits,
                               " bits, bucket ", bucket, ")");
        const std::byte* data = params + params_size;
        const std::size_t stride = bucket_meta_size + detail::packed_bytes(bucket, bits);
        if (n != 0) {
            const std::size_t last = (n - 1) / bucket;
            const std::size_t m = n - last * bucket;
            require<message_error>(
                detail::padding_is_zero(data + last * stride + bucket_meta_size, m, bits),
                "min_max payload has non-zero padding bits after its last code");
        }
        return {bits, bucket, stride};
    }

    /// Throws message_error naming bucket b unless its min and scale (at `meta`) are valid.
    static void check_bucket_meta(const std::byte* meta, std::size_t b, unsigned levels) {
        const float lo = detail::load<float>(meta);
        const float scale = detail::load<float>(meta + 4);
        detail::require<message_error>(
            kernel_type::for_decode(lo, scale, levels).valid(), "min_max payload bucket ", b,
            " has min ", detail::exact_text(lo), " and scale ", detail::exact_text(scale),
            "; expected finite values, scale >= 0 with at most 16 significant bits and a finite "
            "top level");
    }

    /// Validates the whole payload (header, parameters, size, every bucket's lo/scale finite
    /// with scale >= 0 and lo + (2^b-1)*scale finite, zero padding) BEFORE writing to `out`;
    /// throws message_error / size_mismatch_error and leaves `out` untouched on error.
    /// Decodes with the bits and bucket found in the payload. The reference is not used.
    decode_result decode(std::span<const std::byte> payload, std::span<const V> /*reference*/,
                         std::span<V> out) const {
        using detail::require;
        const std::size_t n = out.size();
        const min_max_payload_info info = check_payload(payload, n);
        const unsigned bits = info.bits;
        const std::size_t bucket = info.bucket;
        const std::byte* data = payload.data() + payload_header_size + params_size;
        detail::bitpack_dispatch8(bits,
                                  [&](auto B) { decode_impl<B()>(data, n, bucket, out.data()); });
        return {};
    }

private:
    /// Bucket by bucket: scan (the only pass that reads memory), then the fused code +
    /// reconstruction pass over the now L1-resident bucket. (Scanning groups of buckets first
    /// was measured slower.)
    template <unsigned B, bool Stochastic>
    void encode_impl(V* x, std::size_t n, std::byte* data, std::uint64_t key) const {
        constexpr unsigned levels = (1u << B) - 1u;
        const std::size_t bucket = options_.bucket;
        const std::size_t stride = bucket_meta_size + detail::packed_bytes(bucket, B);
        for (std::size_t b0 = 0, b = 0; b0 < n; b0 += bucket, ++b) {
            const std::size_t m = bucket < n - b0 ? bucket : n - b0;
            V* xb = x + b0;
            const kernel_type kernel = make_kernel<levels>(xb, m, b0, b);
            std::byte* meta = data + b * stride;
            detail::store<float>(meta, kernel.lo);
            detail::store<float>(meta + 4, kernel.scale);
            std::byte* codes_out = meta + bucket_meta_size;
            if constexpr (B == 8) {
                // One byte per code: the codes go straight to the payload.
                detail::min_max_encode_chunk<Stochastic>(
                    kernel, xb, reinterpret_cast<std::uint8_t*>(codes_out), m, key, b0);
            } else {
                std::uint8_t codes[detail::quantizer_chunk];
                for (std::size_t c0 = 0; c0 < m; c0 += detail::quantizer_chunk) {
                    const std::size_t mc =
                        detail::quantizer_chunk < m - c0 ? detail::quantizer_chunk : m - c0;
                    detail::min_max_encode_chunk<Stochastic>(kernel, xb + c0, codes, mc, key,
                                                             b0 + c0);
                    detail::pack_block<B>(codes, mc, codes_out + detail::packed_bytes(c0, B));
                }
            }
        }
    }

    /// Scans bucket `b` (elements b0 .. b0+m-1) and builds its kernel; throws for a NaN/inf
    /// element or a range beyond float.
    template <unsigned Levels>
    kernel_type make_kernel(const V* xb, std::size_t m, std::size_t b0, std::size_t b) const {
        const auto range = detail::scan_bucket(xb, m);
        if (!range.finite) raise_non_finite(xb, m, b0);
        const bool fits = range.lo >= V(-FLT_MAX) && range.hi <= V(FLT_MAX) &&
                          static_cast<double>(range.hi) - static_cast<double>(range.lo) <=
                              static_cast<double>(FLT_MAX);
        const auto kernel =
            kernel_type::make(detail::to_float(range.lo), detail::to_float(range.hi), Levels);
        if (!fits || !kernel.valid()) [[unlikely]]
            detail::raise<invalid_argument_error>(
                name_, " encode: bucket ", b, " (elements ", b0, "..", b0 + m - 1, ") spans [",
                detail::exact_text(range.lo), ", ", detail::exact_text(range.hi),
                "], wider than the float range");
        return kernel;
    }

    template <unsigned B>
    static void decode_impl(const std::byte* data, std::size_t n, std::size_t bucket, V* y) {
        constexpr unsigned levels = (1u << B) - 1u;
        const std::size_t stride = bucket_meta_size + detail::packed_bytes(bucket, B);
        for (std::size_t b0 = 0, b = 0; b0 < n; b0 += bucket, ++b) {
            const std::size_t m = bucket < n - b0 ? bucket : n - b0;
            const std::byte* meta = data + b * stride;
            const auto kernel = kernel_type::for_decode(detail::load<float>(meta),
                                                        detail::load<float>(meta + 4), levels);
            const std::byte* codes_in = meta + bucket_meta_size;
            for (std::size_t c0 = 0; c0 < m; c0 += detail::quantizer_chunk) {
                const std::size_t mc =
                    detail::quantizer_chunk < m - c0 ? detail::quantizer_chunk : m - c0;
                detail::min_max_decode_chunk<B>(kernel, codes_in + detail::packed_bytes(c0, B),
                                                y + b0 + c0, mc);
            }
        }
    }

    [[noreturn, gnu::cold, gnu::noinline]] void raise_non_finite(const V* xb, std::size_t m,
                                                                 std::size_t b0) const {
        for (std::size_t j = 0; j < m; ++j)
            if (!std::isfinite(xb[j]))
                detail::raise<non_finite_error>(name_, " encode: element ", b0 + j, " is ",
                                                detail::exact_text(xb[j]),
                                                "; only finite values can be sent");
        detail::raise<non_finite_error>(name_, " encode: non-finite element near ", b0);
    }

    min_max_options options_;
    std::string name_;
};

}  // namespace swarmsgd
