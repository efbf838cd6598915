#pragma once
/// \file exchanges/general.hpp
/// The general exchange: how a swarm_node exchanges models with any quantizer that never fails
/// to decode, in any memory back end. Snapshot the model, encode it, decode the partner's
/// message against our own snapshot, apply x += (D(m_partner) - D(m_own)) / 2 through the
/// node's buffers. See exchanges/exchange.hpp for the interface every exchange implements.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "../errors.hpp"
#include "../message.hpp"

namespace swarmsgd::exchanges {

/// The general exchange over a node core `Core` (detail::node_core).
template <class Core>
class general_exchange {
public:
    using buffer = typename Core::buffer;  ///< a model-sized buffer of the memory back end
    /// This exchange never sees a failed decode, so it never waits for a fixup.
    static constexpr bool recovers = false;

    /// What the initiator keeps while its request is in flight.
    struct initiator_state {
        buffer sent;  ///< D(m_i): what the partner reconstructs of our snapshot
    };
    /// Never used: nothing is recovered.
    struct fixup_state {};

    /// Buffers for a model of `size` elements.
    explicit general_exchange(std::size_t size) : own_(size), received_(size) {}

    /// Initiator: snapshot the model into `s.sent`, send it as the request (s.sent then holds
    /// D(m_i), what the responder decodes).
    void request(Core& c, std::size_t peer, std::uint64_t id, initiator_state& s) {
        s.sent.resize(c.size);
        c.memory.gather(*c.model, s.sent);
        c.send(peer, message_kind::request, id, &s.sent);
    }

    /// Responder: decode the request against our snapshot (refusing a bad one before
    /// answering), reply with our snapshot, apply our half.
    std::optional<fixup_state> serve(Core& c, const envelope& e, std::span<const std::byte> bytes) {
        const auto payload = bytes.subspan(envelope_size);
        c.memory.gather(*c.model, own_);
        c.answer_or_refuse(e, [&] {
            decode_checked(c, e.sender, e.kind, payload, own_);
            c.guard_distance(e.sender, e.kind, received_, own_);
            c.send(e.sender, message_kind::reply, e.interaction, &own_);  // own_ := D(m_j)
        });
        c.memory.apply_half_difference(*c.model, received_, own_);
        return std::nullopt;
    }

    /// Responder of a pull: send our snapshot, change nothing.
    void serve_pull(Core& c, const envelope& e) {
        c.memory.gather(*c.model, own_);
        c.send(e.sender, message_kind::pull_reply, e.interaction, &own_);
    }

    /// Initiator: apply the reply, x += (D(m_j) - D(m_i)) / 2; for a pull reply
    /// x += (D(m_j) - x) / 2.
    void apply_reply(Core& c, const envelope& e, std::span<const std::byte> payload,
                     initiator_state& s) {
        if (e.kind == message_kind::pull_reply) {
            c.memory.gather(*c.model, own_);
            decode_checked(c, e.sender, e.kind, payload, own_);
            c.guard_distance(e.sender, e.kind, received_, own_);
            c.memory.apply_half_difference(*c.model, received_, own_);
        } else {
            decode_checked(c, e.sender, e.kind, payload, s.sent);
            c.guard_distance(e.sender, e.kind, received_, s.sent);
            c.memory.apply_half_difference(*c.model, received_, s.sent);
        }
    }

private:
    /// Decodes into received_; a failed range (a quantizer breaking its promise) or a
    /// non-finite value is a message_error, and the model is not touched.
    void decode_checked(Core& c, std::size_t peer, message_kind kind,
                        std::span<const std::byte> payload, const buffer& reference) {
        const auto result = c.decode(peer, kind, payload, reference, received_);
        if (!result.ok()) {
            c.stats.failed_decode_elements += result.failed_elements();
            throw message_error(detail::concat(
                "node ", c.rank(), ": ", c.quantizer.name(), " could not decode ",
                result.failed_elements(), " elements of a ", to_string(kind), " from node ", peer));
        }
        c.check_finite(received_, peer, kind);
    }

    buffer own_;       // the responder's snapshot, then D(m_own)
    buffer received_;  // the decoded partner snapshot
};

}  // namespace swarmsgd::exchanges
