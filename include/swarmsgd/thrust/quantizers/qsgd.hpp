#pragma once
/// \file thrust/quantizers/qsgd.hpp
/// qsgd_quantizer in a Thrust system. Encode: one work item per bucket computes its norm with
/// detail::sum_of_squares (the CPU function: the same summation order, so the same norm), builds
/// the qsgd_kernel and encodes the bucket chunk by chunk with the counter RNG of the
/// element's global index (one thread per bucket: a team would sum in another order and change
/// the norm's last bits). Decode: the payload's layout is validated on the host (parameters,
/// size, padding), the norms, the levels and the codes in the system, one chunk of codes
/// (detail::inner_chunk: 8 on a GPU) per work item. On an encode error `values` may hold the
/// reconstruction of any bucket but the failing ones. Byte-identity with the CPU also needs the
/// same floating-point contraction: compile CUDA code with -fmad=false for it (docs/thrust.md).

#include <thrust/functional.h>
#include <thrust/transform_reduce.h>

#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../../quantizers/qsgd.hpp"
#include "../codec.hpp"
#include "../detail/codec_support.hpp"

namespace swarmsgd {

namespace detail {

/// Encodes bucket b, Chunk elements at a time; status[b]: 0 done, 1 its norm (or top level) is
/// not finite.
template <unsigned B, class V, std::size_t Chunk>
struct qsgd_encode_bucket {
    V* x;
    std::byte* data;
    std::uint8_t* status;
    std::size_t n, bucket, stride;
    unsigned levels;
    std::uint64_t key;

    SWARMSGD_HOST_DEVICE void operator()(std::size_t b) const {
        const std::size_t b0 = b * bucket;
        const std::size_t m = bucket < n - b0 ? bucket : n - b0;
        V* SWARMSGD_RESTRICT const xb = x + b0;
        const double sum = sum_of_squares(xb, m);
        const float min_norm = static_cast<float>(levels) * FLT_MIN;  // exact
        float norm = static_cast<float>(std::sqrt(sum));
        if (non_finite_bit<double>(sum) != 0 || non_finite_bit<float>(norm) != 0) {
            status[b] = 1;
            return;
        }
        if (norm > 0 && norm < min_norm) norm = min_norm;
        const auto kernel = qsgd_kernel::make(norm, levels);
        if (non_finite_bit<float>(kernel.unit * static_cast<float>(levels)) != 0) {
            status[b] = 1;
            return;
        }
        status[b] = 0;
        std::byte* const meta = data + b * stride;
        store_any<float>(meta, norm);
        std::byte* const codes_out = meta + 4;
        const std::uint64_t random_key = key;
        for (std::size_t j0 = 0; j0 < m; j0 += Chunk) {
            const std::size_t mm = m - j0 < Chunk ? m - j0 : Chunk;
            std::uint16_t codes[Chunk] = {};
            for (std::size_t i = 0; i < mm; ++i) {
                const auto c = static_cast<std::uint16_t>(
                    kernel.encode(to_float(xb[j0 + i]), uniform01_at(random_key, b0 + j0 + i)));
                codes[i] = c;
                xb[j0 + i] = static_cast<V>(kernel.decode(c));
            }
            pack_block<B>(codes, mm, codes_out + packed_bytes(j0, B));
        }
    }
};

/// Calls f(codes, count, k, b) for the runs of codes of elements [Chunk u, Chunk (u + 1)) that
/// lie in one bucket b (k: the run's first element), unpacked into a local array.
template <unsigned B, std::size_t Chunk, class F>
SWARMSGD_HOST_DEVICE inline void qsgd_for_each_run(const std::byte* data, std::size_t n,
                                                   std::size_t bucket, std::size_t stride,
                                                   std::size_t u, F&& f) {
    const std::size_t k1 = n - Chunk * u < Chunk ? n : Chunk * (u + 1);
    for (std::size_t k = Chunk * u; k < k1;) {
        const std::size_t b = k / bucket;
        const std::size_t end = (b + 1) * bucket < k1 ? (b + 1) * bucket : k1;
        std::uint16_t codes[Chunk] = {};
        unpack_block<B>(data + b * stride + 4 + packed_bytes(k - b * bucket, B), end - k, codes);
        f(codes, end - k, k, b);
        k = end;
    }
}

/// Index of the first code above the top level among elements [Chunk u, Chunk (u + 1)), or n.
template <unsigned B, std::size_t Chunk>
struct qsgd_first_bad_level {
    const std::byte* data;
    std::size_t n, bucket, stride;
    unsigned limit;  // largest valid code

    SWARMSGD_HOST_DEVICE std::size_t operator()(std::size_t u) const {
        std::size_t bad = n;
        qsgd_for_each_run<B, Chunk>(
            data, n, bucket, stride, u,
            [&](const std::uint16_t* codes, std::size_t m, std::size_t k, std::size_t) {
                for (std::size_t i = 0; i < m && bad == n; ++i)
                    if (codes[i] > limit) bad = k + i;
            });
        return bad;
    }
};

/// Decodes elements [Chunk u, Chunk (u + 1)).
template <unsigned B, class V, std::size_t Chunk>
struct qsgd_decode_unit {
    const std::byte* data;
    V* y;
    std::size_t n, bucket, stride;
    unsigned levels;

    SWARMSGD_HOST_DEVICE void operator()(std::size_t u) const {
        V* SWARMSGD_RESTRICT const out = y;
        qsgd_for_each_run<B, Chunk>(
            data, n, bucket, stride, u,
            [&](const std::uint16_t* codes, std::size_t m, std::size_t k, std::size_t b) {
                const auto kernel = qsgd_kernel::make(load_any<float>(data + b * stride), levels);
                for (std::size_t i = 0; i < m; ++i)
                    out[k + i] = static_cast<V>(kernel.decode(codes[i]));
            });
    }
};

/// True when bucket b's norm cannot be decoded (qsgd_quantizer::check_bucket_norm).
template <class Q>
struct qsgd_norm_invalid {
    const std::byte* data;
    std::size_t stride;
    unsigned levels;
    SWARMSGD_HOST_DEVICE bool operator()(std::size_t b) const {
        return !Q::bucket_norm_valid(load_any<float>(data + b * stride), levels);
    }
};

struct index_min {
    SWARMSGD_HOST_DEVICE std::size_t operator()(std::size_t a, std::size_t b) const {
        return a < b ? a : b;
    }
};

}  // namespace detail

/// qsgd_quantizer<V> in system S.
template <tensor_value V, class S>
struct system_codec<qsgd_quantizer<V>, S> {
    using Q = qsgd_quantizer<V>;  ///< the quantizer
    static constexpr std::size_t chunk = detail::inner_chunk<S>;
    static_assert(Q::prefix_size <= detail::max_payload_prefix);

    /// As qsgd_quantizer::encode (same payload, reconstruction, rng draw and exceptions).
    std::size_t encode(const Q& q, system_span<V, S> values, system_span<std::byte, S> out,
                       rng& random) {
        const auto& o = q.options();
        const std::size_t n = values.size();
        detail::payload_prefix prefix;
        const std::size_t bytes = q.write_prefix(n, out.size(), prefix.bytes);
        const std::uint64_t key = random();
        const std::size_t buckets = detail::count_of(n, o.bucket);
        detail::device_call("swarmsgd: qsgd encode", [&] {
            prefix.copy_to<S>(Q::prefix_size, out.data());
            status_.resize(buckets);
            std::byte* data = out.data() + Q::prefix_size;
            detail::bitpack_dispatch(q.code_bits(), [&](auto B) {
                if constexpr (B() >= 2) {
                    const std::size_t stride =
                        Q::bucket_meta_size + detail::packed_bytes(o.bucket, B());
                    detail::system_for_each<S>(buckets, detail::qsgd_encode_bucket<B(), V, chunk>{
                                                            values.data(), data, status_.data(), n,
                                                            o.bucket, stride, o.levels, key});
                }
            });
            const std::size_t bad = detail::first_flagged<S>(status_.data(), buckets);
            if (bad != buckets) raise_bucket(q, values, bad);
        });
        return bytes;
    }

    /// As qsgd_quantizer::decode: validated on the host (parameters, norms, padding), levels
    /// checked in S (same exceptions, `out` untouched on error), then decoded in S.
    /// `payload_in_system`: as system_codec's decode (thrust/codec.hpp).
    decode_result decode(const Q& /*q*/, std::span<const std::byte> payload,
                         system_span<const V, S> /*reference*/, system_span<V, S> out,
                         const std::byte* payload_in_system = nullptr) {
        using detail::require;
        const std::size_t n = out.size();
        const qsgd_payload_info info = Q::check_payload_layout(payload, n);
        const unsigned levels = info.levels, bits = info.bits;
        const std::size_t bucket = info.bucket, stride = info.stride;
        detail::device_call("swarmsgd: qsgd decode", [&] {
            const std::byte* staged =
                staged_.stage(payload, payload_in_system) + payload_header_size + Q::params_size;
            // Every bucket's norm, before `out` changes.
            detail::check_buckets_in_system<S>("qsgd", detail::count_of(n, bucket),
                                               detail::qsgd_norm_invalid<Q>{staged, stride, levels},
                                               [&] { (void)Q::check_payload(payload, n); });
            const std::size_t groups = detail::count_of(n, chunk);
            detail::bitpack_dispatch(bits, [&](auto B) {
                if constexpr (B() >= 2) {
                    // Every code field can hold a level above s unless s + 1 is a power of two.
                    if (n != 0 && ((levels + 1) & levels) != 0) {
                        const std::size_t bad = thrust::transform_reduce(
                            detail::system_ops<S>::policy(), detail::index_iterator(0),
                            detail::index_iterator(groups),
                            detail::qsgd_first_bad_level<B(), chunk>{staged, n, bucket, stride,
                                                                     levels << 1 | 1u},
                            n, detail::index_min{});
                        require<message_error>(bad == n, "qsgd payload element ", bad,
                                               " has a level above ", levels);
                    }
                    detail::system_for_each<S>(
                        groups, detail::qsgd_decode_unit<B(), V, chunk>{staged, out.data(), n,
                                                                        bucket, stride, levels});
                }
            });
        });
        return {};
    }

private:
    /// The exception qsgd_quantizer::encode throws for bucket b (cold path, values to host).
    [[noreturn]] static void raise_bucket(const Q& q, system_span<V, S> values, std::size_t b) {
        const std::size_t bucket = q.options().bucket;
        const std::size_t b0 = b * bucket;
        const std::size_t m = bucket < values.size() - b0 ? bucket : values.size() - b0;
        (void)detail::flagged_bucket_on_host<V, S>(q.name(), values.data(), b0, m);  // NaN/inf?
        detail::raise<invalid_argument_error>(q.name(), " encode: the L2 norm of bucket ", b,
                                              " (elements ", b0, "..", b0 + m - 1,
                                              ") overflows float");
    }

    system_buffer<std::uint8_t, S> status_;
    detail::staged_payload<S> staged_;
};

}  // namespace swarmsgd
