#pragma once
/// \file timed_simulator.hpp
/// A discrete-event simulator with a clock in seconds: n nodes of ANY training algorithm
/// (swarm_node, or a baseline of baselines/: every stepping_node) on one thread, each node
/// with its own clock, over a timed_network that charges every message its alpha-beta cost.
/// - A local step takes a time drawn from a compute_model: a mean, a jitter, a fixed set of
///   straggler nodes that are k times slower, and random pauses; on a core of its own, or
///   on cores the nodes share (processor sharing: compute_model::cores).
/// - At the end of its step a node computes its gradient (on its model, which nothing changes
///   while it computes: messages wait in its inbox, as on a node that polls between steps) and
///   calls begin_step; a node whose step is not complete (a synchronous algorithm waiting for
///   its peers) is blocked and calls progress() whenever a message reaches it. A node that has
///   finished its steps keeps answering (progress() on every delivery).
/// - Each node's time splits into computing, communicating (handling messages, and blocked time
///   that is not waiting) and waiting (blocked before the slowest node it depends on began the
///   same step: time lost to stragglers).
/// The production node code runs unchanged; the same seed, options and models give
/// bit-identical models and times.

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "communicators/timed.hpp"
#include "consensus.hpp"
#include "detail/processor_sharing.hpp"
#include "detail/type_checks.hpp"
#include "errors.hpp"
#include "model.hpp"
#include "problem.hpp"
#include "random.hpp"
#include "stepping_node.hpp"
#include "topology.hpp"

namespace swarmsgd {

/// How long a local step takes on each node.
struct compute_model {
    /// Mean seconds of one local step (forward, backward, optimizer) on a normal node.
    double step_seconds = 1.0;
    /// Relative jitter: each step takes step_seconds * (1 + jitter * u), u uniform in [-1, 1).
    double jitter = 0.0;
    /// Fraction of the nodes that are stragglers (a fixed set of round(fraction * n) nodes
    /// drawn from the seed).
    double straggler_fraction = 0.0;
    /// How many times slower a straggler computes (>= 1).
    double straggler_slowdown = 1.0;
    /// Each step of each node is followed, with this probability, by a pause.
    double pause_probability = 0.0;
    /// Seconds of such a pause.
    double pause_seconds = 0.0;
    /// Cores the nodes share. 0: a core per node (a step takes its drawn time). Otherwise
    /// processor sharing: while k nodes compute, each step progresses at min(1, cores / k)
    /// seconds of its drawn time per second (several ranks on one machine, e.g. 4 ranks on
    /// 2 cores). Only local steps use the cores; message handling is charged apart
    /// (network_model::local_seconds_per_byte).
    std::size_t cores = 0;

    /// Throws invalid_argument_error naming the offending value.
    void validate() const {
        using detail::require;
        require<invalid_argument_error>(std::isfinite(step_seconds) && step_seconds > 0,
                                        "compute_model: step_seconds = ", step_seconds,
                                        "; it must be finite and > 0");
        require<invalid_argument_error>(jitter >= 0 && jitter < 1,
                                        "compute_model: jitter = ", jitter,
                                        "; it must be in [0, 1)");
        require<invalid_argument_error>(straggler_fraction >= 0 && straggler_fraction <= 1,
                                        "compute_model: straggler_fraction = ", straggler_fraction,
                                        "; it must be in [0, 1]");
        require<invalid_argument_error>(
            std::isfinite(straggler_slowdown) && straggler_slowdown >= 1,
            "compute_model: straggler_slowdown = ", straggler_slowdown,
            "; it must be finite and >= 1");
        require<invalid_argument_error>(pause_probability >= 0 && pause_probability <= 1,
                                        "compute_model: pause_probability = ", pause_probability,
                                        "; it must be in [0, 1]");
        require<invalid_argument_error>(std::isfinite(pause_seconds) && pause_seconds >= 0,
                                        "compute_model: pause_seconds = ", pause_seconds,
                                        "; it must be finite and >= 0");
    }
};

/// Options of a timed simulation.
struct timed_options {
    compute_model compute;  ///< step times
    network_model network;  ///< message costs
    /// Seeds the step times, the straggler set and the nodes' data streams (node i's data
    /// stream is rng(seed, n + i), as in the other drivers).
    std::uint64_t seed = 0;
    /// For the waiting/communicating split of blocked time: the graph whose neighbours a node
    /// waits for (D-PSGD), or null when a node depends on every node (allreduce).
    const topology* wait_graph = nullptr;
};

/// Where one node's simulated time went.
struct timed_node_times {
    double computing = 0;      ///< local steps (pauses included)
    double communicating = 0;  ///< handling messages, and blocked time that is not waiting
    double waiting = 0;        ///< blocked before the last node it waits for began the step
    std::uint64_t steps = 0;   ///< completed local steps

    /// Total of the three.
    [[nodiscard]] double total() const noexcept { return computing + communicating + waiting; }
    /// (communicating + waiting) / total, 0 when nothing happened.
    [[nodiscard]] double sync_share() const noexcept {
        const double t = total();
        return t > 0 ? (communicating + waiting) / t : 0.0;
    }
};

/// When a run stops starting local steps (a node finishes the step it is in).
struct timed_budget {
    /// Steps each node may take (the synchronous algorithms need the same count everywhere).
    std::uint64_t steps_per_node = std::numeric_limits<std::uint64_t>::max();
    /// Steps all nodes together may start (an epoch budget for asynchronous algorithms, whose
    /// fast nodes take more steps than slow ones).
    std::uint64_t total_steps = std::numeric_limits<std::uint64_t>::max();
    /// No step starts at or after this simulated time.
    double seconds = std::numeric_limits<double>::infinity();
};

/// Simulates `models.size()` nodes, node i being `make_node(i, models[i], endpoint_i)`, training
/// `problem` in simulated time. Models and problem must outlive the simulator; it cannot move
/// (its nodes point into it).
template <class Model, class Problem, class Node>
class timed_simulator {
    static_assert(detail::check_model<Model>());

public:
    using value_type = model_value_t<Model>;        ///< float or double
    using endpoint_type = timed_network::endpoint;  ///< the communicator each node gets
    static_assert(!any_model<Model> || problem_for<Problem, Model>,  // else check_model reported
                  "swarmsgd: the Problem type needs a member "
                  "`double gradient(std::size_t node, const Model& x, std::span<value_type> grad, "
                  "swarmsgd::rng& random)`; see problem.hpp");
    static_assert(stepping_node<Node>,
                  "swarmsgd: make_node must return a stepping_node (value_type, rank(), "
                  "begin_step(grad), bool progress(), stats()); see stepping_node.hpp");

    /// Builds node i with `make_node(i, models[i], endpoint)` (an `endpoint_type&` that lives as
    /// long as the simulator). All models must have the same size.
    template <class MakeNode>
    timed_simulator(std::vector<Model>& models, Problem& problem, timed_options options,
                    MakeNode&& make_node)
        : models_(&models),
          problem_(&problem),
          options_(std::move(options)),
          network_(std::make_unique<timed_network>(models.empty() ? 1 : models.size(),
                                                   options_.network)) {
        using detail::require;
        const std::size_t n = models.size();
        require<invalid_argument_error>(n >= 1, "timed_simulator: no models (n = 0)");
        options_.compute.validate();
        if (options_.wait_graph != nullptr)
            require<topology_error>(options_.wait_graph->size() == n,
                                    "timed_simulator: wait_graph has ", options_.wait_graph->size(),
                                    " nodes but there are ", n, " models");
        const std::size_t size = model_size(models[0]);
        for (std::size_t i = 1; i < n; ++i)
            require<size_mismatch_error>(model_size(models[i]) == size, "timed_simulator: node ", i,
                                         " has a model of ", model_size(models[i]),
                                         " elements, node 0 has ", size);
        endpoints_.reserve(n);
        for (std::size_t i = 0; i < n; ++i) endpoints_.push_back(network_->endpoint_for(i));
        nodes_.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            nodes_.push_back(make_node(i, models[i], endpoints_[i]));
            data_random_.emplace_back(options_.seed, n + i);
            compute_random_.emplace_back(options_.seed, 3 * n + i);
        }
        state_.resize(n);
        times_.resize(n);
        slowdown_.assign(n, 1.0);
        // The straggler set: the first round(fraction * n) nodes of a seeded permutation.
        const auto stragglers = static_cast<std::size_t>(
            std::llround(options_.compute.straggler_fraction * static_cast<double>(n)));
        std::vector<std::size_t> order(n);
        for (std::size_t i = 0; i < n; ++i) order[i] = i;
        rng pick(options_.seed, 0x57A6);
        for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[pick.uniform(i)]);
        for (std::size_t k = 0; k < stragglers; ++k)
            slowdown_[order[k]] = options_.compute.straggler_slowdown;
        gradient_.assign(size, value_type(0));
        last_loss_.assign(n, 0.0);
        cpu_ = detail::processor_sharing(options_.compute.cores);
    }

    timed_simulator(const timed_simulator&) = delete;
    timed_simulator& operator=(const timed_simulator&) = delete;
    timed_simulator(timed_simulator&&) = delete;
    timed_simulator& operator=(timed_simulator&&) = delete;
    ~timed_simulator() = default;

    /// Runs until no node may start a step under `budget` and every node's step is complete,
    /// then delivers what is still in transit (answering it), so nothing is left in flight.
    /// `observer(*this)` is called after every completed local step (evaluate the mean model
    /// there, say). Throws error when nodes are left blocked with nothing in transit (a
    /// synchronous algorithm whose nodes were given different step counts).
    template <class Observer>
    void run(const timed_budget& budget, Observer&& observer) {
        budget_ = budget;
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            if (state_[i].phase == node_phase::idle)
                try_start(i, std::max(now_, state_[i].free_at));
        while (true) {
            const double next_compute = cpu_.next_event();
            const double next_message = network_->next_event();
            if (std::isinf(next_compute) && std::isinf(next_message)) break;
            if (next_message <= next_compute) {
                const auto i = network_->advance();
                now_ = network_->now();
                if (i) on_message(*i);
            } else {
                now_ = next_compute;
                network_->set_now(now_);
                if (const auto done = cpu_.advance()) {
                    times_[done->node].computing += done->seconds;
                    end_compute(done->node);
                }
            }
            while (!completed_.empty()) {
                const std::size_t i = completed_.back();
                completed_.pop_back();
                observer(static_cast<const timed_simulator&>(*this));
                try_start(i, state_[i].free_at);
            }
        }
        std::vector<std::size_t> blocked;
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            if (state_[i].phase == node_phase::blocked) blocked.push_back(i);
        if (!blocked.empty())
            throw error(detail::concat(
                "timed_simulator: at ", now_, " s ", blocked.size(), " node(s) (first: node ",
                blocked.front(), ") wait in step ", times_[blocked.front()].steps + 1,
                " with nothing in transit; a synchronous algorithm needs every node to take the "
                "same number of steps"));
    }

    /// run() without an observer.
    void run(const timed_budget& budget) {
        run(budget, [](const timed_simulator&) {});
    }

    /// Number of nodes.
    [[nodiscard]] std::size_t size() const noexcept { return nodes_.size(); }
    /// Simulated seconds so far.
    [[nodiscard]] double now() const noexcept { return now_; }
    /// Local steps completed by all nodes together.
    [[nodiscard]] std::uint64_t completed_steps() const noexcept { return completed_total_; }
    /// Node i.
    [[nodiscard]] Node& node(std::size_t i) { return nodes_.at(i); }
    /// Node i (read-only).
    [[nodiscard]] const Node& node(std::size_t i) const { return nodes_.at(i); }
    /// The models (node i trains models[i]).
    [[nodiscard]] const std::vector<Model>& models() const noexcept { return *models_; }
    /// Where node i's time went.
    [[nodiscard]] const timed_node_times& times(std::size_t i) const { return times_.at(i); }
    /// Sum over the nodes of where their time went.
    [[nodiscard]] timed_node_times total_times() const {
        timed_node_times t;
        for (const auto& x : times_) {
            t.computing += x.computing;
            t.communicating += x.communicating;
            t.waiting += x.waiting;
            t.steps += x.steps;
        }
        return t;
    }
    /// How many times slower than a normal node node i computes (1 unless a straggler).
    [[nodiscard]] double slowdown(std::size_t i) const { return slowdown_.at(i); }
    /// The network (bytes sent per node, cost model).
    [[nodiscard]] const timed_network& network() const noexcept { return *network_; }
    /// Loss node i reported at its last step.
    [[nodiscard]] double last_loss(std::size_t i) const { return last_loss_.at(i); }
    /// Mean of the last losses over the nodes.
    [[nodiscard]] double mean_loss() const {
        double s = 0;
        for (double l : last_loss_) s += l;
        return s / static_cast<double>(last_loss_.size());
    }
    /// The mean model (flat, double).
    [[nodiscard]] std::vector<double> mean_model() const { return swarmsgd::mean_model(*models_); }
    /// Consensus distance Gamma = sum_i ||X_i - mu||^2.
    [[nodiscard]] double consensus_distance() const {
        return swarmsgd::consensus_distance(*models_);
    }

private:
    enum class node_phase : std::uint8_t { idle, computing, blocked };
    struct node_state {
        node_phase phase = node_phase::idle;
        double free_at = 0;  // the node is busy handling messages until then
        std::uint64_t started = 0;
        /// When the node began its exchange for step k (the end of its compute), for the last
        /// few k (k % 4); the current step's is began[steps % 4].
        std::array<double, 4> began{};
    };

    double draw_step_seconds(std::size_t i) {
        const auto& c = options_.compute;
        rng& r = compute_random_[i];
        double t = c.step_seconds * slowdown_[i];
        if (c.jitter > 0) t *= 1.0 + c.jitter * (2.0 * r.uniform01() - 1.0);
        if (c.pause_probability > 0 && r.uniform01() < c.pause_probability) t += c.pause_seconds;
        return t;
    }

    void try_start(std::size_t i, double t) {
        auto& s = state_[i];
        if (s.started >= budget_.steps_per_node || started_total_ >= budget_.total_steps ||
            t >= budget_.seconds) {
            s.phase = node_phase::idle;
            return;
        }
        ++s.started;
        ++started_total_;
        s.phase = node_phase::computing;
        cpu_.start(i, t, draw_step_seconds(i));
    }

    std::uint64_t handled_bytes(std::size_t i) const {
        const auto& st = nodes_[i].stats();
        return st.bytes_sent + st.bytes_received;
    }

    /// Charges node i the local cost of the bytes it handled since `before`, from `now_` on.
    void charge_local(std::size_t i, std::uint64_t before) {
        const double cost = static_cast<double>(handled_bytes(i) - before) *
                            options_.network.local_seconds_per_byte;
        auto& s = state_[i];
        s.free_at = std::max(s.free_at, now_) + cost;
        times_[i].communicating += cost;
    }

    void end_compute(std::size_t i) {
        auto& s = state_[i];
        last_loss_[i] = problem_->gradient(i, static_cast<const Model&>((*models_)[i]),
                                           std::span<value_type>(gradient_), data_random_[i]);
        s.began[times_[i].steps % 4] = now_;
        const auto before = handled_bytes(i);
        nodes_[i].begin_step(std::span<const value_type>(gradient_));
        const bool done = nodes_[i].progress();
        charge_local(i, before);
        if (done)
            complete(i);
        else
            s.phase = node_phase::blocked;
    }

    void on_message(std::size_t i) {
        auto& s = state_[i];
        if (s.phase == node_phase::computing) return;  // handled when its step ends
        const auto before = handled_bytes(i);
        const bool done = nodes_[i].progress();
        charge_local(i, before);
        if (s.phase == node_phase::blocked && done) complete(i);
    }

    /// Node i's step is complete at now_ (plus what it still has to handle).
    void complete(std::size_t i) {
        auto& s = state_[i];
        auto& t = times_[i];
        const double end = std::max(now_, s.free_at);
        s.free_at = end;
        const double began = s.began[t.steps % 4];
        const double blocked = now_ - began;  // local handling is charged already
        if (blocked > 0) {
            const double last_begin = latest_begin(i, t.steps);
            const double waiting = std::clamp(last_begin - began, 0.0, blocked);
            t.waiting += waiting;
            t.communicating += blocked - waiting;
        }
        ++t.steps;
        ++completed_total_;
        s.phase = node_phase::idle;
        completed_.push_back(i);
    }

    /// The latest time a node that i waits for began step k (i itself included).
    double latest_begin(std::size_t i, std::uint64_t k) const {
        double latest = state_[i].began[k % 4];
        const auto consider = [&](std::size_t j) {
            // j began step k if it completed it, or is blocked in it; the synchronous
            // algorithms keep j within a step or two of i, so began[k % 4] is still step k's.
            const std::uint64_t done = times_[j].steps;
            const bool began = done > k || (done == k && state_[j].phase == node_phase::blocked);
            if (began && done <= k + 3) latest = std::max(latest, state_[j].began[k % 4]);
        };
        if (options_.wait_graph != nullptr) {
            const topology& g = *options_.wait_graph;
            for (std::size_t k2 = 0, d = g.degree(i); k2 < d; ++k2) consider(g.neighbour(i, k2));
        } else {
            for (std::size_t j = 0; j < nodes_.size(); ++j) consider(j);
        }
        return latest;
    }

    std::vector<Model>* models_;
    Problem* problem_;
    timed_options options_;
    std::unique_ptr<timed_network> network_;
    std::vector<endpoint_type> endpoints_;
    std::vector<Node> nodes_;
    std::vector<rng> data_random_;
    std::vector<rng> compute_random_;
    std::vector<node_state> state_;
    std::vector<timed_node_times> times_;
    std::vector<double> slowdown_;
    std::vector<value_type> gradient_;
    std::vector<double> last_loss_;
    detail::processor_sharing cpu_;  // the local steps in progress
    std::vector<std::size_t> completed_;
    timed_budget budget_;
    double now_ = 0;
    std::uint64_t started_total_ = 0;
    std::uint64_t completed_total_ = 0;
};

/// Deduces Node from the factory: `timed_simulator sim(models, problem, options, make_node);`.
template <class Model, class Problem, class MakeNode>
timed_simulator(std::vector<Model>&, Problem&, timed_options, MakeNode&&) -> timed_simulator<
    Model, Problem, std::invoke_result_t<MakeNode&, std::size_t, Model&, timed_network::endpoint&>>;

}  // namespace swarmsgd
