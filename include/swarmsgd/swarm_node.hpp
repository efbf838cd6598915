#pragma once
/// \file swarm_node.hpp
/// One node of a swarm: its model, its local optimizer and the averaging protocol.
/// This is the piece to embed in an existing training loop:
/// \code
/// swarmsgd::swarm_node node(model, comm, topology, options);
/// for (step...) {
///     compute_gradient(model, grad);   // your framework
///     node.apply_gradient(grad);       // or update the model yourself
///     node.after_local_step();         // polls the inbox, starts an interaction when due
/// }
/// node.finish();                       // shutdown protocol: bounded, loses nothing
/// \endcode

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "agreement.hpp"
#include "block_communicator.hpp"
#include "communicator.hpp"
#include "detail/kernels.hpp"
#include "detail/live_partners.hpp"
#include "detail/node_checkpoint.hpp"
#include "detail/node_core.hpp"
#include "detail/type_checks.hpp"
#include "errors.hpp"
#include "exchanges/exchange.hpp"
#include "message.hpp"
#include "model.hpp"
#include "node_stats.hpp"
#include "peer_exclusion.hpp"
#include "quantizer.hpp"
#include "quantizers/identity.hpp"
#include "random.hpp"
#include "sgd.hpp"
#include "stepping_node.hpp"
#include "swarm_options.hpp"
#include "topology.hpp"

namespace swarmsgd {

/// One node of a Swarm SGD swarm. `Model` is a tensor or a list of tensors (see model.hpp),
/// or a system model (Thrust device vectors, <swarmsgd/thrust.hpp>: every model operation then
/// runs in the model's memory system, see detail::node_memory), `Comm` a communicator endpoint
/// (see communicator.hpp), `Quant` a quantizer for the model's value type (see quantizer.hpp).
/// The node keeps references to the model, the communicator and the topology: they must
/// outlive it. A node is used by one thread at a time.
///
/// This class is the protocol of docs/algorithm.md, read top to bottom: local steps, when to
/// interact, requests, replies, declines of crossed requests, failures and fixups, timeouts
/// and shutdown. What happens to the model at each step of an interaction is its exchange
/// (exchanges/exchange.hpp): general, exact (fused) or recovering, picked from the model and
/// the quantizer.
template <class Model, class Comm, class Quant = typename detail::default_quantizer<Model>::type>
class swarm_node {
    static_assert(detail::check_node_types<Model, Comm>());

public:
    using value_type = model_value_t<Model>;  ///< float or double
    static_assert(detail::check_quantizer<Model, Quant>());
    /// What the protocol and the exchange share: model, quantizer, memory back end, messaging.
    using core_type = detail::node_core<Model, Comm, Quant>;
    /// Where the model's memory is touched: detail::node_memory for the model's system.
    using memory_type = typename core_type::memory_type;
    /// How models are exchanged: exchanges::exact_exchange, recovering_exchange or
    /// general_exchange (exchanges::exchange_t).
    using exchange_type = exchanges::exchange_t<core_type>;
    static_assert(exchanges::exchange_for<exchange_type, core_type>);

    /// True when the node receives its messages into blocks of its memory back end's pool
    /// (block_communicator.hpp) rather than the communicator's byte vectors: for a model in a
    /// memory system the host cannot read (CUDA: page-locked blocks, so a payload's upload to
    /// the GPU is one DMA), and for any system model over a communicator with the block
    /// capability (MPI then receives straight into the block). Host models read messages where
    /// they arrived.
    static constexpr bool receives_into_blocks =
        !memory_type::host && (memory_type::stages_messages || block_communicator<Comm>);

    /// True when the quantizer has the exact_reconstruction capability (quantizer.hpp), e.g.
    /// identity, and the model is in host memory: the node then uses the exact exchange, which
    /// reads and writes the wire payloads in place (one pass per side and step instead of up
    /// to six), with bit-identical results. The protocol, the wire bytes, the errors and the
    /// statistics are the same either way.
    static constexpr bool exact = core_type::exact;

    /// True when the quantizer has the recovering capability (recovering_quantizer_for in
    /// quantizer.hpp: it can fail to decode and adapts to the distances it sees, as the lattice
    /// quantizer). The node then uses the recovering exchange: every failed range is recovered
    /// at full precision, so a model is never corrupted and the mean stays exact.
    static constexpr bool recovers = core_type::recovers;

    static_assert(recovers || !has_any_recovery_member<Quant, value_type>,
                  "swarmsgd: this quantizer has some of the members of the recovering "
                  "capability (observe(mine, theirs), observe_distance(d), on_failure(d)) but not "
                  "all three; provide all of them (recovering_quantizer_for in quantizer.hpp) or "
                  "none");

    /// Binds a node to its model, communicator endpoint and topology. Validates the options
    /// and that the topology has as many nodes as the communicator.
    swarm_node(Model& model, Comm& comm, const topology& graph, swarm_options options,
               Quant quantizer = Quant{})
        : graph_(&graph),
          options_(std::move(options)),
          core_(model, comm, std::move(quantizer), model_size(model),
                rng((options_.validate(), options_.seed), comm.rank())),
          optimizer_(options_.optimizer == local_optimizer::builtin ? options_.sgd : sgd_options{},
                     core_.size),
          exchange_(core_.size) {
        detail::require<topology_error>(graph.size() == comm.size(), "node ", comm.rank(),
                                        ": topology has ", graph.size(),
                                        " nodes but the communicator has ", comm.size());
        // Communicators that can (MPI) check at start-up that every node agrees on what must
        // match (agreement.hpp: model size, mode, quantizer, topology, wire format), so a
        // mismatch is reported on every node at once rather than as a drift or a mid-run error.
        if constexpr (requires(swarm_agreement a) { comm.check_agreement(a); })
            comm.check_agreement(agreement());
        else if constexpr (requires { comm.check_model_size(core_.size); })
            comm.check_model_size(core_.size);
        core_.sends.set_linger(options_.send_linger);
        core_.distance_guard = options_.distance_guard;
        if (excluding()) {
            core_.sends.record_failures(true);
            excluded_.assign(comm.size(), 0);
            peer_done_.assign(comm.size(), 0);
            probes_.assign(comm.size(), probe{});
        }
        due_ = options_.steps.draw(core_.random);
    }

    swarm_node(const swarm_node&) = delete;
    swarm_node& operator=(const swarm_node&) = delete;
    swarm_node(swarm_node&&) noexcept = default;
    swarm_node& operator=(swarm_node&&) noexcept = default;
    ~swarm_node() = default;

    /// Rank of this node.
    [[nodiscard]] std::size_t rank() const { return core_.rank(); }
    /// Number of model elements.
    [[nodiscard]] std::size_t size() const noexcept { return core_.size; }
    /// The model this node trains.
    [[nodiscard]] Model& model() noexcept { return *core_.model; }
    /// Counters and times.
    [[nodiscard]] const node_stats& stats() const noexcept { return core_.stats; }
    /// The node's random stream (partner choice, H draws; also handy for the user's sampling).
    [[nodiscard]] rng& random() noexcept { return core_.random; }
    /// The options in force.
    [[nodiscard]] const swarm_options& options() const noexcept { return options_; }
    /// Interactions not yet complete on this node: own ones whose reply has not arrived, and
    /// served ones whose fixup (recovery of failed decodes) has not arrived.
    [[nodiscard]] std::size_t in_flight() const noexcept {
        return in_flight_.size() + awaiting_fixup_.size();
    }
    /// The quantizer (its adaptive state, e.g. the lattice step, included).
    [[nodiscard]] const Quant& quantizer() const noexcept { return core_.quantizer; }

    // ---- Failed peers (failure_policy::exclude) ----------------------------------------------

    /// The peers this node excluded or learnt were excluded, in the order it learnt it, with
    /// who decided and why. Empty under failure_policy::fail.
    [[nodiscard]] const std::vector<peer_exclusion>& exclusions() const noexcept {
        return exclusions_;
    }
    /// Whether `peer` is excluded (always false under failure_policy::fail).
    [[nodiscard]] bool is_excluded(std::size_t peer) const {
        return peer < excluded_.size() && excluded_[peer] != 0;
    }
    /// The nodes this node picks its partners from now: its neighbours while nothing is
    /// excluded; then its live neighbours, or, when none is left, the nearest live nodes of the
    /// topology (detail::live_partners).
    [[nodiscard]] std::vector<std::size_t> partners() const {
        if (!exclusions_.empty()) return partners_;
        std::vector<std::size_t> all(graph_->degree(rank()));
        for (std::size_t k = 0; k < all.size(); ++k) all[k] = graph_->neighbour(rank(), k);
        return all;
    }
    /// Excludes `peer` now, as if it had not answered within reply_timeout: for a transport or
    /// driver that knows it is dead (the simulator's kill schedule, a failure detector). Its
    /// interactions in flight are dropped (node_stats::interactions_lost) and every other node
    /// is told. Needs failure_policy::exclude (else invalid_argument_error).
    void exclude_peer(std::size_t peer, const std::string& reason) {
        detail::require<invalid_argument_error>(
            excluding(), "node ", rank(), ": exclude_peer(", peer,
            ") needs failure_policy::exclude; this node uses failure_policy::fail");
        detail::require<invalid_argument_error>(
            peer < excluded_.size() && peer != rank(), "node ", rank(), ": exclude_peer(", peer,
            "): not another node of a swarm of ", excluded_.size());
        exclude(peer, rank(), reason, true);
    }

    /// For a driver that simulates this node's death (the simulator's kill schedule): drops
    /// its interactions in flight, own and served, as lost (node_stats::interactions_lost), so
    /// that the dead node's state can still be checkpointed. Its model is left as it is. A node
    /// that trains on after this breaks the sum of the models: do not.
    void forget_in_flight() {
        core_.stats.interactions_lost += in_flight_.size() + awaiting_fixup_.size();
        for (auto& p : in_flight_) spare_states_.push_back(std::move(p.state));
        in_flight_.clear();
        awaiting_fixup_.clear();
    }

    /// When false, after_local_step() never starts an interaction by itself; a driver (the
    /// simulator's sequential model) starts them with initiate().
    void set_auto_interact(bool on) noexcept { auto_interact_ = on; }

    // ---- Local steps --------------------------------------------------------------------------

    /// One local SGD step with gradient `grad` (flat, in the model's concatenated order).
    /// Throws size_mismatch_error for a wrong size and non_finite_error for a NaN/Inf gradient;
    /// in both cases the model is unchanged. With local_optimizer::external, your optimizer
    /// takes the step instead and this throws invalid_argument_error.
    void apply_gradient(std::span<const value_type> grad) {
        check_gradient(grad.size(), detail::first_non_finite(grad.data(), grad.size()),
                       [&](std::size_t k) { return grad[k]; });
        const auto start = clock::now();
        core_.memory.step(optimizer_, *core_.model, grad);
        core_.stats.seconds_optimizer += core_type::seconds_since(start);
    }

    /// apply_gradient for a system model with a gradient in the model's own memory system (a
    /// `thrust::device_vector`, say): checked and applied there, never copied to the host.
    template <class G>
        requires(!memory_type::host && system_tensor<G> &&
                 std::same_as<system_tensor_value_t<G>, value_type> &&
                 std::same_as<memory_system_t<G>, model_system_t<Model>>)
    void apply_gradient(const G& grad) {
        const value_type* g = tensor_traits<G>::system_data(grad);
        const auto n = static_cast<std::size_t>(tensor_traits<G>::size(grad));
        check_gradient(n, n == core_.size ? core_.memory.first_non_finite(g, n) : n,
                       [&](std::size_t k) { return core_.memory.element(g, k); });
        const auto start = clock::now();
        core_.memory.step(optimizer_, *core_.model, g, n);
        core_.stats.seconds_optimizer += core_type::seconds_since(start);
    }

    /// Marks the end of a local step: serves the inbox and, when the local-step policy says so,
    /// starts an interaction with a uniformly random neighbour. With local_optimizer::external
    /// this is the one call a training loop adds after its own optimizer's step.
    void after_local_step() {
        ++core_.stats.local_steps;
        poll();
        if (!auto_interact_ || stopping_) return;
        if (exclusions_.empty() ? graph_->degree(rank()) == 0 : partners_.empty()) return;
        if (++since_last_ < due_) return;
        if (initiate(choose_partner())) {
            since_last_ = 0;
            due_ = options_.steps.draw(core_.random);
        }
    }

    /// stepping_node's step: apply_gradient(grad), then after_local_step(). Swarm SGD never
    /// waits for a peer, so the step is complete on return and progress() is always true.
    void begin_step(std::span<const value_type> grad) {
        apply_gradient(grad);
        after_local_step();
    }

    /// The blocking step the per-thread drivers call (run_nodes_in_process): begin_step.
    void step(std::span<const value_type> grad) { begin_step(grad); }

    /// stepping_node's progress: serves the inbox (poll()); always true, see begin_step.
    bool progress() {
        poll();
        return true;
    }

    // ---- Interactions -------------------------------------------------------------------------

    /// Starts an interaction with neighbour `peer` (or, once neighbours were excluded, one of
    /// partners()) now. Returns false (and counts it as postponed) when max_in_flight
    /// interactions are already in flight. In blocking mode it returns once the reply was
    /// applied, answering other nodes meanwhile.
    bool initiate(std::size_t peer) {
        detail::require<invalid_argument_error>(
            peer != rank() && (graph_->has_edge(rank(), peer) || is_repaired_partner(peer)),
            "node ", rank(), " cannot interact with node ", peer, ": not a neighbour in ",
            graph_->name());
        detail::require<invalid_argument_error>(!is_excluded(peer), "node ", rank(),
                                                " cannot interact with node ", peer,
                                                ": it was excluded");
        if (in_flight_.size() >= options_.max_in_flight) {
            ++core_.stats.postponed;
            return false;
        }
        const auto start = clock::now();
        const std::uint64_t id = next_interaction_++;
        pending p{id, peer, start, take_state()};
        if (options_.mode == averaging_mode::pull)
            core_.send(peer, message_kind::pull_request, id, nullptr);
        else
            exchange_.request(core_, peer, id, p.state);
        in_flight_.push_back(std::move(p));
        ++core_.stats.interactions_initiated;
        core_.stats.seconds_averaging += core_type::seconds_since(start);
        if (options_.mode == averaging_mode::blocking) wait_for_reply(id);
        return true;
    }

    /// Serves every message in the inbox (answers requests, applies replies) and checks that
    /// no own interaction has waited longer than reply_timeout. Never blocks on a peer.
    void poll() {
        const auto start = clock::now();
        credit_own_stall(start);
        if constexpr (receives_into_blocks) {
            while (auto m = block_receiver_.try_receive(*core_.comm, core_.memory.message_blocks()))
                handle(m->source, m->bytes(), nullptr);  // the block returns to the pool after
        } else {
            while (auto message = core_.comm->try_receive())
                handle(message->source, message->bytes, &message->bytes);
        }
        check_timeouts();
        exclude_failed_sends();
        last_poll_ = clock::now();
        core_.stats.seconds_averaging += core_type::seconds_since(start);
    }

    /// The shutdown protocol. The node starts no more interactions, waits (answering others)
    /// until its own in-flight interactions are complete, announces that it is done, and keeps
    /// answering until every node has announced. Since a node announces only after all its
    /// requests were answered, no request can arrive after all_done(): no update applied on one
    /// side of a pair is lost. Bounded by reply_timeout and shutdown_timeout.
    /// Under failure_policy::fail the announcement is the communicator's (announce_done,
    /// all_done: a non-blocking barrier over MPI). Under failure_policy::exclude it is a `done`
    /// message to every live node, and the node waits for the live nodes only, probing those
    /// that have not finished (a ping every reply_timeout / 4; one unanswered for reply_timeout
    /// is excluded), so a dead node delays finish() by at most reply_timeout.
    void finish() {
        stopping_ = true;
        const auto start = clock::now();
        const auto deadline = start + options_.shutdown_timeout;
        complete_in_flight();
        if (excluding()) {
            finish_on_survivors(deadline);
        } else {
            core_.comm->announce_done();
            while (!core_.comm->all_done()) {
                poll();
                if (clock::now() > deadline)
                    throw peer_timeout_error(detail::concat(
                        "node ", rank(), ": not every node finished within shutdown_timeout = ",
                        options_.shutdown_timeout.count(), " ms"));
                core_.comm->wait_for_message(std::chrono::milliseconds(2));
            }
        }
        poll();
        core_.stats.seconds_shutdown += core_type::seconds_since(start);
    }

    // ---- Checkpoints --------------------------------------------------------------------------

    /// Saves this node's whole state to `path` (format and contents: checkpoint.hpp and
    /// detail/node_checkpoint.hpp): model, optimizer state, random stream, local-step
    /// counters, the quantizer's adaptive state, statistics and the peers it excluded, with
    /// what identifies the node.
    /// First completes this node's interactions in flight (answering others meanwhile; bounded
    /// by reply_timeout), so that no message refers to a state the file does not hold. Written
    /// atomically (a temporary file, then rename). Host models and system models: a system
    /// model, its momentum buffer and error feedback's residual (kept in the device codec) are
    /// copied to the host for the file.
    void save_checkpoint(const std::filesystem::path& path) {
        complete_in_flight();
        detail::save_node_checkpoint(path, checkpoint_view());
    }

    /// Restores a state saved by save_checkpoint into a node with no interaction in flight (a
    /// freshly built one, typically). Everything is read and checked before anything changes:
    /// a missing, truncated or corrupt file, another format version, or another node's
    /// checkpoint (rank, swarm size, model size or type, mode, quantizer, topology) is a
    /// checkpoint_error naming the file and the mismatch, and the node is unchanged. Training
    /// then continues exactly where the saved node stopped (bit for bit, given the same
    /// messages: tests/unit/test_checkpoint.cpp; with device models,
    /// tests/thrust/test_node.cpp). Host and system models, as save_checkpoint.
    void restore_checkpoint(const std::filesystem::path& path) {
        detail::require<invalid_argument_error>(
            in_flight() == 0, "node ", rank(), ": restore_checkpoint with ", in_flight(),
            " interactions in flight; restore into a node that has not interacted yet");
        detail::restore_node_checkpoint(path, checkpoint_view());
        // The exclusions it knew (failure_policy::exclude; the policy is part of the agreement
        // the checkpoint must match) shape whom it picks: rebuild them.
        if (excluding()) {
            excluded_.assign(excluded_.size(), 0);
            for (const auto& x : exclusions_) excluded_[x.peer] = 1;
            partners_ = exclusions_.empty() ? std::vector<std::size_t>{}
                                            : detail::live_partners(*graph_, rank(), excluded_);
        }
    }

private:
    using clock = typename core_type::clock;
    using time_point = typename clock::time_point;
    using initiator_state = typename exchange_type::initiator_state;
    using fixup_state = typename exchange_type::fixup_state;

    /// An own interaction whose reply is awaited.
    struct pending {
        std::uint64_t id;
        std::size_t peer;
        time_point start;
        initiator_state state;  // the exchange's snapshot(s) of our model
    };

    /// failure_policy::exclude: the liveness probe of one peer during finish().
    struct probe {
        time_point sent = time_point::max();  // the unanswered ping's time; max() when none
        time_point next{};                    // no new ping before this
    };

    /// A served interaction whose fixup is awaited (recovering exchange only).
    struct awaited_fixup {
        std::uint64_t id;
        std::size_t peer;
        time_point start;
        fixup_state state;  // the exchange's half, applied when the fixup arrives
    };

    /// The checks of apply_gradient: size, then the first non-finite element `bad` (== n when
    /// none), whose value `at(bad)` is named. Nothing is applied when they fail.
    template <class At>
    void check_gradient(std::size_t n, std::size_t bad, At at) const {
        using detail::concat;
        if (options_.optimizer == local_optimizer::external)
            throw invalid_argument_error(
                concat("node ", rank(),
                       ": apply_gradient on a node built with local_optimizer::external; your "
                       "optimizer takes the step, then call after_local_step()"));
        if (n != core_.size)
            throw size_mismatch_error(concat("node ", rank(), ": gradient has ", n,
                                             " elements, the model has ", core_.size));
        if (bad != n)
            throw non_finite_error(concat("node ", rank(), ": gradient element ", bad, " is ",
                                          at(bad), " at local step ", core_.stats.local_steps,
                                          "; the step was not applied and nothing was sent"));
    }

    /// The state a checkpoint saves and restores, by reference.
    detail::node_state<Model, Quant, memory_type> checkpoint_view() {
        return {rank(),          core_.comm->size(), agreement(), *core_.model,      optimizer_,
                core_.random,    since_last_,        due_,        next_interaction_, core_.stats,
                core_.quantizer, core_.memory,       exclusions_};
    }

    /// What this node must agree on with every other (agreement.hpp).
    [[nodiscard]] swarm_agreement agreement() const {
        return make_agreement(core_.size, sizeof(value_type), options_, core_.quantizer, *graph_);
    }

    /// An initiator state for a new interaction, reusing a completed one's buffers.
    initiator_state take_state() {
        if (spare_states_.empty()) return {};
        initiator_state s = std::move(spare_states_.back());
        spare_states_.pop_back();
        return s;
    }

    /// Dispatches one received message by kind. `owned` is the communicator's byte vector
    /// holding `bytes` (nullptr for a message in a block): the exact exchange turns a request's
    /// bytes into its reply, and other vectors are kept for building messages.
    void handle(std::size_t source, std::span<std::byte> bytes, std::vector<std::byte>* owned) {
        core_.stats.bytes_received += bytes.size();
        ++core_.stats.messages_received;
        const envelope e = read_envelope(bytes, source);
        const auto payload = std::span<const std::byte>(bytes).subspan(envelope_size);
        const auto recycle = [&] {
            if (owned != nullptr && !owned->empty()) core_.spare_bytes.push_back(std::move(*owned));
        };
        if (is_excluded(e.sender)) {
            from_excluded(e);
            recycle();
            return;
        }
        switch (e.kind) {
            case message_kind::request: serve_request(e, bytes, owned); break;
            case message_kind::pull_request:
                exchange_.serve_pull(core_, e);
                ++core_.stats.interactions_served;
                break;
            case message_kind::reply:
            case message_kind::pull_reply: complete(e, payload); break;
            case message_kind::declined: declined(e); break;
            case message_kind::fixup: apply_fixup(e, payload); break;
            case message_kind::failure: peer_failed(e, payload); break;
            case message_kind::collective:
            case message_kind::neighbour_model:
                throw message_error(detail::concat(
                    "node ", rank(), " got a ", to_string(e.kind), " message from node ", e.sender,
                    ": that is a baseline algorithm's message (baselines/), not Swarm SGD's; every "
                    "node must run the same algorithm"));
            case message_kind::done:
            case message_kind::excluded:
            case message_kind::ping:
            case message_kind::pong: membership(e, payload); break;
        }
        // The exact exchange turns a request's bytes into its reply; other bytes are reused.
        recycle();
    }

    /// A partner's request: decline it when it crossed ours, else let the exchange answer it
    /// (and remember the fixup it waits for, if any). The exact exchange answers in the
    /// request's own vector (host models only, which never receive into blocks).
    void serve_request(const envelope& e, std::span<std::byte> bytes,
                       std::vector<std::byte>* owned) {
        if (crossed(e)) {
            decline(e);
            return;
        }
        std::optional<fixup_state> awaited;
        if constexpr (core_type::exact) {
            static_assert(!receives_into_blocks);
            awaited = exchange_.serve(core_, e, *owned);
        } else {
            awaited = exchange_.serve(core_, e, std::span<const std::byte>(bytes));
        }
        if (awaited)
            awaiting_fixup_.push_back({e.interaction, e.sender, clock::now(), std::move(*awaited)});
        ++core_.stats.interactions_served;
    }

    /// Crossed requests: we have our own request in flight to the node whose request just
    /// arrived. Serving both would apply two half-differences computed from the same two
    /// snapshots on each side, which SWAPS the two models instead of averaging them (and in
    /// lockstep the pair never converges). So exactly one of the two is served: the node
    /// with the lower rank serves, the higher one declines (no change on either side).
    [[nodiscard]] bool crossed(const envelope& e) const {
        return rank() > e.sender &&
               std::any_of(in_flight_.begin(), in_flight_.end(),
                           [&](const pending& p) { return p.peer == e.sender; });
    }

    void decline(const envelope& e) {
        std::vector<std::byte> bytes = core_.take_bytes();
        bytes.resize(envelope_size);
        core_.post(e.sender, message_kind::declined, e.interaction, std::move(bytes));
    }

    /// The own interaction a `what` from the envelope's sender answers; message_error when we
    /// are not waiting for one (a forged, duplicated or misrouted message).
    template <class List>
    auto find_awaited(List& list, const envelope& e, const char* what) {
        const auto it = std::find_if(list.begin(), list.end(), [&](const auto& p) {
            return p.id == e.interaction && p.peer == e.sender;
        });
        if (it == list.end())
            throw message_error(detail::concat("node ", rank(), " got a ", what, " from node ",
                                               e.sender, " for interaction ", e.interaction,
                                               " that it is not waiting for"));
        return it;
    }

    /// Our request was declined (it crossed one of the partner's): forget it, change nothing.
    void declined(const envelope& e) {
        const auto it = find_awaited(in_flight_, e, "decline");
        spare_states_.push_back(std::move(it->state));
        in_flight_.erase(it);
        ++core_.stats.interactions_declined;
    }

    /// A reply to one of our interactions: the exchange applies it.
    void complete(const envelope& e, std::span<const std::byte> payload) {
        const auto it = find_awaited(in_flight_, e, to_string(e.kind));
        pending p = std::move(*it);
        in_flight_.erase(it);  // forgotten even if the reply is bad: no spurious timeout later
        if ((e.flags & flag_fallback) != 0 && !exchange_type::recovers)
            throw message_error(detail::concat(
                "node ", rank(), " got a reply with a fallback section from node ", e.sender,
                " but ", core_.quantizer.name(), " never fails to decode"));
        exchange_.apply_reply(core_, e, payload, p.state);
        spare_states_.push_back(std::move(p.state));
        ++core_.stats.interactions_completed;
    }

    /// The initiator's fixup for a served interaction: the exchange applies our last half.
    void apply_fixup(const envelope& e, std::span<const std::byte> payload) {
        if constexpr (exchange_type::recovers) {
            const auto it = find_awaited(awaiting_fixup_, e, "fixup");
            awaited_fixup f = std::move(*it);
            awaiting_fixup_.erase(it);
            exchange_.apply_fixup(core_, e, payload, std::move(f.state));
        } else {
            throw message_error(detail::concat("node ", rank(), " got a fixup from node ", e.sender,
                                               " but ", core_.quantizer.name(),
                                               " never fails to decode"));
        }
    }

    /// The partner refused our interaction: forget it and throw its reason as ours.
    [[noreturn]] void peer_failed(const envelope& e, std::span<const std::byte> payload) {
        const failure_report report = read_failure_payload(payload);
        std::erase_if(in_flight_, [&](const pending& p) {
            return p.id == e.interaction && p.peer == e.sender;
        });
        throw_failure(report.code,
                      detail::concat("node ", rank(), ": node ", e.sender, " refused interaction ",
                                     e.interaction, ": ", report.reason));
    }

    // ---- Failed peers ---------------------------------------------------------------------------

    [[nodiscard]] bool excluding() const noexcept {
        return options_.failure == failure_policy::exclude;
    }

    [[nodiscard]] bool is_repaired_partner(std::size_t peer) const {
        return !exclusions_.empty() && std::binary_search(partners_.begin(), partners_.end(), peer);
    }

    /// A uniformly random partner: a neighbour (the same draw as before any exclusion, so a
    /// run without failures is unchanged), or one of partners_ once some node is excluded.
    std::size_t choose_partner() {
        if (exclusions_.empty()) return graph_->random_neighbour(rank(), core_.random);
        return partners_[static_cast<std::size_t>(core_.random.uniform(partners_.size()))];
    }

    /// Drops `peer` (decided by node `by`, for `reason`): its interactions in flight are lost
    /// (this node's half of each is never applied), it is never chosen again, the partners are
    /// repaired, and when this node decided (`announce`) every other node, `peer` included, is
    /// told. Idempotent.
    void exclude(std::size_t peer, std::size_t by, std::string reason, bool announce) {
        if (excluded_[peer] != 0) return;
        excluded_[peer] = 1;
        ++core_.stats.peers_excluded;
        for (auto& p : in_flight_)
            if (p.peer == peer) spare_states_.push_back(std::move(p.state));
        const auto of_peer = [&](const auto& a) { return a.peer == peer; };
        core_.stats.interactions_lost +=
            std::erase_if(in_flight_, of_peer) + std::erase_if(awaiting_fixup_, of_peer);
        probes_[peer] = probe{};
        partners_ = detail::live_partners(*graph_, rank(), excluded_);
        if (announce) {
            const auto text = std::as_bytes(std::span(reason.data(), reason.size()));
            for (std::size_t j = 0; j < excluded_.size(); ++j)
                if (j != rank() && (excluded_[j] == 0 || j == peer))
                    core_.send(j, message_kind::excluded, peer, nullptr, text);
        }
        exclusions_.push_back({peer, by, std::move(reason)});
    }

    /// failure_policy::exclude: a peer to which the transport failed a send (MPI reports a
    /// dead process, say) is excluded; repeated until no send fails (announcing may fail too).
    void exclude_failed_sends() {
        if (!excluding()) return;
        for (auto failed = core_.sends.take_failures(); !failed.empty();
             failed = core_.sends.take_failures())
            for (auto& [peer, what] : failed)
                exclude(peer, rank(),
                        detail::concat("the transport failed a send to node ", peer, ": ", what),
                        true);
    }

    /// A message from an excluded node: never applied. A request is answered with a failure
    /// telling its sender it was excluded (so a node that was only stalled learns it at once).
    void from_excluded(const envelope& e) {
        ++core_.stats.messages_ignored;
        if (e.kind != message_kind::request && e.kind != message_kind::pull_request) return;
        const auto& x = *std::find_if(exclusions_.begin(), exclusions_.end(),
                                      [&](const peer_exclusion& r) { return r.peer == e.sender; });
        const std::string reason =
            detail::concat("node ", e.sender, " was excluded from the swarm by node ", x.decided_by,
                           " (", x.reason, "); its request was not served");
        core_.send(e.sender, message_kind::failure, e.interaction, nullptr,
                   failure_payload(failure_code::excluded, reason));
    }

    /// The messages of failure_policy::exclude: done, excluded, ping, pong.
    void membership(const envelope& e, std::span<const std::byte> payload) {
        if (!excluding())
            throw message_error(detail::concat(
                "node ", rank(), " got a ", to_string(e.kind), " message from node ", e.sender,
                ": that belongs to failure_policy::exclude, and this node uses "
                "failure_policy::fail; every node must use the same policy"));
        switch (e.kind) {
            case message_kind::done: peer_done_[e.sender] = 1; break;
            case message_kind::ping:
                core_.send(e.sender, message_kind::pong, e.interaction, nullptr);
                break;
            case message_kind::pong:
                probes_[e.sender] = {time_point::max(), clock::now() + options_.reply_timeout / 4};
                break;
            case message_kind::excluded: {
                std::string reason(reinterpret_cast<const char*>(payload.data()), payload.size());
                if (e.interaction == rank())
                    throw excluded_error(detail::concat(
                        "node ", rank(), " was excluded from the swarm by node ", e.sender, " (",
                        reason,
                        "); it no longer takes part, and no survivor applies what it sends"));
                detail::require<message_error>(e.interaction < excluded_.size(), "node ", rank(),
                                               " got an exclusion notice from node ", e.sender,
                                               " for node ", e.interaction, " but the swarm has ",
                                               excluded_.size(), " nodes");
                exclude(static_cast<std::size_t>(e.interaction), e.sender, std::move(reason),
                        false);
                break;
            }
            default: break;
        }
    }

    /// finish() under failure_policy::exclude: `done` to every live node, then serve until
    /// every other node is done or excluded, probing the ones that are not done.
    void finish_on_survivors(time_point deadline) {
        for (std::size_t j = 0; j < excluded_.size(); ++j)
            if (j != rank() && excluded_[j] == 0) core_.send(j, message_kind::done, 0, nullptr);
        while (true) {
            poll();
            const auto now = clock::now();
            std::vector<std::size_t> waiting;
            for (std::size_t j = 0; j < excluded_.size(); ++j) {
                if (j == rank() || excluded_[j] != 0 || peer_done_[j] != 0) continue;
                waiting.push_back(j);
                if (probes_[j].sent == time_point::max() && now >= probes_[j].next) {
                    core_.send(j, message_kind::ping, 0, nullptr);
                    probes_[j].sent = now;
                }
            }
            if (waiting.empty()) return;
            if (now > deadline)
                throw peer_timeout_error(detail::concat(
                    "node ", rank(), ": node", waiting.size() > 1 ? "s " : " ",
                    detail::join(waiting),
                    " did not finish within shutdown_timeout = ", options_.shutdown_timeout.count(),
                    " ms (they answer liveness probes: alive, but slower than that)"));
            core_.comm->wait_for_message(std::chrono::milliseconds(2));
        }
    }

    // ---- Timeouts -----------------------------------------------------------------------------

    /// This node was away longer than reply_timeout since its last poll (stopped, descheduled,
    /// stuck in the user's code): its partners could not have answered a node that was not
    /// there, so the gap is not charged to them. Every awaited message's clock moves by the
    /// gap: a partner gets a full reply_timeout of this node's running time again.
    void credit_own_stall(time_point now) {
        const auto gap = now - last_poll_;
        if (gap <= options_.reply_timeout) return;
        for (auto& p : in_flight_) p.start += gap;
        for (auto& f : awaiting_fixup_) f.start += gap;
        for (auto& q : probes_)
            if (q.sent != time_point::max()) q.sent += gap;
        ++core_.stats.stalls_credited;
    }

    /// An awaited message that waited longer than reply_timeout: peer_timeout_error under
    /// failure_policy::fail; under exclude, its peer is excluded (after the scan: exclusion
    /// edits the lists).
    void check_timeouts() {
        const auto now = clock::now();
        std::vector<std::pair<std::size_t, std::string>> silent;
        const auto overdue = [&](std::size_t peer, time_point since, const auto&... what) {
            if (now - since <= options_.reply_timeout) return;
            std::string text = detail::concat(
                "no ", what..., " after ",
                std::chrono::duration_cast<std::chrono::milliseconds>(now - since).count(),
                " ms (reply_timeout = ", options_.reply_timeout.count(), " ms)");
            if (!excluding())
                throw peer_timeout_error(detail::concat(
                    "node ", rank(), ": ", text, "; the peer crashed, hung or is far too slow"));
            silent.emplace_back(peer, std::move(text));
        };
        for (const auto& p : in_flight_)
            overdue(p.peer, p.start, "reply from node ", p.peer, " to interaction ", p.id);
        for (const auto& f : awaiting_fixup_)
            overdue(f.peer, f.start, "fixup from node ", f.peer, " for interaction ", f.id);
        for (std::size_t j = 0; stopping_ && j < probes_.size(); ++j)  // probes: finish() only
            if (probes_[j].sent != time_point::max())
                overdue(j, probes_[j].sent, "answer from node ", j,
                        " to a liveness probe during shutdown");
        for (auto& [peer, text] : silent) exclude(peer, rank(), std::move(text), true);
    }

    /// Polls (answering others) until this node's own interactions and awaited fixups are
    /// complete; bounded by reply_timeout through poll()'s timeout check.
    void complete_in_flight() {
        while (in_flight() != 0) {
            poll();
            if (in_flight() != 0) core_.comm->wait_for_message(std::chrono::milliseconds(1));
        }
    }

    void wait_for_reply(std::uint64_t id) {
        const auto start = clock::now();
        auto waiting = [&] {
            return std::any_of(in_flight_.begin(), in_flight_.end(),
                               [&](const pending& p) { return p.id == id; });
        };
        while (true) {
            poll();
            if (!waiting()) break;
            core_.comm->wait_for_message(std::chrono::milliseconds(1));
        }
        core_.stats.seconds_averaging += core_type::seconds_since(start);
    }

    const topology* graph_;
    swarm_options options_;
    core_type core_;
    typename memory_type::optimizer_type optimizer_;
    exchange_type exchange_;
    std::vector<pending> in_flight_;
    std::vector<awaited_fixup> awaiting_fixup_;
    std::vector<initiator_state> spare_states_;
    time_point last_poll_ = clock::now();  // for credit_own_stall
    std::uint64_t next_interaction_ = 0;
    std::size_t since_last_ = 0;
    std::size_t due_ = 1;
    bool auto_interact_ = true;
    bool stopping_ = false;
    // failure_policy::exclude only (empty under fail): per rank, whether it is excluded,
    // whether its `done` arrived, and its liveness probe; what was excluded and why; whom this
    // node picks partners from once something was excluded (sorted).
    std::vector<char> excluded_;
    std::vector<char> peer_done_;
    std::vector<probe> probes_;
    std::vector<peer_exclusion> exclusions_;
    std::vector<std::size_t> partners_;
    block_receiver<Comm> block_receiver_;  // receives_into_blocks only
};

}  // namespace swarmsgd
