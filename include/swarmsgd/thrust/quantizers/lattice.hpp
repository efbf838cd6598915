#pragma once
/// \file thrust/quantizers/lattice.hpp
/// lattice_quantizer in a Thrust system, with the per-element math of the CPU quantizer
/// (detail::lattice_kernel::encode_one / decode_one, the checksum terms and finish of
/// quantizers/lattice.hpp, detail::pack_block) and its segment structure: one team per segment
/// of detail::lattice_chunk elements (whole buckets, or pieces of a larger bucket; a warp on a
/// GPU, one thread on the CPU, thrust/detail/team.hpp) chooses the float or the double arithmetic
/// from the segment's range exactly as the CPU does, encodes or decodes its pieces and sums their
/// checksum terms; a bucket larger than a segment gets its checksum from the partial sums of its
/// pieces (mod 2^32 addition, so the result is the CPU's). Payloads, reconstructions, decoded
/// values and failed buckets are therefore those of the CPU quantizer. On an encode error `values`
/// may hold the reconstruction of any segment but the failing ones (the CPU gives the same basic
/// guarantee).

#include <thrust/functional.h>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "../../quantizers/lattice.hpp"
#include "../codec.hpp"
#include "../detail/codec_support.hpp"

namespace swarmsgd {

namespace detail {

/// The code type of the lattice loops for B bits.
template <unsigned B>
using lattice_code_t = std::conditional_t<(B <= 8), std::uint8_t, std::uint16_t>;

/// Where a segment's checksum sums go: a bucket wholly inside the segment gets its checksum
/// (or, decoding, its failed flag) at once; pieces of larger buckets leave partial sums,
/// partials[2 * segment + 0] for the bucket the segment starts in, + 1 for the next.
struct lattice_sums {
    std::byte* sums_out;       // encode: the payload's checksums
    const std::byte* sums_in;  // decode: the payload's checksums
    std::uint8_t* failed;      // decode: failed flag per bucket
    std::uint32_t* partials;   // bucket > segment: partial sums per segment
    std::size_t n, bucket, span;

    SWARMSGD_HOST_DEVICE void piece_done(std::size_t segment, std::size_t bucket_index,
                                         std::uint32_t sum) const {
        if (bucket <= lattice_chunk) {
            const std::uint32_t checksum = lattice_checksum_finish(sum, bucket_index);
            if (sums_out != nullptr)
                store_any<std::uint32_t>(sums_out + 4 * bucket_index, checksum);
            else
                failed[bucket_index] =
                    checksum != load_any<std::uint32_t>(sums_in + 4 * bucket_index) ? 1 : 0;
        } else {
            const std::size_t first = segment * span / bucket;
            partials[2 * segment + (bucket_index == first ? 0 : 1)] = sum;
        }
    }
};

/// Checksums of buckets larger than a segment, from the partial sums of their pieces.
struct lattice_finish_bucket {
    lattice_sums sums;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t b) const {
        const std::size_t b0 = b * sums.bucket;
        const std::size_t b1 = sums.n - b0 < sums.bucket ? sums.n : b0 + sums.bucket;
        std::uint32_t total = 0;
        for (std::size_t s = b0 / sums.span; s <= (b1 - 1) / sums.span; ++s)
            total += sums.partials[2 * s + (s * sums.span / sums.bucket == b ? 0 : 1)];
        const std::uint32_t checksum = lattice_checksum_finish(total, b);
        if (sums.sums_out != nullptr)
            store_any<std::uint32_t>(sums.sums_out + 4 * b, checksum);
        else
            sums.failed[b] = checksum != load_any<std::uint32_t>(sums.sums_in + 4 * b) ? 1 : 0;
    }
};

/// Largest |x_i| bits of the segment x[s, e) over a team: lane l scans the groups of Chunk
/// elements l, l + lanes, ...
template <std::size_t Chunk, class Team>
[[nodiscard]] SWARMSGD_HOST_DEVICE std::uint32_t lattice_team_max_abs_bits(const float* x,
                                                                           std::size_t s,
                                                                           std::size_t e,
                                                                           Team team) {
    std::uint32_t mx = 0;
    for (std::size_t g = s + team.lane() * Chunk; g < e; g += Team::lanes * Chunk) {
        const std::uint32_t b = lattice_max_abs_bits(x + g, e - g < Chunk ? e - g : Chunk);
        mx = b > mx ? b : mx;
    }
    return team.max(mx);
}

/// Encodes one segment (x in place, codes packed to codes_out, checksum sums to `sums`) by a
/// team (thrust/detail/team.hpp: lane l takes the groups of Chunk elements l, l + lanes, ...
/// of each piece, the checksum sums are reduced over the team); status[segment] = 1 (and
/// nothing written) when some |x / eps| exceeds the index range.
template <unsigned B, bool Stochastic, class V, std::size_t Chunk>
struct lattice_encode_segment {
    V* x;
    std::byte* codes_out;
    std::uint8_t* status;
    lattice_sums sums;
    lattice_kernel<V, double> kd;
    lattice_kernel<V, float> kf;
    double eps;
    std::uint64_t key;

    /// Encodes this lane's groups of [k, pe) (k a multiple of 8) with kernel kr; returns the
    /// sum of their terms.
    template <class A, class Team>
    SWARMSGD_HOST_DEVICE std::uint32_t piece(const lattice_kernel<V, A> kr, std::size_t k,
                                             std::size_t pe, std::uint32_t pos0, Team team) const {
        using C = lattice_code_t<B>;
        V* SWARMSGD_RESTRICT const xs = x;
        const std::uint64_t random_key = key;
        std::uint32_t sum = 0;
        for (std::size_t g = k + team.lane() * Chunk; g < pe; g += Team::lanes * Chunk) {
            with_group_size<Chunk>(pe - g < Chunk ? pe - g : Chunk, [&](auto mm) {
                V v[Chunk];
                load_group(v, xs + g, mm);
                C codes[Chunk] = {};
                sum += lattice_encode_chunk<V, A, C, Stochastic>(
                    kr, v, codes, mm, pos0 + static_cast<std::uint32_t>(g - k), random_key, g);
                store_group(xs + g, v, mm);
                pack_group<B>(codes, mm, codes_out + packed_bytes(g, B));
            });
        }
        return sum;
    }

    template <class Team>
    SWARMSGD_HOST_DEVICE void operator()(std::size_t segment, Team team) const {
        const std::size_t s = segment * sums.span;
        const std::size_t e = sums.n - s < sums.span ? sums.n : s + sums.span;
        const double inv_eps = 1.0 / eps;
        bool fast = false;
        if constexpr (std::is_same_v<V, float>) {
            const std::uint32_t b = lattice_team_max_abs_bits<Chunk>(x, s, e, team);
            const double t = double(std::bit_cast<float>(b)) * inv_eps;
            if (b >= 0x7F800000u || !(t <= lattice_index_limit)) {
                if (team.leader()) status[segment] = 1;
                return;
            }
            fast = t <= lattice_float_limit;
        } else {
            bool out_of_range = false;
            for (std::size_t i = s + team.lane(); i < e; i += Team::lanes) {
                const double t = x[i] * inv_eps;
                out_of_range |= !((t < 0 ? -t : t) <= lattice_index_limit);
            }
            if (team.any(out_of_range)) {
                if (team.leader()) status[segment] = 1;
                return;
            }
        }
        if (team.leader()) status[segment] = 0;
        for (std::size_t k = s; k < e;) {
            const std::size_t bucket_index = k / sums.bucket;
            const std::size_t bucket_end = (bucket_index + 1) * sums.bucket;
            const std::size_t pe = e < bucket_end ? e : bucket_end;
            const auto pos0 = static_cast<std::uint32_t>(k - bucket_index * sums.bucket);
            const std::uint32_t part =
                fast ? piece(kf, k, pe, pos0, team) : piece(kd, k, pe, pos0, team);
            const std::uint32_t sum = team.sum(part);
            if (team.leader()) sums.piece_done(segment, bucket_index, sum);
            k = pe;
        }
    }
};

/// Decodes one segment against y into out (y == out: in place) and checks its checksums, by
/// a team as lattice_encode_segment.
template <unsigned B, class V, std::size_t Chunk>
struct lattice_decode_segment {
    const std::byte* codes_in;
    const V* y;
    V* out;
    lattice_sums sums;
    lattice_kernel<V, double> kd;
    lattice_kernel<V, float> kf;
    bool fast_ok, in_place;
    double fast_max;
    float fast_max_f;

    /// Decodes this lane's groups of [k, pe) with kernel kr against `ref` (== out when
    /// decoding in place); with Check, `outside` records whether some |y_i| of them exceeded
    /// fast_max_f or was NaN (the float path's precondition, checked on the way).
    template <class A, bool Check, class Team>
    SWARMSGD_HOST_DEVICE std::uint32_t piece(const lattice_kernel<V, A> kr, const V* ref,
                                             std::size_t k, std::size_t pe, std::uint32_t pos0,
                                             bool& outside, Team team) const {
        using C = lattice_code_t<B>;
        V* const o = out;
        const float limit = fast_max_f;
        std::uint32_t sum = 0;
        unsigned bad = 0;
        for (std::size_t g = k + team.lane() * Chunk; g < pe; g += Team::lanes * Chunk) {
            with_group_size<Chunk>(pe - g < Chunk ? pe - g : Chunk, [&](auto mm) {
                const auto position0 = pos0 + static_cast<std::uint32_t>(g - k);
                C codes[Chunk] = {};
                unpack_group<B>(codes_in + packed_bytes(g, B), mm, codes);
                V v[Chunk];
                load_group(v, ref + g, mm);
                if constexpr (Check) {
                    V decoded[Chunk];
                    bool group_outside = false;
                    sum += lattice_decode_chunk_checked(kr, codes, v, decoded, mm, position0, limit,
                                                        group_outside);
                    bad |= group_outside ? 1u : 0u;
                    store_group(o + g, decoded, mm);
                } else {
                    sum +=
                        lattice_decode_chunk<V, A, C, true>(kr, codes, nullptr, v, mm, position0);
                    store_group(o + g, v, mm);
                }
            });
        }
        if constexpr (Check) outside = bad != 0;
        return sum;
    }

    template <class Team>
    SWARMSGD_HOST_DEVICE void operator()(std::size_t segment, Team team) const {
        const std::size_t s = segment * sums.span;
        const std::size_t e = sums.n - s < sums.span ? sums.n : s + sums.span;
        bool fast = false;
        if constexpr (std::is_same_v<V, float>) {
            if (fast_ok && in_place) {
                const std::uint32_t b = lattice_team_max_abs_bits<Chunk>(out, s, e, team);
                fast = b < 0x7F800000u && double(std::bit_cast<float>(b)) <= fast_max;
            }
        }
        for (std::size_t k = s; k < e;) {
            const std::size_t bucket_index = k / sums.bucket;
            const std::size_t bucket_end = (bucket_index + 1) * sums.bucket;
            const std::size_t pe = e < bucket_end ? e : bucket_end;
            const auto pos0 = static_cast<std::uint32_t>(k - bucket_index * sums.bucket);
            const V* const ref = in_place ? out : y;
            std::uint32_t part = 0;
            bool done = false;
            bool outside = false;
            if constexpr (std::is_same_v<V, float>) {
                if (fast) {
                    part = piece<float, false>(kf, ref, k, pe, pos0, outside, team);
                    done = true;
                } else if (fast_ok && !in_place) {
                    // Out of place, the reference is untouched: a piece with some |y_i| beyond
                    // the float path's range is decoded again, by every lane, in double.
                    part = piece<float, true>(kf, ref, k, pe, pos0, outside, team);
                    done = !team.any(outside);
                }
            }
            if (!done) part = piece<double, false>(kd, ref, k, pe, pos0, outside, team);
            const std::uint32_t sum = team.sum(part);
            if (team.leader()) sums.piece_done(segment, bucket_index, sum);
            k = pe;
        }
    }
};

}  // namespace detail

/// lattice_quantizer<V> in system S.
template <tensor_value V, class S>
struct system_codec<lattice_quantizer<V>, S> {
    using Q = lattice_quantizer<V>;  ///< the quantizer
    static_assert(detail::lattice_codes_offset <= detail::max_payload_prefix);

    /// As lattice_quantizer::encode: the current step, the same payload (parameters, codes,
    /// checksums), reconstruction, rng draw and exceptions.
    std::size_t encode(const Q& q, system_span<V, S> values, system_span<std::byte, S> out,
                       rng& random) {
        const auto& o = q.options();
        const std::size_t n = values.size();
        const std::size_t bytes = q.max_encoded_size(n);
        detail::payload_prefix prefix;
        const double eps = q.write_prefix(n, out.size(), prefix.bytes);
        const unsigned bits = o.bits;
        const std::size_t bucket = o.bucket;
        const std::uint64_t key = o.stochastic ? random() : 0;

        const std::size_t span = detail::lattice_segment_span(bucket);
        const std::size_t segments = detail::count_of(n, span);
        detail::device_call("swarmsgd: lattice encode", [&] {
            prefix.copy_to<S>(detail::lattice_codes_offset, out.data());
            if (n == 0) return;
            std::byte* const codes_out = out.data() + detail::lattice_codes_offset;
            const detail::lattice_sums sums{codes_out + detail::packed_bytes(n, bits),
                                            nullptr,
                                            nullptr,
                                            prepare_partials(bucket, segments),
                                            n,
                                            bucket,
                                            span};
            status_.resize(segments);
            const auto kd = detail::lattice_kernel<V, double>::make(eps, bits);
            const auto kf = detail::lattice_kernel<V, float>::make(eps, bits);
            detail::bitpack_dispatch(bits, [&](auto B) {
                if constexpr (B() >= 2) {
                    if (o.stochastic)
                        detail::system_team_for_each<S>(
                            segments,
                            detail::lattice_encode_segment<B(), true, V,
                                                           detail::group_size<S, B()>>{
                                values.data(), codes_out, status_.data(), sums, kd, kf, eps, key});
                    else
                        detail::system_team_for_each<S>(
                            segments,
                            detail::lattice_encode_segment<B(), false, V,
                                                           detail::group_size<S, B()>>{
                                values.data(), codes_out, status_.data(), sums, kd, kf, eps, key});
                }
            });
            if (const auto bad = detail::first_flagged<S>(status_.data(), segments);
                bad != segments)
                raise_range(values, bad * span, std::min(n, (bad + 1) * span), eps);
            finish(sums);
        });
        return bytes;
    }

    /// As lattice_quantizer::decode: validated on the host (same exceptions, `out` untouched
    /// on error), decoded in S against `reference` (`out` may be the same span as `reference`,
    /// any other overlap throws); returns the buckets whose checksum did not match.
    /// `payload_in_system`: as system_codec's decode (thrust/codec.hpp).
    decode_result decode(const Q& /*q*/, std::span<const std::byte> payload,
                         system_span<const V, S> reference, system_span<V, S> out,
                         const std::byte* payload_in_system = nullptr) {
        const std::size_t n = out.size();
        (void)read_payload_header(payload, Q::format_id, "lattice", sizeof(V), n);
        detail::require<size_mismatch_error>(reference.size() == n, "lattice decode: reference of ",
                                             reference.size(), " elements, output of ", n);
        const lattice_payload_info info = Q::inspect(payload);  // parameters, size, padding
        const V* const y = reference.data();
        V* const o = out.data();
        const bool in_place = n != 0 && static_cast<const void*>(y) == static_cast<void*>(o);
        const auto ya = reinterpret_cast<std::uintptr_t>(y);
        const auto oa = reinterpret_cast<std::uintptr_t>(o);
        detail::require<invalid_argument_error>(
            in_place || n == 0 || ya + n * sizeof(V) <= oa || oa + n * sizeof(V) <= ya,
            "lattice decode: the output overlaps the reference without being the same span");
        decode_result result;
        if (n == 0) return result;
        const unsigned bits = info.bits;
        const double eps = info.eps;
        const std::size_t bucket = info.bucket;
        const std::size_t span = detail::lattice_segment_span(bucket);
        const std::size_t segments = detail::count_of(n, span);
        const std::size_t buckets = detail::count_of(n, bucket);
        const bool fast_ok = std::is_same_v<V, float> && detail::lattice_float_step(eps);
        const double fast_max = detail::lattice_float_limit * eps;
        detail::device_call("swarmsgd: lattice decode", [&] {
            const std::byte* const codes_in =
                staged_.stage(payload, payload_in_system) + detail::lattice_codes_offset;
            failed_.resize(buckets);
            const detail::lattice_sums sums{nullptr,
                                            codes_in + detail::packed_bytes(n, bits),
                                            failed_.data(),
                                            prepare_partials(bucket, segments),
                                            n,
                                            bucket,
                                            span};
            const auto kd = detail::lattice_kernel<V, double>::make(eps, bits);
            const auto kf = detail::lattice_kernel<V, float>::make(eps, bits);
            detail::bitpack_dispatch(bits, [&](auto B) {
                if constexpr (B() >= 2)
                    detail::system_team_for_each<S>(
                        segments,
                        detail::lattice_decode_segment<B(), V, detail::group_size<S, B()>>{
                            codes_in, y, o, sums, kd, kf, fast_ok, in_place, fast_max,
                            static_cast<float>(fast_max)});
            });
            finish(sums);
            // Only the flags from the first failed bucket on travel to the host (none at all
            // in the usual case, where every checksum matches).
            const std::size_t first = detail::first_flagged<S>(failed_.data(), buckets);
            flags_.resize(buckets - first);
            detail::system_ops<S>::to_host(failed_.data() + first, buckets - first, flags_.data());
            for (std::size_t b = first; b < buckets; ++b)
                if (flags_[b - first] != 0)
                    result.failed.push_back({b * bucket, std::min(n, (b + 1) * bucket)});
        });
        return result;
    }

private:
    std::uint32_t* prepare_partials(std::size_t bucket, std::size_t segments) {
        if (bucket <= detail::lattice_chunk) return nullptr;
        partials_.resize(2 * segments);
        return partials_.data();
    }

    /// Checksums (or failed flags) of buckets larger than a segment.
    void finish(const detail::lattice_sums& sums) {
        if (sums.bucket <= detail::lattice_chunk) return;
        detail::system_for_each<S>(detail::count_of(sums.n, sums.bucket),
                                   detail::lattice_finish_bucket{sums});
    }

    /// The exception lattice_quantizer::encode throws: the first element of the first failing
    /// segment [s, e) (untouched, every earlier segment being in range) whose |x| / eps exceeds
    /// 2^50 (cold path: the segment is scanned on the host).
    [[noreturn]] static void raise_range(system_span<V, S> values, std::size_t s, std::size_t e,
                                         double eps) {
        std::vector<V> x(e - s);
        detail::system_ops<S>::to_host(values.data() + s, x.size(), x.data());
        const double inv_eps = 1.0 / eps;
        for (std::size_t i = 0; i < x.size(); ++i) {
            const double t = std::fabs(static_cast<double>(x[i]) * inv_eps);
            if (t <= detail::lattice_index_limit) continue;
            if (!std::isfinite(x[i]))
                detail::raise<non_finite_error>("lattice encode: element ", s + i, " is ", x[i]);
            detail::raise<invalid_argument_error>(
                "lattice encode: element ", s + i, " = ", x[i],
                " is too large for the step eps = ", eps, " (|x| / eps = ", t,
                " exceeds 2^50); raise lattice_options::min_distance");
        }
        detail::raise<invalid_argument_error>("lattice encode: internal error, segment ", s, "..",
                                              e, " has no element out of range");
    }

    system_buffer<std::uint8_t, S> status_;
    system_buffer<std::uint8_t, S> failed_;
    system_buffer<std::uint32_t, S> partials_;
    std::vector<std::uint8_t> flags_;
    detail::staged_payload<S> staged_;
};

}  // namespace swarmsgd
