#pragma once
/// \file thrust/quantizers/min_max.hpp
/// min_max_quantizer in a Thrust system. Encode: one work item per bucket scans it
/// (detail::scan_bucket), builds its min_max_kernel and encodes it chunk by chunk
/// (kernel.encode / encode_nearest, detail::pack_block), the CPU's own functions. Decode: the
/// payload is validated on the host (min_max_quantizer's checks), then one work item per
/// chunk of codes (detail::inner_chunk: 8 on a GPU) unpacks and decodes them in the system.
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

/// Encodes bucket b (scan, kernel, codes, reconstruction) Chunk elements at a time;
/// status[b]: 0 done, 1 a non-finite element, 2 a range beyond the float range (nothing of the
/// bucket written then).
template <unsigned B, bool Stochastic, class V, std::size_t Chunk>
struct min_max_encode_bucket {
    V* x;
    std::byte* data;  // first bucket's metadata
    std::uint8_t* status;
    std::size_t n, bucket, stride;
    std::uint64_t key;

    SWARMSGD_HOST_DEVICE void operator()(std::size_t b) const {
        constexpr unsigned levels = (1u << B) - 1u;
        const std::size_t b0 = b * bucket;
        const std::size_t m = bucket < n - b0 ? bucket : n - b0;
        V* SWARMSGD_RESTRICT const xb = x + b0;
        const auto range = scan_bucket(xb, m);
        if (!range.finite) {
            status[b] = 1;
            return;
        }
        const bool fits = range.lo >= V(-FLT_MAX) && range.hi <= V(FLT_MAX) &&
                          static_cast<double>(range.hi) - static_cast<double>(range.lo) <=
                              static_cast<double>(FLT_MAX);
        const auto kernel = min_max_kernel::make(to_float(range.lo), to_float(range.hi), levels);
        if (!fits || !kernel.valid()) {
            status[b] = 2;
            return;
        }
        status[b] = 0;
        std::byte* const meta = data + b * stride;
        store_any<float>(meta, kernel.lo);
        store_any<float>(meta + 4, kernel.scale);
        std::byte* const codes_out = meta + 8;
        const std::uint64_t random_key = key;
        for (std::size_t j0 = 0; j0 < m; j0 += Chunk) {
            const std::size_t mm = m - j0 < Chunk ? m - j0 : Chunk;
            std::uint8_t codes[Chunk] = {};
            for (std::size_t i = 0; i < mm; ++i) {
                std::uint8_t c;
                if constexpr (Stochastic)
                    c = static_cast<std::uint8_t>(
                        kernel.encode(to_float(xb[j0 + i]), uniform01_at(random_key, b0 + j0 + i)));
                else
                    c = static_cast<std::uint8_t>(kernel.encode_nearest(to_float(xb[j0 + i])));
                codes[i] = c;
                xb[j0 + i] = static_cast<V>(kernel.decode(c));
            }
            pack_block<B>(codes, mm, codes_out + packed_bytes(j0, B));
        }
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
            // m <= Chunk always; the explicit bound lets GCC see that codes[] is large enough.
            const std::size_t m = end - k < Chunk ? end - k : Chunk;
            std::uint8_t codes[Chunk] = {};
            unpack_block<B>(meta + 8 + packed_bytes(k - b * bucket, B), m, codes);
            for (std::size_t i = 0; i < m; ++i)
                out[k + i] = static_cast<V>(kernel.decode(codes[i]));
            k = end;
        }
    }
};

}  // namespace detail

/// min_max_quantizer<V> in system S.
template <tensor_value V, class S>
struct system_codec<min_max_quantizer<V>, S> {
    using Q = min_max_quantizer<V>;  ///< the quantizer
    static constexpr std::size_t chunk = detail::inner_chunk<S>;
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
                    detail::system_for_each<S>(
                        buckets,
                        detail::min_max_encode_bucket<B(), true, V, chunk>{
                            values.data(), data, status_.data(), n, o.bucket, stride, key});
                else
                    detail::system_for_each<S>(
                        buckets,
                        detail::min_max_encode_bucket<B(), false, V, chunk>{
                            values.data(), data, status_.data(), n, o.bucket, stride, key});
            });
            const std::size_t bad = detail::first_flagged<S>(status_.data(), buckets);
            if (bad != buckets) raise_bucket(q, values, bad);
        });
        return bytes;
    }

    /// As min_max_quantizer::decode: the payload is validated on the host (same exceptions,
    /// `out` untouched), then decoded in S with the bits and bucket it carries.
    decode_result decode(const Q& q, std::span<const std::byte> payload,
                         system_span<const V, S> /*reference*/, system_span<V, S> out) {
        using detail::require;
        (void)q;
        const std::size_t n = out.size();
        const min_max_payload_info info = Q::check_payload(payload, n);
        const unsigned bits = info.bits;
        const std::size_t bucket = info.bucket, stride = info.stride;
        detail::device_call("swarmsgd: min_max decode", [&] {
            const std::byte* staged = staged_.stage(payload) + payload_header_size + Q::params_size;
            detail::bitpack_dispatch8(bits, [&](auto B) {
                detail::system_for_each<S>(detail::count_of(n, chunk),
                                           detail::min_max_decode_unit<B(), V, chunk>{
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
