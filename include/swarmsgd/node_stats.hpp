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
    double seconds_averaging = 0;  ///< snapshot, encode, send, receive, decode, apply, waits
    double seconds_optimizer = 0;  ///< time in the local optimizer step
    double seconds_shutdown = 0;   ///< time in finish(), waiting for the other nodes

    /// Adds another node's counters (for swarm-wide totals).
    node_stats& operator+=(const node_stats& o) noexcept {
        local_steps += o.local_steps;
        interactions_initiated += o.interactions_initiated;
        interactions_completed += o.interactions_completed;
        interactions_served += o.interactions_served;
        interactions_declined += o.interactions_declined;
        postponed += o.postponed;
        messages_sent += o.messages_sent;
        messages_received += o.messages_received;
        bytes_sent += o.bytes_sent;
        bytes_received += o.bytes_received;
        failed_decode_elements += o.failed_decode_elements;
        recovered_elements += o.recovered_elements;
        stalls_credited += o.stalls_credited;
        refused_distant += o.refused_distant;
        seconds_averaging += o.seconds_averaging;
        seconds_optimizer += o.seconds_optimizer;
        seconds_shutdown += o.seconds_shutdown;
        return *this;
    }
};

}  // namespace swarmsgd
