// Bit packing, the counter RNG and the basic quantizers (fp16, bf16, min-max, QSGD, error
// feedback): concept conformance, error bounds, exact sender reconstruction, unbiasedness,
// rejection of every kind of malformed payload without touching the destination.
#include <doctest/doctest.h>

#include <bit>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <swarmsgd/detail/bitpack.hpp>
#include <swarmsgd/detail/counter_rng.hpp>
#include <swarmsgd/errors.hpp>
#include <swarmsgd/message.hpp>
#include <swarmsgd/quantizer.hpp>
#include <swarmsgd/quantizers/bf16.hpp>
#include <swarmsgd/quantizers/error_feedback.hpp>
#include <swarmsgd/quantizers/fp16.hpp>
#include <swarmsgd/quantizers/identity.hpp>
#include <swarmsgd/quantizers/min_max.hpp>
#include <swarmsgd/quantizers/qsgd.hpp>
#include <swarmsgd/random.hpp>

using swarmsgd::bf16_quantizer;
using swarmsgd::error_feedback;
using swarmsgd::fp16_quantizer;
using swarmsgd::min_max_options;
using swarmsgd::min_max_quantizer;
using swarmsgd::payload_header_size;
using swarmsgd::qsgd_options;
using swarmsgd::qsgd_quantizer;
using swarmsgd::quantizer_for;

static_assert(quantizer_for<fp16_quantizer<float>, float>);
static_assert(quantizer_for<fp16_quantizer<double>, double>);
static_assert(quantizer_for<bf16_quantizer<float>, float>);
static_assert(quantizer_for<bf16_quantizer<double>, double>);
static_assert(quantizer_for<min_max_quantizer<float>, float>);
static_assert(quantizer_for<min_max_quantizer<double>, double>);
static_assert(quantizer_for<qsgd_quantizer<float>, float>);
static_assert(quantizer_for<qsgd_quantizer<double>, double>);
static_assert(quantizer_for<error_feedback<min_max_quantizer<float>>, float>);
static_assert(quantizer_for<error_feedback<qsgd_quantizer<double>>, double>);
static_assert(quantizer_for<error_feedback<swarmsgd::identity_quantizer<float>>, float>);
static_assert(!quantizer_for<min_max_quantizer<float>, double>);
static_assert(!quantizer_for<fp16_quantizer<double>, float>);

namespace {

template <class E, class Fn>
std::string what_of(Fn&& fn) {
    try {
        fn();
    } catch (const E& e) {
        return e.what();
    }
    return "<no exception>";
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

template <class V>
bool same_bits(const std::vector<V>& a, const std::vector<V>& b) {
    return a.size() == b.size() &&
           (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(V)) == 0);
}

/// Values v[k] = offset + spread * uniform(-1, 1), with a few exact zeros and repeats.
template <class V>
std::vector<V> random_values(std::size_t n, std::uint64_t seed, double offset = 0.25,
                             double spread = 1.0) {
    swarmsgd::rng r(seed);
    std::vector<V> v(n);
    for (auto& x : v) x = static_cast<V>(offset + spread * (2 * r.uniform01() - 1));
    if (n > 10) {
        v[3] = V(0);
        v[7] = v[5];
    }
    return v;
}

struct encoded {
    std::vector<std::byte> payload;
    std::size_t bytes = 0;
};

/// Encodes a copy of `values` (returned reconstruction in `recon`) and checks the size.
template <class Q, class V>
encoded encode_copy(Q& q, const std::vector<V>& values, std::vector<V>& recon,
                    swarmsgd::rng& random) {
    recon = values;
    encoded e;
    e.payload.resize(q.max_encoded_size(values.size()));
    e.bytes = q.encode(std::span<V>(recon), std::span<std::byte>(e.payload), random);
    CHECK(e.bytes == e.payload.size());
    return e;
}

template <class Q, class V>
std::vector<V> decode_all(Q& q, const std::vector<std::byte>& payload, std::size_t n) {
    std::vector<V> out(n, V(-7));
    std::vector<V> reference(n, V(0));
    const auto result = q.decode(std::span<const std::byte>(payload), std::span<const V>(reference),
                                 std::span<V>(out));
    CHECK(result.ok());
    return out;
}

/// Decoding `payload` must throw E and leave the destination untouched.
template <class E, class Q, class V>
std::string rejects(Q& q, const std::vector<std::byte>& payload, std::size_t n, V /*tag*/) {
    std::vector<V> out(n, V(-12345.5));
    std::vector<V> reference(n, V(0));
    const std::string what = what_of<E>([&] {
        (void)q.decode(std::span<const std::byte>(payload), std::span<const V>(reference),
                       std::span<V>(out));
    });
    bool untouched = true;
    for (const V x : out) untouched = untouched && x == V(-12345.5);
    CHECK_MESSAGE(untouched, "destination changed by a rejected payload: " << what);
    CHECK_MESSAGE(what != "<no exception>", "malformed payload accepted");
    return what;
}

/// The malformed variants common to every format: truncated/oversized by one byte, truncated
/// header, wrong quantizer id, wrong value width, wrong element count.
template <class Q, class V>
void check_common_rejections(Q& q, const std::vector<std::byte>& payload, std::size_t n) {
    using swarmsgd::message_error;
    using swarmsgd::size_mismatch_error;
    const V tag{};
    auto truncated = payload;
    truncated.pop_back();
    CHECK(contains(rejects<message_error>(q, truncated, n, tag), std::to_string(payload.size())));
    auto oversized = payload;
    oversized.push_back(std::byte{0});
    CHECK(
        contains(rejects<message_error>(q, oversized, n, tag), std::to_string(payload.size() + 1)));
    std::vector<std::byte> header_only(payload.begin(), payload.begin() + 15);
    (void)rejects<message_error>(q, header_only, n, tag);
    auto wrong_id = payload;
    swarmsgd::detail::store<std::uint16_t>(wrong_id.data(), std::uint16_t(q.id() + 1));
    CHECK(contains(rejects<message_error>(q, wrong_id, n, tag), "quantizer id"));
    auto wrong_width = payload;
    swarmsgd::detail::store<std::uint8_t>(wrong_width.data() + 2,
                                          std::uint8_t(sizeof(V) == 4 ? 8 : 4));
    CHECK(contains(rejects<message_error>(q, wrong_width, n, tag), "-byte values"));
    const std::string count = rejects<size_mismatch_error>(q, payload, n + 1, tag);
    CHECK(contains(count, std::to_string(n)));
    CHECK(contains(count, std::to_string(n + 1)));
}

constexpr std::size_t big = std::size_t{1} << 20;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Bit packing
// ---------------------------------------------------------------------------------------------

TEST_CASE("bitpack: round trip and bit order for every width 1..16 and odd sizes") {
    using namespace swarmsgd::detail;
    swarmsgd::rng r(11);
    for (unsigned bits = 1; bits <= 16; ++bits) {
        for (std::size_t n : {0,  1,  2,  3,  5,  7,   8,   9,   13,   15,   16,
                              17, 31, 63, 64, 65, 255, 256, 257, 1001, 4096, 4099}) {
            CAPTURE(bits);
            CAPTURE(n);
            std::vector<std::uint16_t> codes(n), back(n, 0xFFFF);
            for (auto& c : codes) c = static_cast<std::uint16_t>(r() & ((1u << bits) - 1));
            std::vector<std::byte> packed(packed_bytes(n, bits) + 3, std::byte{0xAB});
            const std::size_t written =
                pack(std::span<const std::uint16_t>(codes), bits, std::span<std::byte>(packed));
            REQUIRE(written == (n * bits + 7) / 8);
            CHECK(packed[written] == std::byte{0xAB});  // nothing written past the end
            // Reference: bit j of the stream is bit j%8 of byte j/8, codes LSB first.
            std::vector<std::byte> reference(written, std::byte{0});
            for (std::size_t k = 0; k < n; ++k)
                for (unsigned i = 0; i < bits; ++i)
                    if ((codes[k] >> i) & 1u) {
                        const std::size_t j = k * bits + i;
                        reference[j / 8] |= std::byte(1u << (j % 8));
                    }
            CHECK((written == 0 || std::memcmp(reference.data(), packed.data(), written) == 0));
            CHECK(padding_is_zero(packed.data(), n, bits));
            unpack(std::span<const std::byte>(packed.data(), written), bits,
                   std::span<std::uint16_t>(back));
            CHECK(back == codes);
            if (bits <= 8) {
                std::vector<std::uint8_t> c8(codes.begin(), codes.end()), b8(n, 0xFF);
                std::vector<std::byte> p8(written);
                CHECK(pack(std::span<const std::uint8_t>(c8), bits, std::span<std::byte>(p8)) ==
                      written);
                CHECK(p8 == std::vector<std::byte>(packed.begin(), packed.begin() + written));
                unpack(std::span<const std::byte>(p8), bits, std::span<std::uint8_t>(b8));
                CHECK(b8 == c8);
            }
        }
    }
}

TEST_CASE("bitpack: blocks at multiples of 8 codes are byte-aligned and independent") {
    using namespace swarmsgd::detail;
    swarmsgd::rng r(12);
    for (unsigned bits = 1; bits <= 16; ++bits) {
        const std::size_t n = 1000 + bits;
        std::vector<std::uint16_t> codes(n);
        for (auto& c : codes) c = static_cast<std::uint16_t>(r() & ((1u << bits) - 1));
        std::vector<std::byte> whole(packed_bytes(n, bits)), blocks(packed_bytes(n, bits));
        (void)pack(std::span<const std::uint16_t>(codes), bits, std::span<std::byte>(whole));
        for (std::size_t k = 0; k < n; k += 64) {
            const std::size_t m = std::min<std::size_t>(64, n - k);
            pack_block(codes.data() + k, m, bits, blocks.data() + packed_bytes(k, bits));
        }
        CHECK(whole == blocks);
        std::vector<std::uint16_t> back(n);
        for (std::size_t k = 0; k < n; k += 128) {
            const std::size_t m = std::min<std::size_t>(128, n - k);
            unpack_block(whole.data() + packed_bytes(k, bits), m, bits, back.data() + k);
        }
        CHECK(back == codes);
    }
}

TEST_CASE("bitpack: codes wider than the width are masked, sizes and widths are validated") {
    using namespace swarmsgd::detail;
    const std::vector<std::uint16_t> codes{0xFFFF, 0, 0xFFFF};
    std::vector<std::byte> out(packed_bytes(3, 3));
    (void)pack(std::span<const std::uint16_t>(codes), 3, std::span<std::byte>(out));
    std::vector<std::uint16_t> back(3);
    unpack(std::span<const std::byte>(out), 3, std::span<std::uint16_t>(back));
    CHECK(back == std::vector<std::uint16_t>{7, 0, 7});

    std::vector<std::byte> small(1);
    CHECK(contains(what_of<swarmsgd::message_error>([&] {
                       (void)pack(std::span<const std::uint16_t>(codes), 3,
                                  std::span<std::byte>(small));
                   }),
                   "need 2"));
    CHECK(contains(what_of<swarmsgd::message_error>([&] {
                       unpack(std::span<const std::byte>(small), 3, std::span<std::uint16_t>(back));
                   }),
                   "input of 1 bytes"));
    std::vector<std::byte> large(3);
    CHECK(what_of<swarmsgd::message_error>([&] {
              unpack(std::span<const std::byte>(large), 3, std::span<std::uint16_t>(back));
          }) != "<no exception>");
    CHECK(contains(what_of<swarmsgd::invalid_argument_error>([&] {
                       (void)pack(std::span<const std::uint16_t>(codes), 0,
                                  std::span<std::byte>(out));
                   }),
                   "0 bits"));
    CHECK(contains(what_of<swarmsgd::invalid_argument_error>([&] {
                       (void)pack(std::span<const std::uint16_t>(codes), 17,
                                  std::span<std::byte>(large));
                   }),
                   "17 bits"));
    std::vector<std::uint8_t> c8(3);
    CHECK(what_of<swarmsgd::invalid_argument_error>([&] {
              (void)pack(std::span<const std::uint8_t>(c8), 9, std::span<std::byte>(large));
          }) != "<no exception>");
    CHECK(packed_bytes(0, 5) == 0);
    CHECK(packed_bytes(1, 5) == 1);
    CHECK(packed_bytes(8, 5) == 5);
    CHECK(packed_bytes(9, 16) == 18);
    std::byte pad{0x80};
    CHECK_FALSE(padding_is_zero(&pad, 1, 3));
}

// ---------------------------------------------------------------------------------------------
// Counter RNG
// ---------------------------------------------------------------------------------------------

TEST_CASE("counter_rng: deterministic, in [0, 1), uniform and decorrelated") {
    using namespace swarmsgd::detail;
    static_assert(uniform01_at(1, 2) == uniform01_at(1, 2));
    // bits_at(key, i) is the i-th output of SplitMix64 seeded with key.
    std::uint64_t state = 12345;
    for (std::uint64_t i = 0; i < 10; ++i) CHECK(bits_at(12345, i) == swarmsgd::splitmix64(state));
    constexpr std::size_t n = 1 << 20;
    double sum = 0, sum_sq = 0, lag = 0;
    std::size_t histogram[16] = {};
    float previous = uniform01_at(99, 0);
    for (std::size_t i = 0; i < n; ++i) {
        const float u = uniform01_at(99, i);
        REQUIRE(u >= 0.0f);
        REQUIRE(u < 1.0f);
        sum += u;
        sum_sq += double(u) * u;
        if (i > 0) lag += (double(u) - 0.5) * (double(previous) - 0.5);
        previous = u;
        ++histogram[static_cast<int>(u * 16)];
    }
    CHECK(std::abs(sum / n - 0.5) < 2e-3);
    CHECK(std::abs(sum_sq / n - 1.0 / 3) < 2e-3);
    CHECK(std::abs(lag / n) < 2e-3);  // lag-1 correlation ~ 0 (variance 1/12)
    for (const std::size_t h : histogram) CHECK(std::abs(double(h) - n / 16.0) < 6 * 256.0);
    // Different keys give different streams.
    std::size_t equal = 0;
    for (std::size_t i = 0; i < 1000; ++i) equal += uniform01_at(1, i) == uniform01_at(2, i);
    CHECK(equal < 5);
    // stochastic_round: exact integers stay, E[result] = t.
    CHECK(stochastic_round(3.0f, 0.999f) == 3);
    CHECK(stochastic_round(3.25f, 0.2f) == 4);
    CHECK(stochastic_round(3.25f, 0.3f) == 3);
    CHECK(stochastic_round(32766.75f, 0.5f) == 32767);
    CHECK(stochastic_round(0.0f, 0.0f) == 0);
}

// ---------------------------------------------------------------------------------------------
// fp16 / bf16
// ---------------------------------------------------------------------------------------------

TEST_CASE("fp16 kernel: known values, subnormals, ties to even, every code round trips") {
    using K = swarmsgd::detail::fp16_kernel;
    CHECK(K::encode(0.0f) == 0x0000);
    CHECK(K::encode(-0.0f) == 0x8000);
    CHECK(K::encode(1.0f) == 0x3C00);
    CHECK(K::encode(-2.0f) == 0xC000);
    CHECK(K::encode(65504.0f) == 0x7BFF);
    CHECK(K::encode(0x1p-14f) == 0x0400);           // smallest normal
    CHECK(K::encode(0x1p-24f) == 0x0001);           // smallest subnormal
    CHECK(K::encode(0x1p-25f) == 0x0000);           // tie -> even (0)
    CHECK(K::encode(0x1.8p-24f) == 0x0002);         // tie -> even (2)
    CHECK(K::encode(0x1.000002p-25f) == 0x0001);    // just above the tie
    CHECK(K::encode(1.0f + 0x1p-11f) == 0x3C00);    // tie -> even
    CHECK(K::encode(1.0f + 0x1.8p-10f) == 0x3C02);  // tie -> even (up)
    CHECK(K::encode(0x1.ffep-15f) == 0x0400);       // subnormal rounding up to normal
    CHECK(K::decode(0x0001) == 0x1p-24f);
    CHECK(K::decode(0x03FF) == 0x1.ff8p-15f);
    CHECK(std::isinf(K::decode(0x7C00)));
    CHECK(std::isnan(K::decode(0x7E00)));
    for (unsigned h = 0; h < 0x10000; ++h) {
        const auto code = static_cast<std::uint16_t>(h);
        if ((h & 0x7C00) == 0x7C00) continue;  // inf / NaN
        REQUIRE(K::encode(K::decode(code)) == code);
    }
}

TEST_CASE("bf16 kernel: ties to even and every finite code round trips") {
    using K = swarmsgd::detail::bf16_kernel;
    CHECK(K::encode(1.0f) == 0x3F80);
    CHECK(K::encode(std::bit_cast<float>(0x3F808000u)) == 0x3F80);  // tie -> even (down)
    CHECK(K::encode(std::bit_cast<float>(0x3F818000u)) == 0x3F82);  // tie -> even (up)
    CHECK(K::encode(std::bit_cast<float>(0x3F808001u)) == 0x3F81);
    CHECK(K::encode(std::bit_cast<float>(0x00008000u)) == 0x0000);  // subnormal tie
    CHECK(K::representable(std::bit_cast<float>(0x7F7F7FFFu)));
    CHECK_FALSE(K::representable(std::bit_cast<float>(0x7F7F8000u)));
    for (unsigned h = 0; h < 0x10000; ++h) {
        const auto code = static_cast<std::uint16_t>(h);
        if ((h & 0x7F80) == 0x7F80) continue;
        REQUIRE(K::encode(K::decode(code)) == code);
    }
}

TEST_CASE_TEMPLATE("fp16 and bf16: round trip within the bound, exact reconstruction", V, float,
                   double) {
    swarmsgd::rng random(5);
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{511},
                          std::size_t{512}, std::size_t{513}, std::size_t{2049}, big}) {
        CAPTURE(n);
        auto values = random_values<V>(n, 100 + n, 0.0, 1000.0);
        if (n > 20) {
            values[10] = V(1e-6);  // fp16 subnormal
            values[11] = V(-3e-8);
            values[12] = V(65504);
            values[13] = V(-65504);
        }
        {
            fp16_quantizer<V> q;
            std::vector<V> recon;
            const auto e = encode_copy(q, values, recon, random);
            CHECK(e.bytes == payload_header_size + 2 * n);
            const auto decoded = decode_all<decltype(q), V>(q, e.payload, n);
            CHECK(same_bits(decoded, recon));
            bool within = true;
            for (std::size_t k = 0; k < n; ++k) {
                const double x = values[k], err = std::abs(double(recon[k]) - x);
                const double bound = std::abs(x) >= 0x1p-14 ? (0x1p-11 + 0x1p-23) * std::abs(x)
                                                            : 0x1p-25 + 0x1p-24 * std::abs(x);
                within = within && err <= bound;
            }
            CHECK(within);
        }
        {
            bf16_quantizer<V> q;
            std::vector<V> recon;
            const auto e = encode_copy(q, values, recon, random);
            const auto decoded = decode_all<decltype(q), V>(q, e.payload, n);
            CHECK(same_bits(decoded, recon));
            bool within = true;
            for (std::size_t k = 0; k < n; ++k) {
                const double x = values[k], err = std::abs(double(recon[k]) - x);
                within = within && err <= (0x1p-8 + 0x1p-23) * std::abs(x);
            }
            CHECK(within);
        }
    }
}

TEST_CASE_TEMPLATE("fp16 and bf16: payload codes are exactly the element kernels' codes", V, float,
                   double) {
    // Covers the hardware paths (F16C / AVX2 builds) against the portable kernels, including
    // ties, subnormals, zeros of both signs and the largest representable values.
    swarmsgd::rng random(31);
    std::vector<V> values = random_values<V>(4099, 17, 0.0, 70000.0);
    const float specials[] = {0.0f,     -0.0f,      65504.0f,  -65504.0f,       0x1p-24f,
                              0x1p-25f, 0x1.8p-24f, -0x1p-14f, 1.0f + 0x1p-11f, 0x1.ffep-15f,
                              1e-40f,   -1e-45f,    3.0e38f,   -2.5e-39f};
    for (std::size_t k = 0; k < values.size(); ++k) {
        if (k % 3 == 0) values[k] = V(specials[(k / 3) % std::size(specials)]);
        if (k % 7 == 1) values[k] = V(float(values[k]) * 1e-6f);
    }
    auto check = [&](auto q, auto kernel, bool clamp_fp16) {
        using K = decltype(kernel);
        std::vector<V> input = values;
        if (clamp_fp16)
            for (auto& v : input) v = std::max(V(-65504), std::min(V(65504), v));
        std::vector<V> recon;
        const auto e = encode_copy(q, input, recon, random);
        bool same = true;
        for (std::size_t k = 0; k < input.size(); ++k) {
            const std::uint16_t expected = K::encode(swarmsgd::detail::to_float(input[k]));
            const auto got = swarmsgd::detail::load<std::uint16_t>(e.payload.data() +
                                                                   payload_header_size + 2 * k);
            same = same && got == expected && recon[k] == V(K::decode(expected));
        }
        CHECK(same);
    };
    check(fp16_quantizer<V>{}, swarmsgd::detail::fp16_kernel{}, true);
    check(bf16_quantizer<V>{}, swarmsgd::detail::bf16_kernel{}, false);
}

TEST_CASE_TEMPLATE("fp16: out-of-range values throw, never infinity", V, float, double) {
    fp16_quantizer<V> q;
    swarmsgd::rng random(1);
    std::vector<std::byte> out(q.max_encoded_size(3000));
    std::vector<V> ok{V(65504), V(-65504), V(0)};
    CHECK_NOTHROW((void)q.encode(std::span<V>(ok), std::span<std::byte>(out), random));
    std::vector<V> values(3000, V(1.5));
    values[2500] = V(65536);
    const std::string what = what_of<swarmsgd::invalid_argument_error>(
        [&] { (void)q.encode(std::span<V>(values), std::span<std::byte>(out), random); });
    CHECK(contains(what, "element 2500"));
    CHECK(contains(what, "65536"));
    CHECK(contains(what, "bf16"));
    // The offending element keeps its value; the others hold their reconstruction.
    CHECK(values[2500] == V(65536));
    CHECK(values[0] == V(1.5));
    values[2500] = V(-70000.25);
    CHECK(contains(what_of<swarmsgd::invalid_argument_error>([&] {
                       (void)q.encode(std::span<V>(values), std::span<std::byte>(out), random);
                   }),
                   "-70000.25"));
    values[2500] = std::numeric_limits<V>::quiet_NaN();
    CHECK(contains(what_of<swarmsgd::non_finite_error>([&] {
                       (void)q.encode(std::span<V>(values), std::span<std::byte>(out), random);
                   }),
                   "element 2500"));
    values[2500] = std::numeric_limits<V>::infinity();
    CHECK(what_of<swarmsgd::non_finite_error>([&] {
              (void)q.encode(std::span<V>(values), std::span<std::byte>(out), random);
          }) != "<no exception>");
    bf16_quantizer<V> b;
    values[2500] = V(FLT_MAX);
    CHECK(contains(what_of<swarmsgd::invalid_argument_error>([&] {
                       (void)b.encode(std::span<V>(values), std::span<std::byte>(out), random);
                   }),
                   "element 2500"));
    values[2500] = V(65536);
    CHECK_NOTHROW((void)b.encode(std::span<V>(values), std::span<std::byte>(out), random));
    std::vector<std::byte> small(10);
    CHECK(what_of<swarmsgd::message_error>([&] {
              (void)b.encode(std::span<V>(values), std::span<std::byte>(small), random);
          }) != "<no exception>");
}

TEST_CASE_TEMPLATE("fp16 and bf16: malformed payloads are rejected, destination untouched", V,
                   float, double) {
    swarmsgd::rng random(2);
    const auto values = random_values<V>(37, 9);
    fp16_quantizer<V> f;
    bf16_quantizer<V> b;
    std::vector<V> recon;
    check_common_rejections<decltype(f), V>(f, encode_copy(f, values, recon, random).payload, 37);
    check_common_rejections<decltype(b), V>(b, encode_copy(b, values, recon, random).payload, 37);
    // fp16 payload given to bf16: wrong id.
    CHECK(contains(
        rejects<swarmsgd::message_error>(b, encode_copy(f, values, recon, random).payload, 37, V{}),
        "bf16"));
}

// ---------------------------------------------------------------------------------------------
// Min-max
// ---------------------------------------------------------------------------------------------

namespace {

/// Checks min-max errors bucket by bucket against the scale stored in the payload.
template <class V>
bool min_max_within(const std::vector<V>& values, const std::vector<V>& recon,
                    const std::vector<std::byte>& payload, unsigned bits, std::size_t bucket,
                    bool stochastic) {
    const std::byte* data = payload.data() + payload_header_size + 8;
    const std::size_t stride = 8 + swarmsgd::detail::packed_bytes(bucket, bits);
    bool ok = true;
    for (std::size_t b0 = 0, b = 0; b0 < values.size(); b0 += bucket, ++b) {
        const float lo = swarmsgd::detail::load<float>(data + b * stride);
        const float scale = swarmsgd::detail::load<float>(data + b * stride + 4);
        const std::size_t m = std::min(bucket, values.size() - b0);
        double hi_abs = std::abs(double(lo));
        for (std::size_t k = b0; k < b0 + m; ++k)
            hi_abs = std::max(hi_abs, std::abs(double(values[k])));
        const double slack = 0x1p-22 * hi_abs;
        const double bound = stochastic ? double(scale) : double(scale) / 2;
        for (std::size_t k = b0; k < b0 + m; ++k) {
            const double err = std::abs(double(recon[k]) - double(values[k]));
            if (!(err <= bound + slack)) {
                MESSAGE("element " << k << " error " << err << " bound " << bound);
                ok = false;
            }
        }
    }
    return ok;
}

}  // namespace

TEST_CASE_TEMPLATE("min_max: round trip within the bound, exact reconstruction", V, float, double) {
    swarmsgd::rng random(3);
    for (const unsigned bits : {1u, 2u, 3u, 4u, 5u, 7u, 8u}) {
        for (const bool stochastic : {false, true}) {
            for (const std::size_t bucket : {std::size_t{8}, std::size_t{512}, std::size_t{520}}) {
                min_max_quantizer<V> q(min_max_options{bits, bucket, stochastic});
                for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{7}, bucket - 1,
                                      bucket, bucket + 1, std::size_t{3 * 512 + 11}}) {
                    CAPTURE(bits);
                    CAPTURE(stochastic);
                    CAPTURE(bucket);
                    CAPTURE(n);
                    const auto values = random_values<V>(n, n * 31 + bits, 3.0, 2.0);
                    std::vector<V> recon;
                    const auto e = encode_copy(q, values, recon, random);
                    const std::size_t buckets = (n + bucket - 1) / bucket;
                    CHECK(e.bytes == 24 + 8 * buckets + (n * bits + 7) / 8);
                    const auto decoded = decode_all<decltype(q), V>(q, e.payload, n);
                    CHECK(same_bits(decoded, recon));
                    CHECK(min_max_within(values, recon, e.payload, bits, bucket, stochastic));
                }
            }
        }
    }
    // 2^20 elements, the throughput configurations.
    for (const unsigned bits : {4u, 8u}) {
        for (const bool stochastic : {false, true}) {
            min_max_quantizer<V> q(min_max_options{bits, 512, stochastic});
            const auto values = random_values<V>(big, 77 + bits, -1.0, 5.0);
            std::vector<V> recon;
            const auto e = encode_copy(q, values, recon, random);
            CHECK(e.bytes == 24 + 8 * (big / 512) + big * bits / 8);  // 8 bits: 0.254x fp32
            CHECK(same_bits(decode_all<decltype(q), V>(q, e.payload, big), recon));
            CHECK(min_max_within(values, recon, e.payload, bits, 512, stochastic));
        }
    }
}

TEST_CASE_TEMPLATE("min_max: constant, two-valued, tiny-range and extreme buckets", V, float,
                   double) {
    swarmsgd::rng random(4);
    min_max_quantizer<V> q(min_max_options{8, 16, false});
    std::vector<V> values(40, V(2.5));  // bucket 0 and 1 constant
    for (std::size_t k = 32; k < 40; ++k) values[k] = k % 2 ? V(-1) : V(3);  // two values
    std::vector<V> recon;
    auto e = encode_copy(q, values, recon, random);
    CHECK(same_bits(std::vector<V>(recon.begin(), recon.begin() + 32),
                    std::vector<V>(values.begin(), values.begin() + 32)));  // constant: exact
    for (std::size_t k = 32; k < 40; k += 2) CHECK(recon[k + 1] == V(-1));  // the min: exact
    for (std::size_t k = 32; k < 40; k += 2)  // the max: within range * 2^-15 (scale rounded up)
        CHECK(std::abs(double(recon[k]) - 3) <= 4 * 0x1p-15);
    CHECK(same_bits(decode_all<decltype(q), V>(q, e.payload, 40), recon));

    std::vector<V> tiny(16);
    for (std::size_t k = 0; k < 16; ++k) tiny[k] = V(1e-40f) * V(k);  // float subnormals
    e = encode_copy(q, tiny, recon, random);
    CHECK(same_bits(decode_all<decltype(q), V>(q, e.payload, 16), recon));
    for (std::size_t k = 0; k < 16; ++k) CHECK(std::abs(double(recon[k] - tiny[k])) <= 0x1p-127);

    std::vector<V> wide{V(-3e38), V(3e38), V(0), V(1), V(2), V(3), V(4), V(5)};
    CHECK(contains(what_of<swarmsgd::invalid_argument_error>(
                       [&] { (void)encode_copy(q, wide, recon, random); }),
                   "bucket 0"));
    std::vector<V> with_nan(20, V(1));
    with_nan[17] = std::numeric_limits<V>::quiet_NaN();
    CHECK(contains(
        what_of<swarmsgd::non_finite_error>([&] { (void)encode_copy(q, with_nan, recon, random); }),
        "element 17"));
    with_nan[17] = -std::numeric_limits<V>::infinity();
    CHECK(contains(
        what_of<swarmsgd::non_finite_error>([&] { (void)encode_copy(q, with_nan, recon, random); }),
        "element 17"));
    // Largest representable spread still works.
    std::vector<V> large{V(-1.5e38), V(1.5e38), V(0), V(1), V(2), V(3), V(4), V(5)};
    e = encode_copy(q, large, recon, random);
    CHECK(same_bits(decode_all<decltype(q), V>(q, e.payload, 8), recon));
}

TEST_CASE("min_max: options are validated") {
    using O = min_max_options;
    CHECK(contains(what_of<swarmsgd::invalid_argument_error>([] {
                       min_max_quantizer<float> q(O{0, 512, false});
                   }),
                   "bits = 0"));
    CHECK(what_of<swarmsgd::invalid_argument_error>([] {
              min_max_quantizer<float> q(O{9, 512, false});
          }) != "<no exception>");
    CHECK(contains(what_of<swarmsgd::invalid_argument_error>([] {
                       min_max_quantizer<float> q(O{8, 500, false});
                   }),
                   "bucket = 500"));
    CHECK(what_of<swarmsgd::invalid_argument_error>([] {
              min_max_quantizer<float> q(O{8, 0, false});
          }) != "<no exception>");
    min_max_quantizer<float> q(O{4, 64, true});
    CHECK(q.name() == "min_max(4 bits, bucket 64, stochastic)");
    CHECK(q.id() == 4);
}

TEST_CASE_TEMPLATE("min_max: stochastic rounding is unbiased, nearest is within scale/2", V, float,
                   double) {
    constexpr std::size_t n = 64;
    constexpr int trials = 2000;
    const auto values = random_values<V>(n, 4242, 0.0, 1.0);
    min_max_quantizer<V> q(min_max_options{2, 64, true});
    swarmsgd::rng random(7);
    std::vector<double> mean_error(n, 0.0);
    std::vector<V> recon;
    float scale = 0;
    for (int t = 0; t < trials; ++t) {
        const auto e = encode_copy(q, values, recon, random);
        scale = swarmsgd::detail::load<float>(e.payload.data() + payload_header_size + 8 + 4);
        for (std::size_t k = 0; k < n; ++k)
            mean_error[k] += (double(recon[k]) - values[k]) / trials;
    }
    const double tolerance = 4 * double(scale) / std::sqrt(double(trials));
    double worst = 0;
    for (const double m : mean_error) worst = std::max(worst, std::abs(m));
    CHECK(worst < tolerance);
    // Nearest rounding is biased for some elements (sanity check that the test can fail).
    min_max_quantizer<V> nearest(min_max_options{2, 64, false});
    const auto e = encode_copy(nearest, values, recon, random);
    double worst_nearest = 0;
    for (std::size_t k = 0; k < n; ++k)
        worst_nearest = std::max(worst_nearest, std::abs(double(recon[k]) - values[k]));
    CHECK(worst_nearest > tolerance);
    (void)e;
}

TEST_CASE_TEMPLATE("min_max: malformed payloads are rejected, destination untouched", V, float,
                   double) {
    using swarmsgd::message_error;
    swarmsgd::rng random(8);
    constexpr std::size_t n = 37;  // 5 buckets of 8, the last partial: padding bits exist
    min_max_quantizer<V> q(min_max_options{3, 8, false});
    const auto values = random_values<V>(n, 10);
    std::vector<V> recon;
    const auto payload = encode_copy(q, values, recon, random).payload;
    check_common_rejections<decltype(q), V>(q, payload, n);
    const V tag{};
    auto with = [&](std::size_t offset, auto value) {
        auto p = payload;
        swarmsgd::detail::store(p.data() + offset, value);
        return p;
    };
    const std::size_t params = payload_header_size;
    CHECK(contains(rejects<message_error>(q, with(params, std::uint8_t{0}), n, tag), "0 bits"));
    CHECK(contains(rejects<message_error>(q, with(params, std::uint8_t{9}), n, tag), "9 bits"));
    CHECK(contains(rejects<message_error>(q, with(params, std::uint8_t{4}), n, tag), "bytes"));
    (void)rejects<message_error>(q, with(params + 1, std::uint8_t{2}), n, tag);
    (void)rejects<message_error>(q, with(params + 2, std::uint16_t{1}), n, tag);
    CHECK(contains(rejects<message_error>(q, with(params + 4, std::uint32_t{7}), n, tag),
                   "bucket 7"));
    CHECK(contains(rejects<message_error>(q, with(params + 4, std::uint32_t{0}), n, tag),
                   "bucket 0"));
    (void)rejects<message_error>(q, with(params + 4, std::uint32_t{16}), n, tag);  // size differs
    const std::size_t stride = 8 + 3;  // meta + 8 codes of 3 bits
    const std::size_t bucket2 = params + 8 + 2 * stride;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    CHECK(contains(rejects<message_error>(q, with(bucket2, nan), n, tag), "bucket 2"));
    CHECK(contains(rejects<message_error>(q, with(bucket2, inf), n, tag), "bucket 2"));
    CHECK(contains(rejects<message_error>(q, with(bucket2 + 4, nan), n, tag), "scale"));
    CHECK(contains(rejects<message_error>(q, with(bucket2 + 4, -1.0f), n, tag), "scale"));
    CHECK(contains(rejects<message_error>(q, with(bucket2 + 4, 1e38f), n, tag), "top level"));
    CHECK(contains(rejects<message_error>(q, with(bucket2 + 4, 0x1.8p126f), n, tag), "top level"));
    // A scale with more than 16 significant bits (code * scale would not be exact).
    const float stored = swarmsgd::detail::load<float>(payload.data() + bucket2 + 4);
    CHECK((std::bit_cast<std::uint32_t>(stored) & 0xFFu) == 0);
    const float odd = std::bit_cast<float>(std::bit_cast<std::uint32_t>(stored) | 1u);
    CHECK(contains(rejects<message_error>(q, with(bucket2 + 4, odd), n, tag), "16 significant"));
    // Padding after the last code (5 codes x 3 bits = 15 bits: one padding bit).
    auto padded = payload;
    padded.back() |= std::byte{0x80};
    CHECK(contains(rejects<message_error>(q, padded, n, tag), "padding"));
    // Scale 0 with codes other than 0 is still valid (decodes to lo).
    auto zero_scale = with(bucket2 + 4, 0.0f);
    CHECK(decode_all<decltype(q), V>(q, zero_scale, n)[16] ==
          V(swarmsgd::detail::load<float>(payload.data() + bucket2)));
}

// ---------------------------------------------------------------------------------------------
// QSGD
// ---------------------------------------------------------------------------------------------

namespace {

template <class V>
bool qsgd_within(const std::vector<V>& values, const std::vector<V>& recon,
                 const std::vector<std::byte>& payload, unsigned levels, std::size_t bucket) {
    const unsigned bits = swarmsgd::detail::qsgd_code_bits(levels);
    const std::byte* data = payload.data() + payload_header_size + 8;
    const std::size_t stride = 4 + swarmsgd::detail::packed_bytes(bucket, bits);
    bool ok = true;
    for (std::size_t b0 = 0, b = 0; b0 < values.size(); b0 += bucket, ++b) {
        const float norm = swarmsgd::detail::load<float>(data + b * stride);
        const std::size_t m = std::min(bucket, values.size() - b0);
        double exact = 0;
        for (std::size_t k = b0; k < b0 + m; ++k) exact += double(values[k]) * double(values[k]);
        ok = ok && std::abs(double(norm) - std::sqrt(exact)) <= 0x1p-22 * std::sqrt(exact);
        const double bound = double(norm) / levels * (1 + 0x1p-20);
        for (std::size_t k = b0; k < b0 + m; ++k) {
            const double err = std::abs(double(recon[k]) - double(values[k]));
            if (!(err <= bound)) {
                MESSAGE("element " << k << " error " << err << " bound " << bound);
                ok = false;
            }
            ok = ok && (values[k] == 0 || std::signbit(recon[k]) == std::signbit(values[k]) ||
                        recon[k] == 0);
        }
    }
    return ok;
}

}  // namespace

TEST_CASE_TEMPLATE("qsgd: round trip within norm/s, exact reconstruction", V, float, double) {
    swarmsgd::rng random(6);
    for (const unsigned levels : {1u, 2u, 5u, 127u, 255u, 32767u}) {
        for (const std::size_t bucket : {std::size_t{8}, std::size_t{512}}) {
            qsgd_quantizer<V> q(qsgd_options{levels, bucket});
            for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{7}, bucket - 1,
                                  bucket, bucket + 1, std::size_t{2 * 512 + 3}}) {
                CAPTURE(levels);
                CAPTURE(bucket);
                CAPTURE(n);
                const auto values = random_values<V>(n, n + levels, 0.1, 1.0);
                std::vector<V> recon;
                const auto e = encode_copy(q, values, recon, random);
                const std::size_t buckets = (n + bucket - 1) / bucket;
                CHECK(e.bytes == 24 + 4 * buckets + (n * q.code_bits() + 7) / 8);
                CHECK(same_bits(decode_all<decltype(q), V>(q, e.payload, n), recon));
                CHECK(qsgd_within(values, recon, e.payload, levels, bucket));
            }
        }
    }
    qsgd_quantizer<V> q;
    CHECK(q.code_bits() == 8);
    const auto values = random_values<V>(big, 55, 0.0, 3.0);
    std::vector<V> recon;
    const auto e = encode_copy(q, values, recon, random);
    CHECK(same_bits(decode_all<decltype(q), V>(q, e.payload, big), recon));
    CHECK(qsgd_within(values, recon, e.payload, 127, 512));
    // Zero and tiny buckets.
    std::vector<V> zeros(24, V(0));
    zeros[20] = V(1e-44f);
    const auto ez = encode_copy(q, zeros, recon, random);
    CHECK(same_bits(decode_all<decltype(q), V>(q, ez.payload, 24), recon));
    for (std::size_t k = 0; k < 24; ++k) CHECK(std::abs(double(recon[k] - zeros[k])) < 1e-35);
    std::vector<V> with_nan(24, V(1));
    with_nan[13] = std::numeric_limits<V>::quiet_NaN();
    CHECK(contains(
        what_of<swarmsgd::non_finite_error>([&] { (void)encode_copy(q, with_nan, recon, random); }),
        "element 13"));
}

TEST_CASE_TEMPLATE("qsgd: unbiased", V, float, double) {
    constexpr std::size_t n = 64;
    constexpr int trials = 2000;
    const auto values = random_values<V>(n, 99, 0.0, 1.0);
    for (const unsigned levels : {1u, 4u}) {
        qsgd_quantizer<V> q(qsgd_options{levels, 64});
        swarmsgd::rng random(levels);
        std::vector<double> mean_error(n, 0.0);
        std::vector<V> recon;
        float norm = 0;
        for (int t = 0; t < trials; ++t) {
            const auto e = encode_copy(q, values, recon, random);
            norm = swarmsgd::detail::load<float>(e.payload.data() + payload_header_size + 8);
            for (std::size_t k = 0; k < n; ++k)
                mean_error[k] += (double(recon[k]) - values[k]) / trials;
        }
        const double tolerance = 4 * double(norm) / levels / std::sqrt(double(trials));
        double worst = 0;
        for (const double m : mean_error) worst = std::max(worst, std::abs(m));
        CHECK(worst < tolerance);
    }
}

TEST_CASE_TEMPLATE("qsgd: malformed payloads are rejected, destination untouched", V, float,
                   double) {
    using swarmsgd::message_error;
    swarmsgd::rng random(8);
    constexpr std::size_t n = 21;
    qsgd_quantizer<V> q(qsgd_options{5, 8});  // 4-bit codes, levels 6 and 7 are invalid
    const auto values = random_values<V>(n, 12);
    std::vector<V> recon;
    const auto payload = encode_copy(q, values, recon, random).payload;
    check_common_rejections<decltype(q), V>(q, payload, n);
    const V tag{};
    auto with = [&](std::size_t offset, auto value) {
        auto p = payload;
        swarmsgd::detail::store(p.data() + offset, value);
        return p;
    };
    const std::size_t params = payload_header_size;
    CHECK(contains(rejects<message_error>(q, with(params, std::uint16_t{0}), n, tag), "0 levels"));
    CHECK(contains(rejects<message_error>(q, with(params, std::uint16_t{40000}), n, tag),
                   "40000 levels"));
    (void)rejects<message_error>(q, with(params, std::uint16_t{16}), n, tag);  // 6-bit: size
    (void)rejects<message_error>(q, with(params + 2, std::uint16_t{3}), n, tag);
    CHECK(contains(rejects<message_error>(q, with(params + 4, std::uint32_t{12}), n, tag),
                   "bucket 12"));
    const std::size_t stride = 4 + 4;  // norm + 8 codes of 4 bits
    const std::size_t bucket1 = params + 8 + stride;
    CHECK(contains(
        rejects<message_error>(q, with(bucket1, std::numeric_limits<float>::quiet_NaN()), n, tag),
        "bucket 1"));
    CHECK(contains(rejects<message_error>(q, with(bucket1, -2.0f), n, tag), "norm"));
    CHECK(contains(
        rejects<message_error>(q, with(bucket1, std::numeric_limits<float>::infinity()), n, tag),
        "norm"));
    // Level 7 > s = 5 in element 9 (bucket 1, code 1: high nibble of byte 0 of its codes).
    auto bad_level = payload;
    bad_level[bucket1 + 4] = (bad_level[bucket1 + 4] & std::byte{0x0F}) | std::byte{0xE0};
    CHECK(contains(rejects<message_error>(q, bad_level, n, tag), "element 9"));
    // 21 = 2*8 + 5 codes in the last bucket: 5 x 4 bits -> one padding nibble.
    auto padded = payload;
    padded.back() |= std::byte{0x10};
    CHECK(contains(rejects<message_error>(q, padded, n, tag), "padding"));
    // Options.
    CHECK(what_of<swarmsgd::invalid_argument_error>([] {
              qsgd_quantizer<V> x(qsgd_options{0, 8});
          }) != "<no exception>");
    CHECK(what_of<swarmsgd::invalid_argument_error>([] {
              qsgd_quantizer<V> x(qsgd_options{32768, 8});
          }) != "<no exception>");
    CHECK(what_of<swarmsgd::invalid_argument_error>([] {
              qsgd_quantizer<V> x(qsgd_options{4, 12});
          }) != "<no exception>");
}

// ---------------------------------------------------------------------------------------------
// Error feedback
// ---------------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("error_feedback: telescoping sum, same wire format, reset on size change", V,
                   float, double) {
    using inner = min_max_quantizer<V>;
    error_feedback<inner> ef(inner(min_max_options{2, 64, false}));
    CHECK(ef.name() == "ef(min_max(2 bits, bucket 64))");
    CHECK(ef.id() == inner::format_id);
    CHECK(ef.max_encoded_size(100) == ef.inner().max_encoded_size(100));
    constexpr std::size_t n = 200;
    constexpr int steps = 50;
    swarmsgd::rng random(21);
    std::vector<double> sum_in(n, 0), sum_out(n, 0);
    double plain_error = 0;
    for (int t = 0; t < steps; ++t) {
        const auto x = random_values<V>(n, 1000 + t, 0.1, 1.0);
        std::vector<V> recon;
        const auto e = encode_copy(ef, x, recon, random);
        // Decoding with the plain inner quantizer gives the same reconstruction.
        inner plain(min_max_options{2, 64, false});
        CHECK(same_bits(decode_all<inner, V>(plain, e.payload, n), recon));
        CHECK(same_bits(decode_all<decltype(ef), V>(ef, e.payload, n), recon));
        for (std::size_t k = 0; k < n; ++k) {
            sum_in[k] += x[k];
            sum_out[k] += recon[k];
        }
        std::vector<V> plain_recon;
        (void)encode_copy(plain, x, plain_recon, random);
        for (std::size_t k = 0; k < n; ++k)
            plain_error = std::max(plain_error, std::abs(double(plain_recon[k]) - double(x[k])));
    }
    const auto residual = ef.residual();
    REQUIRE(residual.size() == n);
    double worst = 0, worst_drift = 0;
    for (std::size_t k = 0; k < n; ++k) {
        worst = std::max(worst, std::abs(sum_out[k] + double(residual[k]) - sum_in[k]));
        worst_drift = std::max(worst_drift, std::abs(sum_out[k] - sum_in[k]));
    }
    const double eps = sizeof(V) == 4 ? 1e-4 : 1e-12;
    CHECK(worst < eps * steps);
    // The accumulated drift stays bounded by one step's error (no growth with T).
    CHECK(worst_drift <= 2 * plain_error);
    // A different size resets the residual.
    std::vector<V> other(10, V(1)), recon;
    (void)encode_copy(ef, other, recon, random);
    CHECK(ef.residual().size() == 10);
    ef.reset();
    CHECK(ef.residual().empty());
    // A throwing inner encode leaves the residual unchanged.
    error_feedback<fp16_quantizer<V>> ef16;
    std::vector<V> small{V(1.0001), V(2.0001)};
    (void)encode_copy(ef16, small, recon, random);
    const std::vector<V> kept(ef16.residual().begin(), ef16.residual().end());
    std::vector<V> huge{V(1), V(1e6)};
    CHECK(what_of<swarmsgd::invalid_argument_error>(
              [&] { (void)encode_copy(ef16, huge, recon, random); }) != "<no exception>");
    CHECK(same_bits(std::vector<V>(ef16.residual().begin(), ef16.residual().end()), kept));
}
