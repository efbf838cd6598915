#pragma once
/// \file exchanges/exchange.hpp
/// The interface between swarm_node's protocol and the way it exchanges models, and the rule
/// that picks one of the three exchanges for a model and a quantizer.
///
/// swarm_node (swarm_node.hpp) owns the protocol: who initiates, requests, replies, declines,
/// failures and fixups as messages, which interactions are in flight or await a fixup,
/// timeouts, shutdown and statistics. An exchange owns what happens to model-sized memory at
/// each step of an interaction, through the node's core (detail::node_core: model, quantizer,
/// memory back end, messaging):
///
///   request(core, peer, id, state)    initiator: snapshot the model, send the request
///   serve(core, envelope, bytes)      responder: answer a request (the whole message: a
///                                     std::vector<std::byte>& for the exact exchange, which
///                                     answers in it; a std::span<const std::byte> for the
///                                     others, which may come from a message block), apply its
///                                     half; returns the fixup to wait for, if any
///   serve_pull(core, envelope)        responder of a pull request: send the model
///   apply_reply(core, envelope, payload, state)
///                                     initiator: apply a reply or a pull reply
///   apply_fixup(core, envelope, payload, fixup)
///                                     responder: complete a recovered interaction (only
///                                     exchanges whose `recovers` is true)
///
/// An exchange throws the library's errors (size_mismatch_error, message_error,
/// non_finite_error) and leaves the model unchanged when it does; a responder reports them to
/// the initiator through core.answer_or_refuse. Where the same exchange differs between
/// memory back ends (host, Thrust), the back end (detail::node_memory) provides the
/// difference.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "../message.hpp"
#include "exact.hpp"
#include "general.hpp"
#include "recovering.hpp"

namespace swarmsgd::exchanges {

/// An exchange `X` for node core `Core` (see the file comment).
template <class X, class Core>
concept exchange_for = std::constructible_from<X, std::size_t> &&
    std::default_initializable<typename X::initiator_state> &&
    std::movable<typename X::fixup_state> &&
    requires(X& x, Core& c, const envelope& e, std::vector<std::byte>& bytes,
             std::span<const std::byte> payload, typename X::initiator_state& s, std::size_t peer,
             std::uint64_t id) {
    { X::recovers } -> std::convertible_to<bool>;
    x.request(c, peer, id, s);
    { x.serve(c, e, bytes) } -> std::same_as<std::optional<typename X::fixup_state>>;
    x.serve_pull(c, e);
    x.apply_reply(c, e, payload, s);
} &&(!X::recovers ||
     requires(X & x, Core& c, const envelope& e, std::span<const std::byte> payload,
              typename X::fixup_state f) { x.apply_fixup(c, e, payload, std::move(f)); });

/// The exchange a node with core `Core` uses: exact for a host model with an exact quantizer,
/// recovering for a quantizer that can fail to decode, general otherwise.
template <class Core>
using exchange_t = std::conditional_t<
    Core::exact, exact_exchange<Core>,
    std::conditional_t<Core::recovers, recovering_exchange<Core>, general_exchange<Core>>>;

}  // namespace swarmsgd::exchanges
