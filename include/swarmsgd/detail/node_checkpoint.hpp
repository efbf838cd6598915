#pragma once
/// \file detail/node_checkpoint.hpp
/// What a swarm_node's checkpoint holds, in order (the file around it: checkpoint.hpp):
///   u64 rank | u64 swarm size | the 8 u64 of swarm_agreement (wire format, model size, value
///   size, mode, failure policy, quantizer id, quantizer layout, topology fingerprint) |
///   the model (u64 n, n values) | optimizer: u64 steps, f64 last rate, momentum (u64 n,
///   values) | the random stream (4 u64) | u64 local steps since the last interaction, u64
///   local steps due, u64 next interaction id | node_stats, field by field |
///   the quantizer's state (u64 bytes, bytes; empty unless stateful_quantizer) |
///   u64 excluded peers, per peer: u64 rank, u64 decided by, the reason (u64 bytes, UTF-8)

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "../agreement.hpp"
#include "../checkpoint.hpp"
#include "../errors.hpp"
#include "../model.hpp"
#include "../node_stats.hpp"
#include "../peer_exclusion.hpp"
#include "../quantizer.hpp"
#include "../random.hpp"
#include "../sgd.hpp"

namespace swarmsgd::detail {

/// A node's state, by reference (swarm_node::checkpoint_view). `Memory` is the node's memory
/// back end (detail/node_memory.hpp): its optimizer_type is sgd<V> (host models) or
/// system_sgd<V, S> (<swarmsgd/thrust.hpp>), with steps(), last_rate(), velocity() (a host
/// span or a host copy) and restore(steps, last_rate, host values); it saves the quantizer's
/// state (part of which may live in the back end: error feedback's residual on a device) and
/// adopts a restored one.
template <class Model, class Quant, class Memory>
struct node_state {
    using Optimizer = typename Memory::optimizer_type;  ///< the local optimizer
    std::uint64_t rank;                                 ///< this node
    std::uint64_t nodes;                                ///< swarm size
    swarm_agreement agreement;                ///< what identifies the swarm's configuration
    Model& model;                             ///< the model
    Optimizer& optimizer;                     ///< the local optimizer
    rng& random;                              ///< the node's random stream
    std::size_t& since_last;                  ///< local steps since the last interaction
    std::size_t& due;                         ///< local steps due before the next one
    std::uint64_t& next_interaction;          ///< the next interaction id
    node_stats& stats;                        ///< statistics
    Quant& quantizer;                         ///< the quantizer (its adaptive state)
    Memory& memory;                           ///< the memory back end
    std::vector<peer_exclusion>& exclusions;  ///< failure_policy::exclude: who is excluded
};

/// The model's values on the host: gathered from host memory, or copied from a system model.
template <class Model>
void model_to_host(const Model& m, std::span<model_value_t<Model>> out) {
    if constexpr (system_model<Model>)
        to_host(m, out);
    else
        gather(m, out);
}

/// The inverse of model_to_host.
template <class Model>
void model_from_host(std::span<const model_value_t<Model>> in, Model& m) {
    if constexpr (system_model<Model>)
        from_host(in, m);
    else
        scatter(in, m);
}

/// Writes `s` to `path` (atomically, checkpoint.hpp).
template <class Model, class Quant, class Memory>
void save_node_checkpoint(const std::filesystem::path& path,
                          const node_state<Model, Quant, Memory>& s) {
    using V = model_value_t<Model>;
    checkpoint_writer w;
    w.put<std::uint64_t>(s.rank);
    w.put<std::uint64_t>(s.nodes);
    for (const auto v : s.agreement.values()) w.put<std::uint64_t>(v);
    std::vector<V> x(model_size(s.model));
    model_to_host(s.model, std::span<V>(x));
    w.put_values<V>(x);
    w.put<std::uint64_t>(s.optimizer.steps());
    w.put<double>(s.optimizer.last_rate());
    const auto& velocity = s.optimizer.velocity();
    w.put_values<V>(std::span<const V>(velocity.data(), velocity.size()));
    for (const auto word : s.random.state()) w.put<std::uint64_t>(word);
    w.put<std::uint64_t>(s.since_last);
    w.put<std::uint64_t>(s.due);
    w.put<std::uint64_t>(s.next_interaction);
    node_stats::for_each_field([&](const char*, auto value) { w.put(value); }, s.stats);
    std::vector<std::byte> quantizer_state;
    s.memory.save_quantizer_state(s.quantizer, quantizer_state);
    w.put_values<std::byte>(quantizer_state);
    w.put<std::uint64_t>(s.exclusions.size());
    for (const auto& x : s.exclusions) {
        w.put<std::uint64_t>(x.peer);
        w.put<std::uint64_t>(x.decided_by);
        w.put_values<std::byte>(std::as_bytes(std::span(x.reason.data(), x.reason.size())));
    }
    write_checkpoint_file(path, w.bytes());
}

/// Reads `path` into `s`: everything is read and checked first (checkpoint_error naming the
/// file and the field), then applied, so `s` is unchanged on any error.
template <class Model, class Quant, class Memory>
void restore_node_checkpoint(const std::filesystem::path& path,
                             const node_state<Model, Quant, Memory>& s) {
    using V = model_value_t<Model>;
    const std::vector<std::byte> body = read_checkpoint_file(path);
    checkpoint_reader r(body, path.string());
    const auto expect = [&](const char* what, std::uint64_t found, std::uint64_t mine) {
        if (found != mine)
            throw checkpoint_error(concat("checkpoint ", r.path(), ": ", what, " is ", found,
                                          ", this node's is ", mine,
                                          "; it is another node's checkpoint"));
    };
    expect("the rank", r.get<std::uint64_t>("the rank"), s.rank);
    expect("the swarm size", r.get<std::uint64_t>("the swarm size"), s.nodes);
    const auto mine = s.agreement.values();
    for (std::size_t f = 0; f < swarm_agreement::fields; ++f)
        expect(swarm_agreement::names[f], r.get<std::uint64_t>(swarm_agreement::names[f]), mine[f]);
    const auto x = r.get_values<V>("the model", model_size(s.model));
    const auto steps = r.get<std::uint64_t>("the optimizer's steps");
    const auto last_rate = r.get<double>("the optimizer's last rate");
    const auto velocity = r.get_values<V>("the momentum buffer", s.optimizer.velocity().size());
    std::array<std::uint64_t, 4> words{};
    for (auto& word : words) word = r.get<std::uint64_t>("the random stream");
    const auto since_last = r.get<std::uint64_t>("the local-step counter");
    const auto due = r.get<std::uint64_t>("the local steps due");
    const auto next_interaction = r.get<std::uint64_t>("the next interaction id");
    node_stats stats;
    node_stats::for_each_field(
        [&](const char* name, auto& field) {
            field = r.get<std::remove_reference_t<decltype(field)>>(name);
        },
        stats);
    const auto quantizer_state = r.get_bytes("the quantizer state");
    const auto excluded_count = r.get<std::uint64_t>("the number of excluded peers");
    if (excluded_count >= s.nodes)
        throw checkpoint_error(concat("checkpoint ", r.path(), ": ", excluded_count,
                                      " excluded peers in a swarm of ", s.nodes));
    std::vector<peer_exclusion> exclusions;
    for (std::uint64_t k = 0; k < excluded_count; ++k) {
        peer_exclusion x;
        x.peer = r.get<std::uint64_t>("an excluded peer");
        x.decided_by = r.get<std::uint64_t>("who excluded a peer");
        const auto reason = r.get_bytes("why a peer was excluded");
        if (x.peer >= s.nodes || x.peer == s.rank || x.decided_by >= s.nodes)
            throw checkpoint_error(concat("checkpoint ", r.path(), ": excluded peer ", x.peer,
                                          " (decided by ", x.decided_by, ") in a swarm of ",
                                          s.nodes, " seen by node ", s.rank));
        x.reason.assign(reinterpret_cast<const char*>(reason.data()), reason.size());
        exclusions.push_back(std::move(x));
    }
    r.expect_end();
    Quant quantizer = s.quantizer;
    if constexpr (stateful_quantizer<Quant>) {
        try {
            quantizer.load_state(quantizer_state);
        } catch (const error& e) {
            throw checkpoint_error(concat("checkpoint ", r.path(), ": ", e.what()));
        }
    } else if (!quantizer_state.empty()) {
        throw checkpoint_error(concat("checkpoint ", r.path(), " holds ", quantizer_state.size(),
                                      " bytes of quantizer state; ", s.quantizer.name(),
                                      " has none"));
    }
    // Everything is read and checked: apply it.
    model_from_host(std::span<const V>(x), s.model);
    s.optimizer.restore(steps, last_rate, velocity);
    s.random.set_state(words);
    s.since_last = since_last;
    s.due = due;
    s.next_interaction = next_interaction;
    s.stats = stats;
    s.quantizer = std::move(quantizer);
    s.memory.adopt_quantizer_state(s.quantizer);
    s.exclusions = std::move(exclusions);
}

}  // namespace swarmsgd::detail
