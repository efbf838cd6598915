// The lattice quantizer (quantizers/lattice.hpp): exact recovery within the decoding radius,
// bit-identity of sender and receiver reconstructions, stochastic unbiasedness, failure
// detection per bucket, step adaptation, payload validation, the wire format against a
// reference implementation of its documented formulas, and the error at realistic distances
// against a min-max quantizer.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <swarmsgd/detail/bitpack.hpp>
#include <swarmsgd/detail/counter_rng.hpp>
#include <swarmsgd/errors.hpp>
#include <swarmsgd/message.hpp>
#include <swarmsgd/quantizer.hpp>
#include <swarmsgd/quantizers/identity.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/random.hpp>

#include "error_text.hpp"

using swarmsgd::element_range;
using swarmsgd::lattice_options;
using swarmsgd::lattice_quantizer;
using swarmsgd::rng;

static_assert(swarmsgd::quantizer_for<lattice_quantizer<float>, float>);
static_assert(swarmsgd::quantizer_for<lattice_quantizer<double>, double>);
static_assert(!swarmsgd::quantizer_for<lattice_quantizer<float>, double>);
static_assert(swarmsgd::recovering_quantizer_for<lattice_quantizer<float>, float>);
static_assert(swarmsgd::recovering_quantizer_for<lattice_quantizer<double>, double>);
static_assert(!swarmsgd::recovering_quantizer_for<swarmsgd::identity_quantizer<float>, float>);
static_assert(!swarmsgd::has_any_recovery_member<swarmsgd::identity_quantizer<float>, float>);
static_assert(!swarmsgd::quantizer_for<lattice_quantizer<double>, float>);
static_assert(lattice_quantizer<float>::format_id == 6);

namespace {

using test_support::contains;
using test_support::what_of;

template <class V>
bool same_bits(std::span<const V> a, std::span<const V> b) {
    return a.size() == b.size() &&
           (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(V)) == 0);
}
template <class V>
bool same_bits(const std::vector<V>& a, const std::vector<V>& b) {
    return same_bits(std::span<const V>(a), std::span<const V>(b));
}

/// Uniform values in [lo, hi).
template <class V>
std::vector<V> uniform(std::size_t n, double lo, double hi, std::uint64_t seed) {
    rng r(seed, 17);
    std::vector<V> v(n);
    for (auto& x : v) x = static_cast<V>(lo + (hi - lo) * r.uniform01());
    return v;
}

/// Encodes `x` (copied) with `q`; returns the payload, and the reconstruction in `recon`.
template <class V>
std::vector<std::byte> encode(const lattice_quantizer<V>& q, const std::vector<V>& x,
                              std::vector<V>& recon, std::uint64_t seed = 1) {
    recon = x;
    std::vector<std::byte> payload(q.max_encoded_size(x.size()));
    rng r(seed);
    const std::size_t bytes = q.encode(std::span<V>(recon), std::span<std::byte>(payload), r);
    REQUIRE(bytes == payload.size());
    return payload;
}

template <class V>
swarmsgd::decode_result decode(const lattice_quantizer<V>& q, const std::vector<std::byte>& p,
                               const std::vector<V>& reference, std::vector<V>& out) {
    out.assign(reference.size(), V(-7.25));
    return q.decode(std::span<const std::byte>(p), std::span<const V>(reference),
                    std::span<V>(out));
}

lattice_options opts(unsigned bits, std::size_t bucket, bool stochastic, double distance) {
    lattice_options o;
    o.bits = bits;
    o.bucket = bucket;
    o.stochastic = stochastic;
    o.initial_distance = distance;
    return o;
}

double ulp(double x, bool single) {
    const double a = std::fabs(x);
    if (single) {
        const auto f = static_cast<float>(a);
        return static_cast<double>(std::nextafter(f, std::numeric_limits<float>::infinity()) - f);
    }
    return std::nextafter(a, std::numeric_limits<double>::infinity()) - a;
}

/// y = x + a perturbation of at most `radius` per element (uniform in [-radius, radius]).
template <class V>
std::vector<V> perturb(const std::vector<V>& x, double radius, std::uint64_t seed) {
    rng r(seed, 99);
    std::vector<V> y(x.size());
    for (std::size_t k = 0; k < x.size(); ++k)
        y[k] = static_cast<V>(static_cast<double>(x[k]) + radius * (2 * r.uniform01() - 1));
    return y;
}

// --- a long-hand reference of the documented wire format --------------------------------------

std::uint32_t ref_mix(std::uint32_t h) {
    h *= 0x85EBCA6Bu;
    h ^= h >> 16;
    h *= 0xC2B2AE35u;
    h ^= h >> 13;
    return h;
}
std::uint32_t ref_fmix32(std::uint32_t h) {
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}
std::uint64_t ref_mix64(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    std::int64_t d = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --d;
    return d;
}
std::uint32_t ref_term(std::int64_t coarse, std::uint32_t key) {
    const auto lo = static_cast<std::uint32_t>(static_cast<std::uint64_t>(coarse));
    const auto hi = static_cast<std::uint32_t>(static_cast<std::uint64_t>(coarse) >> 32);
    const std::uint32_t sign = (lo & 0x80000000u) != 0 ? 0xFFFFFFFFu : 0u;
    return ref_mix(lo + key) + (hi - sign) * 0x9E3779B1u;
}
/// Checksums of the lattice indices z per the documented formula.
std::vector<std::uint32_t> ref_checksums(const std::vector<std::int64_t>& z, unsigned bits,
                                         std::size_t bucket) {
    const std::int64_t q = std::int64_t{1} << bits;
    std::vector<std::uint32_t> sums;
    for (std::size_t start = 0; start < z.size(); start += bucket) {
        std::uint32_t s = 0;
        for (std::size_t k = start; k < std::min(z.size(), start + bucket); ++k)
            s += ref_term(floor_div(z[k], q),
                          static_cast<std::uint32_t>(k - start + 1) * 0x9E3779B9u);
        const std::uint64_t j = start / bucket;
        sums.push_back(ref_fmix32(s + static_cast<std::uint32_t>(ref_mix64(j))));
    }
    return sums;
}

}  // namespace

// ------------------------------------------------------------------------------- basics

TEST_CASE_TEMPLATE("lattice: identity, sizes and the 0.27 bytes per fp32 budget", V, float,
                   double) {
    const lattice_quantizer<V> q;
    CHECK(q.id() == 6);
    CHECK(q.name() == "lattice");
    CHECK(q.options().bits == 8);
    CHECK(q.options().bucket == 256);
    CHECK(q.max_encoded_size(0) == 32);
    CHECK(q.max_encoded_size(1) == 32 + 1 + 4);
    CHECK(q.max_encoded_size(256) == 32 + 256 + 4);
    CHECK(q.max_encoded_size(257) == 32 + 257 + 8);
    for (const std::size_t n : {std::size_t{1} << 16, std::size_t{1} << 20, std::size_t{1} << 24}) {
        const double per_fp32 = double(q.max_encoded_size(n)) / (4.0 * double(n));
        CAPTURE(n);
        CHECK(per_fp32 <= 0.27);
        CHECK(per_fp32 == doctest::Approx(0.25 + 1.0 / 256).epsilon(1e-3));
    }
    CHECK(lattice_quantizer<V>::encoded_size(13, 3, 8) == 32 + 5 + 8);  // ceil(39 / 8) = 5
    CHECK(lattice_quantizer<V>::encoded_size(16, 12, 8) == 32 + 24 + 8);
}

TEST_CASE("lattice: options are validated with the offending value in the message") {
    auto bad = [](auto mutate) {
        lattice_options o;
        mutate(o);
        return what_of<swarmsgd::invalid_argument_error>([&] { lattice_quantizer<float> q(o); });
    };
    CHECK(contains(bad([](lattice_options& o) { o.bits = 1; }), "bits = 1"));
    CHECK(contains(bad([](lattice_options& o) { o.bits = 17; }), "bits = 17"));
    CHECK(contains(bad([](lattice_options& o) { o.bucket = 0; }), "bucket = 0"));
    CHECK(contains(bad([](lattice_options& o) { o.bucket = 12; }), "bucket = 12"));
    CHECK(contains(bad([](lattice_options& o) { o.bucket = 4; }), "bucket = 4"));
    CHECK(contains(bad([](lattice_options& o) { o.initial_distance = 0; }), "initial_distance"));
    CHECK(contains(bad([](lattice_options& o) { o.initial_distance = std::nan(""); }),
                   "initial_distance = nan"));
    CHECK(contains(bad([](lattice_options& o) { o.safety_margin = 0.5; }), "safety_margin = 0.5"));
    CHECK(contains(bad([](lattice_options& o) { o.decay = 1.5; }), "decay = 1.5"));
    CHECK(contains(bad([](lattice_options& o) { o.decay = -0.1; }), "decay = -0.1"));
    CHECK(contains(bad([](lattice_options& o) { o.failure_growth = 1; }), "failure_growth = 1"));
    CHECK(contains(bad([](lattice_options& o) { o.min_distance = 0; }), "min_distance = 0"));
    CHECK(contains(bad([](lattice_options& o) { o.min_distance = -1; }), "min_distance = -1"));
    CHECK(
        contains(bad([](lattice_options& o) { o.min_distance = 1e-38; }), "smallest normal float"));
    for (unsigned bits : {2u, 16u}) {
        lattice_options o;
        o.bits = bits;
        o.bucket = 8;
        CHECK_NOTHROW(lattice_quantizer<double>{o});
    }
}

// ------------------------------------------------------------------------------- round trips

TEST_CASE_TEMPLATE("lattice: exact recovery within the decoding radius", V, float, double) {
    constexpr bool single = sizeof(V) == 4;
    const std::size_t bucket = 64;
    for (const unsigned bits : {2u, 4u, 8u, 12u, 16u}) {
        for (const bool stochastic : {false, true}) {
            std::vector<std::size_t> sizes{0, 1, 7, bucket - 1, bucket, bucket + 1, 5000};
            if (bits == 8 || bits == 16) sizes.push_back(std::size_t{1} << 20);
            for (const std::size_t n : sizes) {
                CAPTURE(bits);
                CAPTURE(stochastic);
                CAPTURE(n);
                const double distance = 0.01;
                const lattice_quantizer<V> q(opts(bits, bucket, stochastic, distance));
                const auto x = uniform<V>(n, -1.5, 1.5, 11 * n + bits);
                std::vector<V> recon;
                const auto payload = encode(q, x, recon, n + 3);
                REQUIRE(payload.size() == q.max_encoded_size(n));
                const auto info = lattice_quantizer<V>::inspect(payload);
                const double eps = info.eps;
                CHECK(info.bits == bits);
                CHECK(info.bucket == bucket);
                CHECK(info.stochastic == stochastic);
                CHECK(info.count == n);
                CHECK(eps == doctest::Approx(q.step()).epsilon(1e-7));
                if (single) CHECK(static_cast<double>(static_cast<float>(eps)) == eps);

                // Reconstruction error.
                double worst = 0;  // in units of eps, beyond a few ulps of x (roundings to V)
                for (std::size_t k = 0; k < n; ++k) {
                    const double err = std::fabs(double(recon[k]) - double(x[k]));
                    worst = std::max(worst, (err - 3 * ulp(x[k], single)) / eps);
                }
                if (stochastic)
                    CHECK(worst < 1.0);
                else
                    CHECK(worst <= 0.5);

                // Decoding against references within the radius minus a margin: (q/2 - 1/2)
                // eps for round-to-nearest, (q/2 - 1) eps for stochastic rounding.
                const double q_levels = std::ldexp(1.0, int(bits));
                const double radius = (q_levels / 2 - (stochastic ? 1.0 : 0.5)) * eps * 0.999;
                const auto y = perturb(x, radius, n + bits);
                std::vector<V> out;
                const auto result = decode(q, payload, y, out);
                CHECK(result.ok());
                CHECK(result.failed_elements() == 0);
                CHECK(same_bits(out, recon));
                // Decoding against the sender's own snapshot and reconstruction.
                CHECK(decode(q, payload, x, out).ok());
                CHECK(same_bits(out, recon));
                CHECK(decode(q, payload, recon, out).ok());
                CHECK(same_bits(out, recon));
            }
        }
    }
}

TEST_CASE_TEMPLATE("lattice: encode is deterministic and draws one key only when stochastic", V,
                   float, double) {
    const auto x = uniform<V>(3000, -1, 1, 5);
    for (const bool stochastic : {false, true}) {
        CAPTURE(stochastic);
        const lattice_quantizer<V> q(opts(8, 256, stochastic, 0.05));
        std::vector<V> r1 = x, r2 = x;
        std::vector<std::byte> p1(q.max_encoded_size(x.size())), p2(p1.size());
        rng a(42), b(42), untouched(42);
        q.encode(std::span<V>(r1), std::span<std::byte>(p1), a);
        q.encode(std::span<V>(r2), std::span<std::byte>(p2), b);
        CHECK(p1 == p2);
        CHECK(same_bits(r1, r2));
        if (stochastic) (void)untouched();
        CHECK(a() == untouched());
        if (stochastic) {  // another key gives another rounding
            rng c(43);
            std::vector<V> r3 = x;
            std::vector<std::byte> p3(p1.size());
            q.encode(std::span<V>(r3), std::span<std::byte>(p3), c);
            CHECK(p3 != p1);
        }
    }
}

TEST_CASE_TEMPLATE("lattice: the wire format matches the documented formulas", V, float, double) {
    for (const unsigned bits : {2u, 5u, 8u, 12u, 16u}) {
        for (const std::size_t bucket : {std::size_t{8}, std::size_t{256}, std::size_t{4096}}) {
            CAPTURE(bits);
            CAPTURE(bucket);
            const std::size_t n = 5000 + 3;
            const lattice_quantizer<V> q(opts(bits, bucket, bits == 5, 0.02));
            auto x = uniform<V>(n, -3, 3, bits * 7 + bucket);
            // |x / eps| = 2^22: the double path for its segment (and |z| < 2^23, so z can be
            // read back from the float reconstruction).
            x[17] = static_cast<V>(-std::ldexp(q.step(), 22));
            std::vector<V> recon;
            const auto payload = encode(q, x, recon, 9);
            const double eps = swarmsgd::detail::load<double>(payload.data() + 16);
            CHECK(std::to_integer<unsigned>(payload[24]) == bits);
            CHECK(std::to_integer<unsigned>(payload[25]) == (bits == 5 ? 1u : 0u));
            CHECK(swarmsgd::detail::load<std::uint16_t>(payload.data() + 26) == 0);
            CHECK(swarmsgd::detail::load<std::uint32_t>(payload.data() + 28) == bucket);
            CHECK(swarmsgd::detail::load<std::uint16_t>(payload.data()) == 6);
            CHECK(swarmsgd::detail::load<std::uint64_t>(payload.data() + 8) == n);

            // Lattice indices from the reconstruction (exact: |z| < 2^23).
            std::vector<std::int64_t> z(n);
            std::vector<std::uint16_t> codes(n);
            const std::int64_t mask = (std::int64_t{1} << bits) - 1;
            for (std::size_t k = 0; k < n; ++k) {
                z[k] = std::llround(double(recon[k]) / eps);
                CHECK(recon[k] == static_cast<V>(eps * static_cast<double>(z[k])));
                codes[k] = static_cast<std::uint16_t>(z[k] & mask);
            }
            std::vector<std::byte> packed(swarmsgd::detail::packed_bytes(n, bits));
            (void)swarmsgd::detail::pack(std::span<const std::uint16_t>(codes), bits,
                                         std::span<std::byte>(packed));
            CHECK(std::equal(packed.begin(), packed.end(), payload.begin() + 32));
            const auto sums = ref_checksums(z, bits, bucket);
            REQUIRE(payload.size() == 32 + packed.size() + 4 * sums.size());
            const std::byte* p = payload.data() + 32 + packed.size();
            for (std::size_t j = 0; j < sums.size(); ++j) {
                CAPTURE(j);
                CHECK(swarmsgd::detail::load<std::uint32_t>(p + 4 * j) == sums[j]);
            }
        }
    }
}

TEST_CASE("lattice: float and double arithmetic paths reconstruct bit-identically") {
    // Segments of float models whose |x / eps| stays below 2^21 run in float, others in
    // double; a sender and a receiver may take different paths for the same segment.
    const lattice_quantizer<float> q(opts(8, 256, false, 1e-3));
    const double eps = static_cast<double>(static_cast<float>(q.step()));
    const double edge = std::ldexp(1.0, 21) * eps;
    const std::size_t n = 3 * 2048;
    auto x = uniform<float>(n, -1, 1, 3);
    // Segment 0: the sender is just above the float limit, the receiver just below.
    x[100] = static_cast<float>(edge + 20 * eps);
    // Segment 1: the sender is below, the receiver above.
    x[2048 + 7] = static_cast<float>(edge - 20 * eps);
    // Segment 2: both far above (double path on both sides).
    x[4096 + 1] = static_cast<float>(64 * edge);
    std::vector<float> recon;
    const auto payload = encode(q, x, recon);
    CHECK(lattice_quantizer<float>::inspect(payload).eps == eps);
    auto y = perturb(x, 50 * eps, 4);
    y[100] = static_cast<float>(edge - 30 * eps);
    y[2048 + 7] = static_cast<float>(edge + 30 * eps);
    std::vector<float> out;
    const auto result = decode(q, payload, y, out);
    CHECK(result.ok());
    CHECK(same_bits(out, recon));
}

TEST_CASE_TEMPLATE("lattice: exact over the whole index range up to 2^50", V, float, double) {
    // |x / eps| from 0 to 2^49 (every octave, alone and mixed in a segment), references
    // within the radius: bit-exact decodes, whichever arithmetic each segment uses.
    for (const bool stochastic : {false, true}) {
        CAPTURE(stochastic);
        const lattice_quantizer<V> q(opts(8, 64, stochastic, 1e-3));
        const double eps = lattice_quantizer<V>::inspect([&] {
                               std::vector<V> r;
                               return encode(q, std::vector<V>(1, V(0)), r);
                           }())
                               .eps;
        // Segments (2048 elements at bucket 64) of one octave each, then segments mixing all.
        const std::size_t n = 60 * 2048;
        rng r(7, 1);
        std::vector<V> x(n);
        for (std::size_t k = 0; k < n; ++k) {
            const int octave = static_cast<int>(k / 2048 < 50 ? k / 2048 : k % 50);
            const double sign = r.uniform(2) == 0 ? -1.0 : 1.0;
            x[k] = static_cast<V>(sign * std::ldexp(eps * (1 + r.uniform01()), octave - 1));
        }
        std::vector<V> recon;
        const auto payload = encode(q, x, recon);
        const auto y = perturb(x, 100 * eps, 8);
        std::vector<V> out;
        CHECK(decode(q, payload, y, out).ok());
        CHECK(same_bits(out, recon));
        CHECK(decode(q, payload, x, out).ok());
        CHECK(same_bits(out, recon));
    }
}

TEST_CASE_TEMPLATE("lattice: in-place decode equals out-of-place decode", V, float, double) {
    const lattice_quantizer<V> q(opts(8, 256, false, 0.01));
    const auto x = uniform<V>(3000, -1, 1, 8);
    std::vector<V> recon;
    const auto payload = encode(q, x, recon);
    auto y = perturb(x, 0.01, 2);
    y[1000] = y[1000] + V(1);  // one failing bucket
    std::vector<V> out;
    const auto expected = decode(q, payload, y, out);
    std::vector<V> io = y;
    const auto result = q.decode(payload, std::span<const V>(io), std::span<V>(io));
    CHECK(result.failed == expected.failed);
    CHECK(same_bits(io, out));
    // Any other overlap is refused before anything is written.
    std::vector<V> buffer(3001, V(0));
    std::copy(y.begin(), y.end(), buffer.begin());
    const auto before = buffer;
    CHECK(contains(what_of<swarmsgd::invalid_argument_error>([&] {
                       (void)q.decode(payload, std::span<const V>(buffer).first(3000),
                                      std::span<V>(buffer).subspan(1));
                   }),
                   "overlaps"));
    CHECK(same_bits(buffer, before));
}

TEST_CASE_TEMPLATE("lattice: a decoder reads any sender's bits, bucket and step", V, float,
                   double) {
    const lattice_quantizer<V> sender(opts(12, 64, true, 0.5));
    const lattice_quantizer<V> receiver(opts(4, 1024, false, 1e-5));
    const auto x = uniform<V>(777, -2, 2, 1);
    std::vector<V> recon;
    const auto payload = encode(sender, x, recon);
    std::vector<V> out;
    CHECK(decode(receiver, payload, perturb(x, 0.3, 6), out).ok());
    CHECK(same_bits(out, recon));
}

// ------------------------------------------------------------------------------- stochastic

TEST_CASE_TEMPLATE("lattice: stochastic rounding is unbiased", V, float, double) {
    const lattice_quantizer<V> q(opts(4, 64, true, 0.1));
    const std::size_t n = 512;
    const int trials = 4000;
    const auto x = uniform<V>(n, -1, 1, 77);
    std::vector<double> sum(n, 0.0);
    double eps = 0;
    for (int t = 0; t < trials; ++t) {
        std::vector<V> recon;
        const auto payload = encode(q, x, recon, 1000 + std::uint64_t(t));
        eps = lattice_quantizer<V>::inspect(payload).eps;
        for (std::size_t k = 0; k < n; ++k) sum[k] += double(recon[k]) - double(x[k]);
    }
    // Each error is in (-eps, eps) with variance <= eps^2 / 4: the mean of `trials` of them
    // has a standard deviation below eps / (2 sqrt(trials)).
    const double sigma = eps / (2 * std::sqrt(double(trials)));
    double worst = 0, total = 0;
    for (std::size_t k = 0; k < n; ++k) {
        const double mean = sum[k] / trials;
        worst = std::max(worst, std::fabs(mean));
        total += mean;
    }
    CHECK(worst < 5.5 * sigma);
    CHECK(std::fabs(total / double(n)) < 5 * sigma / std::sqrt(double(n)));
    // Deterministic rounding of the same values is biased per element (for comparison).
    const lattice_quantizer<V> det(opts(4, 64, false, 0.1));
    std::vector<V> recon;
    (void)encode(det, x, recon);
    double det_worst = 0;
    for (std::size_t k = 0; k < n; ++k)
        det_worst = std::max(det_worst, std::fabs(double(recon[k]) - double(x[k])));
    CHECK(det_worst > 40 * sigma);
}

// ------------------------------------------------------------------------------- failures

TEST_CASE_TEMPLATE("lattice: every failed bucket is reported, every other decodes exactly", V,
                   float, double) {
    rng pick(2024, 5);
    for (const std::size_t bucket : {std::size_t{256}, std::size_t{64}, std::size_t{4096}}) {
        const std::size_t n = bucket == 4096 ? 3 * 4096 + 100 : 9 * bucket + 100;
        const std::size_t buckets = (n + bucket - 1) / bucket;
        const lattice_quantizer<V> q(opts(8, bucket, false, 0.02));
        const auto x = uniform<V>(n, -1, 1, bucket);
        std::vector<V> recon;
        const auto payload = encode(q, x, recon);
        const double eps = lattice_quantizer<V>::inspect(payload).eps;
        const double period = 256 * eps;  // q eps
        const int trials = bucket == 64 ? 1000 : 300;
        int detected = 0;
        for (int t = 0; t < trials; ++t) {
            auto y = perturb(x, 100 * eps, 1 + std::uint64_t(t));  // radius 127.5 eps
            std::set<std::size_t> bad;
            const std::size_t nbad = 1 + pick.uniform(4);
            while (bad.size() < nbad) bad.insert(pick.uniform(buckets));
            for (const std::size_t b : bad) {
                const std::size_t lo = b * bucket, hi = std::min(n, lo + bucket);
                const std::size_t count = 1 + pick.uniform(3);
                for (std::size_t i = 0; i < count; ++i) {
                    const std::size_t k = lo + pick.uniform(hi - lo);
                    // m whole periods away (plus an offset inside the radius): zhat = z + m q.
                    const double m = double(1 + pick.uniform(t % 2 == 0 ? 3 : 100000));
                    const double sign = pick.uniform(2) == 0 ? -1.0 : 1.0;
                    y[k] = static_cast<V>(double(x[k]) + sign * m * period +
                                          (pick.uniform01() - 0.5) * 200 * eps);
                }
            }
            std::vector<V> out;
            const auto result = decode(q, payload, y, out);
            std::vector<element_range> expected;
            for (const std::size_t b : bad)
                expected.push_back({b * bucket, std::min(n, (b + 1) * bucket)});
            if (result.failed == expected) ++detected;
            CHECK(result.failed == expected);
            for (std::size_t b = 0; b < buckets; ++b) {
                if (bad.count(b) != 0) continue;
                const std::size_t lo = b * bucket, hi = std::min(n, lo + bucket);
                CHECK(std::memcmp(out.data() + lo, recon.data() + lo, (hi - lo) * sizeof(V)) == 0);
            }
        }
        CAPTURE(bucket);
        CHECK(detected == trials);
    }
}

TEST_CASE_TEMPLATE("lattice: whole-bucket shifts and absurd references are detected", V, float,
                   double) {
    const lattice_quantizer<V> q(opts(8, 256, false, 0.02));
    const std::size_t n = 1024;
    const auto x = uniform<V>(n, -1, 1, 31);
    std::vector<V> recon;
    const auto payload = encode(q, x, recon);
    const double eps = lattice_quantizer<V>::inspect(payload).eps;
    std::vector<V> out;
    auto y = x;
    for (std::size_t k = 256; k < 512; ++k) y[k] = static_cast<V>(double(x[k]) + 256 * eps);
    y[600] = std::numeric_limits<V>::infinity();
    y[601] = -std::numeric_limits<V>::infinity();
    y[900] = std::numeric_limits<V>::quiet_NaN();
    y[10] = static_cast<V>(1e30);
    const auto result = decode(q, payload, y, out);
    const std::vector<element_range> expected{{0, 256}, {256, 512}, {512, 768}, {768, 1024}};
    CHECK(result.failed == expected);
    y = x;
    y[300] = static_cast<V>(-1e30);
    CHECK(decode(q, payload, y, out).failed == std::vector<element_range>{{256, 512}});
    CHECK(std::memcmp(out.data(), recon.data(), 256 * sizeof(V)) == 0);
    CHECK(std::memcmp(out.data() + 512, recon.data() + 512, 512 * sizeof(V)) == 0);
}

// ------------------------------------------------------------------------------- adaptation

TEST_CASE_TEMPLATE("lattice: the step follows the observed distances", V, float, double) {
    lattice_options o = opts(8, 256, false, 0.01);
    o.min_distance = 1e-4;
    lattice_quantizer<V> q(o);
    CHECK(q.distance_estimate() == 0.01);
    CHECK(q.step() == doctest::Approx(2 * 2.0 * 0.01 / 255));
    CHECK(q.radius() == doctest::Approx(0.02));

    q.observe_distance(0.05);  // a larger distance is taken at once
    CHECK(q.distance_estimate() == 0.05);
    q.observe_distance(0.001);  // a smaller one only decays the estimate
    CHECK(q.distance_estimate() == doctest::Approx(0.045));
    for (int i = 0; i < 200; ++i) q.observe_distance(0);
    CHECK(q.distance_estimate() == 1e-4);  // the floor
    q.on_failure();
    CHECK(q.distance_estimate() == doctest::Approx(4e-4));
    q.on_failure(0.3);
    CHECK(q.distance_estimate() == 0.3);
    q.set_distance_estimate(0.0);
    CHECK(q.distance_estimate() == 1e-4);

    const std::vector<V> a{V(1), V(2), V(3)}, b{V(1.5), V(2), V(-1)};
    q.observe(a, b);
    CHECK(q.distance_estimate() == 4);
    CHECK(lattice_quantizer<V>::max_abs_difference(a, b) == 4);
    CHECK(contains(what_of<swarmsgd::size_mismatch_error>(
                       [&] { q.observe(std::span<const V>(a), std::span<const V>(b).first(2)); }),
                   "3 and 2"));
    CHECK(
        contains(what_of<swarmsgd::invalid_argument_error>([&] { q.observe_distance(-1); }), "-1"));
    CHECK(contains(
        what_of<swarmsgd::invalid_argument_error>([&] { q.observe_distance(std::nan("")); }),
        "nan"));
    const std::vector<V> c{std::numeric_limits<V>::quiet_NaN(), V(0), V(0)};
    CHECK_THROWS_AS(q.observe(a, c), swarmsgd::invalid_argument_error);
    q.observe_distance(std::numeric_limits<double>::infinity());
    CHECK(std::isfinite(q.step()));
}

TEST_CASE_TEMPLATE("lattice: after a failure the grown step decodes the same pair", V, float,
                   double) {
    lattice_quantizer<V> q(opts(8, 256, false, 1e-3));
    const std::size_t n = 2000;
    const auto x = uniform<V>(n, -1, 1, 12);
    const auto y = perturb(x, 5e-3, 13);  // 2.5x beyond the radius of 2e-3
    std::vector<V> recon, out;
    auto payload = encode(q, x, recon);
    auto result = decode(q, payload, y, out);
    CHECK_FALSE(result.ok());
    const double old_step = q.step();
    q.on_failure();
    CHECK(q.step() == doctest::Approx(4 * old_step));
    payload = encode(q, x, recon);
    result = decode(q, payload, y, out);
    CHECK(result.ok());
    CHECK(same_bits(out, recon));

    // The same through observe(): the partner's decoded model shows the distance.
    lattice_quantizer<V> p(opts(8, 256, false, 1e-3));
    payload = encode(p, x, recon);
    CHECK_FALSE(decode(p, payload, y, out).ok());
    p.observe(std::span<const V>(x), std::span<const V>(y));
    CHECK(p.step() > 2.4 * old_step);
    payload = encode(p, x, recon);
    CHECK(decode(p, payload, y, out).ok());
    CHECK(same_bits(out, recon));
}

// ------------------------------------------------------------------------------- validation

TEST_CASE_TEMPLATE("lattice: malformed payloads throw and leave the output untouched", V, float,
                   double) {
    const lattice_quantizer<V> q(opts(8, 64, false, 0.01));
    const std::size_t n = 100;
    const auto x = uniform<V>(n, -1, 1, 3);
    std::vector<V> recon;
    const auto good = encode(q, x, recon);
    const std::vector<V> sentinel(n, V(-7.25));
    std::vector<V> out = sentinel;
    REQUIRE(q.decode(good, x, out).ok());
    out = sentinel;

    auto expect = [&]<class E>(std::vector<std::byte> payload, std::span<const V> reference,
                               std::span<V> target, const std::string& part, E*) {
        CAPTURE(part);
        std::vector<V> before(target.begin(), target.end());
        const std::string what = what_of<E>([&] { (void)q.decode(payload, reference, target); });
        CHECK(contains(what, part));
        CHECK(std::equal(before.begin(), before.end(), target.begin(), target.end(),
                         [](V a, V b) { return std::memcmp(&a, &b, sizeof(V)) == 0; }));
    };
    const std::span<const V> ref(x);
    const std::span<V> target(out);
    auto patched = [&](std::size_t offset, auto value) {
        auto p = good;
        swarmsgd::detail::store(p.data() + offset, value);
        return p;
    };
    swarmsgd::message_error* me = nullptr;
    swarmsgd::size_mismatch_error* se = nullptr;

    // Truncated and oversized.
    expect(std::vector<std::byte>(good.begin(), good.begin() + 10), ref, target, "truncated", me);
    expect(std::vector<std::byte>(good.begin(), good.begin() + 20), ref, target, "truncated", me);
    expect(std::vector<std::byte>(good.begin(), good.end() - 1), ref, target,
           std::to_string(good.size() - 1) + " bytes, expected " + std::to_string(good.size()), me);
    auto longer = good;
    longer.push_back(std::byte{0});
    expect(longer, ref, target, std::to_string(good.size() + 1) + " bytes", me);
    // Wrong quantizer, wrong width, wrong count, wrong reference.
    expect(patched(0, std::uint16_t{1}), ref, target, "quantizer id 1", me);
    expect(patched(2, std::uint8_t{sizeof(V) == 4 ? 8 : 4}), ref, target, "-byte values", me);
    expect(patched(8, std::uint64_t{99}), ref, target, "99 elements", se);
    expect(good, ref.first(99), target, "reference of 99", se);
    {
        std::vector<V> shorter(n - 1, V(-7.25));
        const auto before = shorter;
        CHECK(contains(what_of<swarmsgd::size_mismatch_error>(
                           [&] { (void)q.decode(good, ref.first(n - 1), std::span<V>(shorter)); }),
                       std::to_string(n) + " elements"));
        CHECK(same_bits(shorter, before));
    }
    // Parameters.
    expect(patched(24, std::uint8_t{1}), ref, target, "bits = 1", me);
    expect(patched(24, std::uint8_t{17}), ref, target, "bits = 17", me);
    expect(patched(24, std::uint8_t{0}), ref, target, "bits = 0", me);
    expect(patched(28, std::uint32_t{0}), ref, target, "bucket = 0", me);
    expect(patched(28, std::uint32_t{12}), ref, target, "bucket = 12", me);
    expect(patched(16, 0.0), ref, target, "eps = 0", me);
    expect(patched(16, -1.0), ref, target, "eps = -1", me);
    expect(patched(16, std::nan("")), ref, target, "eps = nan", me);
    expect(patched(16, std::numeric_limits<double>::infinity()), ref, target, "eps = inf", me);
    expect(patched(16, std::numeric_limits<double>::denorm_min()), ref, target, "eps = ", me);
    expect(patched(25, std::uint8_t{2}), ref, target, "flags 2", me);
    expect(patched(26, std::uint16_t{5}), ref, target, "reserved field 5", me);
    // A different bits value changes the expected size: named with the numbers.
    expect(patched(24, std::uint8_t{4}), ref, target, "at 4 bits with buckets of 64", me);
    // Padding of the last code byte (n = 100 at 5 bits: 500 bits, 4 padding bits).
    {
        const lattice_quantizer<V> q5(opts(5, 64, false, 0.01));
        std::vector<V> r5;
        auto p5 = encode(q5, x, r5);
        std::vector<V> o5 = sentinel;
        REQUIRE(q5.decode(p5, ref, std::span<V>(o5)).ok());
        const std::size_t last = 32 + swarmsgd::detail::packed_bytes(n, 5) - 1;
        p5[last] |= std::byte{0x80};
        o5 = sentinel;
        CHECK(contains(
            what_of<swarmsgd::message_error>([&] { (void)q5.decode(p5, ref, std::span<V>(o5)); }),
            "padding"));
        CHECK(same_bits(o5, sentinel));
    }
    CHECK(same_bits(out, sentinel));
    // inspect() validates the same way.
    CHECK_THROWS_AS((void)lattice_quantizer<V>::inspect(patched(24, std::uint8_t{17})),
                    swarmsgd::message_error);
    CHECK(lattice_quantizer<V>::inspect(good).count == n);
}

TEST_CASE_TEMPLATE("lattice: encode refuses what it cannot represent", V, float, double) {
    const lattice_quantizer<V> q(opts(8, 64, false, 1e-3));
    auto x = uniform<V>(300, -1, 1, 4);
    std::vector<std::byte> small(q.max_encoded_size(x.size()) - 1);
    rng r(1);
    CHECK(contains(what_of<swarmsgd::message_error>(
                       [&] { q.encode(std::span<V>(x), std::span<std::byte>(small), r); }),
                   std::to_string(small.size()) + " bytes"));
    std::vector<std::byte> payload(q.max_encoded_size(x.size()));
    auto big = x;
    big[200] = V(1e15);  // |x| / eps = 6e19 > 2^50
    CHECK(contains(what_of<swarmsgd::invalid_argument_error>(
                       [&] { q.encode(std::span<V>(big), std::span<std::byte>(payload), r); }),
                   "element 200"));
    auto edge = x;  // just past the 2^50 limit of the index range
    edge[5] = static_cast<V>(std::ldexp(q.step(), 51));
    CHECK(contains(what_of<swarmsgd::invalid_argument_error>(
                       [&] { q.encode(std::span<V>(edge), std::span<std::byte>(payload), r); }),
                   "element 5"));
    edge[5] = static_cast<V>(std::ldexp(q.step(), 49));  // inside: fine
    CHECK_NOTHROW(q.encode(std::span<V>(edge), std::span<std::byte>(payload), r));
    auto nan = x;
    nan[150] = std::numeric_limits<V>::quiet_NaN();
    CHECK(contains(what_of<swarmsgd::non_finite_error>(
                       [&] { q.encode(std::span<V>(nan), std::span<std::byte>(payload), r); }),
                   "element 150"));
    auto inf = x;
    inf[3] = -std::numeric_limits<V>::infinity();
    CHECK_THROWS_AS(q.encode(std::span<V>(inf), std::span<std::byte>(payload), r),
                    swarmsgd::non_finite_error);
    // Empty models encode to the 32-byte header and decode.
    std::vector<V> empty;
    std::vector<std::byte> p0(q.max_encoded_size(0));
    CHECK(q.encode(std::span<V>(empty), std::span<std::byte>(p0), r) == 32);
    CHECK(q.decode(p0, std::span<const V>(empty), std::span<V>(empty)).ok());
}

// ------------------------------------------------------------------------------- accuracy

TEST_CASE_TEMPLATE("lattice: at realistic distances the averaged model beats 8-bit min-max", V,
                   float, double) {
    const std::size_t n = std::size_t{1} << 16;
    const auto x = uniform<V>(n, -1.7, 1.7, 123);  // O(1) per coordinate
    const auto y = perturb(x, 1e-3, 321);          // a partner 1e-3 away
    // The node's distance estimate after some exchanges at this distance: an initial guess
    // of 1 decays to the observed distance.
    lattice_quantizer<V> q(opts(8, 256, false, 1.0));
    for (int i = 0; i < 100; ++i) q.observe(std::span<const V>(x), std::span<const V>(y));
    CHECK(q.distance_estimate() == lattice_quantizer<V>::max_abs_difference(x, y));
    std::vector<V> recon, out;
    const auto payload = encode(q, x, recon);
    REQUIRE(decode(q, payload, y, out).ok());

    // 8-bit min-max per bucket of 512 (deterministic rounding), for comparison.
    std::vector<double> minmax(n);
    for (std::size_t s = 0; s < n; s += 512) {
        const auto e = std::min(n, s + 512);
        double lo = double(x[s]), hi = double(x[s]);
        for (std::size_t k = s; k < e; ++k) {
            lo = std::min(lo, double(x[k]));
            hi = std::max(hi, double(x[k]));
        }
        const double unit = (hi - lo) / 255;
        for (std::size_t k = s; k < e; ++k)
            minmax[k] = unit > 0 ? lo + std::nearbyint((double(x[k]) - lo) / unit) * unit : lo;
    }
    double exact2 = 0, lattice2 = 0, minmax2 = 0;
    for (std::size_t k = 0; k < n; ++k) {
        const double avg = (double(x[k]) + double(y[k])) / 2;
        exact2 += avg * avg;
        const double l = (double(out[k]) + double(y[k])) / 2 - avg;
        const double m = (minmax[k] + double(y[k])) / 2 - avg;
        lattice2 += l * l;
        minmax2 += m * m;
    }
    const double lattice_err = std::sqrt(lattice2 / exact2);
    const double minmax_err = std::sqrt(minmax2 / exact2);
    MESSAGE("relative L2 error of the averaged model, 8 bits: lattice ", lattice_err,
            ", min-max (bucket 512) ", minmax_err, ", ratio ", minmax_err / lattice_err);
    CHECK(lattice_err < minmax_err / 50);
    CHECK(lattice_err < 1e-4);
}
