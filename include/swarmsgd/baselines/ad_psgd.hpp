#pragma once
/// \file baselines/ad_psgd.hpp
/// AD-PSGD (Lian et al., ICML 2018): asynchronous decentralized SGD, where every node, after
/// each local step, averages its model with one random neighbour without waiting for it.
/// swarm_node with H = 1 and non-blocking averaging IS this algorithm, in its mean-preserving
/// form, so AD-PSGD is a named configuration of swarm_node rather than another node class.
///
/// The one difference from Lian et al. 2018: there, the averaging is applied atomically to the
/// model and the gradient computed at the older model is applied afterwards (a stale
/// gradient), and a node overwrites its partner's model with the pair's average; here both
/// nodes apply the mean-preserving update x += (D(m_partner) - D(m_own)) / 2 against the
/// snapshots they exchanged (docs/algorithm.md), so local progress made while the messages
/// travel is kept and the mean of the models changes only by the SGD updates, exactly.

#include <cstdint>

#include "../local_steps.hpp"
#include "../sgd.hpp"
#include "../swarm_node.hpp"
#include "../swarm_options.hpp"

namespace swarmsgd {

/// The swarm_options of AD-PSGD: one local step between interactions (local_steps::fixed(1)),
/// non-blocking averaging, one interaction in flight per node; `sgd` is the local optimizer,
/// `seed` seeds the partner choices. Timeouts keep swarm_options' defaults (set them on the
/// result if needed).
[[nodiscard]] inline swarm_options ad_psgd_options(const sgd_options& sgd, std::uint64_t seed = 0) {
    swarm_options o;
    o.mode = averaging_mode::nonblocking;
    o.steps = local_steps::fixed(1);
    o.max_in_flight = 1;
    o.sgd = sgd;
    o.seed = seed;
    return o;
}

/// An AD-PSGD node: a swarm_node, to be constructed with ad_psgd_options(...).
template <class Model, class Comm, class Quant = typename detail::default_quantizer<Model>::type>
using ad_psgd_node = swarm_node<Model, Comm, Quant>;

}  // namespace swarmsgd
