#pragma once
/// \file exchanges/exact.hpp
/// The exact (fused) exchange: for a host model and a quantizer with the exact_reconstruction
/// capability (identity), the node reads and writes the wire payloads in place. Same protocol,
/// wire bytes, errors (types, texts, order of precedence), failure replies and statistics as
/// exchanges::general_exchange, in fewer passes over model-sized memory:
///   request       model -> snapshot + request payload, checked: 1 pass (general: gather,
///                 check, encode: 3)
///   serve         one blocked pass over the model and the request payload, which becomes the
///                 reply in place: reply = x, x += (r - x) / 2, both checked (general: gather,
///                 decode, 2 checks, encode, apply: 6); no model-sized buffer of its own
///   apply reply   check the reply payload in place (read only), then x += (r - snapshot) / 2
///                 reading it in place (general: decode, check, apply: 3 passes, 1 buffer)
/// The wire payload after the 40 bytes of headers is only 8-byte aligned: the kernels load and
/// store it with memcpy (unaligned vector moves). Bit-identity with the general exchange is a
/// unit test (tests/unit/test_exact_path.cpp).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "../detail/kernels.hpp"
#include "../errors.hpp"
#include "../message.hpp"
#include "../model.hpp"

namespace swarmsgd::exchanges {

/// The exact exchange over a node core `Core` (detail::node_core with Core::exact).
template <class Core>
class exact_exchange {
    static_assert(Core::exact, "exact_exchange needs a host model and an exact quantizer");

public:
    using buffer = typename Core::buffer;          ///< std::vector of the value type
    using value_type = typename Core::value_type;  ///< float or double
    /// An exact quantizer never fails to decode: no fixups.
    static constexpr bool recovers = false;

    /// What the initiator keeps while its request is in flight.
    struct initiator_state {
        buffer sent;  ///< our snapshot (what the responder reconstructs, exactly)
    };
    /// Never used: nothing is recovered.
    struct fixup_state {};

    /// No buffers of its own: the payloads are read and written in place.
    explicit exact_exchange(std::size_t /*size*/) {}

    /// Initiator: one pass copies the model into the request payload and into `s.sent`.
    void request(Core& c, std::size_t peer, std::uint64_t id, initiator_state& s) {
        s.sent.resize(c.size);
        send_model(c, peer, message_kind::request, id, s.sent.data());
    }

    /// Responder. The request's bytes become the reply: one blocked pass swaps the model into
    /// the payload and averages, x += (r - x) / 2 (the responder's snapshot is its model:
    /// nothing runs in between). A non-finite value in either is found in the same pass; the
    /// blocks already averaged are then restored exactly from the payload (which holds their
    /// old values), so the model is unchanged, and the error is the general exchange's (a
    /// non-finite request takes precedence over a non-finite own model, first index of each).
    /// One difference remains, where the communicator's isend itself throws while sending the
    /// reply: the general exchange had not applied its half yet, this one has (the reply bytes
    /// are gone with the exception).
    std::optional<fixup_state> serve(Core& c, const envelope& e, std::vector<std::byte>& bytes) {
        check_model_size(c);
        c.answer_or_refuse(e, [&] {
            const auto payload = std::span<std::byte>(bytes).subspan(envelope_size);
            std::byte* const raw = payload.data() + check_header(c, e.sender, e.kind, payload);
            if (c.guarding()) guard_against_model(c, e, raw);
            std::size_t failed = c.size;  // global index of the failing block's start
            for_each_part(*c.model, [&](std::span<value_type> x, std::size_t offset) {
                if (failed != c.size) return;
                const std::size_t b = detail::exchange_and_average(
                    x.data(), raw + offset * sizeof(value_type), x.size());
                if (b != x.size()) failed = offset + b;
            });
            if (failed != c.size) refused_exchange(c, e, raw, failed);  // throws
            c.quantizer.write_raw_header(payload, c.size);              // the reply's header
            c.post(e.sender, message_kind::reply, e.interaction, std::move(bytes));
        });
        return std::nullopt;
    }

    /// Responder of a pull: one pass copies the model into the reply payload.
    void serve_pull(Core& c, const envelope& e) {
        send_model(c, e.sender, message_kind::pull_reply, e.interaction, nullptr);
    }

    /// Initiator: validate the reply in place, then apply it reading the payload in place:
    /// x += (r - snapshot) / 2, or x += (r - x) / 2 for a pull reply.
    void apply_reply(Core& c, const envelope& e, std::span<const std::byte> payload,
                     const initiator_state& s) {
        if (e.kind == message_kind::pull_reply) {
            check_model_size(c);  // the general exchange gathers the model first
            const std::byte* raw = check_payload(c, e.sender, e.kind, payload);
            if (c.guarding()) guard_against_model(c, e, raw);
            for_each_part(*c.model, [&](std::span<value_type> x, std::size_t offset) {
                detail::average_with_raw(x.data(), raw + offset * sizeof(value_type), x.size());
            });
        } else {
            const std::byte* raw = check_payload(c, e.sender, e.kind, payload);
            if (c.guarding())
                c.guard_distance(
                    e.sender, e.kind,
                    detail::squared_distance_raw<value_type>(raw, s.sent.data(), c.size),
                    detail::squared_norm(s.sent.data(), c.size), c.size);
            for_each_part(*c.model, [&](std::span<value_type> x, std::size_t offset) {
                detail::add_half_difference_raw(x.data(), raw + offset * sizeof(value_type),
                                                s.sent.data() + offset, x.size());
            });
        }
    }

private:
    /// Byte offset of the values in a payload of the node's model size.
    [[nodiscard]] static std::size_t raw_header_size(const Core& c) {
        return c.quantizer.max_encoded_size(c.size) - c.size * sizeof(value_type);
    }

    /// The distance guard for the payload values at `raw` against the model itself (what a
    /// request or pull reply is averaged with). One extra read pass, only when the guard is on.
    static void guard_against_model(Core& c, const envelope& e, const std::byte* raw) {
        double squared = 0, norm = 0;
        for_each_part(*c.model, [&](std::span<value_type> x, std::size_t offset) {
            squared += detail::squared_distance_raw<value_type>(raw + offset * sizeof(value_type),
                                                                x.data(), x.size());
            norm += detail::squared_norm(x.data(), x.size());
        });
        c.guard_distance(e.sender, e.kind, squared, norm, c.size);
    }

    /// The size check gather() makes before it copies the model (same exception and text).
    static void check_model_size(const Core& c) {
        const std::size_t n = model_size(*c.model);
        detail::require<size_mismatch_error>(n == c.size, "gather: model has ", n,
                                             " elements, buffer ", c.size);
    }

    /// gather + send: one pass copies the model into the message payload (and into `snapshot`
    /// when not null), refusing a non-finite model as the general exchange does.
    static void send_model(Core& c, std::size_t peer, message_kind kind, std::uint64_t id,
                           value_type* snapshot) {
        check_model_size(c);
        std::vector<std::byte> bytes = c.take_bytes();
        bytes.resize(envelope_size + c.quantizer.max_encoded_size(c.size));
        const auto out = std::span<std::byte>(bytes).subspan(envelope_size);
        c.quantizer.write_raw_header(out, c.size);
        std::byte* const raw = out.data() + raw_header_size(c);
        std::size_t bad = c.size;
        value_type bad_value{};
        for_each_part(*c.model, [&](std::span<value_type> x, std::size_t offset) {
            if (bad != c.size) return;
            const std::size_t k = detail::copy_out_checked(
                x.data(), snapshot == nullptr ? nullptr : snapshot + offset,
                raw + offset * sizeof(value_type), x.size());
            if (k != x.size()) {
                bad = offset + k;
                bad_value = x[k];
            }
        });
        if (bad != c.size)
            throw non_finite_error(
                detail::concat("node ", c.rank(), ": model element ", bad, " is ", bad_value,
                               "; refusing to send a non-finite model to node ", peer));
        c.post(peer, kind, id, std::move(bytes));
    }

    /// The header and size checks of the general exchange's decode (same exceptions and
    /// texts); returns the offset of the values in `payload`.
    static std::size_t check_header(const Core& c, std::size_t peer, message_kind kind,
                                    std::span<const std::byte> payload) {
        using detail::concat;
        try {
            c.quantizer.check_raw_payload(payload, c.size);
        } catch (const size_mismatch_error& e) {
            throw size_mismatch_error(concat("node ", c.rank(), " (model of ", c.size,
                                             " elements) got a ", to_string(kind), " from node ",
                                             peer, ": ", e.what()));
        } catch (const message_error& e) {
            throw message_error(concat("node ", c.rank(), " got a malformed ", to_string(kind),
                                       " from node ", peer, ": ", e.what()));
        }
        const std::size_t expected = c.quantizer.max_encoded_size(c.size);
        if (payload.size() != expected)  // only if check_raw_payload broke its contract
            throw message_error(concat("node ", c.rank(), " got a malformed ", to_string(kind),
                                       " from node ", peer, ": ", c.quantizer.name(),
                                       " payload has ", payload.size(), " bytes, expected ",
                                       expected));
        return raw_header_size(c);
    }

    /// The general exchange's decode: validates a model payload from `peer` (header, size,
    /// finiteness of every value) without copying it; returns the address of its values.
    static const std::byte* check_payload(const Core& c, std::size_t peer, message_kind kind,
                                          std::span<const std::byte> payload) {
        const std::byte* raw = payload.data() + check_header(c, peer, kind, payload);
        if (const auto k = detail::first_non_finite_raw<value_type>(raw, c.size); k != c.size)
            c.throw_non_finite_received(peer, kind, k);
        return raw;
    }

    /// The exchange failed in the block starting at global index `failed`: restores the model
    /// before it from the payload (which holds its old values there; from `failed` on, the
    /// payload is the partner's again and the model untouched), then throws what the general
    /// exchange throws: message_error for a non-finite request value, else non_finite_error.
    [[noreturn]] static void refused_exchange(Core& c, const envelope& e, const std::byte* raw,
                                              std::size_t failed) {
        for_each_part(*c.model, [&](std::span<value_type> x, std::size_t offset) {
            if (offset < failed)
                detail::copy_in_raw(raw + offset * sizeof(value_type), x.data(),
                                    std::min(x.size(), failed - offset));
        });
        if (const auto k = failed + detail::first_non_finite_raw<value_type>(
                                        raw + failed * sizeof(value_type), c.size - failed);
            k != c.size)
            c.throw_non_finite_received(e.sender, e.kind, k);
        std::size_t bad = c.size;
        value_type bad_value{};
        for_each_part(*c.model, [&](std::span<value_type> x, std::size_t offset) {
            if (bad != c.size) return;
            if (const auto k = detail::first_non_finite(x.data(), x.size()); k != x.size()) {
                bad = offset + k;
                bad_value = x[k];
            }
        });
        throw non_finite_error(
            detail::concat("node ", c.rank(), ": model element ", bad, " is ", bad_value,
                           "; refusing to send a non-finite model to node ", e.sender));
    }
};

}  // namespace swarmsgd::exchanges
