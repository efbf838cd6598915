#pragma once
// Single-thread drivers of the baseline algorithms (baselines/) over a simulated_network, and
// helpers to forge messages, shared by tests/unit/test_baselines_*.cpp.

#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/message.hpp>
#include <swarmsgd/model.hpp>
#include <swarmsgd/quantizers/identity.hpp>
#include <swarmsgd/random.hpp>
#include <swarmsgd/topology.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "error_text.hpp"

namespace test_support::baselines {

/// A simulated network and one endpoint per node (in a deque: nodes keep pointers to them).
struct sim_world {
    sim_world(std::size_t n, std::size_t max_delay = 0, std::uint64_t seed = 1)
        : net(n, 0, max_delay, seed), order(n) {
        for (std::size_t i = 0; i < n; ++i) endpoints.push_back(net.endpoint_for(i));
        std::iota(order.begin(), order.end(), std::size_t{0});
    }
    /// Next tick: delivers what is due.
    void tick() { net.advance_to(net.now() + 1); }
    /// A new order of the nodes (the order in which progress() is called).
    void shuffle(swarmsgd::rng& r) {
        for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[r.uniform(i)]);
    }
    swarmsgd::simulated_network net;
    std::deque<swarmsgd::simulated_network::endpoint> endpoints;
    std::vector<std::size_t> order;
};

/// n nodes of one baseline over a sim_world: node i is NodeT<Model, endpoint, Quant>(models[i],
/// endpoint i, graph, options, quantizer). Without a graph, the complete graph on n nodes
/// (the allreduce-based nodes only use it for n).
template <template <class, class, class> class NodeT, class Model, class Options,
          class Quant = swarmsgd::identity_quantizer<swarmsgd::model_value_t<Model>>>
struct node_fixture {
    using node = NodeT<Model, swarmsgd::simulated_network::endpoint, Quant>;
    node_fixture(swarmsgd::topology g, std::vector<Model> initial, const Options& o,
                 std::size_t max_delay = 2, std::uint64_t seed = 1, Quant q = Quant{})
        : world(initial.size(), max_delay, seed), graph(std::move(g)), models(std::move(initial)) {
        for (std::size_t i = 0; i < models.size(); ++i)
            nodes.emplace_back(models[i], world.endpoints[i], graph, o, q);
    }
    node_fixture(std::vector<Model> initial, const Options& o, std::size_t max_delay = 2,
                 std::uint64_t seed = 1, Quant q = Quant{})
        // `initial` is copied, not moved: the order in which the arguments are evaluated is
        // unspecified, and complete() needs its size.
        : node_fixture(swarmsgd::topology::complete(initial.size()), initial, o, max_delay, seed,
                       std::move(q)) {}
    sim_world world;
    swarmsgd::topology graph;
    std::vector<Model> models;
    std::vector<node> nodes;
};

/// Calls progress() on every node (in an order shuffled every tick when `r` is given) until
/// all return true; throws after `max_ticks` ticks.
template <class Node>
void complete_all(std::vector<Node>& nodes, sim_world& w, swarmsgd::rng* r = nullptr,
                  std::size_t max_ticks = 100000) {
    for (std::size_t t = 0; t < max_ticks; ++t) {
        if (r != nullptr) w.shuffle(*r);
        bool all = true;
        for (std::size_t i : w.order) all = nodes[i].progress() && all;
        if (all) return;
        w.tick();
    }
    throw std::runtime_error("complete_all: the nodes did not complete within the tick limit");
}

/// One synchronous step of every node: begin_step(grads[i]) on each, then complete_all.
template <class Node, class V>
void step_all(std::vector<Node>& nodes, sim_world& w, const std::vector<std::vector<V>>& grads,
              swarmsgd::rng* r = nullptr) {
    for (std::size_t i = 0; i < nodes.size(); ++i)
        nodes[i].begin_step(std::span<const V>(grads[i]));
    complete_all(nodes, w, r);
}

/// A message with a valid envelope and `payload` after it.
inline std::vector<std::byte> forge(swarmsgd::message_kind kind, std::uint32_t sender,
                                    std::uint64_t interaction,
                                    std::span<const std::byte> payload = {}) {
    std::vector<std::byte> bytes(swarmsgd::envelope_size + payload.size());
    swarmsgd::write_envelope(
        bytes, {kind, sender, interaction, static_cast<std::uint32_t>(payload.size()), 0});
    if (!payload.empty())
        std::memcpy(bytes.data() + swarmsgd::envelope_size, payload.data(), payload.size());
    return bytes;
}

/// The identity quantizer's payload of `values`.
template <class V>
std::vector<std::byte> identity_payload(std::span<const V> values) {
    std::vector<std::byte> p(swarmsgd::payload_header_size + values.size() * sizeof(V));
    swarmsgd::write_payload_header(p, {1, sizeof(V), values.size()});
    if (!values.empty())
        std::memcpy(p.data() + swarmsgd::payload_header_size, values.data(),
                    values.size() * sizeof(V));
    return p;
}

using test_support::contains;
using test_support::what_of;

/// Whether two vectors are equal bit for bit.
template <class V>
bool same_bits(const std::vector<V>& a, const std::vector<V>& b) {
    return a.size() == b.size() &&
           (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(V)) == 0);
}

}  // namespace test_support::baselines
