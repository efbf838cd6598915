#pragma once
/// \file swarm_options.hpp
/// Options of one Swarm SGD node (and of the drivers that run many).

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "errors.hpp"
#include "local_steps.hpp"
#include "sgd.hpp"

namespace swarmsgd {

/// How two nodes average. See docs/algorithm.md.
enum class averaging_mode {
    /// Non-blocking snapshot averaging (default): the initiator sends its snapshot S_i and keeps
    /// computing; the partner answers with S_j and applies X_j += (D(S_i) - D(S_j)) / 2 at once;
    /// the initiator applies X_i += (D(S_j) - D(S_i)) / 2 when the reply lands. Mean-preserving.
    nonblocking,
    /// The initiator waits (answering others meanwhile) until its partner replied: with no local
    /// step in between this is the exact pairwise average of the sequential model. Mean-preserving.
    blocking,
    /// The authors' one-sided "pull" variant: the initiator fetches its partner's model and
    /// averages it into its own model only; the partner does not change. NOT mean-preserving.
    pull,
};

/// Human-readable name of an averaging mode.
[[nodiscard]] inline const char* to_string(averaging_mode m) noexcept {
    switch (m) {
        case averaging_mode::nonblocking: return "nonblocking";
        case averaging_mode::blocking: return "blocking";
        case averaging_mode::pull: return "pull";
    }
    return "unknown";
}

/// What a node does when a partner stops answering. See docs/algorithm.md, "Failed peers".
enum class failure_policy {
    /// A partner that does not answer within reply_timeout (or that refuses an interaction)
    /// fails this node with peer_timeout_error (or the partner's error): the run stops, and the
    /// user restarts it, from checkpoints for instance. Default: nothing is ever lost silently.
    fail,
    /// A partner that does not answer within reply_timeout, or that the transport or driver
    /// reports dead (swarm_node::exclude_peer), is dropped: this node tells every other node,
    /// they all stop choosing it, a node whose neighbours are all gone picks among the nearest
    /// live nodes of the topology, and finish() completes on the survivors (point-to-point
    /// "done" messages and liveness probes, no collective). The dropped node's model is lost,
    /// with the halves of its interactions still in flight (counted in
    /// node_stats::interactions_lost); a dropped node that comes back is told with
    /// excluded_error and never changes a survivor's model.
    exclude,
};

/// Human-readable name of a failure policy.
[[nodiscard]] inline const char* to_string(failure_policy p) noexcept {
    switch (p) {
        case failure_policy::fail: return "fail";
        case failure_policy::exclude: return "exclude";
    }
    return "unknown";
}

/// Who takes a node's local step. See docs/torch.md and docs/decisions.md (46).
enum class local_optimizer {
    /// The node's own SGD (sgd_options): apply_gradient(grad) takes the step.
    builtin,
    /// Your optimizer (a torch::optim::SGD or Adam, say) changes the model in place; the node
    /// only averages: call after_local_step() after each of your steps. apply_gradient is
    /// refused (invalid_argument_error), `sgd` is ignored and no momentum buffer is allocated.
    /// Your optimizer's own state (momentum, Adam's moments) stays local: it is never averaged
    /// or reset, and a node's checkpoint does not hold it (save it with your framework).
    external,
};

/// Human-readable name of a local_optimizer.
[[nodiscard]] inline const char* to_string(local_optimizer o) noexcept {
    switch (o) {
        case local_optimizer::builtin: return "builtin";
        case local_optimizer::external: return "external";
    }
    return "unknown";
}

/// Options of a node.
struct swarm_options {
    averaging_mode mode = averaging_mode::nonblocking;     ///< how pairs average
    failure_policy failure = failure_policy::fail;         ///< what a silent partner costs
    local_steps steps = local_steps::fixed(1);             ///< local steps between interactions
    sgd_options sgd;                                       ///< the built-in optimizer
    local_optimizer optimizer = local_optimizer::builtin;  ///< who takes the local step
    /// Own interactions a node may have in flight at once (>= 1). When the limit is reached a
    /// due interaction is postponed to the next local step (counted in stats().postponed).
    std::size_t max_in_flight = 1;
    /// A partner that has not replied within this time is reported with peer_timeout_error
    /// (failure_policy::fail) or excluded (failure_policy::exclude).
    /// The time counts while this node is running: a gap between two of its polls longer than
    /// reply_timeout (the node itself was stopped, descheduled or stuck) is not charged to the
    /// partner, which gets a full reply_timeout again once this node is back.
    std::chrono::milliseconds reply_timeout{60'000};
    /// finish() gives up with peer_timeout_error if the other nodes are not all done by then
    /// (under failure_policy::exclude the error names the live nodes that did not finish).
    std::chrono::milliseconds shutdown_timeout{300'000};
    /// When a node is destroyed (after finish(), or after an error), its sends still in flight
    /// get this long IN TOTAL to complete; the rest are detached (their buffers are kept alive
    /// for the transport, never freed under it). Bounds the destructor after a peer failed.
    std::chrono::milliseconds send_linger{1'000};
    /// Guard against a partner whose model is absurdly far from ours (a broken or hostile
    /// node sending huge but finite values). 0 (default): off. When > 0, a partner's model
    /// (request, reply, pull reply, fixup) whose RMS distance from the snapshot it would be
    /// averaged with exceeds distance_guard times a reference is refused with message_error
    /// naming the sender, counted in node_stats::refused_distant, and the model is not
    /// changed; a refused request is reported to its initiator as well. The reference is the
    /// larger of this node's model's RMS norm and the largest distance accepted in its last 16
    /// interactions. Must be 0 or >= 1; 10 to 100 leaves room for any trained swarm's spread.
    double distance_guard = 0;
    /// Seed of the node's random streams (partner choice, H draws, stochastic rounding); node
    /// i uses stream i, so a seed fixes every node's choices.
    std::uint64_t seed = 0;

    /// Throws invalid_argument_error naming the offending value.
    void validate() const {
        sgd.validate();
        detail::require<invalid_argument_error>(
            failure == failure_policy::fail || failure == failure_policy::exclude,
            "swarm_options: failure = ", static_cast<int>(failure),
            " is not a failure_policy (fail or exclude)");
        detail::require<invalid_argument_error>(
            optimizer == local_optimizer::builtin || optimizer == local_optimizer::external,
            "swarm_options: optimizer = ", static_cast<int>(optimizer),
            " is not a local_optimizer (builtin or external)");
        detail::require<invalid_argument_error>(max_in_flight >= 1,
                                                "swarm_options: max_in_flight = ", max_in_flight,
                                                "; at least 1 interaction must be allowed");
        detail::require<invalid_argument_error>(
            reply_timeout.count() > 0, "swarm_options: reply_timeout = ", reply_timeout.count(),
            " ms; it must be > 0");
        detail::require<invalid_argument_error>(
            shutdown_timeout.count() > 0,
            "swarm_options: shutdown_timeout = ", shutdown_timeout.count(), " ms; it must be > 0");
        detail::require<invalid_argument_error>(
            distance_guard == 0 || (std::isfinite(distance_guard) && distance_guard >= 1),
            "swarm_options: distance_guard = ", distance_guard,
            "; it must be 0 (off) or a finite factor >= 1");
        detail::require<invalid_argument_error>(
            send_linger.count() >= 0, "swarm_options: send_linger = ", send_linger.count(),
            " ms; it must be >= 0");
    }
};

}  // namespace swarmsgd
