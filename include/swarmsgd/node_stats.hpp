#pragma once
/// \file node_stats.hpp
/// Per-node statistics.

#include <cstddef>
#include <cstdint>

namespace swarmsgd {

/// What one node did. Times are wall-clock seconds measured by the node itself.
struct node_stats {
    std::uint64_t local_steps = 0;             ///< optimizer steps taken
    std::uint64_t interactions_initiated = 0;  ///< interactions this node started
    std::uint64_t interactions_completed = 0;  ///< own interactions whose reply was applied
    std::uint64_t interactions_served = 0;     ///< requests of others answered
    /// Own interactions the partner declined (it had a request to us in flight, see
    /// swarm_node): no change on either side.
    std::uint64_t interactions_declined = 0;
    std::uint64_t postponed = 0;          ///< due interactions postponed (max_in_flight reached)
    std::uint64_t messages_sent = 0;      ///< messages sent
    std::uint64_t messages_received = 0;  ///< messages received
    std::uint64_t bytes_sent = 0;         ///< bytes sent (envelopes and payloads)
    std::uint64_t bytes_received = 0;     ///< bytes received
    std::uint64_t failed_decode_elements = 0;  ///< elements a quantizer could not decode
    std::uint64_t recovered_elements = 0;  ///< elements sent or applied at full precision instead
    /// Polls that came more than reply_timeout after the previous one: this node itself was
    /// away (stopped, descheduled, stuck), and the gap was not charged to its partners.
    std::uint64_t stalls_credited = 0;
    /// Partner models refused by swarm_options::distance_guard.
    std::uint64_t refused_distant = 0;
    /// failure_policy::exclude: peers this node excluded, or learnt were excluded.
    std::uint64_t peers_excluded = 0;
    /// failure_policy::exclude: own interactions (and awaited fixups) dropped because the
    /// partner was excluded; this node's half of each was never applied.
    std::uint64_t interactions_lost = 0;
    /// failure_policy::exclude: messages from excluded peers, not applied (a request is
    /// answered with a failure telling the sender it was excluded).
    std::uint64_t messages_ignored = 0;
    double seconds_averaging = 0;  ///< snapshot, encode, send, receive, decode, apply, waits
    double seconds_optimizer = 0;  ///< time in the local optimizer step
    double seconds_shutdown = 0;   ///< time in finish(), waiting for the other nodes

    /// Calls f(name, s.field...) for every field, in declaration order, on one node_stats or
    /// several (const or not) side by side: the one list that += and checkpoints walk.
    template <class F, class... Stats>
    static void for_each_field(F&& f, Stats&... s) {
        f("local_steps", s.local_steps...);
        f("interactions_initiated", s.interactions_initiated...);
        f("interactions_completed", s.interactions_completed...);
        f("interactions_served", s.interactions_served...);
        f("interactions_declined", s.interactions_declined...);
        f("postponed", s.postponed...);
        f("messages_sent", s.messages_sent...);
        f("messages_received", s.messages_received...);
        f("bytes_sent", s.bytes_sent...);
        f("bytes_received", s.bytes_received...);
        f("failed_decode_elements", s.failed_decode_elements...);
        f("recovered_elements", s.recovered_elements...);
        f("stalls_credited", s.stalls_credited...);
        f("refused_distant", s.refused_distant...);
        f("peers_excluded", s.peers_excluded...);
        f("interactions_lost", s.interactions_lost...);
        f("messages_ignored", s.messages_ignored...);
        f("seconds_averaging", s.seconds_averaging...);
        f("seconds_optimizer", s.seconds_optimizer...);
        f("seconds_shutdown", s.seconds_shutdown...);
    }

    /// Adds another node's counters (for swarm-wide totals).
    node_stats& operator+=(const node_stats& o) noexcept {
        for_each_field([](const char*, auto& mine, const auto& theirs) { mine += theirs; }, *this,
                       o);
        return *this;
    }
};

// A new field goes into for_each_field too.
static_assert(sizeof(node_stats) == 20 * 8, "node_stats: a new field goes into for_each_field");

}  // namespace swarmsgd
