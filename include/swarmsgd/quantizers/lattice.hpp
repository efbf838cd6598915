#pragma once
/// \file quantizers/lattice.hpp
/// The lattice (modular) quantizer of Davies et al. (ICLR 2021), as used by Swarm SGD: a model
/// is sent as b-bit residues of its cubic-lattice coordinates and decoded AGAINST THE
/// RECEIVER'S OWN MODEL, so the error depends on the distance between the two models, not on
/// their norm. Failed decodes (models farther apart than the lattice radius) are DETECTED with a
/// per-bucket checksum and reported in decode_result::failed; the step adapts to the distances
/// the node observes.
///
/// Math (eps = lattice step, q = 2^b):
///   encode   z_k = round(x_k / eps)                 (stochastic: floor(x_k/eps) + [u_k < frac])
///            c_k = z_k mod q  in [0, q)             (b bits on the wire)
///            x_k <- V(eps * z_k)                    (the sender's reconstruction)
///   decode   zhat_k = c_k + q * round((y_k/eps - c_k) / q)   (y = the receiver's reference)
///            xhat_k = V(eps * zhat_k)
///   zhat_k is the integer congruent to c_k (mod q) nearest to y_k/eps, so zhat_k == z_k when
///   |x_k - y_k| < (q/2 - 1/2) eps (deterministic) or (q/2 - 1) eps (stochastic), up to the
///   rounding of y_k/eps in floating point. |x_k - V(eps z_k)| <= eps/2 (deterministic) or
///   < eps (stochastic), plus a few ulps of x_k (the roundings of x_k/eps and of eps z_k).
///
/// Bit-identity: the sender's reconstruction and a successful decode are BIT-IDENTICAL: both
/// are the correctly rounded V(eps * z) of the same integer z. The loops compute it in float
/// (16 lanes per AVX-512 vector) for the segments of float models whose |x / eps| (|y / eps|
/// when decoding) stays below 2^21, and in double elsewhere; float models send a step that is a
/// float, so that eps * z is exact in double for |z| < 2^29 and both arithmetics round the same
/// exact product once. No float-to-integer conversion is used anywhere (indices come from the
/// 1.5 * 2^23 / 1.5 * 2^52 rounding constants), so no input is undefined behaviour.
///
/// Failure detection: a failed element decodes to zhat = z + m q with m != 0, i.e. its COARSE
/// index floor(z / q) is off by m. The sender sends, for every bucket of `bucket` elements, a
/// 32-bit checksum of the coarse indices; the receiver recomputes it from floor(zhat / q) and
/// reports every bucket whose checksum differs. The checksum of bucket j is
///   fmix32(S + low32(mix64(j))),   S = sum over k of term(coarse_k, (k + 1) * 0x9E3779B9)  mod
///   2^32 term(c, key) = mix(low32(c) + key) + (high32(c) - sign32(low32(c))) * 0x9E3779B1
/// where k is the index in the bucket, mix = multiply, xorshift, multiply, xorshift (a
/// bijection, see lattice_mix32) and fmix32 is MurmurHash3's finalizer (a bijection). The
/// second part of term vanishes for every index that fits in 32 bits. Consequences:
/// - a bucket that decodes correctly is never reported (the computation is deterministic);
/// - a failure of ONE element is always detected when its true and decoded coarse indices
///   both fit in 32 bits (mix is a bijection, and so is fmix32);
/// - otherwise a failed bucket goes undetected when the term differences sum to 0 mod 2^32:
///   probability about 2^-32 per failed bucket and message (the measured collision rate of
///   the low 16 bits matches the ideal 2^-16 for random, contiguous and equal-valued failure
///   patterns).
///
/// Wire format (all little-endian), after the 16-byte payload header of message.hpp:
///   offset 16  f64  eps             lattice step, finite, > 0
///   offset 24  u8   bits            2..16
///   offset 25  u8   flags           bit 0: stochastic rounding (informative); others zero
///   offset 26  u16  reserved        zero
///   offset 28  u32  bucket          elements per checksum bucket, a multiple of 8, >= 8
///   offset 32       codes           n codes of `bits` bits, LSB-first (detail/bitpack.hpp);
///                                   packed_bytes(n, bits) = ceil(n bits / 8) bytes, padding zero
///   then            u32 checksum[ceil(n / bucket)]
/// so max_encoded_size(n) = 32 + ceil(n bits / 8) + 4 ceil(n / bucket): at 8 bits and
/// bucket 256, 0.2539 bytes per fp32 value (+32 bytes).
/// The payload is self-describing: a receiver decodes any valid bits/bucket/eps, whatever its
/// own options are.
///
/// Step adaptation (the node drives it, see lattice_quantizer::observe / on_failure): the
/// quantizer keeps an estimate D of the L-infinity distance between partners, a decaying
/// maximum of the observed distances,
///   observe(d):     D <- max(d, decay * D, min_distance)
///   on_failure(d):  D <- max(failure_growth * D, d, min_distance)
/// (D is capped at 1e25 for float models and 1e280 for double models, so eps stays finite),
/// and encodes with eps = 2 * safety_margin * D / (q - 1), so that the deterministic decoding
/// radius (q - 1) eps / 2 is safety_margin * D (and q eps / 2 >= safety_margin * D).
///
/// Compiling this header with -ffast-math is refused: the exact rounding tricks of the element
/// kernel (and with them the sender/receiver bit-identity) do not survive reassociation.

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../detail/bitpack.hpp"
#include "../detail/config.hpp"
#include "../detail/counter_rng.hpp"
#include "../errors.hpp"
#include "../message.hpp"
#include "../quantizer.hpp"
#include "../random.hpp"

#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0
#error \
    "swarmsgd/quantizers/lattice.hpp needs FLT_EVAL_METHOD == 0 (SSE/AVX or other IEEE arithmetic in the precision of the type, not x87 excess precision): its rounding tricks depend on it"
#endif
#if defined(__FAST_MATH__)
#error \
    "swarmsgd/quantizers/lattice.hpp must not be compiled with -ffast-math: the lattice quantizer relies on exact IEEE rounding (so that sender and receiver reconstruct bit-identical values); -fassociative-math is not supported either (FP contraction is harmless)"
#endif

namespace swarmsgd {

/// Options of the lattice quantizer. Every field is validated by the quantizer's constructor
/// (invalid_argument_error naming the value).
struct lattice_options {
    /// Bits per coordinate, 2..16 (q = 2^bits residues).
    unsigned bits = 8;
    /// Elements per checksum bucket: a multiple of 8, at least 8, at most 2^32 - 8. Smaller
    /// buckets localize failures better and cost 4 bytes each.
    std::size_t bucket = 256;
    /// Stochastic (unbiased) rounding instead of round-to-nearest.
    bool stochastic = false;
    /// Distance estimate D used before anything was observed: a bound on max_k |x_k - y_k|.
    double initial_distance = 1.0;
    /// eps is chosen so that the decoding radius is safety_margin * D; in [1, 1000].
    double safety_margin = 2.0;
    /// Per observation, the previous estimate decays by this factor before the new
    /// observation is taken into account (D <- max(d, decay * D)); in [0, 1]. 0 keeps only
    /// the last observation, 1 keeps the largest one ever seen.
    double decay = 0.9;
    /// After a failed decode the estimate is multiplied by this factor (> 1).
    double failure_growth = 4.0;
    /// Floor of the estimate (> 0). It bounds how fine the lattice gets: encode throws when
    /// |x| / eps exceeds 2^50, i.e. for |x| > 2^50 * 2 * safety_margin * min_distance / (q - 1)
    /// (about 7e4 at 16 bits and 1.8e7 at 8 bits with the defaults). Below ~1e-6 a finer
    /// lattice buys nothing for fp32 models with O(1) weights; lower it for fp64 models.
    double min_distance = 1e-6;
};

namespace detail {

/// Bytes of the lattice parameters that follow the payload header.
inline constexpr std::size_t lattice_params_size = 16;
/// Offset of the packed codes in a lattice payload.
inline constexpr std::size_t lattice_codes_offset = payload_header_size + lattice_params_size;
/// |x / eps| (and |y / eps| when decoding) is limited to 2^50, so every lattice index fits the
/// 1.5 * 2^52 rounding trick exactly (references beyond it are clamped; their buckets fail).
inline constexpr double lattice_index_limit = 0x1.0p50;
/// Segments whose |x / eps| (|y / eps| when decoding) stay below 2^21 are processed in float
/// arithmetic (16 lanes per AVX-512 vector instead of 8); the results are identical.
inline constexpr double lattice_float_limit = 0x1.0p21;

/// Arithmetic of the element kernel: A = float (the fast path for float models, for lattice
/// indices below 2^21) or double (everything else).
template <class A>
struct lattice_real;
template <>
struct lattice_real<float> {
    using int_type = std::int32_t;             ///< lattice index type
    static constexpr float magic = 0x1.8p23f;  ///< round-to-nearest of |t| < 2^22 via t + magic
};
template <>
struct lattice_real<double> {
    using int_type = std::int64_t;             ///< lattice index type
    static constexpr double magic = 0x1.8p52;  ///< round-to-nearest of |t| < 2^51 via t + magic
};

/// The per-element mixer of the checksum: multiply, xorshift, multiply, xorshift (the
/// MurmurHash3 32-bit finalizer without its first xorshift, which a sum of terms does not
/// need). A bijection of 32-bit words; the differences of its outputs for nearby inputs are
/// spread over all 32 bits, so sums of them collide like random numbers (measured: the low 16
/// bits of the sum of the term differences of 2..7 wrong coarse indices vanish at the ideal
/// rate 2^-16, for random, contiguous and equal-valued failure patterns).
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr std::uint32_t lattice_mix32(std::uint32_t h) noexcept {
    h *= 0x85EBCA6Bu;
    h ^= h >> 16;
    h *= 0xC2B2AE35u;
    h ^= h >> 13;
    return h;
}

/// MurmurHash3's 32-bit finalizer: a bijection of 32-bit words with full avalanche.
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr std::uint32_t fmix32(std::uint32_t h) noexcept {
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

/// Position key of element `pos` of a bucket: (pos + 1) * 0x9E3779B9 (mod 2^32). The loops
/// keep it as an induction variable (key += lattice_position_step), no multiply per element.
inline constexpr std::uint32_t lattice_position_step = 0x9E3779B9u;
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr std::uint32_t lattice_position_key(
    std::uint32_t pos) noexcept {
    return (pos + 1u) * lattice_position_step;
}

/// Checksum contribution of coarse index `coarse` at the position with key `key` (the
/// definition for every coarse index that fits in 32 bits): lattice_mix32(coarse + key).
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr std::uint32_t lattice_checksum_term(
    std::int32_t coarse, std::uint32_t key) noexcept {
    return lattice_mix32(static_cast<std::uint32_t>(coarse) + key);
}
/// Checksum contribution of a 64-bit coarse index: the 32-bit term of its low word plus an odd
/// multiple of what its high word holds beyond the sign extension of the low word (zero
/// whenever the index fits in 32 bits, so both overloads agree there).
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr std::uint32_t lattice_checksum_term(
    std::int64_t coarse, std::uint32_t key) noexcept {
    const auto lo = static_cast<std::uint32_t>(static_cast<std::uint64_t>(coarse));
    const auto hi = static_cast<std::uint32_t>(static_cast<std::uint64_t>(coarse) >> 32);
    const auto sign = static_cast<std::uint32_t>(static_cast<std::int32_t>(lo) >> 31);
    return lattice_checksum_term(static_cast<std::int32_t>(lo), key) + (hi - sign) * 0x9E3779B1u;
}
/// The 32-bit checksum of bucket `bucket_index` from the sum (mod 2^32) of its terms; a
/// bijection of the sum for a given bucket.
[[nodiscard]] SWARMSGD_HOST_DEVICE constexpr std::uint32_t lattice_checksum_finish(
    std::uint32_t sum, std::uint64_t bucket_index) noexcept {
    return fmix32(sum + static_cast<std::uint32_t>(mix64(bucket_index)));
}

/// The per-element math of the lattice quantizer for models of type V computed in arithmetic
/// A (float or double), shared by the CPU loops below and usable by a Thrust/CUDA back end:
/// every member is SWARMSGD_HOST_DEVICE, no exceptions, no state beyond the constants, no
/// float-to-integer conversion (so no undefined behaviour for any input).
///
/// Preconditions (the caller checks them per chunk): |x / eps| <= 2^21 for A = float,
/// <= 2^50 for A = double (larger values are clamped, NaN becomes -2^50). For A = float the
/// step must be a float; then V(eps * z) is the correctly rounded product in both
/// arithmetics, which is why a float-path encode and a double-path decode (or the reverse)
/// reconstruct bit-identical values.
template <class V, class A>
struct lattice_kernel {
    using int_type = typename lattice_real<A>::int_type;  ///< lattice index type
    static constexpr A magic = lattice_real<A>::magic;    ///< rounding constant

    A eps = 1;                 ///< lattice step
    A inv_eps = 1;             ///< 1 / eps (rounded; only used to choose z)
    A q = 256;                 ///< number of residues, 2^bits
    A inv_q = A(1) / A(256);   ///< 1 / q (exact: q is a power of two)
    std::uint32_t mask = 255;  ///< q - 1
    unsigned bits = 8;         ///< log2(q)

    /// Result of encoding one element.
    struct encoded {
        std::uint32_t code;  ///< z mod q, in [0, q)
        int_type coarse;     ///< floor(z / q)
        V value;             ///< eps * z, exactly what a successful decode yields
    };
    /// Result of decoding one element.
    struct decoded {
        V value;          ///< eps * zhat
        int_type coarse;  ///< floor(zhat / q), to be checksummed
    };

    /// A kernel for step eps and `bits` bits (eps a finite normal number > 0, bits 1..16).
    SWARMSGD_HOST_DEVICE static lattice_kernel make(double eps, unsigned bits) noexcept {
        lattice_kernel k;
        k.eps = static_cast<A>(eps);
        k.inv_eps = static_cast<A>(1.0 / eps);
        k.bits = bits;
        k.mask = (std::uint32_t{1} << bits) - 1u;
        k.q = static_cast<A>(std::uint32_t{1} << bits);
        k.inv_q = A(1) / k.q;
        return k;
    }

    /// The bits of an A (memcpy: valid in host and device code, folded by the compiler).
    SWARMSGD_HOST_DEVICE static int_type to_bits(A a) noexcept {
        int_type i;
        std::memcpy(&i, &a, sizeof i);
        return i;
    }
    /// The integer i held by r = i + magic (|i| < 2^22 for float, 2^51 for double). Computed
    /// in unsigned arithmetic, so that any r (a discarded out-of-range lane) is defined.
    SWARMSGD_HOST_DEVICE static int_type index_of(A r) noexcept {
        using U = std::make_unsigned_t<int_type>;
        return static_cast<int_type>(static_cast<U>(to_bits(r)) - static_cast<U>(to_bits(magic)));
    }
    /// t clamped to the index range of the double path (NaN becomes -2^50); the float path
    /// relies on the caller's range check instead.
    SWARMSGD_HOST_DEVICE static A clamp_index(A t) noexcept {
        if constexpr (sizeof(A) == 8) {
            t = t >= -lattice_index_limit ? t : -lattice_index_limit;
            t = t <= lattice_index_limit ? t : lattice_index_limit;
        }
        return t;
    }

    /// Code, coarse index and reconstruction of the lattice index z (zd: the same integer as
    /// an A, exact).
    SWARMSGD_HOST_DEVICE encoded split(A zd, int_type z) const noexcept {
        encoded e;
        e.code = static_cast<std::uint32_t>(z) & mask;
        e.coarse = z >> bits;  // arithmetic shift (C++20): floor division by q
        e.value = static_cast<V>(eps * zd);
        return e;
    }

    /// Deterministic encode: z = round-half-even(x / eps).
    SWARMSGD_HOST_DEVICE encoded encode_one(V x) const noexcept {
        const A t = clamp_index(static_cast<A>(x) * inv_eps);
        const A r = t + magic;  // the integer nearest to t, plus magic (exact)
        return split(r - magic, index_of(r));
    }

    /// Stochastic encode with u uniform in [0, 1): z = floor(t) + (u < t - floor(t)), so
    /// E[z] = x / eps up to the 2^-24 granularity of u.
    SWARMSGD_HOST_DEVICE encoded encode_one(V x, float u) const noexcept {
        const A t = clamp_index(static_cast<A>(x) * inv_eps);
        A fl = (t + magic) - magic;                                    // nearest integer
        fl = fl > t ? fl - A(1) : fl;                                  // floor
        const A zd = fl + (static_cast<A>(u) < t - fl ? A(1) : A(0));  // t - fl is exact
        return split(zd, index_of(zd + magic));
    }

    /// Decode of code c against the reference y: zhat = the integer congruent to c (mod q)
    /// nearest to y / eps; the reconstruction uses the same expression as split().
    SWARMSGD_HOST_DEVICE decoded decode_one(std::uint32_t c, V y) const noexcept {
        const A t = clamp_index(static_cast<A>(y) * inv_eps);
        const A cd = static_cast<A>(static_cast<std::int32_t>(c));  // c < 2^16
        const A r = (t - cd) * inv_q + magic;                       // round((t - c) / q) + magic
        decoded d;
        d.coarse = index_of(r);
        const A zd = cd + q * (r - magic);  // exact
        d.value = static_cast<V>(eps * zd);
        return d;
    }
};

/// Elements per segment of the encode and decode loops (L1-resident codes; a multiple of 8 so
/// every segment but the very last starts on a byte boundary of the packed stream).
inline constexpr std::size_t lattice_chunk = 2048;

/// Encodes x[0, m) (in place: x becomes the reconstruction) into codes; returns the sum of the
/// checksum terms of positions pos0, pos0 + 1, ... of the bucket. Stochastic rounding uses
/// uniform01_at(key, global0 + i). Also the inner loop of the Thrust codec (on groups of 4 or
/// 8 elements held in registers on a GPU).
template <class V, class A, class C, bool Stochastic>
SWARMSGD_HOST_DEVICE inline std::uint32_t lattice_encode_chunk(
    const lattice_kernel<V, A>& kr, V* SWARMSGD_RESTRICT x, C* SWARMSGD_RESTRICT codes,
    std::size_t m, std::uint32_t pos0, std::uint64_t random_key, std::uint64_t global0) noexcept {
    std::uint32_t sum = 0;
    std::uint32_t key = lattice_position_key(pos0);
    for (std::size_t i = 0; i < m; ++i) {
        typename lattice_kernel<V, A>::encoded e;
        if constexpr (Stochastic)
            e = kr.encode_one(x[i], uniform01_at(random_key, global0 + i));
        else
            e = kr.encode_one(x[i]);
        codes[i] = static_cast<C>(e.code);
        sum += lattice_checksum_term(e.coarse, key);
        key += lattice_position_step;
        x[i] = e.value;
    }
    return sum;
}

/// Decodes codes[0, m) against y into out; returns the sum of the checksum terms.
/// `InPlace`: y == out (one pointer, each element read before it is written).
template <class V, class A, class C, bool InPlace>
SWARMSGD_HOST_DEVICE inline std::uint32_t lattice_decode_chunk(
    const lattice_kernel<V, A>& kr, const C* SWARMSGD_RESTRICT codes, const V* SWARMSGD_RESTRICT y,
    V* SWARMSGD_RESTRICT out, std::size_t m, std::uint32_t pos0) noexcept {
    std::uint32_t sum = 0;
    std::uint32_t key = lattice_position_key(pos0);
    if constexpr (InPlace) {
        for (std::size_t i = 0; i < m; ++i) {
            const auto d = kr.decode_one(codes[i], out[i]);
            sum += lattice_checksum_term(d.coarse, key);
            key += lattice_position_step;
            out[i] = d.value;
        }
    } else {
        for (std::size_t i = 0; i < m; ++i) {
            const auto d = kr.decode_one(codes[i], y[i]);
            sum += lattice_checksum_term(d.coarse, key);
            key += lattice_position_step;
            out[i] = d.value;
        }
    }
    return sum;
}

/// Float-path decode of codes[0, m) against y into out that also reports, in `outside`,
/// whether some |y_i| exceeded `y_max` (or was NaN): the caller then decodes the range again
/// in double (y is not modified, so this is only for out != y).
template <class C>
SWARMSGD_HOST_DEVICE inline std::uint32_t lattice_decode_chunk_checked(
    const lattice_kernel<float, float>& kr, const C* SWARMSGD_RESTRICT codes,
    const float* SWARMSGD_RESTRICT y, float* SWARMSGD_RESTRICT out, std::size_t m,
    std::uint32_t pos0, float y_max, bool& outside) noexcept {
    std::uint32_t sum = 0;
    std::uint32_t key = lattice_position_key(pos0);
    unsigned bad = 0;
    for (std::size_t i = 0; i < m; ++i) {
        bad |= std::fabs(y[i]) <= y_max ? 0u : 1u;
        const auto d = kr.decode_one(codes[i], y[i]);
        sum += lattice_checksum_term(d.coarse, key);
        key += lattice_position_step;
        out[i] = d.value;
    }
    outside = bad != 0;
    return sum;
}

/// max_i |x_i| as the bit pattern of |x_i| (NaN and infinities compare above every finite
/// value: a result >= 0x7F800000 means a non-finite element).
[[nodiscard]] SWARMSGD_HOST_DEVICE inline std::uint32_t lattice_max_abs_bits(
    const float* SWARMSGD_RESTRICT x, std::size_t m) noexcept {
    std::uint32_t mx = 0;
    for (std::size_t i = 0; i < m; ++i) {
        const std::uint32_t b = std::bit_cast<std::uint32_t>(x[i]) & 0x7FFFFFFFu;
        mx = b > mx ? b : mx;
    }
    return mx;
}

/// Elements per segment of the encode and decode loops: whole buckets up to lattice_chunk
/// elements, or lattice_chunk elements of a larger bucket (always a multiple of 8).
[[nodiscard]] constexpr std::size_t lattice_segment_span(std::size_t bucket) noexcept {
    return bucket <= lattice_chunk ? lattice_chunk / bucket * bucket : lattice_chunk;
}

/// True when eps is a normal float (so the float path can use it exactly).
[[nodiscard]] inline bool lattice_float_step(double eps) noexcept {
    const auto f = static_cast<float>(eps);
    return static_cast<double>(f) == eps && f >= std::numeric_limits<float>::min() &&
           f <= 0x1.0p-24f * std::numeric_limits<float>::max();
}

/// A step a lattice quantizer of V may send: a finite normal double > 0, small enough that
/// eps * z stays finite, and for float models a normal float.
template <class V>
[[nodiscard]] bool lattice_valid_eps(double eps) noexcept {
    if (!(std::isfinite(eps) && eps >= std::numeric_limits<double>::min() &&
          eps <= 0x1.0p-64 * std::numeric_limits<double>::max()))
        return false;
    if constexpr (std::is_same_v<V, float>) return lattice_float_step(eps);
    return true;
}

}  // namespace detail

/// Parameters read from a lattice payload (see lattice_quantizer::inspect).
struct lattice_payload_info {
    std::size_t count = 0;    ///< elements encoded
    double eps = 0;           ///< lattice step
    unsigned bits = 0;        ///< bits per code
    std::size_t bucket = 0;   ///< elements per checksum bucket
    bool stochastic = false;  ///< the sender used stochastic rounding
};

/// The lattice quantizer (format id 6) for models of value type V (float or double). See the
/// file comment for the math, the wire format, the failure detection and the step rule.
///
/// Usage by a node: encode with the current step; after every exchange call observe() with the
/// two reconstructions (or observe_distance() with a distance it knows); after a failed decode
/// (decode_result::failed not empty) recover the failed ranges by other means and call
/// on_failure() so the next messages use a coarser lattice.
///
/// A value type: copyable, no shared state; encode and decode are const and thread-compatible.
template <tensor_value V>
class lattice_quantizer {
public:
    using value_type = V;  ///< Element type.

    /// Format id written in every payload.
    static constexpr std::uint16_t format_id = 6;

    /// A quantizer with the given options; throws invalid_argument_error naming a bad value.
    explicit lattice_quantizer(const lattice_options& options = {}) : options_(options) {
        using detail::require;
        const auto& o = options_;
        require<invalid_argument_error>(o.bits >= 2 && o.bits <= 16,
                                        "lattice_options: bits = ", o.bits, " is outside 2..16");
        require<invalid_argument_error>(
            o.bucket >= 8 && o.bucket % 8 == 0 && o.bucket <= 0xFFFFFFF8u,
            "lattice_options: bucket = ", o.bucket,
            " must be a multiple of 8 between 8 and 4294967288");
        require<invalid_argument_error>(
            std::isfinite(o.min_distance) && o.min_distance > 0 && o.min_distance <= max_distance(),
            "lattice_options: min_distance = ", o.min_distance,
            " must be finite, > 0 and <= ", max_distance());
        require<invalid_argument_error>(std::isfinite(o.initial_distance) && o.initial_distance > 0,
                                        "lattice_options: initial_distance = ", o.initial_distance,
                                        " must be finite and > 0");
        require<invalid_argument_error>(
            std::isfinite(o.safety_margin) && o.safety_margin >= 1 && o.safety_margin <= 1e3,
            "lattice_options: safety_margin = ", o.safety_margin, " must be in [1, 1000]");
        require<invalid_argument_error>(o.decay >= 0 && o.decay <= 1,
                                        "lattice_options: decay = ", o.decay, " must be in [0, 1]");
        require<invalid_argument_error>(std::isfinite(o.failure_growth) && o.failure_growth > 1,
                                        "lattice_options: failure_growth = ", o.failure_growth,
                                        " must be finite and > 1");
        const double q = static_cast<double>(std::uint64_t{1} << o.bits);
        const double finest = 2.0 * o.safety_margin * o.min_distance / (q - 1.0);
        require<invalid_argument_error>(
            finest >= 0x1.0p10 * static_cast<double>(std::numeric_limits<V>::min()),
            "lattice_options: min_distance = ", o.min_distance, " allows a step of ", finest,
            ", too close to the smallest normal ", value_name(), " (",
            std::numeric_limits<V>::min(), ")");
        distance_ = clamp_distance(o.initial_distance);
    }

    /// Format id written in every payload.
    [[nodiscard]] std::uint16_t id() const noexcept { return format_id; }
    /// "lattice".
    [[nodiscard]] std::string_view name() const noexcept { return "lattice"; }
    /// The options it was built with.
    [[nodiscard]] const lattice_options& options() const noexcept { return options_; }

    /// Payload bytes for n elements (exact, not only a bound): header, parameters, packed
    /// codes and one 32-bit checksum per bucket.
    [[nodiscard]] std::size_t max_encoded_size(std::size_t n) const noexcept {
        return encoded_size(n, options_.bits, options_.bucket);
    }
    /// Payload bytes for n elements at `bits` bits and `bucket` elements per checksum.
    [[nodiscard]] static constexpr std::size_t encoded_size(std::size_t n, unsigned bits,
                                                            std::size_t bucket) noexcept {
        return detail::lattice_codes_offset + detail::packed_bytes(n, bits) +
               4 * (n / bucket + (n % bucket != 0 ? 1 : 0));
    }

    // --- step adaptation --------------------------------------------------------------------

    /// The current distance estimate D (>= min_distance).
    [[nodiscard]] double distance_estimate() const noexcept { return distance_; }
    /// The lattice step the next encode uses: 2 * safety_margin * D / (q - 1) (for float
    /// models the payload carries it rounded to the nearest float).
    [[nodiscard]] double step() const noexcept {
        const double q = static_cast<double>(std::uint64_t{1} << options_.bits);
        return 2.0 * options_.safety_margin * distance_ / (q - 1.0);
    }
    /// The step the next payload carries: step(), rounded to the nearest float for float
    /// models (what encode writes and every back end must use).
    [[nodiscard]] double encoding_step() const noexcept {
        if constexpr (std::is_same_v<V, float>)
            return static_cast<double>(static_cast<float>(step()));
        return step();
    }
    /// Radius of a deterministic decode at the current step: (q - 1) * step() / 2, which is
    /// safety_margin * D. Partners closer than this (in every coordinate) decode exactly.
    [[nodiscard]] double radius() const noexcept { return options_.safety_margin * distance_; }

    /// Records an observed L-infinity distance d between this node's and a partner's model:
    /// D <- max(d, decay * D, min_distance). Throws invalid_argument_error for d < 0 or NaN;
    /// an infinite d is capped (see the file comment).
    void observe_distance(double d) {
        check_distance(d, "observe_distance");
        distance_ = clamp_distance(std::max(d, options_.decay * distance_));
    }

    /// Records the distance max_k |mine_k - theirs_k| of two models after an exchange (for
    /// instance this node's reconstruction and the partner's decoded one). Throws
    /// size_mismatch_error when the sizes differ.
    void observe(std::span<const V> mine, std::span<const V> theirs) {
        observe_distance(max_abs_difference(mine, theirs));
    }

    /// Records a failed decode: D <- max(failure_growth * D, observed, min_distance), so the
    /// next message covers at least failure_growth times the previous radius. `observed` is
    /// the distance measured after recovery when known (0 otherwise).
    void on_failure(double observed = 0.0) {
        check_distance(observed, "on_failure");
        distance_ = clamp_distance(std::max(options_.failure_growth * distance_, observed));
    }

    /// Checkpoints (stateful_quantizer): the state is the distance estimate, 8 bytes.
    void save_state(std::vector<std::byte>& out) const {
        const std::size_t at = out.size();
        out.resize(at + 8);
        detail::store<double>(out.data() + at, distance_);
    }
    /// Restores save_state's bytes; invalid_argument_error (and no change) for anything else.
    void load_state(std::span<const std::byte> in) {
        detail::require<invalid_argument_error>(in.size() == 8, "lattice load_state: ", in.size(),
                                                " bytes, expected 8 (the distance estimate)");
        set_distance_estimate(detail::load<double>(in.data()));
    }

    /// Sets the estimate directly (clamped to [min_distance, 1e25 (float) / 1e280 (double)]).
    void set_distance_estimate(double d) {
        check_distance(d, "set_distance_estimate");
        distance_ = clamp_distance(d);
    }

    /// max_k |a_k - b_k| in double; size_mismatch_error when the sizes differ. NaN elements
    /// make the result NaN.
    [[nodiscard]] static double max_abs_difference(std::span<const V> a, std::span<const V> b) {
        detail::require<size_mismatch_error>(a.size() == b.size(), "lattice observe: models of ",
                                             a.size(), " and ", b.size(), " elements");
        double m = 0;
        bool nan = false;
        const V* pa = a.data();
        const V* pb = b.data();
        for (std::size_t k = 0; k < a.size(); ++k) {
            const double d = std::fabs(static_cast<double>(pa[k]) - static_cast<double>(pb[k]));
            nan |= d != d;
            m = d > m ? d : m;
        }
        return nan ? std::numeric_limits<double>::quiet_NaN() : m;
    }

    // --- encode / decode --------------------------------------------------------------------

    /// The start of encode, shared with the Thrust codec: throws message_error unless an
    /// output of `out_size` bytes holds the payload of n elements and invalid_argument_error
    /// unless encoding_step() is a usable step, then writes the payload header and the
    /// parameter block to `prefix` (detail::lattice_codes_offset bytes). Returns the step eps.
    double write_prefix(std::size_t n, std::size_t out_size, std::byte* prefix) const {
        using detail::require;
        const std::size_t bytes = max_encoded_size(n);
        require<message_error>(out_size >= bytes, "lattice encode: output of ", out_size,
                               " bytes, ", n, " elements need ", bytes);
        const double eps = encoding_step();
        require<invalid_argument_error>(
            detail::lattice_valid_eps<V>(eps), "lattice encode: step eps = ", eps,
            " is not a finite normal ", value_name(), " > 0 (distance estimate ", distance_,
            ", bits ", options_.bits, ")");
        write_payload_header({prefix, payload_header_size}, {format_id, sizeof(V), n});
        std::byte* const params = prefix + payload_header_size;
        detail::store<double>(params, eps);
        detail::store<std::uint8_t>(params + 8, static_cast<std::uint8_t>(options_.bits));
        detail::store<std::uint8_t>(params + 9, options_.stochastic ? 1 : 0);
        detail::store<std::uint16_t>(params + 10, 0);
        detail::store<std::uint32_t>(params + 12, static_cast<std::uint32_t>(options_.bucket));
        return eps;
    }

    /// Encodes `values` with the current step into `out` (at least max_encoded_size(n) bytes)
    /// and returns the bytes written, max_encoded_size(n). On return `values` holds the
    /// reconstruction eps * z, bit-identical to what a successful decode yields. Stochastic
    /// rounding draws ONE 64-bit key from `random` (nothing is drawn otherwise).
    /// Throws message_error when `out` is too small, invalid_argument_error when the step is
    /// not a finite positive normal number or some |x| / eps exceeds 2^50 (the message names
    /// the element, its value and eps: raise min_distance), non_finite_error for a NaN or
    /// infinite element. On an exception `out` is unspecified and `values` may already hold
    /// the reconstruction of elements before the offending one (basic guarantee; swarm_node
    /// encodes a copy of its model).
    std::size_t encode(std::span<V> values, std::span<std::byte> out, rng& random) const {
        const std::size_t n = values.size();
        const std::size_t bytes = max_encoded_size(n);
        const double eps = write_prefix(n, out.size(), out.data());
        const unsigned bits = options_.bits;
        const std::size_t bucket = options_.bucket;
        const bool stochastic = options_.stochastic;
        const std::uint64_t key = stochastic ? random() : 0;
        std::byte* const codes_out = out.data() + detail::lattice_codes_offset;
        std::byte* const sums_out = codes_out + detail::packed_bytes(n, bits);

        const auto kd = detail::lattice_kernel<V, double>::make(eps, bits);
        [[maybe_unused]] const auto kf = detail::lattice_kernel<V, float>::make(eps, bits);
        V* const x = values.data();
        // Segments of about lattice_chunk elements (whole buckets, or pieces of one large
        // bucket): one range check and one (un)packing per segment, one vector loop per bucket
        // piece, the constants of the loops hoisted out of all of them.
        const std::size_t span = detail::lattice_segment_span(bucket);
        const bool direct = bits == 8;  // 8-bit codes are written straight into the payload
        auto run = [&](auto code_tag) {
            using C = decltype(code_tag);
            alignas(64) C local[detail::lattice_chunk];
            std::uint32_t sum = 0;
            for (std::size_t s = 0; s < n;) {
                const std::size_t e = std::min(n, s + span);
                const bool fast = encode_range(x + s, e - s, s, eps) == path::fast;
                C* const codes = direct ? reinterpret_cast<C*>(codes_out + s) : local;
                for (std::size_t k = s; k < e;) {
                    const std::size_t bucket_index = k / bucket;
                    const std::size_t bucket_end = (bucket_index + 1) * bucket;
                    const std::size_t pe = std::min(e, bucket_end);
                    const auto pos0 = static_cast<std::uint32_t>(k - bucket_index * bucket);
                    C* const c = codes + (k - s);
                    if constexpr (std::is_same_v<V, float>) {
                        if (fast) {
                            sum += stochastic ? detail::lattice_encode_chunk<V, float, C, true>(
                                                    kf, x + k, c, pe - k, pos0, key, k)
                                              : detail::lattice_encode_chunk<V, float, C, false>(
                                                    kf, x + k, c, pe - k, pos0, 0, k);
                        }
                    }
                    if (!fast) {
                        sum += stochastic ? detail::lattice_encode_chunk<V, double, C, true>(
                                                kd, x + k, c, pe - k, pos0, key, k)
                                          : detail::lattice_encode_chunk<V, double, C, false>(
                                                kd, x + k, c, pe - k, pos0, 0, k);
                    }
                    if (pe == bucket_end || pe == n) {
                        detail::store<std::uint32_t>(
                            sums_out + 4 * bucket_index,
                            detail::lattice_checksum_finish(sum, bucket_index));
                        sum = 0;
                    }
                    k = pe;
                }
                if (!direct)
                    detail::pack_block(local, e - s, bits,
                                       codes_out + detail::packed_bytes(s, bits));
                s = e;
            }
        };
        if (bits <= 8)
            run(std::uint8_t{});
        else
            run(std::uint16_t{});
        return bytes;
    }

    /// Reads and validates the parameters of a lattice payload (header, parameter block, total
    /// size, code padding) without decoding it. Throws message_error naming the defect (and
    /// the numbers); the element count is not compared with anything.
    [[nodiscard]] static lattice_payload_info inspect(std::span<const std::byte> payload) {
        using detail::require;
        require<message_error>(payload.size() >= payload_header_size,
                               "lattice payload is truncated: ", payload.size(),
                               " bytes, the payload header alone needs ", payload_header_size);
        const auto count = detail::load<std::uint64_t>(payload.data() + 8);
        (void)read_payload_header(payload, format_id, "lattice", sizeof(V), count);
        return check_params(payload, count);
    }

    /// Decodes a payload against `reference` (the receiver's own model, reference.size() ==
    /// out.size()) into `out`. The payload is validated completely before `out` is written:
    /// message_error (truncated or oversized, wrong quantizer or value width, bits outside
    /// 2..16, bucket not a positive multiple of 8, eps not finite normal > 0, unknown flags,
    /// non-zero reserved or padding bits) or size_mismatch_error (element count or reference
    /// size), naming the numbers, with `out` untouched.
    /// Returns the buckets whose checksum did not match, one element_range per bucket, in
    /// increasing order; the values written to those ranges are the best guess (the lattice
    /// point nearest to the reference) and must be treated as unspecified. Every other element
    /// is bit-identical to the sender's reconstruction.
    /// `out` may be the very same span as `reference` (in-place decode); any other overlap
    /// throws invalid_argument_error (before `out` is written).
    decode_result decode(std::span<const std::byte> payload, std::span<const V> reference,
                         std::span<V> out) const {
        const std::size_t n = out.size();
        (void)read_payload_header(payload, format_id, "lattice", sizeof(V), n);
        detail::require<size_mismatch_error>(reference.size() == n, "lattice decode: reference of ",
                                             reference.size(), " elements, output of ", n);
        const lattice_payload_info info = check_params(payload, n);
        const V* const y = reference.data();
        V* const o = out.data();
        const bool in_place = n != 0 && static_cast<const void*>(y) == static_cast<void*>(o);
        const auto ya = reinterpret_cast<std::uintptr_t>(y);
        const auto oa = reinterpret_cast<std::uintptr_t>(o);
        detail::require<invalid_argument_error>(
            in_place || n == 0 || ya + n * sizeof(V) <= oa || oa + n * sizeof(V) <= ya,
            "lattice decode: the output overlaps the reference without being the same span");

        decode_result result;
        const unsigned bits = info.bits;
        const double eps = info.eps;
        const auto kd = detail::lattice_kernel<V, double>::make(eps, bits);
        [[maybe_unused]] const auto kf = detail::lattice_kernel<V, float>::make(eps, bits);
        // The float path needs a step that is a float (what a float sender writes).
        const bool fast_ok = std::is_same_v<V, float> && detail::lattice_float_step(eps);
        const double fast_max = detail::lattice_float_limit * eps;  // max |y| of the float path
        const auto fast_max_f = static_cast<float>(fast_max);       // exact when fast_ok
        const std::byte* const codes_in = payload.data() + detail::lattice_codes_offset;
        const std::byte* const sums_in = codes_in + detail::packed_bytes(n, bits);
        const std::size_t bucket = info.bucket;
        const std::size_t span = detail::lattice_segment_span(bucket);
        const bool direct = bits == 8;  // 8-bit codes are read straight from the payload
        auto run = [&](auto code_tag) {
            using C = decltype(code_tag);
            alignas(64) C local[detail::lattice_chunk];
            std::uint32_t sum = 0;
            for (std::size_t s = 0; s < n;) {
                const std::size_t e = std::min(n, s + span);
                const C* codes = local;
                if (direct)
                    codes = reinterpret_cast<const C*>(codes_in + s);
                else
                    detail::unpack_block(codes_in + detail::packed_bytes(s, bits), e - s, bits,
                                         local);
                [[maybe_unused]] bool fast = false;  // only read for float models
                if constexpr (std::is_same_v<V, float>) {
                    if (fast_ok && in_place) {
                        const std::uint32_t b = detail::lattice_max_abs_bits(y + s, e - s);
                        fast = b < 0x7F800000u && double(std::bit_cast<float>(b)) <= fast_max;
                    }
                }
                for (std::size_t k = s; k < e;) {
                    const std::size_t bucket_index = k / bucket;
                    const std::size_t bucket_end = (bucket_index + 1) * bucket;
                    const std::size_t pe = std::min(e, bucket_end);
                    const auto pos0 = static_cast<std::uint32_t>(k - bucket_index * bucket);
                    const C* const c = codes + (k - s);
                    bool done = false;
                    if constexpr (std::is_same_v<V, float>) {
                        if (fast) {
                            sum += detail::lattice_decode_chunk<V, float, C, true>(
                                kf, c, nullptr, o + k, pe - k, pos0);
                            done = true;
                        } else if (fast_ok && !in_place) {
                            bool outside = false;
                            const std::uint32_t part = detail::lattice_decode_chunk_checked(
                                kf, c, y + k, o + k, pe - k, pos0, fast_max_f, outside);
                            if (!outside) {
                                sum += part;
                                done = true;
                            }
                        }
                    }
                    if (!done) {
                        sum += in_place ? detail::lattice_decode_chunk<V, double, C, true>(
                                              kd, c, nullptr, o + k, pe - k, pos0)
                                        : detail::lattice_decode_chunk<V, double, C, false>(
                                              kd, c, y + k, o + k, pe - k, pos0);
                    }
                    if (pe == bucket_end || pe == n) {
                        const auto expected =
                            detail::load<std::uint32_t>(sums_in + 4 * bucket_index);
                        if (detail::lattice_checksum_finish(sum, bucket_index) != expected)
                            [[unlikely]]
                            result.failed.push_back({bucket_index * bucket, pe});
                        sum = 0;
                    }
                    k = pe;
                }
                s = e;
            }
        };
        if (bits <= 8)
            run(std::uint8_t{});
        else
            run(std::uint16_t{});
        return result;
    }

private:
    enum class path { fast, exact };

    [[nodiscard]] static constexpr const char* value_name() noexcept {
        return std::is_same_v<V, float> ? "float" : "double";
    }

    [[nodiscard]] static constexpr double max_distance() noexcept {
        return std::is_same_v<V, float> ? 1e25 : 1e280;
    }

    [[nodiscard]] double clamp_distance(double d) const noexcept {
        return std::min(std::max(d, options_.min_distance), max_distance());
    }

    static void check_distance(double d, const char* what) {
        detail::require<invalid_argument_error>(d >= 0, "lattice ", what, ": distance ", d,
                                                " must be >= 0 (and not NaN)");
    }

    /// Checks that every x[i] / eps is a valid lattice index and picks the arithmetic of the
    /// chunk: float when every |x[i] / eps| <= 2^21 (float models only), double otherwise.
    /// Throws non_finite_error or invalid_argument_error naming the element (x is untouched).
    static path encode_range(const V* x, std::size_t m, std::size_t k0, double eps) {
        const double inv_eps = 1.0 / eps;
        if constexpr (std::is_same_v<V, float>) {
            const std::uint32_t b = detail::lattice_max_abs_bits(x, m);
            if (b < 0x7F800000u) [[likely]] {
                const double t = double(std::bit_cast<float>(b)) * inv_eps;
                if (t <= detail::lattice_float_limit) return path::fast;
                if (t <= detail::lattice_index_limit) return path::exact;
            }
        } else {
            unsigned bad = 0;
            for (std::size_t i = 0; i < m; ++i)
                bad |= std::fabs(x[i] * inv_eps) <= detail::lattice_index_limit ? 0u : 1u;
            if (bad == 0) [[likely]]
                return path::exact;
        }
        for (std::size_t i = 0; i < m; ++i) {
            const double t = std::fabs(static_cast<double>(x[i]) * inv_eps);
            if (t <= detail::lattice_index_limit) continue;
            if (!std::isfinite(x[i]))
                detail::raise<non_finite_error>("lattice encode: element ", k0 + i, " is ", x[i]);
            detail::raise<invalid_argument_error>(
                "lattice encode: element ", k0 + i, " = ", x[i],
                " is too large for the step eps = ", eps, " (|x| / eps = ", t,
                " exceeds 2^50); raise lattice_options::min_distance");
        }
        return path::exact;  // unreachable
    }

    /// Validates the parameter block and the total size of a payload of n elements whose
    /// header was already checked.
    static lattice_payload_info check_params(std::span<const std::byte> payload, std::size_t n) {
        using detail::require;
        require<message_error>(payload.size() >= detail::lattice_codes_offset,
                               "lattice payload is truncated: ", payload.size(),
                               " bytes, header and parameters need ", detail::lattice_codes_offset);
        const std::byte* const params = payload.data() + payload_header_size;
        lattice_payload_info info;
        info.count = n;
        info.eps = detail::load<double>(params);
        info.bits = detail::load<std::uint8_t>(params + 8);
        const auto flags = detail::load<std::uint8_t>(params + 9);
        const auto reserved = detail::load<std::uint16_t>(params + 10);
        info.bucket = detail::load<std::uint32_t>(params + 12);
        info.stochastic = (flags & 1u) != 0;
        require<message_error>(info.bits >= 2 && info.bits <= 16,
                               "lattice payload has bits = ", info.bits, ", outside 2..16");
        require<message_error>(info.bucket >= 8 && info.bucket % 8 == 0,
                               "lattice payload has bucket = ", info.bucket,
                               ", not a positive multiple of 8");
        require<message_error>(detail::lattice_valid_eps<V>(info.eps),
                               "lattice payload has step eps = ", info.eps,
                               ", not a finite normal number > 0");
        require<message_error>((flags & ~1u) == 0 && reserved == 0,
                               "lattice payload has unknown flags ", unsigned(flags),
                               " or reserved field ", reserved, " (both must be 0 but bit 0)");
        // n <= payload bytes * 8 / 2 for any valid payload; bounding n first keeps the size
        // arithmetic below far from overflow.
        require<message_error>(n / 4 <= payload.size(), "lattice payload of ", payload.size(),
                               " bytes cannot hold ", n, " elements");
        const std::size_t expected = encoded_size(n, info.bits, info.bucket);
        require<message_error>(payload.size() == expected, "lattice payload has ", payload.size(),
                               " bytes, expected ", expected, " for ", n, " elements at ",
                               info.bits, " bits with buckets of ", info.bucket);
        require<message_error>(
            n == 0 || detail::padding_is_zero(payload.data() + detail::lattice_codes_offset, n,
                                              info.bits),
            "lattice payload has non-zero padding bits after its last code");
        return info;
    }

    lattice_options options_;
    double distance_ = 1.0;
};

static_assert(quantizer_for<lattice_quantizer<float>, float>);
static_assert(quantizer_for<lattice_quantizer<double>, double>);

}  // namespace swarmsgd
