#pragma once
/// \file message.hpp
/// The wire format. Every message is an envelope (protocol header) followed by a payload
/// (a quantizer's encoding of a model, itself starting with a payload header). All integers
/// are little-endian; a receiver validates everything before touching its model.
///
///   envelope (24 bytes): magic "SWSG" | u16 wire version | u8 kind | u8 flags |
///                        u32 sender rank | u64 interaction id | u32 payload bytes
///   payload header (16): u16 quantizer id | u8 value bytes (4/8) | u8 reserved |
///                        u32 reserved | u64 element count | quantizer parameters | data
///   failure payload:     u8 failure_code | the reason, UTF-8 text (no terminator)
///   fallback section:    u32 range count | per range: u64 begin, u64 end, u8 needs_fixup |
///                        the values of every range in order, raw (float or double)
///     after a reply's quantized payload (flag_fallback; then a u64 length of the quantized
///     part ends the message), and the whole payload of a fixup (needs_fixup = 0).

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "errors.hpp"
#include "version.hpp"

namespace swarmsgd {

static_assert(std::endian::native == std::endian::little,
              "swarmsgd: the wire format is little-endian; big-endian hosts are not supported");

/// What a message asks of its receiver.
enum class message_kind : std::uint8_t {
    request = 1,       ///< initiator's snapshot; answer with yours and apply your half
    reply = 2,         ///< responder's snapshot; apply your half
    pull_request = 3,  ///< "send me your model" (authors' one-sided pull variant)
    pull_reply = 4,    ///< a model sent in answer to a pull request; the sender did not change
    failure = 5,       ///< the sender could not take part; a failure payload
    fixup = 6,         ///< full-precision values for ranges the partner could not decode (recovery)
    declined = 7,      ///< a crossed request the receiver does not serve (see swarm_node)
    /// A chunk of a ring allreduce (baselines/ring_allreduce.hpp): `interaction` holds the
    /// round in its high 32 bits and the hop in its low 32 bits.
    collective = 8,
    /// A node's model for a synchronous neighbourhood average (baselines/dpsgd.hpp):
    /// `interaction` holds the round.
    neighbour_model = 9,
    /// failure_policy::exclude: the sender finished (it starts no more interactions and all of
    /// its own were answered or lost); the point-to-point replacement of the done barrier.
    done = 10,
    /// failure_policy::exclude: the node whose rank is in `interaction` was excluded by the
    /// sender; the payload is the reason (UTF-8 text).
    excluded = 11,
    /// failure_policy::exclude: "are you alive?" (a finishing node probing a node that has not
    /// finished); answered at once with a pong echoing `interaction`.
    ping = 12,
    pong = 13,  ///< the answer to a ping
};

/// The highest message_kind value a reader accepts.
inline constexpr std::uint8_t last_message_kind = 13;

/// Envelope flag: a reply carries a fallback section after its quantized payload (recovery of
/// failed decodes, see docs/algorithm.md).
inline constexpr std::uint8_t flag_fallback = 1;

/// Human-readable name of a message kind.
[[nodiscard]] inline const char* to_string(message_kind k) noexcept {
    switch (k) {
        case message_kind::request: return "request";
        case message_kind::reply: return "reply";
        case message_kind::pull_request: return "pull_request";
        case message_kind::pull_reply: return "pull_reply";
        case message_kind::failure: return "failure";
        case message_kind::fixup: return "fixup";
        case message_kind::declined: return "declined";
        case message_kind::collective: return "collective";
        case message_kind::neighbour_model: return "neighbour_model";
        case message_kind::done: return "done";
        case message_kind::excluded: return "excluded";
        case message_kind::ping: return "ping";
        case message_kind::pong: return "pong";
    }
    return "unknown";
}

/// Decoded protocol header of a message.
struct envelope {
    message_kind kind{};              ///< what the message asks
    std::uint32_t sender = 0;         ///< rank of the sending node
    std::uint64_t interaction = 0;    ///< id chosen by the initiator, echoed in the reply
    std::uint32_t payload_bytes = 0;  ///< bytes that follow the envelope
    std::uint8_t flags = 0;           ///< flag_fallback, or 0
};

/// Size of the protocol header.
inline constexpr std::size_t envelope_size = 24;
/// Size of the payload header every quantizer writes first.
inline constexpr std::size_t payload_header_size = 16;

namespace detail {
inline constexpr std::array<std::byte, 4> envelope_magic{std::byte{'S'}, std::byte{'W'},
                                                         std::byte{'S'}, std::byte{'G'}};

template <class T>
void store(std::byte* p, T value) noexcept {
    std::memcpy(p, &value, sizeof(T));
}
template <class T>
[[nodiscard]] T load(const std::byte* p) noexcept {
    T value;
    std::memcpy(&value, p, sizeof(T));
    return value;
}
}  // namespace detail

/// Writes an envelope into the first `envelope_size` bytes of `out`.
inline void write_envelope(std::span<std::byte> out, const envelope& e) {
    detail::require<message_error>(out.size() >= envelope_size, "write_envelope: buffer of ",
                                   out.size(), " bytes is smaller than ", envelope_size);
    std::memcpy(out.data(), detail::envelope_magic.data(), 4);
    detail::store<std::uint16_t>(out.data() + 4, wire_format_version);
    detail::store<std::uint8_t>(out.data() + 6, static_cast<std::uint8_t>(e.kind));
    detail::store<std::uint8_t>(out.data() + 7, e.flags);
    detail::store<std::uint32_t>(out.data() + 8, e.sender);
    detail::store<std::uint64_t>(out.data() + 12, e.interaction);
    detail::store<std::uint32_t>(out.data() + 20, e.payload_bytes);
}

/// Parses and validates an envelope; throws message_error naming `source` and the defect.
[[nodiscard]] inline envelope read_envelope(std::span<const std::byte> in, std::size_t source) {
    using detail::concat;
    if (in.size() < envelope_size)
        throw message_error(concat("message from node ", source, " is truncated: ", in.size(),
                                   " bytes, the envelope alone needs ", envelope_size));
    if (std::memcmp(in.data(), detail::envelope_magic.data(), 4) != 0)
        throw message_error(concat("message from node ", source,
                                   " does not start with the swarmsgd magic \"SWSG\""));
    const auto version = detail::load<std::uint16_t>(in.data() + 4);
    if (version != wire_format_version)
        throw message_error(concat("message from node ", source, " has wire format version ",
                                   version, ", this build reads version ", wire_format_version));
    envelope e;
    const auto kind = detail::load<std::uint8_t>(in.data() + 6);
    if (kind < 1 || kind > last_message_kind)
        throw message_error(concat("message from node ", source, " has unknown kind ", int(kind)));
    e.kind = static_cast<message_kind>(kind);
    e.flags = detail::load<std::uint8_t>(in.data() + 7);
    if ((e.flags & ~flag_fallback) != 0 ||
        ((e.flags & flag_fallback) != 0 && e.kind != message_kind::reply))
        throw message_error(concat("message from node ", source, " (", to_string(e.kind),
                                   ") has invalid flags ", int(e.flags)));
    e.sender = detail::load<std::uint32_t>(in.data() + 8);
    e.interaction = detail::load<std::uint64_t>(in.data() + 12);
    e.payload_bytes = detail::load<std::uint32_t>(in.data() + 20);
    if (e.sender != source)
        throw message_error(
            concat("message received from node ", source, " claims to come from node ", e.sender));
    if (in.size() != envelope_size + e.payload_bytes)
        throw message_error(concat("message from node ", source, " (", to_string(e.kind),
                                   ") announces ", e.payload_bytes, " payload bytes but carries ",
                                   in.size() - envelope_size));
    return e;
}

/// Common first bytes of every quantizer's payload.
struct payload_header {
    std::uint16_t quantizer_id = 0;  ///< which quantizer produced the payload
    std::uint8_t value_bytes = 0;    ///< 4 for float models, 8 for double
    std::uint64_t count = 0;         ///< number of model elements encoded
};

/// Writes a payload header into the first `payload_header_size` bytes of `out`.
inline void write_payload_header(std::span<std::byte> out, const payload_header& h) {
    detail::require<message_error>(out.size() >= payload_header_size,
                                   "write_payload_header: buffer of ", out.size(),
                                   " bytes is smaller than ", payload_header_size);
    detail::store<std::uint16_t>(out.data(), h.quantizer_id);
    detail::store<std::uint8_t>(out.data() + 2, h.value_bytes);
    detail::store<std::uint8_t>(out.data() + 3, 0);
    detail::store<std::uint32_t>(out.data() + 4, 0);
    detail::store<std::uint64_t>(out.data() + 8, h.count);
}

/// Reads a payload header and checks it against what the receiver expects: the quantizer
/// id and name, the value width and the element count of its own model. Throws message_error
/// (wrong quantizer, width, truncated) or size_mismatch_error (element count) naming both sides.
[[nodiscard]] inline payload_header read_payload_header(std::span<const std::byte> in,
                                                        std::uint16_t expected_id,
                                                        const char* expected_name,
                                                        std::size_t expected_value_bytes,
                                                        std::size_t expected_count) {
    using detail::concat;
    if (in.size() < payload_header_size)
        throw message_error(concat("payload is truncated: ", in.size(),
                                   " bytes, the payload header alone needs ", payload_header_size));
    payload_header h;
    h.quantizer_id = detail::load<std::uint16_t>(in.data());
    h.value_bytes = detail::load<std::uint8_t>(in.data() + 2);
    h.count = detail::load<std::uint64_t>(in.data() + 8);
    if (h.quantizer_id != expected_id)
        throw message_error(concat("payload was encoded by quantizer id ", h.quantizer_id,
                                   ", this node decodes with ", expected_name, " (id ", expected_id,
                                   ")"));
    if (h.value_bytes != expected_value_bytes)
        throw message_error(concat("payload holds ", int(h.value_bytes),
                                   "-byte values, this node's model has ", expected_value_bytes,
                                   "-byte values"));
    if (h.count != expected_count)
        throw size_mismatch_error(concat("payload holds a model of ", h.count,
                                         " elements, the receiving model has ", expected_count));
    return h;
}

/// Error category carried by a failure message, so the peer rethrows the same type.
enum class failure_code : std::uint8_t {
    other = 0,          ///< swarmsgd::error
    size_mismatch = 1,  ///< size_mismatch_error
    malformed = 2,      ///< message_error
    non_finite = 3,     ///< non_finite_error
    excluded = 4,       ///< excluded_error: the receiver was excluded by the sender
};

/// The payload of a failure message: the code, then `reason`.
[[nodiscard]] inline std::vector<std::byte> failure_payload(failure_code code,
                                                            std::string_view reason) {
    std::vector<std::byte> payload(1 + reason.size());
    payload[0] = static_cast<std::byte>(code);
    if (!reason.empty()) std::memcpy(payload.data() + 1, reason.data(), reason.size());
    return payload;
}

/// A failure payload read back (any bytes are accepted: an unknown code reads as `other`).
struct failure_report {
    failure_code code = failure_code::other;  ///< the category of the peer's error
    std::string reason;                       ///< the peer's message
};

/// Reads a failure payload.
[[nodiscard]] inline failure_report read_failure_payload(std::span<const std::byte> payload) {
    failure_report r;
    if (payload.empty()) return r;
    const auto code = static_cast<std::uint8_t>(payload[0]);
    if (code <= static_cast<std::uint8_t>(failure_code::excluded))
        r.code = static_cast<failure_code>(code);
    r.reason.assign(reinterpret_cast<const char*>(payload.data()) + 1, payload.size() - 1);
    return r;
}

/// Throws the exception of category `code` with `text`.
[[noreturn]] inline void throw_failure(failure_code code, const std::string& text) {
    switch (code) {
        case failure_code::size_mismatch: throw size_mismatch_error(text);
        case failure_code::malformed: throw message_error(text);
        case failure_code::non_finite: throw non_finite_error(text);
        case failure_code::excluded: throw excluded_error(text);
        case failure_code::other: break;
    }
    throw error(text);
}

namespace detail {

/// A range of a fallback section (values sent at full precision because a quantizer could not
/// decode them); needs_fixup: the sender could not decode it either and waits for the
/// receiver's values (a fixup message).
struct fallback_range {
    std::size_t begin = 0;     ///< first element
    std::size_t end = 0;       ///< one past the last
    bool needs_fixup = false;  ///< the sender waits for a fixup of this range
    friend bool operator==(const fallback_range&, const fallback_range&) = default;
};

/// Bytes of one range in a fallback section's header.
inline constexpr std::size_t fallback_range_bytes = 17;

/// Number of elements in the ranges.
[[nodiscard]] inline std::size_t range_elements(std::span<const fallback_range> ranges) {
    std::size_t n = 0;
    for (const auto& r : ranges) n += r.end - r.begin;
    return n;
}

/// Appends a section for `ranges` of elements of `value_size` bytes to `out`: writes its
/// header (u32 count | per range u64 begin, u64 end, u8 needs_fixup) and returns where the
/// ranges' values go, in order (the caller copies them from wherever the model lives).
[[nodiscard]] inline std::byte* append_fallback_header(std::vector<std::byte>& out,
                                                       std::span<const fallback_range> ranges,
                                                       std::size_t value_size) {
    const std::size_t start = out.size();
    out.resize(start + 4 + ranges.size() * fallback_range_bytes +
               range_elements(ranges) * value_size);
    std::byte* p = out.data() + start;
    store<std::uint32_t>(p, static_cast<std::uint32_t>(ranges.size()));
    p += 4;
    for (const auto& r : ranges) {
        store<std::uint64_t>(p, r.begin);
        store<std::uint64_t>(p + 8, r.end);
        store<std::uint8_t>(p + 16, r.needs_fixup ? 1 : 0);
        p += fallback_range_bytes;
    }
    return p;
}

/// A parsed fallback section: the ranges and where their raw values start.
struct fallback_section {
    std::vector<fallback_range> ranges;  ///< sorted, disjoint, non-empty, inside the model
    const std::byte* values = nullptr;   ///< raw values of every range, in order
};

/// Parses and validates a section of values of type V that must fill `in` exactly, for a
/// model of `size` elements; throws message_error naming `what` and the defect.
template <class V>
[[nodiscard]] fallback_section read_fallback(std::span<const std::byte> in, std::size_t size,
                                             const char* what) {
    if (in.size() < 4)
        throw message_error(
            concat(what, ": fallback section of ", in.size(), " bytes is truncated"));
    const auto count = load<std::uint32_t>(in.data());
    if ((in.size() - 4) / fallback_range_bytes < count)
        throw message_error(concat(what, ": fallback section announces ", count,
                                   " ranges but has only ", in.size(), " bytes"));
    fallback_section s;
    const std::byte* p = in.data() + 4;
    std::size_t elements = 0, previous_end = 0;
    for (std::uint32_t i = 0; i < count; ++i, p += fallback_range_bytes) {
        fallback_range r{load<std::uint64_t>(p), load<std::uint64_t>(p + 8),
                         load<std::uint8_t>(p + 16) != 0};
        if (load<std::uint8_t>(p + 16) > 1 || r.begin >= r.end || r.end > size ||
            (i > 0 && r.begin < previous_end))
            throw message_error(concat(what, ": fallback range ", i, " [", r.begin, ", ", r.end,
                                       ") is empty, unsorted, overlapping or outside the model of ",
                                       size, " elements"));
        previous_end = r.end;
        elements += r.end - r.begin;
        s.ranges.push_back(r);
    }
    const std::size_t expected = 4 + count * fallback_range_bytes + elements * sizeof(V);
    if (in.size() != expected)
        throw message_error(concat(what, ": fallback section has ", in.size(), " bytes, expected ",
                                   expected, " for ", count, " ranges of ", elements, " elements"));
    s.values = p;
    return s;
}

}  // namespace detail

}  // namespace swarmsgd
