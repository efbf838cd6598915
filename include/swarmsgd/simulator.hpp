#pragma once
/// \file simulator.hpp
/// A deterministic single-threaded simulator of a swarm, for research at any n (thousands of
/// nodes with a small model). Two schedules:
/// - `sequential`: the paper's Algorithm 1. Each tick picks one edge (i, j) of the graph
///   uniformly at random; i and j each run their local steps (H_i, H_j drawn from the
///   local-step policy), then average: X_i = X_j = (X_i + X_j) / 2 (through the quantizer).
/// - `asynchronous`: each tick one node, drawn with probability proportional to its speed,
///   takes one local step and serves its inbox; interactions start when its local-step policy
///   says so, and messages spend a random number of ticks in transit, so snapshots are stale
///   and requests cross, as on a real cluster.
/// Same seed, same options: bit-identical models.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint.hpp"
#include "communicators/simulated.hpp"
#include "consensus.hpp"
#include "detail/type_checks.hpp"
#include "errors.hpp"
#include "model.hpp"
#include "problem.hpp"
#include "quantizers/identity.hpp"
#include "random.hpp"
#include "swarm_node.hpp"
#include "topology.hpp"

namespace swarmsgd {

/// Which model of time the simulator runs.
enum class simulation_schedule {
    sequential,    ///< the paper's sequential model: one random edge per tick, both average
    asynchronous,  ///< one node step per tick, messages delayed, non-blocking averaging
};

/// A crash in a simulation: node `node` stops for good before tick `tick` (see
/// simulator_options::kills).
struct simulated_kill {
    std::uint64_t tick = 0;  ///< the tick before which the node dies
    std::size_t node = 0;    ///< the node that dies
};

/// Options of a simulation.
struct simulator_options {
    swarm_options node;  ///< every node's options (node.seed also seeds the simulator)
    simulation_schedule schedule = simulation_schedule::sequential;  ///< model of time
    /// asynchronous: relative speed of each node (empty = all 1); a straggler 10x slower than
    /// the rest has speed 0.1.
    std::vector<double> speeds;
    /// asynchronous: fewest ticks a message spends in transit (must be 0 when sequential)
    std::size_t min_delay = 0;
    /// asynchronous: most ticks a message spends in transit (must be 0 when sequential)
    std::size_t max_delay = 0;
    /// Crashes to simulate (needs node.failure == failure_policy::exclude). Before its tick a
    /// killed node stops: it takes no more steps, the network drops its inbox and every
    /// message sent to it (simulated_network::disconnect; what it sent before stays in
    /// transit), and the network reports it dead to its neighbours (swarm_node::exclude_peer),
    /// which tell every other node by message. The survivors train on, and the run is as
    /// bit-reproducible as one without kills. At least one node must survive.
    std::vector<simulated_kill> kills;
};

/// Simulates `models.size()` nodes training `problem` on `graph`.
template <class Model, class Problem, class Quant = typename detail::default_quantizer<Model>::type>
class simulator {
    static_assert(detail::check_model<Model>());
    static_assert(detail::check_quantizer<Model, Quant>());

public:
    using value_type = model_value_t<Model>;                         ///< float or double
    static_assert(!any_model<Model> || problem_for<Problem, Model>,  // else check_model reported
                  "swarmsgd: the Problem type needs a member "
                  "`double gradient(std::size_t node, const Model& x, std::span<value_type> grad, "
                  "swarmsgd::rng& random)`; see problem.hpp");
    using node_type = swarm_node<Model, simulated_network::endpoint, Quant>;  ///< one node

    /// Sets up one node per model. The models must all have the same size; `graph` must have
    /// `models.size()` nodes. Models, graph and problem must outlive the simulator.
    simulator(std::vector<Model>& models, const topology& graph, Problem& problem,
              simulator_options options, Quant quantizer = Quant{})
        : models_(&models),
          graph_(&graph),
          problem_(&problem),
          options_(std::move(options)),
          network_(models.size() == 0 ? 1 : models.size(), options_.min_delay, options_.max_delay,
                   options_.node.seed),
          random_(options_.node.seed, 0xA11CE) {
        using detail::require;
        const std::size_t n = models.size();
        require<invalid_argument_error>(n >= 1, "simulator: no models (n = 0)");
        require<topology_error>(graph.size() == n, "simulator: topology has ", graph.size(),
                                " nodes but there are ", n, " models");
        const std::size_t size = model_size(models[0]);
        for (std::size_t i = 1; i < n; ++i)
            require<size_mismatch_error>(model_size(models[i]) == size, "simulator: node ", i,
                                         " has a model of ", model_size(models[i]),
                                         " elements, node 0 has ", size);
        if (options_.speeds.empty()) options_.speeds.assign(n, 1.0);
        require<invalid_argument_error>(options_.speeds.size() == n,
                                        "simulator: ", options_.speeds.size(), " speeds for ", n,
                                        " nodes");
        double total = 0;
        for (std::size_t i = 0; i < n; ++i) {
            require<invalid_argument_error>(options_.speeds[i] > 0 && options_.speeds[i] < 1e300,
                                            "simulator: speed of node ", i, " is ",
                                            options_.speeds[i], "; it must be > 0 and finite");
            total += options_.speeds[i];
            cumulative_speed_.push_back(total);
        }
        // The sequential schedule is blocking by construction (nothing happens between a request
        // and its reply); the asynchronous one has no second thread to wait for.
        swarm_options node_options = options_.node;
        if (options_.schedule == simulation_schedule::sequential) {
            require<invalid_argument_error>(
                options_.min_delay == 0 && options_.max_delay == 0,
                "simulator: message delays (min_delay = ", options_.min_delay,
                ", max_delay = ", options_.max_delay,
                ") need the asynchronous schedule; the sequential model "
                "averages each pair at once");
            if (node_options.mode == averaging_mode::blocking)
                node_options.mode = averaging_mode::nonblocking;
        } else {
            require<invalid_argument_error>(
                node_options.mode != averaging_mode::blocking,
                "simulator: averaging_mode::blocking needs concurrently running nodes; the "
                "sequential schedule is the blocking sequential model");
        }
        require<invalid_argument_error>(
            options_.kills.empty() || node_options.failure == failure_policy::exclude,
            "simulator: ", options_.kills.size(),
            " kills scheduled, but a node's death can only be survived with "
            "node.failure = failure_policy::exclude");
        std::vector<char> doomed(n, 0);
        for (const auto& k : options_.kills) {
            require<invalid_argument_error>(k.node < n, "simulator: kill of node ", k.node,
                                            " at tick ", k.tick, ", but n = ", n);
            require<invalid_argument_error>(doomed[k.node] == 0, "simulator: node ", k.node,
                                            " is killed twice");
            doomed[k.node] = 1;
        }
        require<invalid_argument_error>(options_.kills.size() < n, "simulator: all ", n,
                                        " nodes are killed; at least one must survive");
        std::stable_sort(
            options_.kills.begin(), options_.kills.end(),
            [](const simulated_kill& a, const simulated_kill& b) { return a.tick < b.tick; });
        endpoints_.reserve(n);
        nodes_.reserve(n);
        for (std::size_t i = 0; i < n; ++i) endpoints_.push_back(network_.endpoint_for(i));
        for (std::size_t i = 0; i < n; ++i) {
            nodes_.emplace_back(models[i], endpoints_[i], graph, node_options, quantizer);
            nodes_.back().set_auto_interact(options_.schedule == simulation_schedule::asynchronous);
            data_random_.emplace_back(options_.node.seed, n + i);
        }
        gradient_.assign(size, value_type(0));
        last_loss_.assign(n, 0.0);
    }

    /// Runs `ticks` ticks: interactions (sequential) or node activations (asynchronous).
    void run(std::size_t ticks) {
        for (std::size_t t = 0; t < ticks; ++t) {
            while (next_kill_ < options_.kills.size() && options_.kills[next_kill_].tick <= ticks_)
                kill(options_.kills[next_kill_++]);
            if (options_.schedule == simulation_schedule::sequential)
                sequential_tick();
            else
                asynchronous_tick();
        }
    }

    /// Asynchronous schedule: stops new interactions and delivers every message in transit
    /// until no interaction is in flight, so the models are final. No-op when sequential.
    void drain() {
        for (auto& node : nodes_) node.set_auto_interact(false);
        quiesce();
    }

    /// Saves the whole simulation into directory `dir` (created if needed): `node<i>.ckpt` for
    /// every node (swarm_node::save_checkpoint: model, optimizer, streams, counters, quantizer
    /// state, exclusions) and `simulator.ckpt` (the tick, the simulator's, the network's and
    /// the data streams, the last losses, the kills done), each written atomically. In the
    /// asynchronous schedule the messages in transit are first delivered (the clock advances
    /// as in drain(), and no interaction starts meanwhile), so a run that saves differs from
    /// one that does not; a run restored from the checkpoint continues bit for bit like the
    /// run that saved it. Host and device models alike.
    void save_checkpoint(const std::filesystem::path& dir) {
        quiesce();
        std::filesystem::create_directories(dir);
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            nodes_[i].save_checkpoint(node_file(dir, i));
        detail::checkpoint_writer w;
        w.put<std::uint64_t>(nodes_.size());
        w.put<std::uint64_t>(static_cast<std::uint64_t>(options_.schedule));
        w.put<std::uint64_t>(ticks_);
        w.put<std::uint64_t>(next_kill_);
        for (const auto word : random_.state()) w.put<std::uint64_t>(word);
        for (const auto& r : data_random_)
            for (const auto word : r.state()) w.put<std::uint64_t>(word);
        w.put_values<double>(last_loss_);
        network_.save_state(w);
        detail::write_checkpoint_file(dir / "simulator.ckpt", w.bytes());
    }

    /// Restores a simulation saved by save_checkpoint into a fresh simulator built with the same
    /// models' sizes, graph, problem, options (kills included) and quantizer. A missing,
    /// truncated, corrupt or foreign file is a checkpoint_error naming it and the mismatch;
    /// simulator.ckpt is checked first, then each node's file, and a node's restore changes
    /// nothing on error, but after an error in node i's file, nodes 0..i-1 are already
    /// restored: build a new simulator.
    void restore_checkpoint(const std::filesystem::path& dir) {
        detail::require<invalid_argument_error>(ticks_ == 0, "simulator: restore_checkpoint after ",
                                                ticks_,
                                                " ticks; restore into a freshly built simulator");
        const auto path = dir / "simulator.ckpt";
        const std::vector<std::byte> body = detail::read_checkpoint_file(path);
        detail::checkpoint_reader r(body, path.string());
        const auto expect = [&](const char* what, std::uint64_t found, std::uint64_t mine) {
            if (found != mine)
                throw checkpoint_error(detail::concat("checkpoint ", r.path(), ": ", what, " is ",
                                                      found, ", this simulator's is ", mine));
        };
        expect("the number of nodes", r.get<std::uint64_t>("the number of nodes"), nodes_.size());
        expect("the schedule", r.get<std::uint64_t>("the schedule"),
               static_cast<std::uint64_t>(options_.schedule));
        const auto ticks = r.get<std::uint64_t>("the tick");
        const auto next_kill = r.get<std::uint64_t>("the kills done");
        if (next_kill > options_.kills.size())
            throw checkpoint_error(detail::concat("checkpoint ", r.path(), ": ", next_kill,
                                                  " kills done, but this simulator schedules ",
                                                  options_.kills.size()));
        const auto stream = [&](const char* what) {
            std::array<std::uint64_t, 4> words{};
            for (auto& word : words) word = r.get<std::uint64_t>(what);
            return words;
        };
        const auto simulator_stream = stream("the simulator's stream");
        std::vector<std::array<std::uint64_t, 4>> data_streams;
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            data_streams.push_back(stream("a data stream"));
        auto losses = r.get_values<double>("the last losses", nodes_.size());
        const auto network = network_.read_state(r);
        r.expect_end();
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            nodes_[i].restore_checkpoint(node_file(dir, i));
        ticks_ = ticks;
        next_kill_ = static_cast<std::size_t>(next_kill);
        random_.set_state(simulator_stream);
        for (std::size_t i = 0; i < nodes_.size(); ++i) data_random_[i].set_state(data_streams[i]);
        last_loss_ = std::move(losses);
        network_.set_state(network);
    }

    /// Whether node i is alive (not killed yet).
    [[nodiscard]] bool alive(std::size_t i) const { return !network_.disconnected(i); }
    /// The network (messages in transit, dropped ones).
    [[nodiscard]] const simulated_network& network() const noexcept { return network_; }

    /// Number of nodes.
    [[nodiscard]] std::size_t size() const noexcept { return nodes_.size(); }
    /// Ticks run so far.
    [[nodiscard]] std::uint64_t ticks() const noexcept { return ticks_; }
    /// Node i.
    [[nodiscard]] node_type& node(std::size_t i) { return nodes_.at(i); }
    /// Loss node i reported at its last local step.
    [[nodiscard]] double last_loss(std::size_t i) const { return last_loss_.at(i); }
    /// Mean of the last losses over nodes.
    [[nodiscard]] double mean_loss() const {
        double s = 0;
        for (double l : last_loss_) s += l;
        return s / static_cast<double>(last_loss_.size());
    }
    /// Consensus distance Gamma = sum_i ||X_i - mu||^2.
    [[nodiscard]] double consensus_distance() const {
        return swarmsgd::consensus_distance(*models_);
    }
    /// The mean model mu (flat, double).
    [[nodiscard]] std::vector<double> mean_model() const { return swarmsgd::mean_model(*models_); }
    /// Totals over every node.
    [[nodiscard]] node_stats total_stats() const {
        node_stats total;
        for (const auto& node : nodes_) total += node.stats();
        return total;
    }

private:
    void local_step(std::size_t i) {
        last_loss_[i] = problem_->gradient(i, static_cast<const Model&>((*models_)[i]),
                                           std::span<value_type>(gradient_), data_random_[i]);
        nodes_[i].apply_gradient(gradient_);
        nodes_[i].after_local_step();
    }

    static std::filesystem::path node_file(const std::filesystem::path& dir, std::size_t i) {
        return dir / ("node" + std::to_string(i) + ".ckpt");
    }

    /// Delivers every message in transit, serving them on the live nodes (asynchronous: the
    /// clock advances; sequential: messages have no delay), until no interaction is in
    /// flight; starts none itself (drain() also stops the nodes from starting any).
    void quiesce() {
        while (network_.pending() != 0 || any_in_flight()) {
            if (options_.schedule == simulation_schedule::asynchronous) {
                network_.advance_to(network_.now() + 1);
                ++ticks_;
            }
            for (std::size_t i = 0; i < nodes_.size(); ++i)
                if (alive(i)) nodes_[i].poll();
        }
    }

    /// Kills k.node: disconnected, and reported dead to its live neighbours, which spread the
    /// news. In the sequential model, every message settles at once.
    void kill(const simulated_kill& k) {
        network_.disconnect(k.node);
        nodes_[k.node].forget_in_flight();  // it died with them (and can still be saved)
        const std::string reason = detail::concat("killed by the simulator's schedule at tick ",
                                                  ticks_, " (scheduled for tick ", k.tick, ")");
        for (std::size_t d = 0; d < graph_->degree(k.node); ++d) {
            const std::size_t j = graph_->neighbour(k.node, d);
            if (alive(j)) nodes_[j].exclude_peer(k.node, reason);
        }
        if (options_.schedule == simulation_schedule::sequential) quiesce();
    }

    void sequential_tick() {
        auto [i, j] = graph_->random_edge(random_);
        if (!alive(i) || !alive(j)) {
            // The drawn edge touches a dead node: its live end (if any) interacts with one of
            // its partners (live neighbours, or the nearest live nodes), drawn by the simulator.
            if (!alive(i)) std::swap(i, j);
            if (!alive(i)) {
                ++ticks_;  // both ends dead: an idle tick
                return;
            }
            const auto partners = nodes_[i].partners();
            if (partners.empty()) {
                ++ticks_;
                return;
            }
            j = partners[static_cast<std::size_t>(random_.uniform(partners.size()))];
        }
        for (std::size_t node : {i, j}) {
            const std::size_t h = options_.node.steps.draw(nodes_[node].random());
            for (std::size_t s = 0; s < h; ++s) local_step(node);
        }
        nodes_[i].initiate(j);
        // j answers and applies its half, i applies the reply; a recovered decode adds a
        // fixup from i to j. Nothing else is in transit in the sequential model.
        while (network_.pending() != 0) {
            nodes_[j].poll();
            nodes_[i].poll();
        }
        ++ticks_;
    }

    void asynchronous_tick() {
        network_.advance_to(ticks_);
        const double u = random_.uniform01() * cumulative_speed_.back();
        const auto it = std::upper_bound(cumulative_speed_.begin(), cumulative_speed_.end(), u);
        const auto i = std::min<std::size_t>(
            static_cast<std::size_t>(it - cumulative_speed_.begin()), nodes_.size() - 1);
        if (alive(i)) local_step(i);  // a dead node's turn passes (the others keep their pace)
        ++ticks_;
    }

    bool any_in_flight() const {
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            if (alive(i) && nodes_[i].in_flight() != 0) return true;
        return false;
    }

    std::vector<Model>* models_;
    const topology* graph_;
    Problem* problem_;
    simulator_options options_;
    simulated_network network_;
    rng random_;
    std::vector<double> cumulative_speed_;
    std::vector<simulated_network::endpoint> endpoints_;
    std::vector<node_type> nodes_;
    std::vector<rng> data_random_;
    std::vector<value_type> gradient_;
    std::vector<double> last_loss_;
    std::uint64_t ticks_ = 0;
    std::size_t next_kill_ = 0;  // into options_.kills, sorted by tick
};

}  // namespace swarmsgd
