// libFuzzer target: qsgd_quantizer<float/double>::decode (and round trips at several level
// counts, with and without error_feedback).
// Input layout and checks: see fuzz_common.hpp. Configuration bytes:
//   cfg0: levels = table[cfg0 % 16] for cfg0 < 128, else 1 + (cfg0 << 8 | cfg1) % 32767
//   cfg1: bucket = 8 * (1 + cfg1 % 64), or for cfg1 >= 240: 512, 4096, 2^31 (cfg1 % 3)
//   cfg2: bit 1 round trip through error_feedback (two encodes)
#include <swarmsgd/quantizers/error_feedback.hpp>
#include <swarmsgd/quantizers/qsgd.hpp>

#include "fuzz_common.hpp"

namespace {

using fuzz::load;

struct qsgd_target : fuzz::target_defaults {
    static constexpr const char* name = "qsgd";

    static std::size_t bucket_of(std::uint8_t c) {
        if (c >= 240) {
            const std::size_t big[] = {512, 4096, std::size_t{1} << 31};
            return big[c % 3];
        }
        return 8 * (1 + std::size_t{c} % 64);
    }

    static unsigned levels_of(const std::uint8_t* cfg) {
        static constexpr unsigned table[] = {1,   2,   3,   4,    7,    8,     15,    16,
                                             127, 128, 255, 1000, 4095, 16383, 32766, 32767};
        if (cfg[0] < 128) return table[cfg[0] % 16];
        return 1 + ((unsigned{cfg[0]} << 8) | cfg[1]) % 32767;
    }

    template <class V>
    static swarmsgd::qsgd_quantizer<V> make(const std::uint8_t* cfg) {
        swarmsgd::qsgd_options o;
        o.levels = levels_of(cfg);
        o.bucket = bucket_of(cfg[1]);
        return swarmsgd::qsgd_quantizer<V>(o);
    }

    static std::vector<std::array<std::uint8_t, 3>> seed_configs() {
        return {{8, 63, 0}, {0, 0, 0},  {1, 3, 0},    {2, 240, 0},
                {4, 1, 0},  {11, 2, 0}, {15, 241, 0}, {13, 7, 2}};
    }

    static unsigned code_bits(unsigned levels) {
        unsigned w = 0;
        while ((1u << w) <= levels) ++w;  // bit width of levels
        return 1 + w;
    }

    /// Independent reading of the format: params, size, finite norms >= 0, padding, every
    /// level <= s; value = sign * ((norm / s) * level).
    template <class V>
    static fuzz::expectation<V> oracle(std::span<const std::byte> p, std::span<const V> /*ref*/,
                                       std::size_t n, bool /*overlap*/) {
        fuzz::expectation<V> e;
        if (!fuzz::check_header<V>(p, 5, n).ok || p.size() < 24) return e;
        const unsigned levels = load<std::uint16_t>(p.data() + 16);
        const unsigned reserved = load<std::uint16_t>(p.data() + 18);
        const std::size_t bucket = load<std::uint32_t>(p.data() + 20);
        if (levels < 1 || levels > 32767 || reserved != 0 || bucket < 8 || bucket % 8 != 0)
            return e;
        const unsigned bits = code_bits(levels);
        const std::size_t buckets = (n + bucket - 1) / bucket;
        if (p.size() != 24 + 4 * buckets + fuzz::packed(n, bits)) return e;
        const std::size_t stride = 4 + fuzz::packed(bucket, bits);
        for (std::size_t b = 0; b < buckets; ++b) {
            const float norm = load<float>(p.data() + 24 + b * stride);
            if (!std::isfinite(norm) || !(norm >= 0.0f)) return e;
            // The top level must stay finite: (norm / s) * s may not overflow.
            if (!std::isfinite((norm / static_cast<float>(levels)) * static_cast<float>(levels)))
                return e;
        }
        if (n != 0) {
            const std::size_t last = (n - 1) / bucket;
            if (!fuzz::tail_zero(p.data() + 24 + last * stride + 4, n - last * bucket, bits))
                return e;
        }
        std::vector<V> values(n);
        for (std::size_t k = 0; k < n; ++k) {
            const std::size_t b = k / bucket, j = k % bucket;
            const std::byte* meta = p.data() + 24 + b * stride;
            const unsigned c = fuzz::read_bits(meta + 4, j * bits, bits);
            const unsigned level = c >> 1;
            if (level > levels) return e;
            const float unit = load<float>(meta) / static_cast<float>(levels);
            const float mag = unit * static_cast<float>(level);
            values[k] = static_cast<V>((c & 1u) != 0 ? -mag : mag);
        }
        e.valid = true;
        e.values = std::move(values);
        return e;
    }

    template <class V>
    static float to_float(V v) {
        if constexpr (sizeof(V) == 4)
            return v;
        else
            return static_cast<float>(std::fmin(std::fmax(v, -double(FLT_MAX)), double(FLT_MAX)));
    }

    /// |float(x) - r| < norm / s (up to a rounding of unit and of the product), and r has the
    /// sign of x (or is zero).
    template <class V>
    static void check_bounds(std::span<const V> x, std::span<const V> r,
                             std::span<const std::byte> p, const char* what) {
        const unsigned levels = load<std::uint16_t>(p.data() + 16);
        const std::size_t bucket = load<std::uint32_t>(p.data() + 20);
        const std::size_t stride = 4 + fuzz::packed(bucket, code_bits(levels));
        for (std::size_t k = 0; k < x.size(); ++k) {
            const float norm = load<float>(p.data() + 24 + (k / bucket) * stride);
            const double xf = to_float(x[k]);
            const double unit = double(norm) / levels;
            const double bound = unit * (1 + 0x1.0p-20) + 4 * fuzz::ulp<float>(norm);
            const double err = std::fabs(xf - double(r[k]));
            FUZZ_CHECK(err <= bound,
                       "%s: element %zu = %.9g reconstructed as %.9g (norm %.9g, %u levels): "
                       "error %.3g above %.3g",
                       what, k, xf, double(r[k]), double(norm), levels, err, bound);
            FUZZ_CHECK(r[k] == 0 || std::signbit(r[k]) == std::signbit(xf),
                       "%s: element %zu = %.9g reconstructed with the other sign: %.9g", what, k,
                       xf, double(r[k]));
        }
    }

    template <class V>
    static void roundtrip(const fuzz::prefix& p, std::vector<V> x) {
        const auto q = make<V>(p.cfg);
        const std::size_t n = x.size();
        if ((p.cfg[2] & 2u) == 0) {
            const std::vector<V> original = x;
            std::vector<std::byte> payload;
            if (!fuzz::checked_encode(q, x, payload, p.b5, name)) return;
            const auto want = oracle<V>(payload, {}, n, false);
            FUZZ_CHECK(want.valid, "qsgd: the oracle rejects an encoder's payload");
            std::vector<V> out(n);
            const auto r = fuzz::must_decode<decltype(q), V>(q, payload, {}, out, name);
            fuzz::check_success<V>(want, out, r, "qsgd round trip");
            FUZZ_CHECK(fuzz::all_bits_equal<V>(out, x),
                       "qsgd: decode differs from the sender's reconstruction");
            check_bounds<V>(original, x, payload, "qsgd round trip");
            return;
        }
        swarmsgd::error_feedback<swarmsgd::qsgd_quantizer<V>> ef(q);
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
            (void)fuzz::must_decode<decltype(ef), V>(ef, payload, {}, out, "ef(qsgd)");
            FUZZ_CHECK(fuzz::all_bits_equal<V>(out, v),
                       "ef(qsgd): decode differs from the "
                       "reconstruction");
            const auto res = ef.residual();
            for (std::size_t k = 0; k < n; ++k) {
                const V sum = x[k] + (before.empty() ? V(0) : before[k]);
                const V want = sum - v[k];
                FUZZ_CHECK(fuzz::same_value(res[k], want),
                           "ef(qsgd): residual %zu is %.17g, expected %.17g", k, double(res[k]),
                           double(want));
            }
        }
    }
};

}  // namespace

SWARMSGD_FUZZ_TARGET(qsgd_target)
