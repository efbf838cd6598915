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
#include "detail/fallback.hpp"
#include "detail/kernels.hpp"
#include "detail/node_memory.hpp"
#include "detail/type_checks.hpp"
#include "errors.hpp"
#include "message.hpp"
#include "model.hpp"
#include "node_stats.hpp"
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
template <class Model, class Comm, class Quant = typename detail::default_quantizer<Model>::type>
class swarm_node {
    static_assert(detail::check_node_types<Model, Comm>());

public:
    using value_type = model_value_t<Model>;  ///< float or double
    static_assert(detail::check_quantizer<Model, Quant>());
    /// Where the model's memory is touched: detail::node_memory for the model's system.
    using memory_type = detail::node_memory<Model, Quant>;

    /// True when the quantizer has the exact_reconstruction capability (quantizer.hpp), e.g.
    /// identity, and the model is in host memory: the node then reads and writes the wire
    /// payloads in place, in fused passes (one pass per side and step instead of up to six),
    /// with bit-identical results. The protocol, the wire bytes, the errors and the statistics
    /// are the same either way.
    static constexpr bool exact = memory_type::host && exact_quantizer_for<Quant, value_type>;

    /// True when the quantizer has the recovering capability (recovering_quantizer_for in
    /// quantizer.hpp: it can fail to decode and adapts to the distances it sees, as the lattice
    /// quantizer). The node then recovers every failed range at full precision (a fallback
    /// section in the reply, and a fixup message when the responder could not decode the
    /// request), so a model is never corrupted and the mean stays exact; see docs/algorithm.md.
    static constexpr bool recovers = recovering_quantizer_for<Quant, value_type>;
    static_assert(recovers || !has_any_recovery_member<Quant, value_type>,
                  "swarmsgd: this quantizer has some of the members of the recovering "
                  "capability (observe(mine, theirs), observe_distance(d), on_failure(d)) but not "
                  "all three; provide all of them (recovering_quantizer_for in quantizer.hpp) or "
                  "none");

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
          memory_(size_),
          optimizer_((options_.validate(), options_.sgd), size_),
          random_(options_.seed, comm.rank()),
          own_(exact ? 0 : size_),
          received_(exact ? 0 : size_),
          raw_own_(recovers ? size_ : 0),
          scratch_(recovers ? size_ : 0) {
        using detail::require;
        require<topology_error>(graph.size() == comm.size(), "node ", comm.rank(),
                                ": topology has ", graph.size(), " nodes but the communicator has ",
                                comm.size());
        // Communicators that can (MPI) check at start-up that every node has the same model
        // size, so a mismatch is reported on every node at once rather than mid-run.
        if constexpr (requires { comm.check_model_size(size_); }) comm.check_model_size(size_);
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
    /// Interactions not yet complete on this node: own ones whose reply has not arrived, and
    /// served ones whose fixup (recovery of failed decodes) has not arrived.
    [[nodiscard]] std::size_t in_flight() const noexcept {
        return in_flight_.size() + fixups_.size();
    }
    /// The quantizer (its adaptive state, e.g. the lattice step, included).
    [[nodiscard]] const Quant& quantizer() const noexcept { return quantizer_; }

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
        memory_.step(optimizer_, *model_, grad);
        stats_.seconds_optimizer += seconds_since(start);
    }

    /// apply_gradient for a system model with a gradient in the model's own memory system (a
    /// `thrust::device_vector`, say): checked and applied there, never copied to the host.
    template <class G>
        requires(!memory_type::host && system_tensor<G> &&
                 std::same_as<system_tensor_value_t<G>, value_type> &&
                 std::same_as<memory_system_t<G>, model_system_t<Model>>)
    void apply_gradient(const G& grad) {
        using detail::concat;
        const value_type* g = tensor_traits<G>::system_data(grad);
        const auto n = static_cast<std::size_t>(tensor_traits<G>::size(grad));
        if (n != size_)
            throw size_mismatch_error(
                concat("node ", rank(), ": gradient has ", n, " elements, the model has ", size_));
        if (const auto k = memory_.first_non_finite(g, n); k != n)
            throw non_finite_error(concat("node ", rank(), ": gradient element ", k, " is ",
                                          memory_.element(g, k), " at local step ",
                                          stats_.local_steps,
                                          "; the step was not applied and nothing was sent"));
        const auto start = clock::now();
        memory_.step(optimizer_, *model_, g, n);
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
        pending p{id, peer, start, take_buffer(), {}};
        if (options_.mode == averaging_mode::pull) {
            send(peer, message_kind::pull_request, id, nullptr);
        } else {
            p.sent.resize(size_);
            if constexpr (exact) {
                send_model_exact(peer, message_kind::request, id, p.sent.data());
            } else {
                memory_.gather(*model_, p.sent);
                if constexpr (recovers) p.raw = p.sent;          // S_i, for exact recovery
                send(peer, message_kind::request, id, &p.sent);  // p.sent becomes D(m_i)
            }
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
        while (in_flight() != 0) {
            poll();
            if (in_flight() != 0) comm_->wait_for_message(std::chrono::milliseconds(1));
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
    using buffer = typename memory_type::buffer;

    struct pending {
        std::uint64_t id;
        std::size_t peer;
        clock::time_point start;
        buffer sent;  // D(m_i): what the partner reconstructs of our snapshot
        buffer raw;   // S_i itself (quantizers that recover only)
    };

    /// A served interaction whose fixup is awaited: the responder could not decode these
    /// ranges of the request, sent its own values instead, and applies its half when the
    /// initiator's values arrive.
    struct awaiting_fixup {
        std::uint64_t id;
        std::size_t peer;
        clock::time_point start;
        std::vector<detail::fallback_range> ranges;
        std::vector<value_type> own;  // S_j on the ranges, concatenated (host memory)
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
        post(peer, kind, id, build(peer, values, raw_payload));
    }

    /// The bytes of a message (room for the envelope, then the payload), not yet sent.
    std::vector<std::byte> build(std::size_t peer, buffer* values,
                                 std::span<const std::byte> raw_payload = {}) {
        std::vector<std::byte> bytes = take_bytes();
        std::size_t payload = raw_payload.size();
        if (values != nullptr) {
            if (const auto k = memory_.first_non_finite(*values); k != values->size())
                throw non_finite_error(detail::concat(
                    "node ", rank(), ": model element ", k, " is ", memory_.element(*values, k),
                    "; refusing to send a non-finite model to node ", peer));
            bytes.resize(envelope_size + quantizer_.max_encoded_size(values->size()));
            payload = memory_.encode(quantizer_, *values,
                                     std::span<std::byte>(bytes).subspan(envelope_size), random_);
        } else {
            bytes.resize(envelope_size + payload);
            if (!raw_payload.empty())
                std::copy(raw_payload.begin(), raw_payload.end(), bytes.begin() + envelope_size);
        }
        bytes.resize(envelope_size + payload);
        return bytes;
    }

    /// Writes the envelope of `bytes` (whose payload is in place after it), counts and sends.
    void post(std::size_t peer, message_kind kind, std::uint64_t id, std::vector<std::byte> bytes,
              std::uint8_t flags = 0) {
        detail::require<message_error>(bytes.size() - envelope_size <= 0xFFFFFFFFu, "node ", rank(),
                                       ": message of ", bytes.size(),
                                       " bytes exceeds the 4 GiB payload limit");
        write_envelope(bytes, {kind, static_cast<std::uint32_t>(rank()), id,
                               static_cast<std::uint32_t>(bytes.size() - envelope_size), flags});
        stats_.bytes_sent += bytes.size();
        ++stats_.messages_sent;
        auto request = comm_->isend(peer, std::move(bytes));
        if (!request.test()) outstanding_.push_back(std::move(request));
        reap_sends();
    }

    // -----------------------------------------------------------------------------------------
    // The path for exact quantizers (exact == true). Same protocol, wire bytes, errors (types,
    // texts, order of precedence), failure replies and statistics as the general path; the
    // passes over model-sized memory are fused:
    //   initiate      model -> snapshot + request payload, checked: 1 pass (was gather, check,
    //                 encode: 3)
    //   serve request one blocked pass over the model and the request payload, which becomes
    //                 the reply in place: reply = x, x += (r - x) / 2, both checked (was
    //                 gather, decode, 2 checks, encode, apply: 6); own_ and received_ are not
    //                 used (not even allocated)
    //   complete      check the reply payload in place (read only), then x += (r - snapshot) / 2
    //                 reading it in place (was decode, check, apply: 3 passes, 1 buffer)
    // The wire payload after the 40 bytes of headers is only 8-byte aligned: the kernels load
    // and store it with memcpy (unaligned vector moves).
    // -----------------------------------------------------------------------------------------

    /// Byte offset of the values in a payload of this node's model size.
    [[nodiscard]] std::size_t raw_header_size() const {
        return quantizer_.max_encoded_size(size_) - size_ * sizeof(value_type);
    }

    /// The size check gather() makes before it copies the model (same exception and text).
    void check_model_size() const {
        const std::size_t n = model_size(*model_);
        detail::require<size_mismatch_error>(n == size_, "gather: model has ", n,
                                             " elements, buffer ", size_);
    }

    /// gather + send for exact quantizers: one pass copies the model into the message payload
    /// (and into `snapshot` when not null), refusing a non-finite model as send() does.
    void send_model_exact(std::size_t peer, message_kind kind, std::uint64_t id,
                          value_type* snapshot) {
        check_model_size();
        std::vector<std::byte> bytes = take_bytes();
        const std::size_t payload = quantizer_.max_encoded_size(size_);
        bytes.resize(envelope_size + payload);
        const auto out = std::span<std::byte>(bytes).subspan(envelope_size);
        quantizer_.write_raw_header(out, size_);
        std::byte* const raw = out.data() + raw_header_size();
        std::size_t bad = size_;
        value_type bad_value{};
        for_each_part(*model_, [&](std::span<value_type> x, std::size_t offset) {
            if (bad != size_) return;
            const std::size_t k = detail::copy_out_checked(
                x.data(), snapshot == nullptr ? nullptr : snapshot + offset,
                raw + offset * sizeof(value_type), x.size());
            if (k != x.size()) {
                bad = offset + k;
                bad_value = x[k];
            }
        });
        if (bad != size_)
            throw non_finite_error(
                detail::concat("node ", rank(), ": model element ", bad, " is ", bad_value,
                               "; refusing to send a non-finite model to node ", peer));
        post(peer, kind, id, std::move(bytes));
    }

    /// The header and size checks of decode_from for exact quantizers (same exceptions and
    /// texts); returns the offset of the values in `payload`.
    std::size_t check_header_exact(std::size_t peer, message_kind kind,
                                   std::span<const std::byte> payload) const {
        using detail::concat;
        try {
            quantizer_.check_raw_payload(payload, size_);
        } catch (const size_mismatch_error& e) {
            throw size_mismatch_error(concat("node ", rank(), " (model of ", size_,
                                             " elements) got a ", to_string(kind), " from node ",
                                             peer, ": ", e.what()));
        } catch (const message_error& e) {
            throw message_error(concat("node ", rank(), " got a malformed ", to_string(kind),
                                       " from node ", peer, ": ", e.what()));
        }
        const std::size_t expected = quantizer_.max_encoded_size(size_);
        if (payload.size() != expected)  // only if check_raw_payload broke its contract
            throw message_error(concat(
                "node ", rank(), " got a malformed ", to_string(kind), " from node ", peer, ": ",
                quantizer_.name(), " payload has ", payload.size(), " bytes, expected ", expected));
        return raw_header_size();
    }

    /// decode_from for exact quantizers: validates a model payload from `peer` (header, size,
    /// finiteness of every value) without copying it; returns the address of its values.
    const std::byte* check_payload_exact(std::size_t peer, message_kind kind,
                                         std::span<const std::byte> payload) const {
        const std::byte* raw = payload.data() + check_header_exact(peer, kind, payload);
        if (const auto k = detail::first_non_finite_raw<value_type>(raw, size_); k != size_)
            throw message_error(detail::concat(
                "node ", rank(), ": ", to_string(kind), " from node ", peer,
                " decodes to a non-finite element ", k, "; the model was not changed"));
        return raw;
    }

    /// serve_request for exact quantizers. The request's bytes become the reply: one blocked
    /// pass swaps the model into the payload and averages, x += (r - x) / 2 (the responder's
    /// snapshot is its model: nothing runs in between). A non-finite value in either is found
    /// in the same pass; the blocks already averaged are then restored exactly from the
    /// payload (which holds their old values), so the model is unchanged, and the error is the
    /// one the general path reports (a non-finite request takes precedence over a non-finite
    /// own model, first index of each). One difference remains, on the path where the
    /// communicator's isend itself throws while sending the reply: the general path had not
    /// applied its half yet, this one has (the reply bytes are gone with the exception).
    void serve_request_exact(const envelope& e, std::vector<std::byte>& bytes) {
        check_model_size();
        try {
            const auto payload = std::span<std::byte>(bytes).subspan(envelope_size);
            std::byte* const raw = payload.data() + check_header_exact(e.sender, e.kind, payload);
            std::size_t failed = size_;  // global index of the failing block's start
            for_each_part(*model_, [&](std::span<value_type> x, std::size_t offset) {
                if (failed != size_) return;
                const std::size_t b = detail::exchange_and_average(
                    x.data(), raw + offset * sizeof(value_type), x.size());
                if (b != x.size()) failed = offset + b;
            });
            if (failed != size_) refused_exchange(e, raw, failed);  // throws
            quantizer_.write_raw_header(payload, size_);            // the reply's header
            post(e.sender, message_kind::reply, e.interaction, std::move(bytes));
        } catch (const size_mismatch_error& err) {
            refuse(e.sender, e.interaction, failure_code::size_mismatch, err);
        } catch (const message_error& err) {
            refuse(e.sender, e.interaction, failure_code::malformed, err);
        } catch (const non_finite_error& err) {
            refuse(e.sender, e.interaction, failure_code::non_finite, err);
        }
        ++stats_.interactions_served;
    }

    /// The exchange failed in the block starting at global index `failed`: restores the model
    /// before it from the payload (which holds its old values there; from `failed` on, the
    /// payload is the partner's again and the model untouched), then throws what the general
    /// path throws: message_error for a non-finite request value, else non_finite_error.
    [[noreturn]] void refused_exchange(const envelope& e, const std::byte* raw,
                                       std::size_t failed) {
        using detail::concat;
        for_each_part(*model_, [&](std::span<value_type> x, std::size_t offset) {
            if (offset < failed)
                detail::copy_in_raw(raw + offset * sizeof(value_type), x.data(),
                                    std::min(x.size(), failed - offset));
        });
        if (const auto k = failed + detail::first_non_finite_raw<value_type>(
                                        raw + failed * sizeof(value_type), size_ - failed);
            k != size_)
            throw message_error(concat("node ", rank(), ": ", to_string(e.kind), " from node ",
                                       e.sender, " decodes to a non-finite element ", k,
                                       "; the model was not changed"));
        std::size_t bad = size_;
        value_type bad_value{};
        for_each_part(*model_, [&](std::span<value_type> x, std::size_t offset) {
            if (bad != size_) return;
            if (const auto k = detail::first_non_finite(x.data(), x.size()); k != x.size()) {
                bad = offset + k;
                bad_value = x[k];
            }
        });
        throw non_finite_error(concat("node ", rank(), ": model element ", bad, " is ", bad_value,
                                      "; refusing to send a non-finite model to node ", e.sender));
    }

    /// complete() for exact quantizers: validates the reply in place, then applies it reading
    /// the payload in place: x += (r - snapshot) / 2, or x += (r - x) / 2 for a pull reply.
    void apply_reply_exact(const envelope& e, std::span<const std::byte> payload,
                           const pending& p) {
        if (e.kind == message_kind::pull_reply) {
            check_model_size();  // the general path gathers the model first
            const std::byte* raw = check_payload_exact(e.sender, e.kind, payload);
            for_each_part(*model_, [&](std::span<value_type> x, std::size_t offset) {
                detail::average_with_raw(x.data(), raw + offset * sizeof(value_type), x.size());
            });
        } else {
            const std::byte* raw = check_payload_exact(e.sender, e.kind, payload);
            for_each_part(*model_, [&](std::span<value_type> x, std::size_t offset) {
                detail::add_half_difference_raw(x.data(), raw + offset * sizeof(value_type),
                                                p.sent.data() + offset, x.size());
            });
        }
    }

    void reap_sends() {
        std::erase_if(outstanding_, [](auto& r) { return r.test(); });
    }

    /// Decodes a model payload from `peer` against `reference` into `out` (received_ by
    /// default), validating it. Failed ranges are an error unless the quantizer recovers; then
    /// they are returned and the caller checks finiteness once it has patched them.
    decode_result decode_from(std::size_t peer, message_kind kind,
                              std::span<const std::byte> payload, const buffer& reference,
                              buffer* out = nullptr) {
        using detail::concat;
        buffer& target = out == nullptr ? received_ : *out;
        decode_result result;
        try {
            result = memory_.decode(quantizer_, payload, reference, target);
        } catch (const size_mismatch_error& e) {
            throw size_mismatch_error(concat("node ", rank(), " (model of ", size_,
                                             " elements) got a ", to_string(kind), " from node ",
                                             peer, ": ", e.what()));
        } catch (const message_error& e) {
            throw message_error(concat("node ", rank(), " got a malformed ", to_string(kind),
                                       " from node ", peer, ": ", e.what()));
        }
        if constexpr (recovers) {
            return result;
        } else {
            if (!result.ok()) {
                stats_.failed_decode_elements += result.failed_elements();
                throw message_error(concat("node ", rank(), ": ", quantizer_.name(),
                                           " could not decode ", result.failed_elements(),
                                           " elements of a ", to_string(kind), " from node ",
                                           peer));
            }
            check_received_finite(peer, kind);
            return result;
        }
    }

    void check_received_finite(std::size_t peer, message_kind kind) {
        if (const auto k = memory_.first_non_finite(received_); k != received_.size())
            throw message_error(detail::concat(
                "node ", rank(), ": ", to_string(kind), " from node ", peer,
                " decodes to a non-finite element ", k, "; the model was not changed"));
    }

    /// x += (received_ - own) / 2 over every part of the model.
    void apply_half_difference(const buffer& own) {
        memory_.apply_half_difference(*model_, received_, own);
    }

    /// Tells `peer` why this node refuses an interaction, then rethrows locally.
    [[noreturn]] void refuse(std::size_t peer, std::uint64_t id, failure_code code,
                             const std::exception& e) {
        try {
            send(peer, message_kind::failure, id, nullptr, failure_payload(code, e.what()));
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
            case message_kind::request:
                if (crossed(e)) {
                    decline(e);
                    break;
                }
                if constexpr (exact)
                    serve_request_exact(e, message.bytes);  // the bytes become the reply
                else
                    serve_request(e, payload);
                break;
            case message_kind::pull_request: serve_pull(e); break;
            case message_kind::reply:
            case message_kind::pull_reply: complete(e, payload); break;
            case message_kind::declined: declined(e); break;
            case message_kind::fixup:
                if constexpr (recovers)
                    apply_fixup(e, payload);
                else
                    throw message_error(detail::concat("node ", rank(), " got a fixup from node ",
                                                       e.sender, " but ", quantizer_.name(),
                                                       " never fails to decode"));
                break;
            case message_kind::failure: peer_failed(e, payload); break;
            case message_kind::collective:
            case message_kind::neighbour_model:
                throw message_error(detail::concat(
                    "node ", rank(), " got a ", to_string(e.kind), " message from node ", e.sender,
                    ": that is a baseline algorithm's message (baselines/), not Swarm SGD's; every "
                    "node must run the same algorithm"));
        }
        if (!message.bytes.empty()) spare_bytes_.push_back(std::move(message.bytes));
    }

    void serve_request(const envelope& e, std::span<const std::byte> payload) {
        // Decode the initiator's snapshot against ours (refusing a bad one before answering),
        // then send our snapshot; own_ becomes D(m_j), what the initiator will reconstruct.
        memory_.gather(*model_, own_);
        try {
            const auto result = decode_from(e.sender, e.kind, payload, own_);
            if constexpr (recovers)
                reply_with_recovery(e, result);
            else
                send_reply_of_own(e);
        } catch (const size_mismatch_error& err) {
            refuse(e.sender, e.interaction, failure_code::size_mismatch, err);
        } catch (const message_error& err) {
            refuse(e.sender, e.interaction, failure_code::malformed, err);
        } catch (const non_finite_error& err) {
            refuse(e.sender, e.interaction, failure_code::non_finite, err);
        }
        apply_half_difference(own_);
        ++stats_.interactions_served;
    }

    /// The responder's side for quantizers that can fail (own_ holds S_j, received_ the
    /// decoded request with `request` listing the ranges that failed, F1):
    /// - F1: nothing to average with yet; our raw values go to the initiator, and we apply our
    ///   half when its fixup brings its values;
    /// - F2: ranges where the initiator's decode of OUR message would fail. We know its
    ///   reference (received_ = D(m_i) outside F1) so we run its decode ourselves, and send
    ///   those ranges raw too;
    /// on F = F1 u F2 our reconstruction is S_j itself, so both sides apply the same values.
    void reply_with_recovery(const envelope& e, const decode_result& request) {
        stats_.failed_decode_elements += request.failed_elements();
        raw_own_ = own_;
        for (const auto& r : request.failed)  // no change there until the fixup
            memory_.copy_range(own_, received_, r.begin, r.end);
        check_received_finite(e.sender, e.kind);
        std::vector<std::byte> bytes = build(e.sender, &own_);  // own_ becomes D(m_j)
        const std::size_t quantized = bytes.size() - envelope_size;
        const auto predicted =
            memory_.decode(quantizer_, std::span<const std::byte>(bytes).subspan(envelope_size),
                           received_, scratch_);
        const auto fallback = detail::merge_ranges(request.failed, predicted.failed);
        std::uint8_t flags = 0;
        if (!fallback.empty()) {
            for (const auto& r : fallback) {
                memory_.copy_range(raw_own_, own_, r.begin, r.end);
                // A range merged from F1 and an adjacent F2 range is wholly settled by the
                // fixup: no change there now (else the F2 part would get our half twice).
                if (r.needs_fixup) memory_.copy_range(raw_own_, received_, r.begin, r.end);
            }
            memory_.append_fallback(bytes, fallback, raw_own_);
            const std::size_t at = bytes.size();
            bytes.resize(at + 8);
            detail::store<std::uint64_t>(bytes.data() + at, quantized);
            flags = flag_fallback;
            stats_.recovered_elements += detail::range_elements(fallback);
        }
        post(e.sender, message_kind::reply, e.interaction, std::move(bytes), flags);
        if (!request.ok()) {
            awaiting_fixup f{e.interaction, e.sender, clock::now(), {}, {}};
            for (const auto& r : fallback) {
                if (!r.needs_fixup) continue;
                f.ranges.push_back(r);
                memory_.append_range(f.own, raw_own_, r.begin, r.end);
            }
            fixups_.push_back(std::move(f));
        }
        // Adapt OUR step: it is to blame only if OUR message would fail (F2). A failure of
        // the request (F1) is the initiator's step; its distance is observed at the fixup.
        // received_ equals raw_own_ on F1, so the distance below ignores F1.
        if (!predicted.ok())
            quantizer_.on_failure(memory_.max_difference(fallback, raw_own_, received_));
        else
            memory_.observe(quantizer_, raw_own_, received_);
    }

    /// The initiator's side of a reply for quantizers that can fail: decode what can be,
    /// take the fallback ranges raw, average, and send a fixup for the ranges the responder
    /// could not decode (with our raw snapshot S_i there, so that both sides end at the exact
    /// average (S_i + S_j) / 2 of those ranges).
    void complete_with_recovery(const envelope& e, std::span<const std::byte> payload, pending& p) {
        using detail::concat;
        auto quantized = payload;
        detail::fallback_section section;
        if ((e.flags & flag_fallback) != 0) {
            if (payload.size() < 8)
                throw message_error(concat("node ", rank(), " got a malformed reply from node ",
                                           e.sender, ": ", payload.size(), " bytes"));
            const auto q = detail::load<std::uint64_t>(payload.data() + payload.size() - 8);
            if (q > payload.size() - 8)
                throw message_error(concat("node ", rank(), " got a malformed reply from node ",
                                           e.sender, ": quantized part of ", q, " bytes in ",
                                           payload.size()));
            quantized = payload.first(q);
            section =
                detail::read_fallback<value_type>(payload.subspan(q, payload.size() - 8 - q), size_,
                                                  concat("reply from node ", e.sender).c_str());
        }
        const auto result = decode_from(e.sender, e.kind, quantized, p.sent);
        for (const auto& f : result.failed) {
            const bool covered = std::any_of(section.ranges.begin(), section.ranges.end(),
                                             [&](const detail::fallback_range& r) {
                                                 return r.begin <= f.begin && f.end <= r.end;
                                             });
            if (!covered)
                throw message_error(concat("node ", rank(), " could not decode elements [", f.begin,
                                           ", ", f.end, ") of the reply from node ", e.sender,
                                           ", which sent no full-precision values "
                                           "for them; the model was not changed"));
        }
        stats_.failed_decode_elements += result.failed_elements();
        memory_.copy_fallback_values(section, received_);
        check_received_finite(e.sender, e.kind);
        std::vector<detail::fallback_range> fixup;
        for (const auto& r : section.ranges) {
            if (!r.needs_fixup) continue;
            fixup.push_back({r.begin, r.end, false});
            memory_.copy_range(p.raw, p.sent, r.begin, r.end);  // we apply S_j - S_i there
        }
        apply_half_difference(p.sent);
        if (!fixup.empty()) {
            std::vector<std::byte> bytes = take_bytes();
            bytes.resize(envelope_size);
            memory_.append_fallback(bytes, fixup, p.raw);
            post(e.sender, message_kind::fixup, e.interaction, std::move(bytes));
        }
        // Adapt OUR step: it is to blame if the responder could not decode our request (the
        // ranges it needs a fixup for); otherwise just observe the distance (the fallback
        // ranges included, now exact).
        if (!fixup.empty())
            quantizer_.on_failure(memory_.max_difference(section.ranges, p.sent, received_));
        else
            memory_.observe(quantizer_, p.sent, received_);
        stats_.recovered_elements += detail::range_elements(section.ranges);
    }

    /// The responder's last step of a recovered interaction: the initiator's raw values for
    /// the ranges we could not decode; apply our half there, x += (S_i - S_j) / 2.
    void apply_fixup(const envelope& e, std::span<const std::byte> payload) {
        using detail::concat;
        const auto it = std::find_if(fixups_.begin(), fixups_.end(), [&](const awaiting_fixup& f) {
            return f.id == e.interaction && f.peer == e.sender;
        });
        if (it == fixups_.end())
            throw message_error(concat("node ", rank(), " got a fixup from node ", e.sender,
                                       " for interaction ", e.interaction,
                                       " that it is not waiting for"));
        awaiting_fixup f = std::move(*it);
        fixups_.erase(it);
        const auto section = detail::read_fallback<value_type>(
            payload, size_, concat("fixup from node ", e.sender).c_str());
        bool same = section.ranges.size() == f.ranges.size();
        for (std::size_t i = 0; same && i < f.ranges.size(); ++i)
            same = section.ranges[i].begin == f.ranges[i].begin &&
                   section.ranges[i].end == f.ranges[i].end;
        if (!same)
            throw message_error(concat("node ", rank(), ": fixup from node ", e.sender,
                                       " for interaction ", e.interaction,
                                       " covers other ranges than were asked for"));
        std::vector<value_type> theirs(detail::range_elements(section.ranges));
        if (!theirs.empty())
            std::memcpy(theirs.data(), section.values, theirs.size() * sizeof(value_type));
        if (const auto k = detail::first_non_finite(theirs.data(), theirs.size());
            k != theirs.size())
            throw message_error(concat("node ", rank(), ": fixup from node ", e.sender,
                                       " holds a non-finite value; the model was not changed"));
        memory_.add_half_difference_ranges(*model_, f.ranges, theirs.data(), f.own.data());
        // The initiator's step failed here, not ours: only observe the distance.
        quantizer_.observe(std::span<const value_type>(theirs), std::span<const value_type>(f.own));
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
        std::vector<std::byte> bytes = take_bytes();
        bytes.resize(envelope_size);
        post(e.sender, message_kind::declined, e.interaction, std::move(bytes));
    }

    /// Our request was declined (it crossed one of the partner's): forget it, change nothing.
    void declined(const envelope& e) {
        const auto it = std::find_if(in_flight_.begin(), in_flight_.end(), [&](const pending& p) {
            return p.id == e.interaction && p.peer == e.sender;
        });
        if (it == in_flight_.end())
            throw message_error(detail::concat("node ", rank(), " got a decline from node ",
                                               e.sender, " for interaction ", e.interaction,
                                               " that it is not waiting for"));
        spare_values_.push_back(std::move(it->sent));
        in_flight_.erase(it);
        ++stats_.interactions_declined;
    }

    void send_reply_of_own(const envelope& e) {
        send(e.sender,
             e.kind == message_kind::request ? message_kind::reply : message_kind::pull_reply,
             e.interaction, &own_);
    }

    void serve_pull(const envelope& e) {
        if constexpr (exact) {
            send_model_exact(e.sender, message_kind::pull_reply, e.interaction, nullptr);
        } else {
            memory_.gather(*model_, own_);
            send_reply_of_own(e);
        }
        ++stats_.interactions_served;
    }

    void complete(const envelope& e, std::span<const std::byte> payload) {
        using detail::concat;
        const auto it = std::find_if(in_flight_.begin(), in_flight_.end(), [&](const pending& p) {
            return p.id == e.interaction && p.peer == e.sender;
        });
        if (it == in_flight_.end())
            throw message_error(concat("node ", rank(), " got a ", to_string(e.kind), " from node ",
                                       e.sender, " for interaction ", e.interaction,
                                       " that it is not waiting for"));
        pending p = std::move(*it);
        in_flight_.erase(it);  // forgotten even if the reply is bad: no spurious timeout later
        if ((e.flags & flag_fallback) != 0 && !recovers)
            throw message_error(concat("node ", rank(),
                                       " got a reply with a fallback section "
                                       "from node ",
                                       e.sender, " but ", quantizer_.name(),
                                       " never fails to decode"));
        if constexpr (exact) {
            apply_reply_exact(e, payload, p);
        } else if (e.kind == message_kind::pull_reply) {
            memory_.gather(*model_, own_);  // X_i <- (X_i + D(m_j)) / 2
            const auto result = decode_from(e.sender, e.kind, payload, own_);
            if constexpr (recovers) {
                // Pull is not mean-preserving anyway: failed ranges are simply not averaged.
                for (const auto& r : result.failed)
                    memory_.copy_range(own_, received_, r.begin, r.end);
                check_received_finite(e.sender, e.kind);
                stats_.failed_decode_elements += result.failed_elements();
                if (result.ok())
                    memory_.observe(quantizer_, own_, received_);
                else
                    quantizer_.on_failure(0.0);
            }
            apply_half_difference(own_);
        } else if constexpr (recovers) {
            complete_with_recovery(e, payload, p);
        } else {
            decode_from(e.sender, e.kind, payload, p.sent);
            apply_half_difference(p.sent);
        }
        spare_values_.push_back(std::move(p.sent));
        ++stats_.interactions_completed;
    }

    [[noreturn]] void peer_failed(const envelope& e, std::span<const std::byte> payload) {
        const failure_report report = read_failure_payload(payload);
        std::erase_if(in_flight_, [&](const pending& p) {
            return p.id == e.interaction && p.peer == e.sender;
        });
        throw_failure(report.code,
                      detail::concat("node ", rank(), ": node ", e.sender, " refused interaction ",
                                     e.interaction, ": ", report.reason));
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
        for (const auto& f : fixups_)
            if (now - f.start > options_.reply_timeout)
                throw peer_timeout_error(detail::concat(
                    "node ", rank(), ": no fixup from node ", f.peer, " for interaction ", f.id,
                    " after ",
                    std::chrono::duration_cast<std::chrono::milliseconds>(now - f.start).count(),
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

    using request_type =
        decltype(std::declval<Comm&>().isend(std::size_t{}, std::vector<std::byte>{}));

    Model* model_;
    Comm* comm_;
    const topology* graph_;
    swarm_options options_;
    Quant quantizer_;
    std::size_t size_;
    memory_type memory_;
    typename memory_type::optimizer_type optimizer_;
    rng random_;
    node_stats stats_;
    buffer own_;       // responder's snapshot, then D(m_own) (general path only)
    buffer received_;  // decoded partner snapshot (general path only)
    buffer raw_own_;   // responder's raw snapshot S_j (quantizers that recover only)
    buffer scratch_;   // the initiator's decode, predicted (quantizers that recover only)
    std::vector<awaiting_fixup> fixups_;
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
