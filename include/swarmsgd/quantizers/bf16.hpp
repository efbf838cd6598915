#pragma once
/// \file quantizers/bf16.hpp
/// bfloat16 cast quantizer, id 3.
///
/// Each value is rounded to the nearest bfloat16 (the top 16 bits of a float: sign, 8-bit
/// exponent, 7-bit mantissa; ties to even) and sent as 2 bytes:
/// payload header (16 bytes) | n little-endian bf16 codes. Relative error <= 2^-8 for normal
/// values; the exponent range is that of fp32, subnormals included (their absolute error is
/// <= 2^-134). A finite value so close to FLT_MAX that it would round to infinity
/// (|x| >= 0x1.FFp127, about 3.3961e38) throws invalid_argument_error; NaN and infinity throw
/// non_finite_error. V = double is converted to float first (round to nearest, then to bf16),
/// so it is rounded twice; the reconstruction is exact (what decode yields).
/// Portable bit manipulation that vectorizes; no AVX512-BF16 instruction is used (it flushes
/// subnormals). With AVX2 the encode loop uses the same integer arithmetic in intrinsics.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "../detail/cast16.hpp"
#include "cast16.hpp"

#if defined(__AVX2__) && !defined(SWARMSGD_NO_BF16_AVX2) && !defined(__CUDACC__)
#include <immintrin.h>
#define SWARMSGD_BF16_AVX2 1
#endif
#include "../detail/config.hpp"
#include "../message.hpp"
#include "../quantizer.hpp"

namespace swarmsgd {

namespace detail {

/// Element kernel of bf16_quantizer: float <-> bfloat16 bits.
struct bf16_kernel {
    static constexpr std::uint16_t format_id = 3;  ///< id in every payload
    static constexpr const char* name = "bf16";
    static constexpr const char* range_text = "|x| < 3.3961e38, which rounds to a finite bf16";
    static constexpr const char* advice = "rescale the model or use identity_quantizer";

    /// Largest |x| (as float bits) that rounds to a finite bf16.
    static constexpr std::uint32_t max_abs_bits = 0x7F7F7FFFu;

    /// True when x rounds to a finite bf16 (false for NaN and infinity).
    [[nodiscard]] SWARMSGD_HOST_DEVICE static constexpr bool representable(float x) noexcept {
        return (std::bit_cast<std::uint32_t>(x) & 0x7FFFFFFFu) <= max_abs_bits;
    }

#if defined(SWARMSGD_BF16_AVX2)
    /// AVX2 path of cast16_encode_block for the largest multiple of 16 elements: the same
    /// integer arithmetic as encode(), 8 lanes at a time (256-bit vectors also avoid GCC's
    /// choice of 512-bit vectors under -march=native, which halves this loop's throughput on
    /// CPUs that split them). Codes to p, reconstruction to x where representable, running max
    /// of the magnitude bits; returns the number of elements done.
    static std::size_t hardware_encode(float* x, std::byte* p, std::size_t n,
                                       std::uint32_t& largest) noexcept {
        const __m256i magnitude_mask = _mm256_set1_epi32(0x7FFFFFFF);
        const __m256i limit = _mm256_set1_epi32(static_cast<int>(max_abs_bits));
        const __m256i half = _mm256_set1_epi32(0x7FFF);
        const __m256i one = _mm256_set1_epi32(1);
        const __m256i high = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
        __m256i top = _mm256_setzero_si256();
        std::size_t k = 0;
        for (; k + 16 <= n; k += 16) {
            __m256i code[2];
            for (int i = 0; i < 2; ++i) {
                const __m256i u =
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + k + 8 * i));
                const __m256i magnitude = _mm256_and_si256(u, magnitude_mask);
                top = _mm256_max_epu32(top, magnitude);
                const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
                const __m256i rounded = _mm256_add_epi32(_mm256_add_epi32(u, half), odd);
                code[i] = _mm256_srli_epi32(rounded, 16);
                const __m256i bad = _mm256_cmpgt_epi32(magnitude, limit);
                const __m256i recon = _mm256_blendv_epi8(_mm256_and_si256(rounded, high), u, bad);
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(x + k + 8 * i), recon);
            }
            // packus works within 128-bit lanes: reorder the 64-bit quarters afterwards.
            const __m256i packed =
                _mm256_permute4x64_epi64(_mm256_packus_epi32(code[0], code[1]), 0xD8);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 2 * k), packed);
        }
        alignas(32) std::uint32_t lanes[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), top);
        for (const std::uint32_t l : lanes) largest = l > largest ? l : largest;
        return k;
    }
#endif

    /// float -> bf16, round to nearest even (valid for representable x).
    [[nodiscard]] SWARMSGD_HOST_DEVICE static constexpr std::uint16_t encode(float x) noexcept {
        const std::uint32_t f = std::bit_cast<std::uint32_t>(x);
        return static_cast<std::uint16_t>((f + 0x7FFFu + ((f >> 16) & 1u)) >> 16);
    }

    /// bf16 -> float (exact).
    [[nodiscard]] SWARMSGD_HOST_DEVICE static constexpr float decode(std::uint16_t h) noexcept {
        return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
    }
};

}  // namespace detail

/// Rounds every value to bfloat16 (see the file comment for range, errors and format).
template <tensor_value V>
using bf16_quantizer = cast16_quantizer<detail::bf16_kernel, V>;

}  // namespace swarmsgd
