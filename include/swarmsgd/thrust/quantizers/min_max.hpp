#pragma once
/// \file thrust/quantizers/min_max.hpp
/// min_max_quantizer in a Thrust system. Encode: one team per bucket (a warp on a GPU, one
/// thread on the CPU; thrust/detail/team.hpp) scans it (detail::scan_bucket_keys, reduced over
/// the team), builds its min_max_kernel and encodes it chunk by chunk
/// (kernel.encode / encode_nearest, detail::pack_block), the CPU's own functions. Decode: the
/// payload's layout is validated on the host and every bucket's min and scale in the system
/// (min_max_quantizer's checks; the host check runs only to raise the exception of a bad
/// one), then one work item per group of codes (detail::group_size: 4 or 8 on a GPU) unpacks and
/// decodes them in the system.
/// On an encode error (a non-finite value, a range beyond float) the exception is the CPU
/// one; `values` may then hold the reconstruction of any bucket but the failing ones.

#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../../quantizers/min_max.hpp"
#include "../codec.hpp"
#include "../detail/codec_support.hpp"

namespace swarmsgd {

namespace detail {

/// Encodes bucket b (scan, kernel, codes, reconstruction) Chunk elements at a time, by a team
/// (thrust/detail/team.hpp: lane l takes the chunks l, l + lanes, ...); status[b]: 0 done, 1 a
/// non-finite element, 2 a range beyond the float range (nothing of the bucket written then).
///
/// The GPU shape (Chunk <= 8) keeps a lane's first `held_groups` groups in registers from the
/// scan to the encode, so a bucket of up to lanes * Chunk * held_groups elements (512 for a warp
/// of 32 lanes and groups of 4, the default 8-bit bucket) is read from memory once; groups after
/// those are read again. The CPU shape (chunks of 256, one-lane teams) reads twice: its second
/// pass is served by the cache.
template <unsigned B, bool Stochastic, class V, std::size_t Chunk>
struct min_max_encode_bucket {
    /// Groups per lane held in registers between the scan and the encode.
    static constexpr std::size_t held_groups = Chunk <= 8 ? 4 : 0;

    V* x;
    std::byte* data;  // first bucket's metadata
    std::uint8_t* status;
    std::size_t n, bucket, stride;
    std::uint64_t key;

    template <class Team>
    SWARMSGD_HOST_DEVICE void operator()(std::size_t b, Team team) const {
        constexpr unsigned levels = (1u << B) - 1u;
        constexpr std::size_t step = Team::lanes * Chunk;
        const std::size_t b0 = b * bucket;
        const std::size_t m = bucket < n - b0 ? bucket : n - b0;
        const std::size_t first = team.lane() * Chunk;
        V* SWARMSGD_RESTRICT const xb = x + b0;
        bucket_keys<V> keys;
        const auto add_keys = [&](const V* v, std::size_t count) {
            const auto part = scan_bucket_keys(v, count);
            keys.lo = part.lo < keys.lo ? part.lo : keys.lo;
            keys.hi = part.hi > keys.hi ? part.hi : keys.hi;
        };
        // A fixed trip count with constant indices into `held`: the compiler unrolls the loop
        // and keeps the array in registers.
        [[maybe_unused]] V held[held_groups > 0 ? held_groups : 1][Chunk];
        if constexpr (held_groups > 0) {
            for (std::size_t g = 0; g < held_groups; ++g) {
                const std::size_t j0 = first + g * step;
                if (j0 < m)
                    with_group_size<Chunk>(m - j0 < Chunk ? m - j0 : Chunk, [&](auto mm) {
                        load_group(held[g], xb + j0, mm);
                        add_keys(held[g], mm);
                    });
            }
        }
        for (std::size_t j0 = first + held_groups * step; j0 < m; j0 += step)
            add_keys(xb + j0, m - j0 < Chunk ? m - j0 : Chunk);
        keys.lo = team.min(keys.lo);
        keys.hi = team.max(keys.hi);
        const auto range = bucket_range_of(keys);
        if (!range.finite) {
            if (team.leader()) status[b] = 1;
            return;
        }
        const bool fits = range.lo >= V(-FLT_MAX) && range.hi <= V(FLT_MAX) &&
                          static_cast<double>(range.hi) - static_cast<double>(range.lo) <=
                              static_cast<double>(FLT_MAX);
        const auto kernel = min_max_kernel::make(to_float(range.lo), to_float(range.hi), levels);
        if (!fits || !kernel.valid()) {
            if (team.leader()) status[b] = 2;
            return;
        }
        std::byte* const meta = data + b * stride;
        if (team.leader()) {
            status[b] = 0;
            store_any<float>(meta, kernel.lo);
            store_any<float>(meta + 4, kernel.scale);
        }
        std::byte* const codes_out = meta + 8;
        const std::uint64_t random_key = key;
        // Codes and reconstruction of the group v of elements j0 .. j0 + mm - 1.
        const auto encode = [&](V(&v)[Chunk], std::size_t j0, auto mm) {
            std::uint8_t codes[Chunk] = {};
            for (std::size_t i = 0; i < mm; ++i) {
                std::uint8_t c;
                if constexpr (Stochastic)
                    c = static_cast<std::uint8_t>(
                        kernel.encode(to_float(v[i]), uniform01_at(random_key, b0 + j0 + i)));
                else
                    c = static_cast<std::uint8_t>(kernel.encode_nearest(to_float(v[i])));
                codes[i] = c;
                v[i] = static_cast<V>(kernel.decode(c));
            }
            store_group(xb + j0, v, mm);
            pack_group<B>(codes, mm, codes_out + packed_bytes(j0, B));
        };
        if constexpr (held_groups > 0) {
            for (std::size_t g = 0; g < held_groups; ++g) {
                const std::size_t j0 = first + g * step;
                if (j0 < m)
                    with_group_size<Chunk>(m - j0 < Chunk ? m - j0 : Chunk,
                                           [&](auto mm) { encode(held[g], j0, mm); });
            }
        }
        for (std::size_t j0 = first + held_groups * step; j0 < m; j0 += step) {
            with_group_size<Chunk>(m - j0 < Chunk ? m - j0 : Chunk, [&](auto mm) {
                V v[Chunk];
                load_group(v, xb + j0, mm);
                encode(v, j0, mm);
            });
        }
    }
};

/// True when bucket b's min and scale cannot be decoded (min_max_quantizer::check_bucket_meta).
struct min_max_meta_invalid {
    const std::byte* data;
    std::size_t stride;
    unsigned levels;
    SWARMSGD_HOST_DEVICE bool operator()(std::size_t b) const {
        const std::byte* meta = data + b * stride;
        return !min_max_kernel::for_decode(load_any<float>(meta), load_any<float>(meta + 4), levels)
                    .valid();
    }
};

/// Decodes elements [Chunk u, Chunk (u + 1)), bucket by bucket.
template <unsigned B, class V, std::size_t Chunk>
struct min_max_decode_unit {
    const std::byte* data;
    V* y;
    std::size_t n, bucket, stride;

    SWARMSGD_HOST_DEVICE void operator()(std::size_t u) const {
        constexpr unsigned levels = (1u << B) - 1u;
        const std::size_t k1 = n - Chunk * u < Chunk ? n : Chunk * (u + 1);
        V* SWARMSGD_RESTRICT const out = y;
        for (std::size_t k = Chunk * u; k < k1;) {
            const std::size_t b = k / bucket;
            const std::size_t end = (b + 1) * bucket < k1 ? (b + 1) * bucket : k1;
            const std::byte* const meta = data + b * stride;
            const auto kernel = min_max_kernel::for_decode(load_any<float>(meta),
                                                           load_any<float>(meta + 4), levels);
            // The group has at most Chunk elements; the explicit bound lets GCC see that
            // codes[] is large enough.
            with_group_size<Chunk>(end - k < Chunk ? end - k : Chunk, [&](auto m) {
                std::uint8_t codes[Chunk] = {};
                unpack_group<B>(meta + 8 + packed_bytes(k - b * bucket, B), m, codes);
                V v[Chunk];
                for (std::size_t i = 0; i < m; ++i) v[i] = static_cast<V>(kernel.decode(codes[i]));
                store_group(out + k, v, m);
            });
            k = end;
        }
    }
};

}  // namespace detail

/// min_max_quantizer<V> in system S.
template <tensor_value V, class S>
struct system_codec<min_max_quantizer<V>, S> {
    using Q = min_max_quantizer<V>;  ///< the quantizer
    static_assert(Q::prefix_size <= detail::max_payload_prefix);

    /// As min_max_quantizer::encode (same payload, reconstruction and exceptions).
    std::size_t encode(const Q& q, system_span<V, S> values, system_span<std::byte, S> out,
                       rng& random) {
        const auto& o = q.options();
        const std::size_t n = values.size();
        detail::payload_prefix prefix;
        const std::size_t bytes = q.write_prefix(n, out.size(), prefix.bytes);
        const std::uint64_t key = o.stochastic ? random() : 0;
        const std::size_t buckets = detail::count_of(n, o.bucket);
        detail::device_call("swarmsgd: min_max encode", [&] {
            prefix.copy_to<S>(Q::prefix_size, out.data());
            status_.resize(buckets);
            std::byte* data = out.data() + Q::prefix_size;
            detail::bitpack_dispatch8(o.bits, [&](auto B) {
                const std::size_t stride =
                    Q::bucket_meta_size + detail::packed_bytes(o.bucket, B());
                if (o.stochastic)
                    detail::system_team_for_each<S>(
                        buckets,
                        detail::min_max_encode_bucket<B(), true, V, detail::group_size<S, B()>>{
                            values.data(), data, status_.data(), n, o.bucket, stride, key});
                else
                    detail::system_team_for_each<S>(
                        buckets,
                        detail::min_max_encode_bucket<B(), false, V, detail::group_size<S, B()>>{
                            values.data(), data, status_.data(), n, o.bucket, stride, key});
            });
            const std::size_t bad = detail::first_flagged<S>(status_.data(), buckets);
            if (bad != buckets) raise_bucket(q, values, bad);
        });
        return bytes;
    }

    /// As min_max_quantizer::decode: the payload is validated (same exceptions, `out`
    /// untouched), then decoded in S with the bits and bucket it carries.
    /// `payload_in_system`: as system_codec's decode (thrust/codec.hpp).
    decode_result decode(const Q& q, std::span<const std::byte> payload,
                         system_span<const V, S> /*reference*/, system_span<V, S> out,
                         const std::byte* payload_in_system = nullptr) {
        (void)q;
        const std::size_t n = out.size();
        const min_max_payload_info info = Q::check_payload_layout(payload, n);
        const unsigned bits = info.bits;
        const std::size_t bucket = info.bucket, stride = info.stride;
        detail::device_call("swarmsgd: min_max decode", [&] {
            const std::byte* staged =
                staged_.stage(payload, payload_in_system) + payload_header_size + Q::params_size;
            // Every bucket's min and scale, before `out` changes.
            detail::check_buckets_in_system<S>(
                "min_max", detail::count_of(n, bucket),
                detail::min_max_meta_invalid{staged, stride, (1u << bits) - 1u},
                [&] { (void)Q::check_payload(payload, n); });
            detail::bitpack_dispatch8(bits, [&](auto B) {
                detail::system_for_each<S>(
                    detail::count_of(n, detail::group_size<S, B()>),
                    detail::min_max_decode_unit<B(), V, detail::group_size<S, B()>>{
                        staged, out.data(), n, bucket, stride});
            });
        });
        return {};
    }

private:
    /// The exception min_max_quantizer::encode throws for bucket b (its values copied to the
    /// host: the cold path).
    [[noreturn]] static void raise_bucket(const Q& q, system_span<V, S> values, std::size_t b) {
        const std::size_t bucket = q.options().bucket;
        const std::size_t b0 = b * bucket;
        const std::size_t m = bucket < values.size() - b0 ? bucket : values.size() - b0;
        const std::vector<V> xb =
            detail::flagged_bucket_on_host<V, S>(q.name(), values.data(), b0, m);
        const auto range = detail::scan_bucket(xb.data(), m);
        detail::raise<invalid_argument_error>(
            q.name(), " encode: bucket ", b, " (elements ", b0, "..", b0 + m - 1, ") spans [",
            detail::exact_text(range.lo), ", ", detail::exact_text(range.hi),
            "], wider than the float range");
    }

    system_buffer<std::uint8_t, S> status_;
    detail::staged_payload<S> staged_;
};

}  // namespace swarmsgd
