#pragma once
/// \file detail/counter_rng.hpp
/// A counter-based random number generator for stochastic rounding.
///
/// Stochastic rounding needs one uniform number per element. A sequential generator (the
/// node's `swarmsgd::rng`) serializes the loop; a counter-based one computes the number of
/// element `index` directly from `(key, index)`, so a quantizer's loop stays a pure,
/// vectorizable map (and a GPU back end can run the same function per thread):
///
///     const std::uint64_t key = random();                 // once per encode, from the node's rng
///     for (std::size_t k = 0; k < n; ++k) u[k] = uniform01_at(key, k);
///
/// Construction: `bits_at(key, index) = mix64(key + (index + 1) * 0x9E3779B97F4A7C15)`, where
/// mix64 is the SplitMix64 output function (Stafford's "Mix13" variant of the MurmurHash3
/// finalizer). For a fixed key, bits_at(key, 0), bits_at(key, 1), ... is EXACTLY the SplitMix64
/// sequence seeded with `key` (Steele, Lea, Flood 2014), which passes TestU01 BigCrush; the
/// 64-bit mix has full avalanche, so neighbouring indices and neighbouring keys give unrelated
/// outputs. It is not cryptographic and two keys whose difference is a multiple of the golden
/// increment give shifted copies of one stream, which is harmless here: the key is a fresh 64-bit
/// draw from xoshiro256** for every encode.
///
/// Why it is enough for rounding: stochastic rounding needs only that u be (close to) uniform on
/// [0, 1) and independent of the value being rounded, so that E[round] = value. `uniform01_at`
/// keeps the top 24 bits, u = m * 2^-24 with m uniform on {0, ..., 2^24 - 1}; rounding with the
/// comparison `u < frac` (see `stochastic_round`) then has a bias below 2^-24 of one
/// quantization step per element, far below any other error in the pipeline. 24 bits are also
/// exactly what a float holds, so u is computed without rounding.
///
/// Cost: two 64-bit multiplies, three shifts/xors per element. With AVX-512DQ (vpmullq) GCC and
/// Clang vectorize the loop; with AVX2 the 64-bit multiply is emulated (about 3x slower, still
/// far faster than memory). Everything is constexpr and SWARMSGD_HOST_DEVICE.

#include <cstdint>

#include "config.hpp"

namespace swarmsgd::detail {

/// The golden-ratio increment of SplitMix64 (2^64 / phi, odd).
inline constexpr std::uint64_t counter_rng_increment = 0x9E3779B97F4A7C15ULL;

/// SplitMix64 output function (a bijection of 64-bit words with full avalanche).
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/// 64 random bits for element `index` of the stream `key` (the index-th SplitMix64 output).
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr std::uint64_t bits_at(std::uint64_t key,
                                                                   std::uint64_t index) noexcept {
    return mix64(key + (index + 1) * counter_rng_increment);
}

/// Uniform float in [0, 1) for element `index` of stream `key`: m * 2^-24, m uniform on
/// {0, ..., 2^24 - 1} (exact in float). Goes through int32 so the conversion vectorizes
/// without AVX-512DQ's unsigned 64-bit conversions.
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr float uniform01_at(std::uint64_t key,
                                                                std::uint64_t index) noexcept {
    return static_cast<float>(static_cast<std::int32_t>(bits_at(key, index) >> 40)) * 0x1.0p-24f;
}

/// Uniform double in [0, 1) with 53 random bits for element `index` of stream `key`.
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr double uniform01_at_double(
    std::uint64_t key, std::uint64_t index) noexcept {
    return static_cast<double>(static_cast<std::int64_t>(bits_at(key, index) >> 11)) * 0x1.0p-53;
}

/// Unbiased stochastic rounding of t in [0, 2^31) given u uniform in [0, 1):
/// floor(t) + (u < frac(t)), so E[result] = t (up to u's 2^-24 granularity). Written as
/// truncate + compare rather than floor(t + u) because t + u rounds in float for large t (at
/// t ~ 2^15 the ulp is 2^-8, which would bias the result by up to half an ulp); t - floor(t)
/// is exact for every float. Returns an integer (the caller clamps it in the integer domain:
/// integer selects keep GCC's loops vectorizable where float selects feeding further float
/// math often do not, under the default -ftrapping-math).
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr std::int32_t stochastic_round(float t,
                                                                           float u) noexcept {
    const auto whole = static_cast<std::int32_t>(t);  // truncation == floor for t >= 0
    const float frac = t - static_cast<float>(whole);
    return whole + (u < frac ? 1 : 0);
}

/// A key-bound view of the counter RNG: `counter_rng r{key}; r.uniform01(k)`.
struct counter_rng {
    std::uint64_t key = 0;  ///< stream key (draw it from the node's swarmsgd::rng per encode)

    /// 64 random bits of element `index`.
    [[nodiscard]] SWARMSGD_HOST_DEVICE constexpr std::uint64_t bits(
        std::uint64_t index) const noexcept {
        return bits_at(key, index);
    }
    /// Uniform float in [0, 1) of element `index`.
    [[nodiscard]] SWARMSGD_HOST_DEVICE constexpr float uniform01(
        std::uint64_t index) const noexcept {
        return uniform01_at(key, index);
    }
};

}  // namespace swarmsgd::detail
