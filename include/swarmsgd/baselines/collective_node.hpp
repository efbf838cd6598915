#pragma once
/// \file baselines/collective_node.hpp
/// What the baselines built on an allreduce (allreduce_sgd_node, local_sgd_node) share: the
/// binding to model, communicator and topology, the ring_allreduce engine, the statistics and
/// the stepping_node interface with its blocking step() and finish(). Internal (namespace
/// swarmsgd::detail); the algorithm is a small policy, the derived class:
/// - `void start_step(std::span<const value_type> grad)`: the algorithm's part of begin_step,
///   called after the gradient was checked; it sets `busy_` when it started the engine;
/// - `void complete()`: called once the engine's round is complete;
/// - `static constexpr const char* algorithm`: its name, for messages.

#include <chrono>
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "../model.hpp"
#include "../node_stats.hpp"
#include "../sgd.hpp"
#include "../topology.hpp"
#include "baseline_memory.hpp"
#include "common.hpp"
#include "ring_allreduce.hpp"

namespace swarmsgd::detail {

/// Base of allreduce_sgd_node and local_sgd_node (CRTP over the algorithm `Derived`).
/// `Options` has sgd, timeout, shutdown_timeout, use_native_collective, seed and validate().
template <class Derived, class Model, class Comm, class Quant, class Options>
class collective_node {
    static_assert(check_baseline_types<Model, Comm, Quant>());

public:
    using value_type = model_value_t<Model>;  ///< float or double
    /// The allreduce engine.
    using engine_type = ring_allreduce<value_type, Comm, Quant>;

    /// Rank of this node.
    [[nodiscard]] std::size_t rank() const { return comm_->rank(); }
    /// Number of model elements.
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// The model this node trains.
    [[nodiscard]] Model& model() noexcept { return *model_; }
    /// The options in force.
    [[nodiscard]] const Options& options() const noexcept { return options_; }
    /// The topology given at construction (it only fixes the number of nodes: the ring runs
    /// over the ranks).
    [[nodiscard]] const topology& graph() const noexcept { return *graph_; }
    /// The allreduce engine (position, whether it runs the native collective, ...).
    [[nodiscard]] const engine_type& engine() const noexcept { return engine_; }
    /// Counters and times: local_steps = optimizer steps, interactions_initiated / _completed
    /// = allreduce rounds begun / completed, messages and bytes of the ring (the traffic of a
    /// native allreduce is not visible to the library), seconds_averaging = wall time in
    /// exchanges (waits included), seconds_optimizer, seconds_shutdown.
    [[nodiscard]] const node_stats& stats() const noexcept { return stats_; }
    /// Whether a step is in progress (begun, its allreduce not complete).
    [[nodiscard]] bool busy() const noexcept { return busy_; }

    /// Starts a step with the stochastic gradient `grad` (flat, model order, computed at the
    /// current model). Throws size_mismatch_error or non_finite_error (nothing sent, model
    /// unchanged) for a bad gradient, and invalid_argument_error when the previous step is not
    /// complete.
    void begin_step(std::span<const value_type> grad) {
        const auto start = baseline_clock::now();
        begin(grad);
        advance();
        account(start);
    }

    /// Handles what has arrived and sends what is due; never blocks. True once the current
    /// step is complete (and when none is in progress).
    bool progress() {
        const auto start = baseline_clock::now();
        const bool done = advance();
        account(start);
        return done;
    }

    /// Blocking step: begin_step(grad), then progress() until complete, sleeping in the
    /// communicator meanwhile. Throws peer_timeout_error naming the awaited peer, the round and
    /// the hop when nothing arrived within options().timeout.
    void step(std::span<const value_type> grad) {
        const auto start = baseline_clock::now();
        begin(grad);
        wait();
        account(start);
    }

    /// Blocks until the step begun by begin_step() is complete (returns at once when none is
    /// in progress), sleeping in the communicator meanwhile; throws peer_timeout_error as
    /// step() does. begin_step() then complete_step() is step(), with room in between for the
    /// caller's own work or timing (a driver that reports its time spent waiting apart).
    void complete_step() {
        if (!busy_) return;
        const auto start = baseline_clock::now();
        wait();
        account(start);
    }

    /// Shutdown: completes a step in progress (bounded by timeout), waits until this node's
    /// sends have completed, announces that it is done and waits until every node is, within
    /// shutdown_timeout (peer_timeout_error otherwise). Throws message_error when a peer sent
    /// messages of a round this node never started (the nodes took different numbers of
    /// steps).
    void finish() {
        const auto start = baseline_clock::now();
        if (busy_) wait();
        finish_synchronous(
            *comm_, rank(), Derived::algorithm, options_.shutdown_timeout, [&] { engine_.poll(); },
            [&] { return engine_.pending_destination(); });
        sync_traffic();
        require<message_error>(engine_.queued() == 0, "node ", rank(), " (", Derived::algorithm,
                               ") finished after ", stats_.local_steps, " steps but holds ",
                               engine_.queued(),
                               " collective messages of a later round: every node must take the "
                               "same number of steps");
        stats_.seconds_shutdown += seconds_since(start);
    }

protected:
    collective_node(Model& model, Comm& comm, const topology& graph, const Options& options,
                    Quant quantizer)
        : model_(&model),
          comm_(&comm),
          graph_(&graph),
          options_((options.validate(), options)),
          size_(model_size(model)),
          memory_(size_),
          optimizer_(options_.sgd, size_),
          engine_(comm, std::move(quantizer), options_.seed, options_.use_native_collective),
          buffer_(size_) {
        require<topology_error>(graph.size() == comm.size(), "node ", comm.rank(),
                                ": topology has ", graph.size(), " nodes but the communicator has ",
                                comm.size());
        // Communicators that can (MPI) check that every node has a model of the same size
        // (collective), so a mismatch is reported on every node at once.
        if constexpr (requires { comm.check_model_size(size_); }) comm.check_model_size(size_);
    }

    collective_node(const collective_node&) = delete;
    collective_node& operator=(const collective_node&) = delete;
    collective_node(collective_node&&) noexcept = default;
    collective_node& operator=(collective_node&&) noexcept = default;
    ~collective_node() = default;

    /// One optimizer step on the model with `grad`, timed.
    void optimizer_step(std::span<const value_type> grad) {
        const auto start = baseline_clock::now();
        memory_.step(optimizer_, *model_, grad);
        stats_.seconds_optimizer += seconds_since(start);
        ++stats_.local_steps;
    }

    /// Starts the engine's round on buffer_ (the mean over all nodes).
    void start_average() {
        engine_.start(std::span<value_type>(buffer_), reduce_op::mean);
        busy_ = true;
        ++stats_.interactions_initiated;
    }

    Model* model_;
    Comm* comm_;
    const topology* graph_;
    Options options_;
    std::size_t size_;
    baseline_memory<Model> memory_;  // the model's memory system (host, or staged: Thrust)
    typename baseline_memory<Model>::optimizer_type optimizer_;
    engine_type engine_;
    std::vector<value_type> buffer_;  // what is averaged, then the average (host memory)
    node_stats stats_;
    double optimizer_seen_ = 0;
    bool busy_ = false;

private:
    void begin(std::span<const value_type> grad) {
        require<invalid_argument_error>(!busy_, "node ", rank(), " (", Derived::algorithm,
                                        "): begin_step while step ", stats_.local_steps,
                                        " is not complete; call progress() until it returns true");
        check_gradient(grad, size_, rank(), stats_.local_steps);
        static_cast<Derived&>(*this).start_step(grad);
    }

    bool advance() {
        if (busy_ && engine_.progress()) {
            busy_ = false;
            ++stats_.interactions_completed;
            static_cast<Derived&>(*this).complete();
        } else if (!busy_) {
            engine_.poll();
        }
        sync_traffic();
        return !busy_;
    }

    void wait() {
        wait_until_complete(
            *comm_, rank(), options_.timeout, std::chrono::milliseconds(engine_.native() ? 1 : 50),
            [&] { return advance(); }, [&] { return engine_.position(); },
            [&] { return engine_.describe_wait(); });
    }

    /// Adds the wall time since `start`, less the optimizer's, to seconds_averaging.
    void account(baseline_clock::time_point start) {
        const double optimizer = stats_.seconds_optimizer - optimizer_seen_;
        optimizer_seen_ = stats_.seconds_optimizer;
        stats_.seconds_averaging += seconds_since(start) - optimizer;
    }

    void sync_traffic() {
        const auto& t = engine_.traffic();
        stats_.messages_sent = t.messages_sent;
        stats_.messages_received = t.messages_received;
        stats_.bytes_sent = t.bytes_sent;
        stats_.bytes_received = t.bytes_received;
    }
};

}  // namespace swarmsgd::detail
