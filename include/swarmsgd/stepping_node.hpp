#pragma once
/// \file stepping_node.hpp
/// The stepping_node concept: one node of a training algorithm (Swarm SGD's swarm_node, and
/// every baseline of baselines/) as the drivers see it when they interleave many nodes on one
/// clock (the timed simulator) or run one node per thread or rank.

#include <concepts>
#include <cstddef>
#include <span>

#include "node_stats.hpp"

namespace swarmsgd {

/// A node that trains by local steps, each possibly followed by an exchange with other nodes:
/// - `value_type`: float or double, the model's element type;
/// - `rank()`: this node's rank;
/// - `begin_step(grad)`: local step with the stochastic gradient `grad` (flat, model order,
///   computed at the node's current model). The node applies it, or starts the exchange its
///   algorithm needs first (an allreduce of gradients, say). Throws size_mismatch_error /
///   non_finite_error with the model unchanged for a bad gradient, and invalid_argument_error
///   when the previous step is not complete yet;
/// - `progress()`: handles what has arrived and sends what is due, never blocks; returns true
///   once the current step is complete (the model holds its new value and the next gradient
///   may be computed). True when no step is in progress;
/// - `stats()`: counters (node_stats).
/// Every node of one run must run the same algorithm with the same options. The synchronous
/// ones (allreduce SGD, local SGD, D-PSGD) also need every node to take the same number of
/// steps; swarm_node never waits for a peer, so for it `progress()` is always true.
template <class N>
concept stepping_node = requires(N& n, const N& cn, std::span<const typename N::value_type> grad) {
    typename N::value_type;
    { cn.rank() } -> std::convertible_to<std::size_t>;
    n.begin_step(grad);
    { n.progress() } -> std::same_as<bool>;
    { cn.stats() } -> std::convertible_to<const node_stats&>;
};

}  // namespace swarmsgd
