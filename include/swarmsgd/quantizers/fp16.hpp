#pragma once
/// \file quantizers/fp16.hpp
/// IEEE 754 binary16 ("half", fp16) cast quantizer, id 2.
///
/// Each value is rounded to the nearest fp16 (ties to even), subnormals included, and sent as
/// 2 bytes: payload header (16 bytes) | n little-endian binary16 codes. Relative error
/// <= 2^-11 in the normal range (|x| >= 2^-14); absolute error <= 2^-25 below it.
/// Range: |x| <= 65504. Encoding a value beyond it throws invalid_argument_error naming the
/// index and the value (it never produces an infinity): use bf16_quantizer for such models.
/// Note that this is stricter than rounding: 65504 < |x| < 65520, which would round to 65504,
/// is rejected too. NaN and infinity throw non_finite_error.
/// V = double is converted to float first (round to nearest), then to fp16, so a double is
/// rounded twice; the reconstruction is still exact (what decode yields) and the error bound
/// becomes 2^-11 + 2^-24 relative.
///
/// The conversion is portable bit manipulation (branch-free selects that GCC and Clang
/// vectorize); where the compiler targets F16C and AVX2 (-mf16c -mavx2, -march=native on
/// any recent x86) float models use the vcvtps2ph / vcvtph2ps instructions instead, which give
/// the same bits (checked exhaustively) at a fraction of the cost. It assumes IEEE float arithmetic
/// in round-to- nearest mode; flush-to-zero / denormals-are-zero modes (-ffast-math) only affect
/// inputs below 2^-126, which are rounded to zero either way.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "../detail/cast16.hpp"
#include "cast16.hpp"

// The F16C instructions (with AVX2 for the integer range test) give the same bits as the
// portable conversion; define SWARMSGD_NO_FP16_HARDWARE to use the portable code anyway.
#if defined(__F16C__) && defined(__AVX2__) && !defined(SWARMSGD_NO_FP16_HARDWARE) && \
    !defined(__CUDACC__)
#include <immintrin.h>
#define SWARMSGD_FP16_HARDWARE 1
#endif
#include "../detail/config.hpp"
#include "../message.hpp"
#include "../quantizer.hpp"

namespace swarmsgd {

namespace detail {

/// Element kernel of fp16_quantizer: float <-> binary16 bits.
struct fp16_kernel {
    static constexpr std::uint16_t format_id = 2;  ///< id in every payload
    static constexpr const char* name = "fp16";
    static constexpr const char* range_text = "|x| <= 65504";
    static constexpr const char* advice =
        "use bf16_quantizer, which has the exponent range of fp32, for such models";

    /// Bits of 65504.0f, the largest finite fp16 (and the largest |x| encode accepts).
    static constexpr std::uint32_t max_abs_bits = 0x477FE000u;

    /// True when |x| <= 65504 (false for NaN and infinity).
    [[nodiscard]] SWARMSGD_HOST_DEVICE static constexpr bool representable(float x) noexcept {
        return (std::bit_cast<std::uint32_t>(x) & 0x7FFFFFFFu) <= max_abs_bits;
    }

#if defined(SWARMSGD_FP16_HARDWARE)
    /// F16C path of cast16_encode_block for the largest multiple of 8 elements: codes to p,
    /// reconstruction to x where representable, running max of the magnitude bits. The
    /// instructions round to nearest even exactly like encode() (checked exhaustively over
    /// all 2^32 floats); returns the number of elements done.
    static std::size_t hardware_encode(float* x, std::byte* p, std::size_t n,
                                       std::uint32_t& largest) noexcept {
        const __m256i magnitude_mask = _mm256_set1_epi32(0x7FFFFFFF);
        const __m256i limit = _mm256_set1_epi32(static_cast<int>(max_abs_bits));
        __m256i top = _mm256_setzero_si256();
        std::size_t k = 0;
        for (; k + 8 <= n; k += 8) {
            const __m256 v = _mm256_loadu_ps(x + k);
            const __m256i magnitude = _mm256_and_si256(_mm256_castps_si256(v), magnitude_mask);
            top = _mm256_max_epu32(top, magnitude);
            const __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 2 * k), h);
            const __m256 bad = _mm256_castsi256_ps(_mm256_cmpgt_epi32(magnitude, limit));
            _mm256_storeu_ps(x + k, _mm256_blendv_ps(_mm256_cvtph_ps(h), v, bad));
        }
        alignas(32) std::uint32_t lanes[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), top);
        for (const std::uint32_t l : lanes) largest = l > largest ? l : largest;
        return k;
    }

    /// F16C path of the decode loop for the largest multiple of 8 elements.
    static std::size_t hardware_decode(const std::byte* p, float* y, std::size_t n) noexcept {
        std::size_t k = 0;
        for (; k + 8 <= n; k += 8)
            _mm256_storeu_ps(
                y + k,
                _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * k))));
        return k;
    }
#endif

    /// float -> binary16, round to nearest even (F. Giesen's float_to_half_fast3_rtne, with the
    /// branches turned into selects). Overflow gives infinity, NaN gives a quiet NaN.
    [[nodiscard]] SWARMSGD_HOST_DEVICE static constexpr std::uint16_t encode(float x) noexcept {
        std::uint32_t f = std::bit_cast<std::uint32_t>(x);
        const std::uint32_t sign = f & 0x80000000u;
        f ^= sign;
        // |x| < 2^-14: fp16 subnormal or zero. Adding 0.5f (whose ulp is 2^-24, the fp16
        // subnormal step) lets the FPU do the round-to-nearest-even; the low mantissa bits of
        // the sum are the fp16 code (0x400 when it rounds up to the smallest normal).
        const float shifted = std::bit_cast<float>(f) + 0.5f;
        const std::uint32_t sub = std::bit_cast<std::uint32_t>(shifted) - 0x3F000000u;
        // Normal: rebias the exponent (-112 << 23) and round the 13 dropped bits to even.
        const std::uint32_t odd = (f >> 13) & 1u;
        const std::uint32_t normal = (f - (112u << 23) + 0xFFFu + odd) >> 13;
        std::uint32_t o = f < 0x38800000u ? sub : normal;
        const std::uint32_t special = f > 0x7F800000u ? 0x7E00u : 0x7C00u;
        o = f >= 0x47800000u ? special : o;
        return static_cast<std::uint16_t>(o | (sign >> 16));
    }

    /// binary16 -> float (exact; F. Giesen's half_to_float with selects).
    [[nodiscard]] SWARMSGD_HOST_DEVICE static constexpr float decode(std::uint16_t h) noexcept {
        const std::uint32_t shifted = static_cast<std::uint32_t>(h & 0x7FFFu) << 13;
        const std::uint32_t exp = shifted & 0x0F800000u;
        const std::uint32_t normal = shifted + (112u << 23);
        const std::uint32_t special = normal + (112u << 23);  // inf / NaN: exponent 255
        // zero / subnormal: 2^-14 * (1 + m/1024) - 2^-14 = m * 2^-24, exact.
        const std::uint32_t sub = std::bit_cast<std::uint32_t>(
            std::bit_cast<float>(normal + (1u << 23)) - std::bit_cast<float>(113u << 23));
        std::uint32_t o = exp == 0x0F800000u ? special : normal;
        o = exp == 0 ? sub : o;
        o |= static_cast<std::uint32_t>(h & 0x8000u) << 16;
        return std::bit_cast<float>(o);
    }
};

}  // namespace detail

/// Rounds every value to IEEE binary16 (see the file comment for range, errors and format).
template <tensor_value V>
using fp16_quantizer = cast16_quantizer<detail::fp16_kernel, V>;

}  // namespace swarmsgd
