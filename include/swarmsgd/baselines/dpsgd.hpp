#pragma once
/// \file baselines/dpsgd.hpp
/// D-PSGD (Lian et al., NeurIPS 2017): synchronous decentralized SGD. Every step, each node
/// sends its model x_i^k to all its neighbours in the topology, computes its gradient at
/// x_i^k and moves to
///   x_i^{k+1} = x_i^k + sum_j W_ij (D(m_j) - D(m_i)) - lr * update(g_i)
/// with Metropolis-Hastings weights W_ij = 1 / (1 + max(d_i, d_j)) for every neighbour j (d =
/// degree) and W_ii = 1 - sum_j W_ij. D(m_i) is node i's model as its neighbours decode it
/// (the quantizer's reconstruction rule): with the identity quantizer this is exactly
/// sum_j W_ij x_j^k - lr * update(g_i); with a quantizer, W symmetric makes the mixing terms of
/// i and j cancel exactly in the sum of the models, so the sum changes only by the SGD updates
/// (up to floating-point rounding), whatever the quantizer. The lattice quantizer decodes
/// against the receiver's own model (its reconstruction D(m_i)), and adapts its step to the
/// distances it observes.
///
/// Wire: message_kind::neighbour_model, interaction = the round (the step), payload = the
/// quantizer's encoding of the model (one encode per round, the same bytes to every neighbour).
/// Messages may arrive in any order: each is checked (sender a neighbour, round the current one
/// or the next, no duplicate) and waits until its round comes; a neighbour may be at most one
/// round ahead. The mixing is applied in neighbour order once every neighbour's model is there,
/// so the result does not depend on arrival order.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "../message.hpp"
#include "../model.hpp"
#include "../node_stats.hpp"
#include "../quantizer.hpp"
#include "../random.hpp"
#include "../sgd.hpp"
#include "../stepping_node.hpp"
#include "../topology.hpp"
#include "baseline_memory.hpp"
#include "common.hpp"

namespace swarmsgd {

/// Options of a D-PSGD node.
struct dpsgd_options {
    sgd_options sgd;  ///< the local optimizer (its state is each node's own)
    /// step() throws peer_timeout_error when a neighbour's model has not arrived within this
    /// time.
    std::chrono::milliseconds timeout{60'000};
    /// finish() throws peer_timeout_error when the other nodes are not all done by then.
    std::chrono::milliseconds shutdown_timeout{300'000};
    /// Seed of the node's random stream (stochastic rounding of the quantizer; stream = rank).
    std::uint64_t seed = 0;

    /// Throws invalid_argument_error naming the offending value.
    void validate() const {
        sgd.validate();
        detail::require<invalid_argument_error>(timeout.count() > 0,
                                                "dpsgd_options: timeout = ", timeout.count(),
                                                " ms; it must be > 0");
        detail::require<invalid_argument_error>(
            shutdown_timeout.count() > 0,
            "dpsgd_options: shutdown_timeout = ", shutdown_timeout.count(), " ms; it must be > 0");
    }
};

/// One node of D-PSGD. `Model` is a model (a tensor or a list of tensors; host, or Thrust device
/// vectors with <swarmsgd/thrust.hpp>, staged through host memory), `Comm` a communicator, `Quant`
/// a quantizer for the models on the wire (identity by default). Satisfies stepping_node
/// (begin_step / progress), plus blocking step() and finish(). Keeps pointers to the model, the
/// communicator and the topology (which must outlive it). Every node must take the same number of
/// steps.
template <class Model, class Comm, class Quant = typename detail::default_quantizer<Model>::type>
class dpsgd_node {
    static_assert(detail::check_baseline_types<Model, Comm, Quant>());

public:
    using value_type = model_value_t<Model>;  ///< float or double

    /// Name of the algorithm, for messages.
    static constexpr const char* algorithm = "D-PSGD";

    /// Binds a node to its model, communicator and topology (its neighbours and their degrees
    /// give the Metropolis-Hastings weights). Validates the options and that the topology has
    /// as many nodes as the communicator; a communicator that can (MPI) checks that every
    /// node's model has the same size (collective).
    dpsgd_node(Model& model, Comm& comm, const topology& graph, const dpsgd_options& options,
               Quant quantizer = Quant{})
        : model_(&model),
          comm_(&comm),
          graph_(&graph),
          options_((options.validate(), options)),
          quantizer_(std::move(quantizer)),
          size_(model_size(model)),
          memory_(size_),
          optimizer_(options_.sgd, size_),
          random_(options_.seed, comm.rank()) {
        using detail::require;
        require<topology_error>(graph.size() == comm.size(), "node ", comm.rank(),
                                ": topology has ", graph.size(), " nodes but the communicator has ",
                                comm.size());
        const std::size_t me = comm.rank(), degree = graph.degree(me);
        double total = 0;
        for (std::size_t k = 0; k < degree; ++k) {
            const std::size_t j = graph.neighbour(me, k);
            const double w = 1.0 / (1.0 + static_cast<double>(std::max(degree, graph.degree(j))));
            neighbours_.push_back({j, static_cast<value_type>(w), {}});
            total += w;
        }
        self_weight_ = 1.0 - total;
        grad_.resize(size_);
        if (degree > 0) {
            own_.resize(size_);
            received_.resize(size_);
            mixing_.resize(size_);
        }
        if constexpr (requires { comm.check_model_size(size_); }) comm.check_model_size(size_);
    }

    dpsgd_node(const dpsgd_node&) = delete;
    dpsgd_node& operator=(const dpsgd_node&) = delete;
    dpsgd_node(dpsgd_node&&) noexcept = default;
    dpsgd_node& operator=(dpsgd_node&&) noexcept = default;
    ~dpsgd_node() = default;

    /// Rank of this node.
    [[nodiscard]] std::size_t rank() const { return comm_->rank(); }
    /// Number of model elements.
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// The model this node trains.
    [[nodiscard]] Model& model() noexcept { return *model_; }
    /// The options in force.
    [[nodiscard]] const dpsgd_options& options() const noexcept { return options_; }
    /// The topology.
    [[nodiscard]] const topology& graph() const noexcept { return *graph_; }
    /// The quantizer (its adaptive state, e.g. the lattice step, included).
    [[nodiscard]] const Quant& quantizer() const noexcept { return quantizer_; }
    /// W_ij of the k-th neighbour (in the topology's order), as applied (value_type).
    [[nodiscard]] value_type weight(std::size_t k) const { return neighbours_.at(k).weight; }
    /// W_ii = 1 - sum_j W_ij (computed in double).
    [[nodiscard]] double self_weight() const noexcept { return self_weight_; }
    /// Counters and times: local_steps, interactions_initiated / _completed = rounds begun /
    /// completed, messages and bytes, seconds_averaging = wall time in exchanges (waits
    /// included), seconds_optimizer, seconds_shutdown.
    [[nodiscard]] const node_stats& stats() const noexcept { return stats_; }
    /// Whether a step is in progress (begun, some neighbour's model not there yet).
    [[nodiscard]] bool busy() const noexcept { return busy_; }
    /// Number of rounds begun.
    [[nodiscard]] std::uint64_t rounds() const noexcept { return started_; }
    /// Messages that have arrived and wait for their round (this one's or the next).
    [[nodiscard]] std::size_t queued() const noexcept {
        std::size_t q = 0;
        for (const auto& n : neighbours_) q += n.inbox.size();
        return q;
    }
    /// The first neighbour (in the topology's order) whose model for the current round has not
    /// arrived; nullopt when no round is running.
    [[nodiscard]] std::optional<std::size_t> awaited_peer() const {
        if (!busy_) return std::nullopt;
        for (const auto& n : neighbours_)
            if (!n.has(round_)) return n.rank;
        return std::nullopt;
    }

    /// Starts a step with the stochastic gradient `grad` (flat, model order, computed at the
    /// current model): the model is sent to every neighbour. Throws size_mismatch_error or
    /// non_finite_error (nothing sent, model unchanged) for a bad gradient or a non-finite
    /// model, and invalid_argument_error when the previous step is not complete.
    void begin_step(std::span<const value_type> grad) {
        const auto start = detail::baseline_clock::now();
        begin(grad);
        advance();
        account(start);
    }

    /// Handles what has arrived (never blocks). Once every neighbour's model of this round is
    /// there, applies the mixing and the SGD step. True once the step is complete (and when
    /// none is in progress). Throws message_error / size_mismatch_error for a bad message (the
    /// model is then unchanged).
    bool progress() {
        const auto start = detail::baseline_clock::now();
        const bool done = advance();
        account(start);
        return done;
    }

    /// Blocking step: begin_step(grad), then progress() until complete, sleeping in the
    /// communicator meanwhile. Throws peer_timeout_error naming the neighbour awaited and the
    /// round when nothing arrived within options().timeout.
    void step(std::span<const value_type> grad) {
        const auto start = detail::baseline_clock::now();
        begin(grad);
        wait();
        account(start);
    }

    /// Shutdown: completes a step in progress (bounded by timeout), waits until this node's
    /// sends have completed, announces that it is done and waits until every node is, within
    /// shutdown_timeout (peer_timeout_error otherwise). Throws message_error when a neighbour
    /// sent its model for a round this node never started.
    void finish() {
        const auto start = detail::baseline_clock::now();
        if (busy_) wait();
        detail::finish_synchronous(
            *comm_, rank(), algorithm, options_.shutdown_timeout, [&] { poll(); },
            [&] {
                outbox_.reap();
                return outbox_.first_destination();
            });
        detail::require<message_error>(
            queued() == 0, "node ", rank(), " (D-PSGD) finished after ", stats_.local_steps,
            " steps but holds ", queued(),
            " neighbour models of a later round: every node must take the same number of steps");
        stats_.seconds_shutdown += detail::seconds_since(start);
    }

private:
    struct arrived {
        std::uint64_t round;
        envelope header;
        std::vector<std::byte> bytes;
    };
    struct neighbour {
        std::size_t rank;
        value_type weight;
        std::vector<arrived> inbox;  // at most one message of this round and one of the next
        [[nodiscard]] bool has(std::uint64_t round) const {
            return std::any_of(inbox.begin(), inbox.end(),
                               [&](const arrived& a) { return a.round == round; });
        }
    };

    void begin(std::span<const value_type> grad) {
        using detail::concat;
        detail::require<invalid_argument_error>(
            !busy_, "node ", rank(), " (D-PSGD): begin_step while step ", stats_.local_steps,
            " is not complete; call progress() until it returns true");
        detail::check_gradient(grad, size_, rank(), stats_.local_steps);
        if (!neighbours_.empty()) {
            memory_.load(*model_, std::span<value_type>(own_));
            if (const auto k = detail::first_non_finite(own_.data(), size_); k != size_)
                throw non_finite_error(concat("node ", rank(), ": model element ", k, " is ",
                                              own_[k], " at step ", stats_.local_steps,
                                              "; refusing to send a non-finite model to its "
                                              "neighbours"));
            // own_ becomes D(m_i), what every neighbour decodes.
            auto bytes = detail::encode_message(quantizer_, std::span<value_type>(own_), random_,
                                                rank(), neighbours_.front().rank, "model");
            for (std::size_t k = 0; k + 1 < neighbours_.size(); ++k)
                outbox_.post(*comm_, neighbours_[k].rank, message_kind::neighbour_model, started_,
                             bytes, stats_);
            outbox_.post(*comm_, neighbours_.back().rank, message_kind::neighbour_model, started_,
                         std::move(bytes), stats_);
        }
        std::copy(grad.begin(), grad.end(), grad_.begin());
        round_ = started_++;
        busy_ = true;
        ++stats_.interactions_initiated;
    }

    void poll() {
        while (auto m = comm_->try_receive()) accept(std::move(*m));
        outbox_.reap();
    }

    void accept(received_message m) {
        using detail::require;
        stats_.bytes_received += m.bytes.size();
        ++stats_.messages_received;
        const envelope e =
            detail::read_baseline_envelope(m, rank(), message_kind::neighbour_model, algorithm);
        const auto it = std::find_if(neighbours_.begin(), neighbours_.end(),
                                     [&](const neighbour& n) { return n.rank == m.source; });
        require<message_error>(it != neighbours_.end(), "node ", rank(),
                               " got a neighbour_model message from node ", m.source, " (round ",
                               e.interaction, "), which is not its neighbour in ", graph_->name());
        // The next round to complete is round_ while one runs, else the next one to begin; a
        // neighbour may be at most one round ahead of it.
        const std::uint64_t next = busy_ ? round_ : started_;
        require<message_error>(e.interaction >= next && e.interaction <= started_, "node ", rank(),
                               " got a neighbour_model message from node ", m.source, " for round ",
                               e.interaction, " but expects round ", next,
                               busy_ ? " or the next" : "",
                               ": a message of a past round, or a neighbour more than one round "
                               "ahead");
        require<message_error>(!it->has(e.interaction), "node ", rank(),
                               " got a neighbour_model message from node ", m.source, " for round ",
                               e.interaction, " twice");
        it->inbox.push_back({e.interaction, e, std::move(m.bytes)});
    }

    bool advance() {
        poll();
        if (!busy_) return true;
        for (const auto& n : neighbours_)
            if (!n.has(round_)) return false;
        complete();
        return true;
    }

    /// Every neighbour's model of this round is there: mixing = sum_j W_ij (D(m_j) - D(m_i))
    /// in neighbour order (every message validated before the model is touched), then the SGD
    /// step with the gradient at x_i^k, then x += mixing.
    void complete() {
        using detail::concat;
        if (!neighbours_.empty()) {
            std::fill(mixing_.begin(), mixing_.end(), value_type(0));
            for (auto& n : neighbours_) {
                const auto it = std::find_if(n.inbox.begin(), n.inbox.end(),
                                             [&](const arrived& a) { return a.round == round_; });
                const auto payload = std::span<const std::byte>(it->bytes).subspan(envelope_size);
                detail::decode_message(quantizer_, it->header, payload,
                                       std::span<const value_type>(own_),
                                       std::span<value_type>(received_), rank(),
                                       [&] { return concat("round ", round_); });
                if constexpr (detail::observing_quantizer<Quant, value_type>)
                    quantizer_.observe(std::span<const value_type>(own_),
                                       std::span<const value_type>(received_));
                const value_type w = n.weight;
                for (std::size_t k = 0; k < size_; ++k) mixing_[k] += w * (received_[k] - own_[k]);
            }
            for (auto& n : neighbours_)
                std::erase_if(n.inbox, [&](const arrived& a) { return a.round == round_; });
        }
        const auto start = detail::baseline_clock::now();
        memory_.step(optimizer_, *model_, std::span<const value_type>(grad_));
        stats_.seconds_optimizer += detail::seconds_since(start);
        if (!neighbours_.empty()) memory_.add(std::span<const value_type>(mixing_), *model_);
        ++stats_.local_steps;
        ++stats_.interactions_completed;
        busy_ = false;
    }

    /// (round, neighbours whose model of it arrived): changes when the awaited ones deliver.
    [[nodiscard]] std::pair<std::uint64_t, std::size_t> position() const {
        std::size_t have = 0;
        for (const auto& n : neighbours_) have += n.has(round_) ? 1 : 0;
        return {round_, have};
    }

    void wait() {
        detail::wait_until_complete(
            *comm_, rank(), options_.timeout, std::chrono::milliseconds(50),
            [&] { return advance(); }, [&] { return position(); },
            [&] {
                std::string missing;
                for (const auto& n : neighbours_)
                    if (!n.has(round_))
                        missing += detail::concat(missing.empty() ? "" : ", ", n.rank);
                return detail::concat("no neighbour_model message from node ", *awaited_peer(),
                                      " for round ", round_,
                                      " (D-PSGD; neighbours not heard from: ", missing, ")");
            });
    }

    /// Adds the wall time since `start`, less the optimizer's, to seconds_averaging.
    void account(detail::baseline_clock::time_point start) {
        const double optimizer = stats_.seconds_optimizer - optimizer_seen_;
        optimizer_seen_ = stats_.seconds_optimizer;
        stats_.seconds_averaging += detail::seconds_since(start) - optimizer;
    }

    Model* model_;
    Comm* comm_;
    const topology* graph_;
    dpsgd_options options_;
    Quant quantizer_;
    std::size_t size_;
    detail::baseline_memory<Model> memory_;  // the model's memory system (host, or staged)
    typename detail::baseline_memory<Model>::optimizer_type optimizer_;
    rng random_;
    std::vector<neighbour> neighbours_;
    double self_weight_ = 1;
    std::vector<value_type> own_;       // x_i^k, then D(m_i)
    std::vector<value_type> received_;  // D(m_j), decoded
    std::vector<value_type> mixing_;    // sum_j W_ij (D(m_j) - D(m_i))
    std::vector<value_type> grad_;      // the gradient of this round
    detail::outbox<Comm> outbox_;
    node_stats stats_;
    std::uint64_t started_ = 0;  // rounds begun
    std::uint64_t round_ = 0;    // the current (or last) round
    double optimizer_seen_ = 0;
    bool busy_ = false;
};

}  // namespace swarmsgd
