#pragma once
/// \file detail/node_core.hpp
/// What a swarm_node's protocol and its exchange share: the model, the quantizer, the memory
/// back end, the random stream, the statistics, and the messaging every exchange uses (build
/// and send a message, decode a partner's payload with the node's error texts, refuse an
/// interaction and tell the peer why). The protocol itself is swarm_node (swarm_node.hpp);
/// how a model is exchanged is an exchange (exchanges/).

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "../message.hpp"
#include "../model.hpp"
#include "../node_stats.hpp"
#include "../quantizer.hpp"
#include "../random.hpp"
#include "node_memory.hpp"
#include "send_queue.hpp"

namespace swarmsgd::detail {

/// The state and helpers every exchange of a swarm_node<Model, Comm, Quant> works with.
/// Members are public: this is the node's own toolbox, passed to its exchange by reference.
template <class Model, class Comm, class Quant>
struct node_core {
    using value_type = model_value_t<Model>;        ///< float or double
    using memory_type = node_memory<Model, Quant>;  ///< the memory back end
    using buffer = typename memory_type::buffer;    ///< a flat model-sized buffer
    using model_type = Model;                       ///< the node's model type
    using quantizer_type = Quant;                   ///< the node's quantizer type
    using clock = std::chrono::steady_clock;        ///< the clock of timeouts and stats

    /// True when the node can read and write wire payloads in place (host model and a
    /// quantizer with the exact_reconstruction capability): exchanges::exact_exchange.
    static constexpr bool exact = memory_type::host && exact_quantizer_for<Quant, value_type>;
    /// True when the quantizer can fail to decode and adapts (recovering_quantizer_for):
    /// exchanges::recovering_exchange.
    static constexpr bool recovers = recovering_quantizer_for<Quant, value_type>;

    Model* model;        ///< the model (owned by the user)
    Comm* comm;          ///< the communicator endpoint (owned by the user)
    Quant quantizer;     ///< the quantizer (its adaptive state included)
    std::size_t size;    ///< number of model elements, fixed at construction
    memory_type memory;  ///< where model-sized memory is touched
    rng random;          ///< partner choice, H draws, stochastic rounding
    node_stats stats{};  ///< counters and times
    std::vector<std::vector<std::byte>> spare_bytes{};  ///< message buffers for reuse

    node_core(Model& m, Comm& c, Quant q, std::size_t n, rng r)
        : model(&m), comm(&c), quantizer(std::move(q)), size(n), memory(n), random(r) {}

    /// Rank of this node.
    [[nodiscard]] std::size_t rank() const { return comm->rank(); }

    /// Seconds elapsed since `t`.
    [[nodiscard]] static double seconds_since(clock::time_point t) {
        return std::chrono::duration<double>(clock::now() - t).count();
    }

    /// A byte buffer to build a message in, reusing a received message's buffer when it can
    /// (its old bytes are left in place: every caller resizes it and writes all it sends; not
    /// clearing it spares a zero-filling pass over a model-sized message).
    [[nodiscard]] std::vector<std::byte> take_bytes() {
        if (spare_bytes.empty()) return {};
        auto b = std::move(spare_bytes.back());
        spare_bytes.pop_back();
        return b;
    }

    /// The bytes of a message (room for the envelope, then the payload), not yet sent. With
    /// `values`, encodes them after refusing a non-finite one (non_finite_error naming the
    /// element and the peer); on return `*values` holds the reconstruction the receiver will
    /// decode. Without, the payload is `raw_payload`.
    [[nodiscard]] std::vector<std::byte> build(std::size_t peer, buffer* values,
                                               std::span<const std::byte> raw_payload = {}) {
        std::vector<std::byte> bytes = take_bytes();
        std::size_t payload = raw_payload.size();
        if (values != nullptr) {
            if (const auto k = memory.first_non_finite(*values); k != values->size())
                throw non_finite_error(concat(
                    "node ", rank(), ": model element ", k, " is ", memory.element(*values, k),
                    "; refusing to send a non-finite model to node ", peer));
            bytes.resize(envelope_size + quantizer.max_encoded_size(values->size()));
            payload = memory.encode(quantizer, *values,
                                    std::span<std::byte>(bytes).subspan(envelope_size), random);
        } else {
            bytes.resize(envelope_size + payload);
            if (!raw_payload.empty())
                std::copy(raw_payload.begin(), raw_payload.end(), bytes.begin() + envelope_size);
        }
        bytes.resize(envelope_size + payload);
        return bytes;
    }

    /// build + post.
    void send(std::size_t peer, message_kind kind, std::uint64_t id, buffer* values,
              std::span<const std::byte> raw_payload = {}) {
        post(peer, kind, id, build(peer, values, raw_payload));
    }

    /// Writes the envelope of `bytes` (whose payload is in place after it), counts and sends
    /// without waiting: the send request is kept until it completes.
    void post(std::size_t peer, message_kind kind, std::uint64_t id, std::vector<std::byte> bytes,
              std::uint8_t flags = 0) {
        require<message_error>(bytes.size() - envelope_size <= 0xFFFFFFFFu, "node ", rank(),
                               ": message of ", bytes.size(),
                               " bytes exceeds the 4 GiB payload limit");
        write_envelope(bytes, {kind, static_cast<std::uint32_t>(rank()), id,
                               static_cast<std::uint32_t>(bytes.size() - envelope_size), flags});
        stats.bytes_sent += bytes.size();
        ++stats.messages_sent;
        sends.add(peer, [&] { return comm->isend(peer, std::move(bytes)); });
    }

    /// Decodes a model payload of a `kind` message from `peer` against `reference` into `out`,
    /// rewording the quantizer's size_mismatch_error and message_error to name this node, the
    /// peer and the kind. Failed ranges are returned, not thrown: the exchange decides.
    [[nodiscard]] decode_result decode(std::size_t peer, message_kind kind,
                                       std::span<const std::byte> payload, const buffer& reference,
                                       buffer& out) {
        try {
            return memory.decode(quantizer, payload, reference, out);
        } catch (const size_mismatch_error& e) {
            throw size_mismatch_error(concat("node ", rank(), " (model of ", size,
                                             " elements) got a ", to_string(kind), " from node ",
                                             peer, ": ", e.what()));
        } catch (const message_error& e) {
            throw message_error(concat("node ", rank(), " got a malformed ", to_string(kind),
                                       " from node ", peer, ": ", e.what()));
        }
    }

    /// Throws message_error when the decoded partner model `received` holds a NaN or Inf.
    void check_finite(const buffer& received, std::size_t peer, message_kind kind) {
        if (const auto k = memory.first_non_finite(received); k != received.size())
            throw_non_finite_received(peer, kind, k);
    }

    /// The error for a partner's message that decodes to a non-finite element `k`.
    [[noreturn]] void throw_non_finite_received(std::size_t peer, message_kind kind,
                                                std::size_t k) const {
        throw message_error(concat("node ", rank(), ": ", to_string(kind), " from node ", peer,
                                   " decodes to a non-finite element ", k,
                                   "; the model was not changed"));
    }

    /// swarm_options::distance_guard (0: off).
    double distance_guard = 0;
    /// The last accepted distances (a ring of 16), for the guard's reference.
    std::array<double, 16> accepted_distances{};
    /// Distances accepted so far (the ring's write position).
    std::size_t accepted_count = 0;

    /// True when the distance guard is on.
    [[nodiscard]] bool guarding() const noexcept { return distance_guard > 0; }

    /// The distance guard (swarm_options::distance_guard) for a partner's model at squared
    /// distance `squared_distance` from the snapshot it would be averaged with, whose squared
    /// norm is `squared_norm`, both over `n` elements: throws message_error (counted in
    /// refused_distant) when it is too far, else remembers the distance. A non-finite
    /// distance is left to the finiteness checks.
    void guard_distance(std::size_t peer, message_kind kind, double squared_distance,
                        double squared_norm, std::size_t n) {
        if (!guarding() || n == 0) return;
        const double d = std::sqrt(squared_distance / double(n));
        if (!std::isfinite(d)) return;
        double recent = 0;
        for (std::size_t k = 0; k < std::min(accepted_count, accepted_distances.size()); ++k)
            recent = std::max(recent, accepted_distances[k]);
        const double norm = std::sqrt(squared_norm / double(n));
        const double reference = std::max(recent, std::isfinite(norm) ? norm : 0.0);
        if (reference > 0 && d > distance_guard * reference) {
            ++stats.refused_distant;
            throw message_error(concat(
                "node ", rank(), ": ", to_string(kind), " from node ", peer, " is at RMS distance ",
                d, " from this node's model, more than distance_guard = ", distance_guard,
                " times the reference ", reference,
                " (the larger of this model's RMS norm and the largest of its last ",
                accepted_distances.size(),
                " accepted distances); refused, the model was not "
                "changed"));
        }
        accepted_distances[accepted_count++ % accepted_distances.size()] = d;
    }

    /// guard_distance for a decoded partner model `theirs` against our snapshot `ours`.
    void guard_distance(std::size_t peer, message_kind kind, const buffer& theirs,
                        const buffer& ours) {
        if (!guarding()) return;
        guard_distance(peer, kind, memory.squared_distance(theirs, ours), memory.squared_norm(ours),
                       ours.size());
    }

    /// Runs `serve` (an exchange answering request `e`); if it throws size_mismatch_error,
    /// message_error or non_finite_error, tells the initiator why (a failure message with the
    /// matching failure_code) and rethrows, so both sides report the same cause.
    template <class F>
    void answer_or_refuse(const envelope& e, F&& serve) {
        try {
            std::forward<F>(serve)();
        } catch (const size_mismatch_error& err) {
            refuse(e.sender, e.interaction, failure_code::size_mismatch, err);
        } catch (const message_error& err) {
            refuse(e.sender, e.interaction, failure_code::malformed, err);
        } catch (const non_finite_error& err) {
            refuse(e.sender, e.interaction, failure_code::non_finite, err);
        }
    }

    /// Tells `peer` why this node refuses an interaction, then rethrows the current exception.
    [[noreturn]] void refuse(std::size_t peer, std::uint64_t id, failure_code code,
                             const std::exception& e) {
        try {
            send(peer, message_kind::failure, id, nullptr, failure_payload(code, e.what()));
        } catch (...) {  // the local error matters more than the courtesy message
        }
        throw;
    }

    using send_request =
        decltype(std::declval<Comm&>().isend(std::size_t{}, std::vector<std::byte>{}));
    /// Sends not yet complete; released with swarm_options::send_linger when the node goes.
    send_queue<send_request> sends{};
};

}  // namespace swarmsgd::detail
