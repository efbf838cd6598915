// libFuzzer target: min_max_quantizer<float/double>::decode (and round trips at every bit
// width, deterministic and stochastic, with and without error_feedback).
// Input layout and checks: see fuzz_common.hpp. Configuration bytes:
//   cfg0: bits = 1 + cfg0 % 8
//   cfg1: bucket = 8 * (1 + cfg1 % 64), or for cfg1 >= 240: 512, 4096, 2^31 (cfg1 % 3)
//   cfg2: bit 0 stochastic, bit 1 round trip through error_feedback (two encodes)
#include <swarmsgd/quantizers/error_feedback.hpp>
#include <swarmsgd/quantizers/min_max.hpp>

#include "fuzz_common.hpp"

namespace {

using fuzz::load;

struct min_max_target : fuzz::target_defaults {
    static constexpr const char* name = "min_max";

    static std::size_t bucket_of(std::uint8_t c) {
        if (c >= 240) {
            const std::size_t big[] = {512, 4096, std::size_t{1} << 31};
            return big[c % 3];
        }
        return 8 * (1 + std::size_t{c} % 64);
    }

    template <class V>
    static swarmsgd::min_max_quantizer<V> make(const std::uint8_t* cfg) {
        swarmsgd::min_max_options o;
        o.bits = 1 + cfg[0] % 8;
        o.bucket = bucket_of(cfg[1]);
        o.stochastic = (cfg[2] & 1u) != 0;
        return swarmsgd::min_max_quantizer<V>(o);
    }

    static std::vector<std::array<std::uint8_t, 3>> seed_configs() {
        return {{7, 63, 0}, {0, 0, 0},  {1, 1, 1},   {2, 5, 0},  {3, 240, 1},
                {4, 2, 0},  {5, 31, 0}, {6, 241, 1}, {7, 242, 0}};
    }

    struct bucket_params {
        float lo, scale;
    };

    /// Independent reading of the format: params, size, per-bucket lo/scale rules, padding.
    template <class V>
    static fuzz::expectation<V> oracle(std::span<const std::byte> p, std::span<const V> /*ref*/,
                                       std::size_t n, bool /*overlap*/) {
        fuzz::expectation<V> e;
        if (!fuzz::check_header<V>(p, 4, n).ok || p.size() < 24) return e;
        const unsigned bits = load<std::uint8_t>(p.data() + 16);
        const unsigned flags = load<std::uint8_t>(p.data() + 17);
        const unsigned reserved = load<std::uint16_t>(p.data() + 18);
        const std::size_t bucket = load<std::uint32_t>(p.data() + 20);
        if (bits < 1 || bits > 8 || flags > 1 || reserved != 0 || bucket < 8 || bucket % 8 != 0)
            return e;
        const std::size_t buckets = (n + bucket - 1) / bucket;
        if (p.size() != 24 + 8 * buckets + fuzz::packed(n, bits)) return e;
        const std::size_t stride = 8 + fuzz::packed(bucket, bits);
        const double levels = double((1u << bits) - 1u);
        std::vector<bucket_params> params(buckets);
        for (std::size_t b = 0; b < buckets; ++b) {
            const std::byte* meta = p.data() + 24 + b * stride;
            const float lo = load<float>(meta), scale = load<float>(meta + 4);
            if (!std::isfinite(lo) || !(scale >= 0.0f)) return e;
            if ((std::bit_cast<std::uint32_t>(scale) & 0xFFu) != 0) return e;
            const double top = levels * double(scale);
            if (top > double(FLT_MAX)) return e;
            const double highest = double(lo) + top;
            if (!(highest <= double(FLT_MAX) && highest >= -double(FLT_MAX))) return e;
            params[b] = {lo, scale};
        }
        if (n != 0) {
            const std::size_t last = (n - 1) / bucket;
            if (!fuzz::tail_zero(p.data() + 24 + last * stride + 8, n - last * bucket, bits))
                return e;
        }
        e.valid = true;
        e.values.resize(n);
        for (std::size_t k = 0; k < n; ++k) {
            const std::size_t b = k / bucket, j = k % bucket;
            const unsigned c = fuzz::read_bits(p.data() + 24 + b * stride + 8, j * bits, bits);
            // lo + c * scale, the product exact, one rounding of the sum (separate statements:
            // no contraction).
            const float prod = static_cast<float>(c) * params[b].scale;
            const float v = params[b].lo + prod;
            e.values[k] = static_cast<V>(v);
        }
        return e;
    }

    template <class V>
    static float to_float(V v) {
        if constexpr (sizeof(V) == 4)
            return v;
        else
            return static_cast<float>(std::fmin(std::fmax(v, -double(FLT_MAX)), double(FLT_MAX)));
    }

    /// Error bound of one encode: |float(x) - r| <= scale / 2 (nearest) or < scale
    /// (stochastic), up to one rounding of the reconstruction; and r within the bucket's range
    /// up to that rounding.
    template <class V>
    static void check_bounds(std::span<const V> x, std::span<const V> r,
                             std::span<const std::byte> p, bool stochastic, const char* what) {
        const std::size_t n = x.size();
        const unsigned bits = load<std::uint8_t>(p.data() + 16);
        const std::size_t bucket = load<std::uint32_t>(p.data() + 20);
        const std::size_t stride = 8 + fuzz::packed(bucket, bits);
        for (std::size_t k = 0; k < n; ++k) {
            const std::byte* meta = p.data() + 24 + (k / bucket) * stride;
            const float lo = load<float>(meta), scale = load<float>(meta + 4);
            const double xf = to_float(x[k]);
            const double top = double(lo) + double((1u << bits) - 1u) * double(scale);
            const double slack =
                2 * fuzz::ulp<float>(std::fmax(std::fabs(double(lo)), std::fabs(top)));
            double bound = (stochastic ? 1.0 : 0.5) * double(scale) + slack;
            const double err = std::fabs(xf - double(r[k]));
            FUZZ_CHECK(err <= bound,
                       "%s: element %zu = %.9g reconstructed as %.9g (lo %.9g, scale %.9g, "
                       "%u bits, %s): error %.3g above %.3g",
                       what, k, xf, double(r[k]), double(lo), double(scale), bits,
                       stochastic ? "stochastic" : "nearest", err, bound);
        }
    }

    template <class V>
    static void roundtrip(const fuzz::prefix& p, std::vector<V> x) {
        const auto q = make<V>(p.cfg);
        const bool stochastic = q.options().stochastic;
        const std::size_t n = x.size();
        if ((p.cfg[2] & 2u) == 0) {
            const std::vector<V> original = x;
            std::vector<std::byte> payload;
            if (!fuzz::checked_encode(q, x, payload, p.b5, name)) return;
            const auto want = oracle<V>(payload, {}, n, false);
            FUZZ_CHECK(want.valid, "min_max: the oracle rejects an encoder's payload");
            std::vector<V> out(n);
            const auto r = fuzz::must_decode<decltype(q), V>(q, payload, {}, out, name);
            fuzz::check_success<V>(want, out, r, "min_max round trip");
            FUZZ_CHECK(fuzz::all_bits_equal<V>(out, x),
                       "min_max: decode differs from the sender's reconstruction");
            check_bounds<V>(original, x, payload, stochastic, "min_max round trip");
            return;
        }
        // error_feedback: two encodes of the same values; each decode equals the
        // reconstruction, the residual is v - reconstruction.
        swarmsgd::error_feedback<swarmsgd::min_max_quantizer<V>> ef(q);
        for (int round = 0; round < 2; ++round) {
            std::vector<V> v = x;
            const std::vector<V> before(ef.residual().begin(), ef.residual().end());
            std::vector<std::byte> payload(ef.max_encoded_size(n));
            try {
                swarmsgd::rng r(p.b5 + round);
                (void)ef.encode(std::span<V>(v), std::span<std::byte>(payload), r);
            } catch (const swarmsgd::non_finite_error&) {
                return;
            } catch (const swarmsgd::invalid_argument_error&) {
                return;
            }
            std::vector<V> out(n);
            (void)fuzz::must_decode<decltype(ef), V>(ef, payload, {}, out, "ef(min_max)");
            FUZZ_CHECK(fuzz::all_bits_equal<V>(out, v),
                       "ef(min_max): decode differs from the "
                       "reconstruction");
            const auto res = ef.residual();
            FUZZ_CHECK(res.size() == n, "ef residual size");
            for (std::size_t k = 0; k < n; ++k) {
                const V sum = x[k] + (before.empty() ? V(0) : before[k]);
                const V want = sum - v[k];
                FUZZ_CHECK(fuzz::same_value(res[k], want),
                           "ef(min_max): residual %zu is %.17g, expected %.17g", k, double(res[k]),
                           double(want));
            }
        }
    }
};

}  // namespace

SWARMSGD_FUZZ_TARGET(min_max_target)
