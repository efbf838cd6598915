// libFuzzer target: read_envelope (and read_payload_header on what follows the envelope) on
// arbitrary bytes. An independent check of the documented format says whether each call
// must succeed; a success must report the fields as they are on the wire and survive a
// write_envelope / read_envelope round trip; a failure must be a message_error (or, for the
// payload header's element count, a size_mismatch_error) with a message.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <swarmsgd/errors.hpp>
#include <swarmsgd/message.hpp>
#include <swarmsgd/version.hpp>

#include "fuzz_common.hpp"

namespace {

using fuzz::load;

void check_envelope(std::span<const std::byte> in, std::size_t source) {
    bool valid = in.size() >= 24 && std::memcmp(in.data(), "SWSG", 4) == 0 &&
                 load<std::uint16_t>(in.data() + 4) == swarmsgd::wire_format_version;
    if (valid) {
        // Kinds 1..13 (request, reply, pull_request, pull_reply, failure, fixup, declined,
        // collective, neighbour_model, done, excluded, ping, pong: wire format 2); flags: only
        // bit 0 (flag_fallback), and only on a reply.
        const unsigned kind = load<std::uint8_t>(in.data() + 6);
        const unsigned flags = load<std::uint8_t>(in.data() + 7);
        valid = kind >= 1 && kind <= 13 && (flags & ~1u) == 0 && (flags == 0 || kind == 2) &&
                load<std::uint32_t>(in.data() + 8) == source &&
                in.size() == 24 + std::size_t{load<std::uint32_t>(in.data() + 20)};
    }
    swarmsgd::envelope e;
    try {
        e = swarmsgd::read_envelope(in, source);
    } catch (const swarmsgd::message_error& ex) {
        FUZZ_CHECK(!valid, "read_envelope rejected a valid envelope (source %zu): %s", source,
                   ex.what());
        FUZZ_CHECK(std::strlen(ex.what()) > 0, "empty message");
        return;
    }
    FUZZ_CHECK(valid, "read_envelope accepted an invalid envelope (source %zu, %zu bytes)", source,
               in.size());
    FUZZ_CHECK(static_cast<unsigned>(e.kind) == load<std::uint8_t>(in.data() + 6) &&
                   e.flags == load<std::uint8_t>(in.data() + 7) &&
                   e.sender == load<std::uint32_t>(in.data() + 8) &&
                   e.interaction == load<std::uint64_t>(in.data() + 12) &&
                   e.payload_bytes == load<std::uint32_t>(in.data() + 20),
               "read_envelope misreports a field");
    FUZZ_CHECK(std::strcmp(swarmsgd::to_string(e.kind), "unknown") != 0, "kind name");
    // write_envelope writes the same bytes.
    std::vector<std::byte> again(in.begin(), in.end());
    swarmsgd::write_envelope(again, e);
    for (std::size_t i = 0; i < 24; ++i)
        FUZZ_CHECK(again[i] == in[i], "write_envelope(read_envelope(m)) differs at byte %zu", i);
    const auto e2 = swarmsgd::read_envelope(again, source);
    FUZZ_CHECK(e2.kind == e.kind && e2.flags == e.flags && e2.sender == e.sender &&
                   e2.interaction == e.interaction && e2.payload_bytes == e.payload_bytes,
               "envelope round trip");
}

void check_payload_header(std::span<const std::byte> p, std::uint16_t id, std::size_t width,
                          std::size_t count) {
    const bool truncated = p.size() < 16;
    const bool id_ok = !truncated && load<std::uint16_t>(p.data()) == id;
    const bool width_ok = !truncated && load<std::uint8_t>(p.data() + 2) == width;
    const bool count_ok = !truncated && load<std::uint64_t>(p.data() + 8) == count;
    try {
        const auto h = swarmsgd::read_payload_header(p, id, "fuzz", width, count);
        FUZZ_CHECK(id_ok && width_ok && count_ok, "read_payload_header accepted a mismatch");
        FUZZ_CHECK(h.quantizer_id == id && h.value_bytes == width && h.count == count,
                   "read_payload_header misreports a field");
        std::array<std::byte, 16> w{};
        swarmsgd::write_payload_header(w, h);
        const auto h2 = swarmsgd::read_payload_header(w, id, "fuzz", width, count);
        FUZZ_CHECK(h2.quantizer_id == id && h2.value_bytes == width && h2.count == count,
                   "payload header round trip");
    } catch (const swarmsgd::size_mismatch_error& ex) {
        FUZZ_CHECK(id_ok && width_ok && !count_ok,
                   "read_payload_header threw size_mismatch_error for another defect: %s",
                   ex.what());
    } catch (const swarmsgd::message_error& ex) {
        FUZZ_CHECK(truncated || !id_ok || !width_ok,
                   "read_payload_header threw message_error for a good id and width: %s",
                   ex.what());
    }
}

void write_seeds(const std::filesystem::path& dir) {
    fuzz::seed_writer w(dir);
    for (unsigned kind = 0; kind <= 14; ++kind) {
        for (std::size_t payload :
             {std::size_t{0}, std::size_t{5}, std::size_t{16}, std::size_t{40}}) {
            std::vector<std::uint8_t> m(24 + payload, 0);
            m[7] = kind == 2 && payload == 40 ? 1 : 0;  // a reply with a fallback section
            std::memcpy(m.data(), "SWSG", 4);
            const std::uint16_t version = swarmsgd::wire_format_version;
            std::memcpy(m.data() + 4, &version, 2);
            m[6] = static_cast<std::uint8_t>(kind);
            const std::uint32_t sender = kind % 2 == 0 ? 0u : 7u;
            std::memcpy(m.data() + 8, &sender, 4);
            const std::uint64_t interaction = 0x0102030405060708ull * kind;
            std::memcpy(m.data() + 12, &interaction, 8);
            const auto bytes = static_cast<std::uint32_t>(payload);
            std::memcpy(m.data() + 20, &bytes, 4);
            if (payload >= 16) {
                const std::uint16_t id = 6;
                std::memcpy(m.data() + 24, &id, 2);
                m[26] = 4;
                const std::uint64_t count = payload - 16;
                std::memcpy(m.data() + 32, &count, 8);
            }
            w.add(m);
        }
    }
    std::fprintf(stderr, "swarmsgd fuzz (envelope): wrote %zu seeds to %s\n", w.count(),
                 dir.string().c_str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    if (const char* dir = std::getenv("SWARMSGD_FUZZ_SEED_DIR"); dir != nullptr && *dir != 0)
        write_seeds(dir);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // An exactly sized copy, so ASan sees any read past the end.
    const fuzz::payload_buffer buf(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size), 0);
    const auto in = buf.span();
    const std::size_t claimed = size >= 12 ? load<std::uint32_t>(in.data() + 8) : 3;
    for (const std::size_t source : {claimed, std::size_t{0}, std::size_t{7}})
        check_envelope(in, source);

    // The payload header after the envelope, checked against what it claims and against
    // mismatching expectations.
    const auto payload = in.subspan(std::min<std::size_t>(24, in.size()));
    std::uint16_t id = 1;
    std::size_t width = 4, count = 0;
    if (payload.size() >= 16) {
        id = load<std::uint16_t>(payload.data());
        width = load<std::uint8_t>(payload.data() + 2);
        count = load<std::uint64_t>(payload.data() + 8);
    }
    check_payload_header(payload, id, width, count);
    check_payload_header(payload, static_cast<std::uint16_t>(id + 1), width, count);
    check_payload_header(payload, id, width == 4 ? 8 : 4, count);
    check_payload_header(payload, id, width, count + 1);

    // write_envelope into a short buffer throws message_error.
    if (size < 24) {
        std::vector<std::byte> small(size);
        try {
            swarmsgd::write_envelope(small, {});
            fuzz::fail_at(__FILE__, __LINE__, "write_envelope into %zu bytes did not throw", size);
        } catch (const swarmsgd::message_error&) {
        }
    }
    return 0;
}
