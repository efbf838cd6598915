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
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "communicator.hpp"
#include "detail/kernels.hpp"
#include "errors.hpp"
#include "message.hpp"
#include "model.hpp"
#include "node_stats.hpp"
#include "quantizer.hpp"
#include "quantizers/identity.hpp"
#include "random.hpp"
#include "sgd.hpp"
#include "swarm_options.hpp"
#include "topology.hpp"

namespace swarmsgd {

namespace detail {
/// Readable diagnostics for the common mistakes, checked before anything else is instantiated.
template <class Model, class Comm>
constexpr bool check_node_types() {
    static_assert(model<Model>,
                  "swarmsgd: the Model type is neither a tensor nor a list of tensors. Specialize "
                  "swarmsgd::tensor_traits<T> (value_type, size, data) for it or for its "
                  "elements, or include the adapter for your library (e.g. "
                  "<swarmsgd/eigen.hpp>); see docs/architecture.md");
    static_assert(communicator<Comm>,
                  "swarmsgd: the Comm type does not satisfy swarmsgd::communicator: it needs "
                  "rank(), size(), isend(dest, bytes) returning a send_request, try_receive(), "
                  "wait_for_message(timeout), announce_done() and all_done(); see "
                  "docs/architecture.md");
    return true;
}

/// The default quantizer of a node: identity for the model's value type. Lazily evaluated so
/// that a Model which is not a model reaches check_node_types' readable static_assert.
template <class Model>
struct default_quantizer {
    using type = void;
};
template <class Model>
    requires model<Model>
struct default_quantizer<Model> {
    using type = identity_quantizer<model_value_t<Model>>;
};

/// Error category carried by a failure message, so the peer rethrows the same type.
enum class failure_code : std::uint8_t { other = 0, size_mismatch = 1, malformed = 2, non_finite = 3 };
}  // namespace detail

/// One node of a Swarm SGD swarm. `Model` is a tensor or a list of tensors (see model.hpp),
/// `Comm` a communicator endpoint (see communicator.hpp), `Quant` a quantizer for the model's
/// value type (see quantizer.hpp). The node keeps references to the model, the communicator
/// and the topology: they must outlive it. A node is used by one thread at a time.
template <class Model, class Comm, class Quant = typename detail::default_quantizer<Model>::type>
class swarm_node {
    static_assert(detail::check_node_types<Model, Comm>());

public:
    using value_type = model_value_t<Model>;  ///< float or double
    static_assert(quantizer_for<Quant, value_type>,
                  "swarmsgd: the Quant type is not a quantizer for this model's value type: it "
                  "needs id(), name(), max_encoded_size(n), encode(values, out, rng) and "
                  "decode(payload, reference, out) -> decode_result; see quantizer.hpp");

    /// Binds a node to its model, communicator endpoint and topology. Validates the options
    /// and that the topology has as many nodes as the communicator.
    swarm_node(Model& model, Comm& comm, const topology& graph, swarm_options options,
               Quant quantizer = Quant{})
        : model_(&model),
          comm_(&comm),
          graph_(&graph),
          options_(std::move(options)),
          quantizer_(std::move(quantizer)),
          size_(model_size(model)),
          optimizer_((options_.validate(), options_.sgd), size_),
          random_(options_.seed, comm.rank()),
          own_(size_),
          received_(size_) {
        using detail::require;
        require<topology_error>(graph.size() == comm.size(), "node ", comm.rank(),
                                ": topology has ", graph.size(), " nodes but the communicator has ",
                                comm.size());
        due_ = options_.steps.draw(random_);
    }

    swarm_node(const swarm_node&) = delete;
    swarm_node& operator=(const swarm_node&) = delete;
    swarm_node(swarm_node&&) noexcept = default;
    swarm_node& operator=(swarm_node&&) noexcept = default;
    ~swarm_node() = default;

    /// Rank of this node.
    [[nodiscard]] std::size_t rank() const { return comm_->rank(); }
    /// Number of model elements.
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// The model this node trains.
    [[nodiscard]] Model& model() noexcept { return *model_; }
    /// Counters and times.
    [[nodiscard]] const node_stats& stats() const noexcept { return stats_; }
    /// The node's random stream (partner choice, H draws; also handy for the user's sampling).
    [[nodiscard]] rng& random() noexcept { return random_; }
    /// The options in force.
    [[nodiscard]] const swarm_options& options() const noexcept { return options_; }
    /// Own interactions whose reply has not arrived yet.
    [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_.size(); }

    /// When false, after_local_step() never starts an interaction by itself; a driver (the
    /// simulator's sequential model) starts them with initiate().
    void set_auto_interact(bool on) noexcept { auto_interact_ = on; }

    /// One local SGD step with gradient `grad` (flat, in the model's concatenated order).
    /// Throws size_mismatch_error for a wrong size and non_finite_error for a NaN/Inf gradient;
    /// in both cases the model is unchanged.
    void apply_gradient(std::span<const value_type> grad) {
        using detail::concat;
        if (grad.size() != size_)
            throw size_mismatch_error(concat("node ", rank(), ": gradient has ", grad.size(),
                                             " elements, the model has ", size_));
        if (const auto k = detail::first_non_finite(grad.data(), grad.size()); k != grad.size())
            throw non_finite_error(concat("node ", rank(), ": gradient element ", k, " is ",
                                          grad[k], " at local step ", stats_.local_steps,
                                          "; the step was not applied and nothing was sent"));
        const auto start = clock::now();
        optimizer_.step(*model_, grad);
        stats_.seconds_optimizer += seconds_since(start);
    }

    /// Marks the end of a local step: serves the inbox and, when the local-step policy says so,
    /// starts an interaction with a uniformly random neighbour.
    void after_local_step() {
        ++stats_.local_steps;
        poll();
        if (!auto_interact_ || stopping_ || graph_->degree(rank()) == 0) return;
        if (++since_last_ < due_) return;
        if (initiate(graph_->random_neighbour(rank(), random_))) {
            since_last_ = 0;
            due_ = options_.steps.draw(random_);
        }
    }

    /// Starts an interaction with neighbour `peer` now. Returns false (and counts it as
    /// postponed) when max_in_flight interactions are already in flight. In blocking mode it
    /// returns once the reply was applied, answering other nodes meanwhile.
    bool initiate(std::size_t peer) {
        using detail::require;
        require<invalid_argument_error>(peer != rank() && graph_->has_edge(rank(), peer), "node ",
                                        rank(), " cannot interact with node ", peer,
                                        ": not a neighbour in ", graph_->name());
        if (in_flight_.size() >= options_.max_in_flight) {
            ++stats_.postponed;
            return false;
        }
        const auto start = clock::now();
        const std::uint64_t id = next_interaction_++;
        pending p{id, peer, start, take_buffer()};
        if (options_.mode == averaging_mode::pull) {
            send(peer, message_kind::pull_request, id, nullptr);
        } else {
            p.sent.resize(size_);
            gather(*model_, std::span<value_type>(p.sent));
            send(peer, message_kind::request, id, &p.sent);  // p.sent becomes D(m_i)
        }
        in_flight_.push_back(std::move(p));
        ++stats_.interactions_initiated;
        stats_.seconds_averaging += seconds_since(start);
        if (options_.mode == averaging_mode::blocking) wait_for_reply(id);
        return true;
    }

    /// Serves every message in the inbox (answers requests, applies replies) and checks that
    /// no own interaction has waited longer than reply_timeout. Never blocks on a peer.
    void poll() {
        const auto start = clock::now();
        while (auto message = comm_->try_receive()) handle(std::move(*message));
        check_timeouts();
        stats_.seconds_averaging += seconds_since(start);
    }

    /// The shutdown protocol. The node starts no more interactions, waits (answering others)
    /// until its own in-flight interactions are complete, announces that it is done, and keeps
    /// answering until every node has announced. Since a node announces only after all its
    /// requests were answered, no request can arrive after all_done(): no update applied on one
    /// side of a pair is lost. Bounded by reply_timeout and shutdown_timeout.
    void finish() {
        stopping_ = true;
        const auto start = clock::now();
        const auto deadline = start + options_.shutdown_timeout;
        while (!in_flight_.empty()) {
            poll();
            if (!in_flight_.empty()) comm_->wait_for_message(std::chrono::milliseconds(1));
        }
        comm_->announce_done();
        while (!comm_->all_done()) {
            poll();
            if (clock::now() > deadline)
                throw peer_timeout_error(detail::concat(
                    "node ", rank(), ": not every node finished within shutdown_timeout = ",
                    options_.shutdown_timeout.count(), " ms"));
            comm_->wait_for_message(std::chrono::milliseconds(2));
        }
        poll();
        stats_.seconds_shutdown += seconds_since(start);
    }

private:
    using clock = std::chrono::steady_clock;
    using buffer = std::vector<value_type>;

    struct pending {
        std::uint64_t id;
        std::size_t peer;
        clock::time_point start;
        buffer sent;  // D(m_i): what the partner reconstructs of our snapshot
    };

    static double seconds_since(clock::time_point t) {
        return std::chrono::duration<double>(clock::now() - t).count();
    }

    buffer take_buffer() {
        if (spare_values_.empty()) return {};
        buffer b = std::move(spare_values_.back());
        spare_values_.pop_back();
        return b;
    }

    std::vector<std::byte> take_bytes() {
        if (spare_bytes_.empty()) return {};
        auto b = std::move(spare_bytes_.back());
        spare_bytes_.pop_back();
        return b;
    }

    /// Builds and sends one message. With `values`, encodes them (after refusing non-finite
    /// ones); on return `*values` holds the reconstruction the receiver will decode.
    void send(std::size_t peer, message_kind kind, std::uint64_t id, buffer* values,
              std::span<const std::byte> raw_payload = {}) {
        std::vector<std::byte> bytes = take_bytes();
        std::size_t payload = raw_payload.size();
        if (values != nullptr) {
            if (const auto k = detail::first_non_finite(values->data(), values->size());
                k != values->size())
                throw non_finite_error(detail::concat(
                    "node ", rank(), ": model element ", k, " is ", (*values)[k],
                    "; refusing to send a non-finite model to node ", peer));
            bytes.resize(envelope_size + quantizer_.max_encoded_size(values->size()));
            payload = quantizer_.encode(std::span<value_type>(*values),
                                        std::span<std::byte>(bytes).subspan(envelope_size),
                                        random_);
        } else {
            bytes.resize(envelope_size + payload);
            if (!raw_payload.empty())
                std::copy(raw_payload.begin(), raw_payload.end(), bytes.begin() + envelope_size);
        }
        bytes.resize(envelope_size + payload);
        write_envelope(bytes, {kind, static_cast<std::uint32_t>(rank()), id,
                               static_cast<std::uint32_t>(payload)});
        stats_.bytes_sent += bytes.size();
        ++stats_.messages_sent;
        auto request = comm_->isend(peer, std::move(bytes));
        if (!request.test()) outstanding_.push_back(std::move(request));
        reap_sends();
    }

    void reap_sends() {
        std::erase_if(outstanding_, [](auto& r) { return r.test(); });
    }

    /// Decodes a model payload from `peer` against `reference` into received_, validating it.
    void decode_from(std::size_t peer, message_kind kind, std::span<const std::byte> payload,
                     std::span<const value_type> reference) {
        using detail::concat;
        decode_result result;
        try {
            result = quantizer_.decode(payload, reference, std::span<value_type>(received_));
        } catch (const size_mismatch_error& e) {
            throw size_mismatch_error(concat("node ", rank(), " (model of ", size_,
                                             " elements) got a ", to_string(kind), " from node ",
                                             peer, ": ", e.what()));
        } catch (const message_error& e) {
            throw message_error(concat("node ", rank(), " got a malformed ", to_string(kind),
                                       " from node ", peer, ": ", e.what()));
        }
        if (!result.ok()) {
            stats_.failed_decode_elements += result.failed_elements();
            throw message_error(concat("node ", rank(), ": ", quantizer_.name(),
                                       " could not decode ", result.failed_elements(),
                                       " elements of a ", to_string(kind), " from node ", peer));
        }
        if (const auto k = detail::first_non_finite(received_.data(), received_.size());
            k != received_.size())
            throw message_error(concat("node ", rank(), ": ", to_string(kind), " from node ", peer,
                                       " decodes to a non-finite element ", k,
                                       "; the model was not changed"));
    }

    /// x += (received_ - own) / 2 over every part of the model.
    void apply_half_difference(std::span<const value_type> own) {
        for_each_part(*model_, [&](std::span<value_type> x, std::size_t offset) {
            detail::add_half_difference(x.data(), received_.data() + offset, own.data() + offset,
                                        x.size());
        });
    }

    /// Tells `peer` why this node refuses an interaction, then rethrows locally.
    [[noreturn]] void refuse(std::size_t peer, std::uint64_t id, detail::failure_code code,
                             const std::exception& e) {
        std::string reason = e.what();
        std::vector<std::byte> payload(1 + reason.size());
        payload[0] = static_cast<std::byte>(code);
        std::transform(reason.begin(), reason.end(), payload.begin() + 1,
                       [](char c) { return static_cast<std::byte>(c); });
        try {
            send(peer, message_kind::failure, id, nullptr, payload);
        } catch (...) {  // the local error matters more than the courtesy message
        }
        throw;
    }

    void handle(received_message message) {
        using detail::concat;
        stats_.bytes_received += message.bytes.size();
        ++stats_.messages_received;
        const envelope e = read_envelope(message.bytes, message.source);
        const auto payload = std::span<const std::byte>(message.bytes).subspan(envelope_size);
        switch (e.kind) {
            case message_kind::request: serve_request(e, payload); break;
            case message_kind::pull_request: serve_pull(e); break;
            case message_kind::reply:
            case message_kind::pull_reply: complete(e, payload); break;
            case message_kind::failure: peer_failed(e, payload);
        }
        spare_bytes_.push_back(std::move(message.bytes));
    }

    void serve_request(const envelope& e, std::span<const std::byte> payload) {
        // Decode the initiator's snapshot against ours (refusing a bad one before answering),
        // then send our snapshot; own_ becomes D(m_j), what the initiator will reconstruct.
        gather(*model_, std::span<value_type>(own_));
        try {
            decode_from(e.sender, e.kind, payload, own_);
            send_reply_of_own(e);
        } catch (const size_mismatch_error& err) {
            refuse(e.sender, e.interaction, detail::failure_code::size_mismatch, err);
        } catch (const message_error& err) {
            refuse(e.sender, e.interaction, detail::failure_code::malformed, err);
        } catch (const non_finite_error& err) {
            refuse(e.sender, e.interaction, detail::failure_code::non_finite, err);
        }
        apply_half_difference(own_);
        ++stats_.interactions_served;
    }

    void send_reply_of_own(const envelope& e) {
        send(e.sender, e.kind == message_kind::request ? message_kind::reply
                                                       : message_kind::pull_reply,
             e.interaction, &own_);
    }

    void serve_pull(const envelope& e) {
        gather(*model_, std::span<value_type>(own_));
        send_reply_of_own(e);
        ++stats_.interactions_served;
    }

    void complete(const envelope& e, std::span<const std::byte> payload) {
        using detail::concat;
        const auto it = std::find_if(in_flight_.begin(), in_flight_.end(), [&](const pending& p) {
            return p.id == e.interaction && p.peer == e.sender;
        });
        if (it == in_flight_.end())
            throw message_error(concat("node ", rank(), " got a ", to_string(e.kind),
                                       " from node ", e.sender, " for interaction ", e.interaction,
                                       " that it is not waiting for"));
        pending p = std::move(*it);
        in_flight_.erase(it);  // forgotten even if the reply is bad: no spurious timeout later
        if (e.kind == message_kind::pull_reply) {
            gather(*model_, std::span<value_type>(own_));  // X_i <- (X_i + D(m_j)) / 2
            decode_from(e.sender, e.kind, payload, own_);
            apply_half_difference(own_);
        } else {
            decode_from(e.sender, e.kind, payload, p.sent);
            apply_half_difference(p.sent);
        }
        spare_values_.push_back(std::move(p.sent));
        ++stats_.interactions_completed;
    }

    [[noreturn]] void peer_failed(const envelope& e, std::span<const std::byte> payload) {
        using detail::concat;
        std::string reason;
        auto code = detail::failure_code::other;
        if (!payload.empty()) {
            code = static_cast<detail::failure_code>(payload[0]);
            for (auto b : payload.subspan(1)) reason.push_back(static_cast<char>(b));
        }
        std::erase_if(in_flight_, [&](const pending& p) {
            return p.id == e.interaction && p.peer == e.sender;
        });
        const std::string text = concat("node ", rank(), ": node ", e.sender,
                                        " refused interaction ", e.interaction, ": ", reason);
        switch (code) {
            case detail::failure_code::size_mismatch: throw size_mismatch_error(text);
            case detail::failure_code::malformed: throw message_error(text);
            case detail::failure_code::non_finite: throw non_finite_error(text);
            case detail::failure_code::other: break;
        }
        throw error(text);
    }

    void check_timeouts() {
        const auto now = clock::now();
        for (const auto& p : in_flight_)
            if (now - p.start > options_.reply_timeout)
                throw peer_timeout_error(detail::concat(
                    "node ", rank(), ": no reply from node ", p.peer, " to interaction ", p.id,
                    " after ",
                    std::chrono::duration_cast<std::chrono::milliseconds>(now - p.start).count(),
                    " ms (reply_timeout = ", options_.reply_timeout.count(),
                    " ms); the peer crashed, hung or is far too slow"));
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
            comm_->wait_for_message(std::chrono::milliseconds(1));
        }
        stats_.seconds_averaging += seconds_since(start);
    }

    using request_type = decltype(std::declval<Comm&>().isend(std::size_t{},
                                                              std::vector<std::byte>{}));

    Model* model_;
    Comm* comm_;
    const topology* graph_;
    swarm_options options_;
    Quant quantizer_;
    std::size_t size_;
    sgd<value_type> optimizer_;
    rng random_;
    node_stats stats_;
    buffer own_;       // responder's snapshot, then D(m_own)
    buffer received_;  // decoded partner snapshot
    std::vector<pending> in_flight_;
    std::vector<buffer> spare_values_;
    std::vector<std::vector<std::byte>> spare_bytes_;
    std::vector<request_type> outstanding_;
    std::uint64_t next_interaction_ = 0;
    std::size_t since_last_ = 0;
    std::size_t due_ = 1;
    bool auto_interact_ = true;
    bool stopping_ = false;
};

}  // namespace swarmsgd
