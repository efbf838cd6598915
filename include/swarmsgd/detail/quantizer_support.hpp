#pragma once
/// \file detail/quantizer_support.hpp
/// Small helpers shared by the quantizers (fp16, bf16, min-max, QSGD): exact printing of values
/// in error messages, value -> float conversion, a vectorizable sum-of-squares reduction and
/// the chunk size of the fused loops.
/// Plain counted loops with per-lane accumulators, so GCC and Clang vectorize them without
/// -ffast-math (a single scalar accumulator would need reassociation).

#include <cfloat>
#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <limits>
#include <ostream>
#include <string_view>
#include <type_traits>

#include "../errors.hpp"
#include "../tensor_traits.hpp"
#include "config.hpp"

namespace swarmsgd::detail {

/// A value printed with enough digits to round-trip (for error messages). Cheap to build:
/// the formatting happens only when the message is assembled (in the cold path), so it can
/// be passed to `require` inside hot loops.
template <class T>
struct exact_value {
    T value;  ///< the value to print
    friend std::ostream& operator<<(std::ostream& out, const exact_value& v) {
        const auto flags = out.flags();
        const auto precision = out.precision(std::numeric_limits<T>::max_digits10);
        out << v.value;
        out.precision(precision);
        out.flags(flags);
        return out;
    }
};

/// Wraps a value for exact printing in an error message.
template <class T>
[[nodiscard]] constexpr exact_value<T> exact_text(T v) noexcept {
    return {v};
}

/// Throws invalid_argument_error naming `quantizer` unless `bucket` is a multiple of 8 in
/// 8..2^31 (the bucketed quantizers start every bucket on a byte boundary).
inline void require_byte_aligned_bucket(std::string_view quantizer, std::size_t bucket) {
    require<invalid_argument_error>(bucket >= 8 && bucket % 8 == 0 && bucket <= (1ull << 31),
                                    quantizer, ": bucket = ", bucket,
                                    " must be a multiple of 8 in 8..2^31 (buckets start on byte "
                                    "boundaries)");
}

/// Throws message_error naming `quantizer` unless an encode output of `out_size` bytes holds
/// the `bytes` of the payload of n elements.
inline void require_encode_output(std::string_view quantizer, std::size_t out_size,
                                  std::size_t bytes, std::size_t n) {
    require<message_error>(out_size >= bytes, quantizer, " encode: output of ", out_size,
                           " bytes, needs ", bytes, " for ", n, " elements");
}

/// Elements per inner chunk of the fused encode/decode loops: the codes of one chunk live in
/// a stack array (L1-resident). A multiple of 8 (byte-aligned bit-packing, see bitpack.hpp).
inline constexpr std::size_t quantizer_chunk = 256;

/// Lanes of the manual reductions (a multiple of every SIMD width we care about).
inline constexpr std::size_t reduction_lanes = 16;

/// V -> float. For double, clamps to [-FLT_MAX, FLT_MAX] first so the conversion is always
/// defined (a value beyond the float range becomes +-FLT_MAX, which every quantizer then
/// rejects or handles explicitly); NaN passes through as NaN.
template <tensor_value V>
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr float to_float(V x) noexcept {
    if constexpr (std::is_same_v<V, float>) {
        return x;
    } else {
        const V hi = static_cast<V>(FLT_MAX);
        const V c = x > hi ? hi : (x < -hi ? -hi : x);
        return static_cast<float>(c);
    }
}

/// sum_k x[k]^2 accumulated in double over per-lane partial sums. Host and device code (the
/// Thrust back end calls it per bucket, so both sum in the same order and agree bit for bit).
template <tensor_value V>
[[nodiscard]] SWARMSGD_HOST_DEVICE inline double sum_of_squares(const V* SWARMSGD_RESTRICT x,
                                                                std::size_t n) noexcept {
    constexpr std::size_t L = reduction_lanes;
    double acc[L] = {};
    std::size_t k = 0;
    for (; k + L <= n; k += L)
        for (std::size_t j = 0; j < L; ++j) {
            const double v = static_cast<double>(x[k + j]);
            acc[j] += v * v;
        }
    double sum = 0;
    for (; k < n; ++k) {
        const double v = static_cast<double>(x[k]);
        sum += v * v;
    }
    for (std::size_t j = 0; j < L; ++j) sum += acc[j];
    return sum;
}

}  // namespace swarmsgd::detail
