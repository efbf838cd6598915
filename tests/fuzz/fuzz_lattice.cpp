// libFuzzer target: lattice_quantizer<float/double>::decode against fuzzed references
// (separate, in-place and partially overlapping buffers, wrong reference sizes), inspect(),
// and encode/decode round trips against reference = input + delta.
// Input layout and checks: see fuzz_common.hpp. Configuration bytes:
//   cfg0: bits = 2 + cfg0 % 15
//   cfg1: bucket = 8 * (1 + cfg1 % 64), or for cfg1 >= 240: 256, 2048, 4096, 4294967288
//   cfg2: bit 0 stochastic, bits 1-7: initial distance 2^((cfg2 >> 1) - 40)
// Round trip, byte 6 (delta mode): bits 0-2 pick |delta| / radius among
//   0, 1e-3, 0.1, 0.45, 0.9, 1, 2, 100 (per element times a hash in [-1, 1)); bit 3: decode
//   in place as well.
#include <swarmsgd/quantizers/lattice.hpp>

#include "fuzz_common.hpp"

namespace {

using fuzz::load;
using fuzz::verdict;

struct lattice_target : fuzz::target_defaults {
    static constexpr const char* name = "lattice";

    static std::size_t bucket_of(std::uint8_t c) {
        if (c >= 240) {
            const std::size_t big[] = {256, 2048, 4096, 4294967288u};
            return big[c % 4];
        }
        return 8 * (1 + std::size_t{c} % 64);
    }

    template <class V>
    static swarmsgd::lattice_quantizer<V> make(const std::uint8_t* cfg) {
        swarmsgd::lattice_options o;
        o.bits = 2 + cfg[0] % 15;
        o.bucket = bucket_of(cfg[1]);
        o.stochastic = (cfg[2] & 1u) != 0;
        o.initial_distance = std::ldexp(1.0, int(cfg[2] >> 1) - 40);
        return swarmsgd::lattice_quantizer<V>(o);
    }

    static std::vector<std::array<std::uint8_t, 3>> seed_configs() {
        // (bits, bucket, stochastic | distance): 8 bits bucket 256 at D = 1, 2 bits, 16 bits,
        // odd widths, stochastic, a fine and a coarse lattice.
        return {{6, 31, 80}, {0, 0, 80},     {14, 240, 80}, {1, 1, 81},
                {3, 5, 60},  {10, 241, 100}, {6, 243, 81},  {5, 7, 40}};
    }

    template <class V, class Q>
    static double seed_noise(const Q& q) {
        return 0.5 * q.radius();
    }

    struct params {
        bool ok = false;
        double eps = 0;
        unsigned bits = 0;
        std::size_t bucket = 0;
        bool stochastic = false;
    };

    /// Parameter block and total size of a payload of n elements (header not included).
    template <class V>
    static params read_params(std::span<const std::byte> p, std::uint64_t n) {
        params r;
        if (p.size() < 32) return r;
        r.eps = load<double>(p.data() + 16);
        r.bits = load<std::uint8_t>(p.data() + 24);
        const unsigned flags = load<std::uint8_t>(p.data() + 25);
        const unsigned reserved = load<std::uint16_t>(p.data() + 26);
        r.bucket = load<std::uint32_t>(p.data() + 28);
        r.stochastic = (flags & 1u) != 0;
        if (r.bits < 2 || r.bits > 16 || r.bucket < 8 || r.bucket % 8 != 0) return r;
        if ((flags & ~1u) != 0 || reserved != 0) return r;
        // eps: finite normal double > 0 with eps * 2^64 finite; for float models a normal
        // float with eps * 2^24 <= FLT_MAX.
        if (!(std::isfinite(r.eps) && r.eps >= DBL_MIN && r.eps <= 0x1.0p-64 * DBL_MAX)) return r;
        if (sizeof(V) == 4) {
            const float f = static_cast<float>(r.eps);
            if (double(f) != r.eps || f < FLT_MIN || f > 0x1.0p-24f * FLT_MAX) return r;
        }
        // Exact size in 128-bit arithmetic (n may be any 64-bit count here).
        using u128 = unsigned __int128;
        const u128 expected =
            u128{32} + (u128{n} * r.bits + 7) / 8 + u128{4} * ((u128{n} + r.bucket - 1) / r.bucket);
        if (expected != p.size()) return r;
        if (n != 0 && !fuzz::tail_zero(p.data() + 32, static_cast<std::size_t>(n), r.bits))
            return r;
        r.ok = true;
        return r;
    }

    /// Independent decode: zhat = the integer congruent to c (mod q) nearest to y / eps (in
    /// double, y / eps clamped to +-2^50, NaN to -2^50), value = V(eps * zhat), coarse =
    /// floor(zhat / q); checksum per bucket. Elements whose (y/eps - c)/q lies so close to a
    /// rounding tie that the float path of the decoder may round the other way are not
    /// checked, nor the verdict of their bucket.
    template <class V>
    static fuzz::expectation<V> oracle(std::span<const std::byte> p, std::span<const V> ref,
                                       std::size_t n, bool overlap) {
        fuzz::expectation<V> e;
        if (!fuzz::check_header<V>(p, 6, n).ok || ref.size() != n) return e;
        const params pr = read_params<V>(p, n);
        if (!pr.ok || (overlap && n != 0)) return e;
        e.valid = true;
        e.bucket = pr.bucket;
        e.values.resize(n);
        e.check.assign(n, 1);
        const std::size_t buckets = (n + pr.bucket - 1) / pr.bucket;
        e.buckets.assign(buckets, verdict::ok);
        const double inv_eps = 1.0 / pr.eps;
        const double q = std::ldexp(1.0, int(pr.bits));
        const double inv_q = 1.0 / q;
        const double limit = 0x1.0p50;
        const double rel = sizeof(V) == 4 ? 0x1.0p-20 : 0x1.0p-40;
        const std::byte* codes = p.data() + 32;
        const std::byte* sums = codes + fuzz::packed(n, pr.bits);
        std::uint32_t sum = 0;
        bool ambiguous_bucket = false;
        for (std::size_t k = 0; k < n; ++k) {
            const std::size_t b = k / pr.bucket, pos = k % pr.bucket;
            const unsigned c = fuzz::read_bits(codes, k * pr.bits, pr.bits);
            double t = static_cast<double>(ref[k]) * inv_eps;
            t = t >= -limit ? t : -limit;
            t = t <= limit ? t : limit;
            const double u = (t - double(c)) * inv_q;
            const double r = std::nearbyint(u);
            const double zd = double(c) + q * r;
            e.values[k] = static_cast<V>(pr.eps * zd);
            const double margin = (std::fabs(t) + q) * rel * inv_q;
            if (std::fabs(std::fabs(u - std::floor(u)) - 0.5) <= margin) {
                e.check[k] = 0;
                ambiguous_bucket = true;
            }
            const auto coarse = static_cast<std::int64_t>(r);
            sum += swarmsgd::detail::lattice_checksum_term(
                coarse, swarmsgd::detail::lattice_position_key(static_cast<std::uint32_t>(pos)));
            if (pos + 1 == pr.bucket || k + 1 == n) {
                const auto stored = load<std::uint32_t>(sums + 4 * b);
                const bool fails = swarmsgd::detail::lattice_checksum_finish(sum, b) != stored;
                e.buckets[b] =
                    ambiguous_bucket ? verdict::unknown : (fails ? verdict::fail : verdict::ok);
                sum = 0;
                ambiguous_bucket = false;
            }
        }
        return e;
    }

    /// inspect() reads the count from the payload: it must accept exactly the payloads whose
    /// header and parameters are valid for that count, and report them.
    template <class V>
    static void extra_decode_checks(std::span<const std::byte> p, std::size_t /*n*/) {
        bool valid = false;
        params pr;
        if (p.size() >= 16) {
            const auto count = load<std::uint64_t>(p.data() + 8);
            valid = fuzz::check_header<V>(p, 6, count).ok;
            if (valid) {
                pr = read_params<V>(p, count);
                valid = pr.ok;
            }
        }
        try {
            const auto info = swarmsgd::lattice_quantizer<V>::inspect(p);
            FUZZ_CHECK(valid, "lattice inspect accepted a payload the oracle rejects");
            FUZZ_CHECK(info.count == load<std::uint64_t>(p.data() + 8) && info.eps == pr.eps &&
                           info.bits == pr.bits && info.bucket == pr.bucket &&
                           info.stochastic == pr.stochastic,
                       "lattice inspect misreports the parameters");
        } catch (const swarmsgd::message_error& ex) {
            FUZZ_CHECK(!valid, "lattice inspect rejected a valid payload: %s", ex.what());
        } catch (const swarmsgd::size_mismatch_error& ex) {
            fuzz::fail_at(__FILE__, __LINE__, "lattice inspect threw size_mismatch_error: %s",
                          ex.what());
        }
    }

    template <class V>
    static void roundtrip(const fuzz::prefix& p, std::vector<V> x) {
        const auto q = make<V>(p.cfg);
        const std::size_t n = x.size();
        const std::vector<V> original = x;
        std::vector<std::byte> payload;
        if (!fuzz::checked_encode(q, x, payload, p.b5, name)) return;
        const auto info = swarmsgd::lattice_quantizer<V>::inspect(payload);
        FUZZ_CHECK(info.count == n && info.bits == q.options().bits &&
                       info.bucket == q.options().bucket &&
                       info.stochastic == q.options().stochastic,
                   "lattice: inspect of an encoder's payload misreports it");
        const double eps = info.eps;
        const double qn = std::ldexp(1.0, int(info.bits));

        // Error bound of the reconstruction: eps / 2 (nearest) or eps (stochastic), plus a few
        // ulps of x; it must be finite.
        for (std::size_t k = 0; k < n; ++k) {
            const double err = std::fabs(double(original[k]) - double(x[k]));
            const double bound = (info.stochastic ? 1.0 : 0.5) * eps * (1 + 0x1.0p-20) +
                                 4 * fuzz::ulp<V>(double(original[k]));
            FUZZ_CHECK(std::isfinite(x[k]) && err <= bound,
                       "lattice: element %zu = %.17g reconstructed as %.17g (eps %.17g, %u bits, "
                       "%s): error %.3g above %.3g",
                       k, double(original[k]), double(x[k]), eps, info.bits,
                       info.stochastic ? "stochastic" : "nearest", err, bound);
        }

        // Reference = input + delta.
        static constexpr double factors[] = {0, 1e-3, 0.1, 0.45, 0.9, 1.0, 2.0, 100.0};
        const double scale = factors[p.b6 & 7u] * q.radius();
        std::vector<V> y(n);
        for (std::size_t k = 0; k < n; ++k)
            y[k] = static_cast<V>(double(original[k]) + scale * fuzz::hash_unit(p.b7, k));

        const auto want = oracle<V>(payload, y, n, false);
        FUZZ_CHECK(want.valid, "lattice: the oracle rejects an encoder's payload");
        std::vector<V> out(n);
        const auto r =
            fuzz::must_decode<decltype(q), V>(q, payload, std::span<const V>(y), out, name);
        fuzz::check_success<V>(want, out, r, "lattice round trip");
        const auto failed = fuzz::failed_buckets(r, n, info.bucket);
        // Outside the failed buckets: the sender's reconstruction, bit for bit.
        for (std::size_t k = 0; k < n; ++k) {
            if (failed[k / info.bucket]) continue;
            FUZZ_CHECK(fuzz::same_value(out[k], x[k]),
                       "lattice: element %zu decoded to %.17g in a bucket reported ok, the "
                       "sender reconstructed %.17g (eps %.17g, reference %.17g)",
                       k, double(out[k]), double(x[k]), eps, double(y[k]));
        }
        // Within the decoding radius (and where V still resolves the lattice, |x / eps| <=
        // 2^20 for float, 2^40 for double) nothing may fail.
        bool close = true;
        const double resolvable = sizeof(V) == 4 ? 0x1.0p20 : 0x1.0p40;
        for (std::size_t k = 0; k < n && close; ++k) {
            const double d = std::fabs(double(x[k]) - double(y[k])) / eps;
            close = d <= qn / 2 - 1 && std::fabs(double(x[k])) / eps <= resolvable &&
                    std::fabs(double(y[k])) / eps <= resolvable;
        }
        if (close)
            FUZZ_CHECK(r.ok(),
                       "lattice: %zu elements failed although every reference is within "
                       "(q/2 - 1) eps of the reconstruction (n %zu, %u bits, eps %.17g)",
                       r.failed_elements(), n, info.bits, eps);

        // In-place decode gives the same result as decoding into a separate buffer.
        if ((p.b6 & 8u) != 0) {
            std::vector<V> inplace = y;
            swarmsgd::decode_result r2;
            try {
                r2 = q.decode(payload, std::span<const V>(inplace), std::span<V>(inplace));
            } catch (const std::exception& ex) {
                fuzz::fail_at(__FILE__, __LINE__, "lattice in-place decode threw: %s", ex.what());
            }
            // The values of failed buckets are unspecified (the two decodes may take the float
            // and the double path for the same element, which can round a near-tie the other
            // way), the others must be the sender's reconstruction.
            FUZZ_CHECK(r2.failed == r.failed, "lattice: in-place decode reports other failures");
            for (std::size_t k = 0; k < n; ++k) {
                if (failed[k / info.bucket]) continue;
                FUZZ_CHECK(fuzz::same_value(inplace[k], x[k]),
                           "lattice: in-place decode element %zu is %.17g, the sender "
                           "reconstructed %.17g (separate decode %.17g)",
                           k, double(inplace[k]), double(x[k]), double(out[k]));
            }
        }
    }
};

}  // namespace

SWARMSGD_FUZZ_TARGET(lattice_target)
