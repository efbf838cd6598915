// The wire format (message.hpp) and the identity quantizer (quantizers/identity.hpp):
// round trips, byte layout, and every validation error with the values it must name.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <swarmsgd/errors.hpp>
#include <swarmsgd/message.hpp>
#include <swarmsgd/quantizer.hpp>
#include <swarmsgd/quantizers/identity.hpp>
#include <swarmsgd/random.hpp>
#include <swarmsgd/version.hpp>

#include "error_text.hpp"

using swarmsgd::envelope;
using swarmsgd::envelope_size;
using swarmsgd::message_kind;
using swarmsgd::payload_header_size;

static_assert(swarmsgd::quantizer_for<swarmsgd::identity_quantizer<float>, float>);
static_assert(swarmsgd::quantizer_for<swarmsgd::identity_quantizer<double>, double>);
static_assert(!swarmsgd::quantizer_for<swarmsgd::identity_quantizer<float>, double>);
static_assert(!swarmsgd::quantizer_for<swarmsgd::identity_quantizer<double>, float>);

namespace {

using test_support::contains;
using test_support::what_of;

std::size_t runtime_size(std::size_t n) {
    volatile std::size_t hidden = n;
    return hidden;
}

/// Bit-for-bit equality (tells -0 from +0); empty vectors may have null data().
template <class V>
bool same_bits(const std::vector<V>& a, const std::vector<V>& b) {
    return a.size() == b.size() &&
           (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(V)) == 0);
}

std::vector<std::byte> make_message(const envelope& e, std::size_t actual_payload) {
    std::vector<std::byte> bytes(envelope_size + actual_payload, std::byte{0xAB});
    swarmsgd::write_envelope(bytes, e);
    return bytes;
}

std::span<const std::byte> cbytes(const std::vector<std::byte>& v) { return v; }

}  // namespace

// ------------------------------------------------------------------------------- envelopes

TEST_CASE("envelope write/read round trip for every kind and extreme fields") {
    for (const auto kind : {message_kind::request, message_kind::reply, message_kind::pull_request,
                            message_kind::pull_reply, message_kind::failure,
                            message_kind::collective, message_kind::neighbour_model}) {
        CAPTURE(swarmsgd::to_string(kind));
        for (const std::uint32_t sender : {0u, 1u, 4095u, 0xFFFFFFFFu}) {
            const envelope e{kind, sender, 0x0123456789ABCDEFull, 13};
            const auto bytes = make_message(e, 13);
            const envelope r = swarmsgd::read_envelope(cbytes(bytes), sender);
            CHECK(r.kind == kind);
            CHECK(r.sender == sender);
            CHECK(r.interaction == 0x0123456789ABCDEFull);
            CHECK(r.payload_bytes == 13);
        }
    }
    // Empty payload.
    const auto bytes = make_message({message_kind::pull_request, 2, 0, 0}, 0);
    CHECK(bytes.size() == envelope_size);
    CHECK(swarmsgd::read_envelope(cbytes(bytes), 2).payload_bytes == 0);
}

TEST_CASE("envelope byte layout is little-endian as documented") {
    std::vector<std::byte> b(envelope_size, std::byte{0xFF});
    swarmsgd::write_envelope(
        b, {message_kind::reply, 0x04030201u, 0x1122334455667788ull, 0x0A0B0C0Du});
    const auto u = [&](std::size_t i) { return std::to_integer<unsigned>(b[i]); };
    CHECK(u(0) == 'S');
    CHECK(u(1) == 'W');
    CHECK(u(2) == 'S');
    CHECK(u(3) == 'G');
    CHECK(u(4) == (swarmsgd::wire_format_version & 0xFFu));
    CHECK(u(5) == (swarmsgd::wire_format_version >> 8));
    CHECK(u(6) == 2);  // reply
    CHECK(u(7) == 0);  // flags
    CHECK(u(8) == 0x01);
    CHECK(u(11) == 0x04);
    CHECK(u(12) == 0x88);
    CHECK(u(19) == 0x11);
    CHECK(u(20) == 0x0D);
    CHECK(u(23) == 0x0A);
}

TEST_CASE("write_envelope refuses a buffer smaller than the envelope") {
    std::vector<std::byte> small(envelope_size - 1);
    const auto m = what_of<swarmsgd::message_error>([&] {
        swarmsgd::write_envelope(small, {message_kind::request, 0, 0, 0});
    });
    CHECK(contains(m, "23"));
    CHECK(contains(m, "24"));
}

TEST_CASE("read_envelope errors name the source node and the numbers") {
    const envelope good{message_kind::request, 3, 42, 8};
    const auto valid = make_message(good, 8);
    REQUIRE_NOTHROW((void)swarmsgd::read_envelope(cbytes(valid), 3));

    SUBCASE("truncated: fewer than 24 bytes") {
        for (const std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{23}}) {
            CAPTURE(n);
            const std::vector<std::byte> shorter(valid.begin(),
                                                 valid.begin() + static_cast<std::ptrdiff_t>(n));
            const auto m = what_of<swarmsgd::message_error>(
                [&] { (void)swarmsgd::read_envelope(cbytes(shorter), 3); });
            CHECK(contains(m, "node 3"));
            CHECK(contains(m, "truncated"));
            CHECK(contains(m, std::to_string(n) + " bytes"));
            CHECK(contains(m, "24"));
        }
    }
    SUBCASE("bad magic") {
        for (const std::size_t i : {std::size_t{0}, std::size_t{3}}) {
            auto bad = valid;
            bad[i] = std::byte{'X'};
            const auto m = what_of<swarmsgd::message_error>(
                [&] { (void)swarmsgd::read_envelope(cbytes(bad), 3); });
            CHECK(contains(m, "node 3"));
            CHECK(contains(m, "magic"));
        }
    }
    SUBCASE("wrong wire format version") {
        auto bad = valid;
        const std::uint16_t version = swarmsgd::wire_format_version + 1;
        std::memcpy(bad.data() + 4, &version, 2);
        const auto m = what_of<swarmsgd::message_error>(
            [&] { (void)swarmsgd::read_envelope(cbytes(bad), 3); });
        CHECK(contains(m, "node 3"));
        CHECK(contains(m, "version " + std::to_string(version)));
        CHECK(contains(m, "version " + std::to_string(swarmsgd::wire_format_version)));

        const std::uint16_t zero = 0;
        std::memcpy(bad.data() + 4, &zero, 2);
        CHECK(contains(what_of<swarmsgd::message_error>(
                           [&] { (void)swarmsgd::read_envelope(cbytes(bad), 3); }),
                       "version 0"));
    }
    SUBCASE("unknown kind 0, 14 and 255") {
        for (const int kind : {0, int(swarmsgd::last_message_kind) + 1, 15, 255}) {
            CAPTURE(kind);
            auto bad = valid;
            bad[6] = static_cast<std::byte>(kind);
            const auto m = what_of<swarmsgd::message_error>(
                [&] { (void)swarmsgd::read_envelope(cbytes(bad), 3); });
            CHECK(contains(m, "node 3"));
            CHECK(contains(m, "unknown kind " + std::to_string(kind)));
        }
    }
    SUBCASE("sender mismatch") {
        const auto forged = make_message({message_kind::reply, 5, 42, 8}, 8);
        const auto m = what_of<swarmsgd::message_error>(
            [&] { (void)swarmsgd::read_envelope(cbytes(forged), 3); });
        CHECK(contains(m, "node 3"));
        CHECK(contains(m, "node 5"));
    }
    SUBCASE("payload length mismatch") {
        // Announces 10, carries 4.
        const auto short_payload = make_message({message_kind::request, 3, 1, 10}, 4);
        const auto m = what_of<swarmsgd::message_error>(
            [&] { (void)swarmsgd::read_envelope(cbytes(short_payload), 3); });
        CHECK(contains(m, "node 3"));
        CHECK(contains(m, "request"));
        CHECK(contains(m, "announces 10"));
        CHECK(contains(m, "carries 4"));

        // Announces 2, carries 7.
        const auto long_payload = make_message({message_kind::reply, 3, 1, 2}, 7);
        const auto m2 = what_of<swarmsgd::message_error>(
            [&] { (void)swarmsgd::read_envelope(cbytes(long_payload), 3); });
        CHECK(contains(m2, "announces 2"));
        CHECK(contains(m2, "carries 7"));

        // Announces 4 GiB - 1 on a small message (no overflow in the check).
        const auto huge = make_message({message_kind::reply, 3, 1, 0xFFFFFFFFu}, 0);
        CHECK_THROWS_AS((void)swarmsgd::read_envelope(cbytes(huge), 3), swarmsgd::message_error);
    }
}

// -------------------------------------------------------------------------- payload headers

TEST_CASE("payload header round trip") {
    std::vector<std::byte> b(payload_header_size + 3, std::byte{0x77});
    swarmsgd::write_payload_header(b, {1, 4, 123456789012ull});
    const auto h = swarmsgd::read_payload_header(cbytes(b), 1, "identity", 4, 123456789012ull);
    CHECK(h.quantizer_id == 1);
    CHECK(h.value_bytes == 4);
    CHECK(h.count == 123456789012ull);
    CHECK(std::to_integer<int>(b[payload_header_size]) == 0x77);  // nothing written past 16 bytes

    std::vector<std::byte> small(payload_header_size - 1);
    CHECK_THROWS_AS(swarmsgd::write_payload_header(small, {1, 4, 0}), swarmsgd::message_error);
}

TEST_CASE("payload header errors name both sides") {
    std::vector<std::byte> b(payload_header_size);
    swarmsgd::write_payload_header(b, {9, 4, 10});

    SUBCASE("truncated") {
        const auto m = what_of<swarmsgd::message_error>(
            [&] { (void)swarmsgd::read_payload_header(cbytes(b).first(15), 9, "q", 4, 10); });
        CHECK(contains(m, "truncated"));
        CHECK(contains(m, "15"));
        CHECK(contains(m, "16"));
    }
    SUBCASE("wrong quantizer id") {
        const auto m = what_of<swarmsgd::message_error>(
            [&] { (void)swarmsgd::read_payload_header(cbytes(b), 1, "identity", 4, 10); });
        CHECK(contains(m, "quantizer id 9"));
        CHECK(contains(m, "identity"));
        CHECK(contains(m, "id 1"));
    }
    SUBCASE("wrong value width") {
        const auto m = what_of<swarmsgd::message_error>(
            [&] { (void)swarmsgd::read_payload_header(cbytes(b), 9, "q", 8, 10); });
        CHECK(contains(m, "4-byte"));
        CHECK(contains(m, "8-byte"));
    }
    SUBCASE("count mismatch is a size_mismatch_error naming both counts") {
        const auto m = what_of<swarmsgd::size_mismatch_error>(
            [&] { (void)swarmsgd::read_payload_header(cbytes(b), 9, "q", 4, 12); });
        CHECK(contains(m, "10"));
        CHECK(contains(m, "12"));
        // It is not a message_error (the two are siblings under swarmsgd::error).
        bool was_message_error = false;
        try {
            (void)swarmsgd::read_payload_header(cbytes(b), 9, "q", 4, 12);
        } catch (const swarmsgd::message_error&) {
            was_message_error = true;
        } catch (const swarmsgd::error&) {
        }
        CHECK_FALSE(was_message_error);
    }
}

// ------------------------------------------------------------------------ identity quantizer

TEST_CASE_TEMPLATE("identity quantizer round trip", V, float, double) {
    const swarmsgd::identity_quantizer<V> q;
    CHECK(q.id() == 1);
    CHECK(q.name() == "identity");
    swarmsgd::rng random(7);
    for (const std::size_t n :
         {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{1} << 20}) {
        CAPTURE(n);
        std::vector<V> values(n);
        for (auto& v : values) v = static_cast<V>(random.uniform01() * 2e3 - 1e3);
        if (n >= 7) {
            values[1] = -V(0);
            values[2] = std::numeric_limits<V>::denorm_min();
            values[3] = std::numeric_limits<V>::max();
            values[4] = std::numeric_limits<V>::lowest();
        }
        const auto original = values;

        CHECK(q.max_encoded_size(n) == payload_header_size + n * sizeof(V));
        std::vector<std::byte> payload(q.max_encoded_size(n));
        const std::size_t written = q.encode(std::span<V>(values), payload, random);
        CHECK(written == payload.size());
        // Identity: the sender's reconstruction is its input, bit for bit.
        CHECK(same_bits(values, original));

        const auto h = swarmsgd::read_payload_header(cbytes(payload), 1, "identity", sizeof(V), n);
        CHECK(h.count == n);
        CHECK(h.value_bytes == sizeof(V));

        std::vector<V> decoded(n, V(-7));
        const std::vector<V> reference(n, V(0));
        const auto result =
            q.decode(cbytes(payload), std::span<const V>(reference), std::span<V>(decoded));
        CHECK(result.ok());
        CHECK(result.failed_elements() == 0);
        CHECK(same_bits(decoded, original));
    }
}

TEST_CASE_TEMPLATE("identity encode refuses a too small output buffer", V, float, double) {
    const swarmsgd::identity_quantizer<V> q;
    swarmsgd::rng random(1);
    std::vector<V> values(5, V(1));
    std::vector<std::byte> out(q.max_encoded_size(5) - 1);
    const auto m = what_of<swarmsgd::message_error>(
        [&] { (void)q.encode(std::span<V>(values), out, random); });
    CHECK(contains(m, std::to_string(out.size())));
    CHECK(contains(m, std::to_string(q.max_encoded_size(5))));
}

TEST_CASE_TEMPLATE("identity decode of a bad payload throws and leaves the destination untouched",
                   V, float, double) {
    const swarmsgd::identity_quantizer<V> q;
    swarmsgd::rng random(3);
    // A size the optimizer cannot see: with a constant, GCC 12 -O2 warns (-Warray-bounds) about
    // the copy on the path where the size check would not throw.
    const std::size_t n = runtime_size(9);
    std::vector<V> values(n);
    for (std::size_t k = 0; k < n; ++k) values[k] = static_cast<V>(k) + V(0.5);
    std::vector<std::byte> payload(q.max_encoded_size(n));
    REQUIRE(q.encode(std::span<V>(values), payload, random) == payload.size());

    const V sentinel = V(-12345.0);
    const std::vector<V> reference(n, V(0));
    std::vector<V> out(n, sentinel);
    const std::vector<V> untouched(n, sentinel);
    auto decode = [&](std::span<const std::byte> p) {
        (void)q.decode(p, std::span<const V>(reference), std::span<V>(out));
    };

    SUBCASE("truncated by one byte") {
        const auto m = what_of<swarmsgd::message_error>(
            [&] { decode(cbytes(payload).first(payload.size() - 1)); });
        CHECK(contains(m, std::to_string(payload.size() - 1)));
        CHECK(contains(m, std::to_string(payload.size())));
        CHECK(contains(m, std::to_string(n) + " elements"));
    }
    SUBCASE("truncated by one value") {
        CHECK_THROWS_AS(decode(cbytes(payload).first(payload.size() - sizeof(V))),
                        swarmsgd::message_error);
    }
    SUBCASE("truncated inside the payload header") {
        CHECK_THROWS_AS(decode(cbytes(payload).first(payload_header_size - 1)),
                        swarmsgd::message_error);
        CHECK_THROWS_AS(decode(std::span<const std::byte>()), swarmsgd::message_error);
    }
    SUBCASE("oversized") {
        auto longer = payload;
        longer.push_back(std::byte{0});
        const auto m = what_of<swarmsgd::message_error>([&] { decode(cbytes(longer)); });
        CHECK(contains(m, std::to_string(longer.size())));
        CHECK(contains(m, std::to_string(payload.size())));
        longer.resize(payload.size() + 10 * sizeof(V));
        CHECK_THROWS_AS(decode(cbytes(longer)), swarmsgd::message_error);
    }
    SUBCASE("element count differs from the destination") {
        std::vector<V> bigger(n + 1, sentinel);
        const auto m = what_of<swarmsgd::size_mismatch_error>([&] {
            (void)q.decode(cbytes(payload), std::span<const V>(reference), std::span<V>(bigger));
        });
        CHECK(contains(m, std::to_string(n)));
        CHECK(contains(m, std::to_string(n + 1)));
        CHECK(bigger == std::vector<V>(n + 1, sentinel));
    }
    SUBCASE("wrong quantizer id") {
        auto other = payload;
        const std::uint16_t id = 2;
        std::memcpy(other.data(), &id, 2);
        CHECK_THROWS_AS(decode(cbytes(other)), swarmsgd::message_error);
    }
    SUBCASE("payload of the other value width") {
        using W = std::conditional_t<std::is_same_v<V, float>, double, float>;
        const swarmsgd::identity_quantizer<W> wq;
        std::vector<W> wide(n, W(1));
        std::vector<std::byte> wpayload(wq.max_encoded_size(n));
        (void)wq.encode(std::span<W>(wide), wpayload, random);
        const auto m = what_of<swarmsgd::message_error>([&] { decode(cbytes(wpayload)); });
        CHECK(contains(m, std::to_string(sizeof(W)) + "-byte"));
        CHECK(contains(m, std::to_string(sizeof(V)) + "-byte"));
    }
    CHECK(out == untouched);
}

TEST_CASE("a whole message: envelope, then an identity payload") {
    const swarmsgd::identity_quantizer<float> q;
    swarmsgd::rng random(2);
    std::vector<float> model{1.5f, -2.0f, 3.25f};
    std::vector<std::byte> message(envelope_size + q.max_encoded_size(model.size()));
    const std::size_t payload_bytes = q.encode(
        std::span<float>(model), std::span<std::byte>(message).subspan(envelope_size), random);
    swarmsgd::write_envelope(
        message, {message_kind::request, 6, 99, static_cast<std::uint32_t>(payload_bytes)});

    const envelope e = swarmsgd::read_envelope(cbytes(message), 6);
    CHECK(e.kind == message_kind::request);
    CHECK(e.interaction == 99);
    std::vector<float> decoded(3);
    const std::vector<float> reference(3);
    const auto result = q.decode(cbytes(message).subspan(envelope_size),
                                 std::span<const float>(reference), std::span<float>(decoded));
    CHECK(result.ok());
    CHECK(decoded == model);
}

TEST_CASE("message kind names") {
    CHECK(std::string(swarmsgd::to_string(message_kind::request)) == "request");
    CHECK(std::string(swarmsgd::to_string(message_kind::reply)) == "reply");
    CHECK(std::string(swarmsgd::to_string(message_kind::pull_request)) == "pull_request");
    CHECK(std::string(swarmsgd::to_string(message_kind::pull_reply)) == "pull_reply");
    CHECK(std::string(swarmsgd::to_string(message_kind::failure)) == "failure");
    CHECK(std::string(swarmsgd::to_string(static_cast<message_kind>(0))) == "unknown");
}

TEST_CASE("decode_result counts failed elements") {
    swarmsgd::decode_result r;
    CHECK(r.ok());
    r.failed.push_back({2, 5});
    r.failed.push_back({10, 11});
    CHECK_FALSE(r.ok());
    CHECK(r.failed_elements() == 4);
}

TEST_CASE("failure payload: code and reason round trip; the peer rethrows the same category") {
    using swarmsgd::failure_code;
    const auto p = swarmsgd::failure_payload(failure_code::non_finite, "element 3 is nan");
    REQUIRE(p.size() == 1 + 16);
    CHECK(p[0] == std::byte{3});
    const auto r = swarmsgd::read_failure_payload(p);
    CHECK(r.code == failure_code::non_finite);
    CHECK(r.reason == "element 3 is nan");
    // An empty payload, and a code this build does not know, read as `other`.
    CHECK(swarmsgd::read_failure_payload({}).code == failure_code::other);
    std::vector<std::byte> unknown{std::byte{200}, std::byte{'x'}};
    CHECK(swarmsgd::read_failure_payload(unknown).code == failure_code::other);
    CHECK(swarmsgd::read_failure_payload(unknown).reason == "x");
    CHECK_THROWS_AS(swarmsgd::throw_failure(failure_code::size_mismatch, "t"),
                    swarmsgd::size_mismatch_error);
    CHECK_THROWS_AS(swarmsgd::throw_failure(failure_code::malformed, "t"), swarmsgd::message_error);
    CHECK_THROWS_AS(swarmsgd::throw_failure(failure_code::non_finite, "t"),
                    swarmsgd::non_finite_error);
    CHECK_THROWS_WITH_AS(swarmsgd::throw_failure(failure_code::other, "why"), "why",
                         swarmsgd::error);
}

TEST_CASE("fallback section: layout, round trip and validation") {
    using swarmsgd::detail::fallback_range;
    const std::vector<fallback_range> ranges{{2, 4, true}, {7, 8, false}};
    std::vector<std::byte> out(3, std::byte{0xEE});  // the section is appended
    std::byte* values = swarmsgd::detail::append_fallback_header(out, ranges, sizeof(float));
    const float raw[3] = {1.5f, -2.f, 8.f};
    std::memcpy(values, raw, sizeof raw);
    REQUIRE(out.size() == 3 + 4 + 2 * 17 + 3 * sizeof(float));
    const auto section = std::span<const std::byte>(out).subspan(3);
    CHECK(section[0] == std::byte{2});   // u32 count
    CHECK(section[4] == std::byte{2});   // u64 begin of range 0
    CHECK(section[20] == std::byte{1});  // u8 needs_fixup of range 0
    const auto s = swarmsgd::detail::read_fallback<float>(section, 10, "test");
    CHECK(s.ranges == ranges);
    CHECK(std::memcmp(s.values, raw, sizeof raw) == 0);
    CHECK_THROWS_WITH_AS((void)swarmsgd::detail::read_fallback<float>(section, 7, "test"),
                         doctest::Contains("outside the model of 7 elements"),
                         swarmsgd::message_error);
    CHECK_THROWS_WITH_AS(
        (void)swarmsgd::detail::read_fallback<float>(section.first(section.size() - 1), 10, "test"),
        doctest::Contains("expected"), swarmsgd::message_error);
    CHECK_THROWS_WITH_AS((void)swarmsgd::detail::read_fallback<float>(section.first(3), 10, "test"),
                         doctest::Contains("truncated"), swarmsgd::message_error);
}
