#pragma once
/// \file baselines/common.hpp
/// Internals shared by the baseline algorithms of baselines/ (namespace swarmsgd::detail, not
/// API): the template-argument checks, the send bookkeeping of a node (outbox), reading the
/// envelope of a message meant for a baseline, and encoding / decoding one message payload
/// through a quantizer with the library's error texts. Where the nodes touch their models:
/// baseline_memory.hpp.

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../communicator.hpp"
#include "../detail/kernels.hpp"
#include "../errors.hpp"
#include "../message.hpp"
#include "../model.hpp"
#include "../node_stats.hpp"
#include "../quantizer.hpp"
#include "../random.hpp"
#include "../swarm_node.hpp"
#include "baseline_memory.hpp"

namespace swarmsgd::detail {

/// The clock of the baselines' timeouts and statistics.
using baseline_clock = std::chrono::steady_clock;

/// Seconds elapsed since `t`.
[[nodiscard]] inline double seconds_since(baseline_clock::time_point t) {
    return std::chrono::duration<double>(baseline_clock::now() - t).count();
}

/// Milliseconds elapsed since `t`.
[[nodiscard]] inline long long milliseconds_since(baseline_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(baseline_clock::now() - t).count();
}

/// Whether the baselines can reach models of type Model (baseline_memory is defined for its
/// memory system: host models always, Thrust models with <swarmsgd/thrust.hpp>).
template <class Model>
concept baseline_model = requires {
    typename baseline_memory<Model>::optimizer_type;
};

/// Readable diagnostics for the template arguments of a baseline node (the checks of
/// swarm_node first, then the model's memory system and the quantizer).
template <class Model, class Comm, class Quant>
constexpr bool check_baseline_types() {
    static_assert(check_node_types<Model, Comm>());
    if constexpr (any_model<Model>) {
        static_assert(
            baseline_model<Model>,
            "swarmsgd: the baseline algorithms (baselines/) have no back end for this "
            "model's memory system; for Thrust device vectors include "
            "<swarmsgd/thrust.hpp> (thrust/detail/baseline_memory.hpp); see docs/baselines.md");
        static_assert(quantizer_for<Quant, model_value_t<Model>>,
                      "swarmsgd: the Quant type is not a quantizer for this model's value type: "
                      "it needs id(), name(), max_encoded_size(n), encode(values, out, rng) and "
                      "decode(payload, reference, out) -> decode_result; see quantizer.hpp");
    }
    return true;
}

/// A quantizer that adapts to the distances it observes (the lattice quantizer).
template <class Q, class V>
concept observing_quantizer = requires(Q& q, std::span<const V> a) {
    q.observe(a, a);
};

/// The sends of one node that have not completed yet (with their destinations, for the
/// shutdown's error message), and the counting of what the node sends.
template <class Comm>
class outbox {
public:
    /// The communicator's send_request type.
    using request_type =
        decltype(std::declval<Comm&>().isend(std::size_t{}, std::vector<std::byte>{}));

    outbox() = default;
    outbox(const outbox&) = delete;
    outbox& operator=(const outbox&) = delete;
    outbox(outbox&&) noexcept = default;
    outbox& operator=(outbox&&) noexcept = default;
    ~outbox() = default;

    /// Writes the envelope into the first envelope_size bytes of `bytes` (the payload follows
    /// it), counts the message in `traffic` and starts sending it to `dest`.
    void post(Comm& comm, std::size_t dest, message_kind kind, std::uint64_t interaction,
              std::vector<std::byte> bytes, node_stats& traffic) {
        require<message_error>(
            bytes.size() >= envelope_size && bytes.size() - envelope_size <= 0xFFFFFFFFu, "node ",
            comm.rank(), ": message of ", bytes.size(), " bytes exceeds the 4 GiB payload limit");
        write_envelope(bytes, {kind, static_cast<std::uint32_t>(comm.rank()), interaction,
                               static_cast<std::uint32_t>(bytes.size() - envelope_size), 0});
        traffic.bytes_sent += bytes.size();
        ++traffic.messages_sent;
        auto request = comm.isend(dest, std::move(bytes));
        if (!request.test()) pending_.push_back({std::move(request), dest});
        reap();
    }

    /// Forgets the sends that have completed.
    void reap() {
        std::erase_if(pending_, [](auto& p) { return p.request.test(); });
    }

    /// Number of sends not complete yet.
    [[nodiscard]] std::size_t pending() const noexcept { return pending_.size(); }

    /// Destination of the oldest incomplete send, if any.
    [[nodiscard]] std::optional<std::size_t> first_destination() const {
        if (pending_.empty()) return std::nullopt;
        return pending_.front().dest;
    }

private:
    struct pending_send {
        request_type request;
        std::size_t dest;
    };
    std::vector<pending_send> pending_;
};

/// Reads the envelope of a message that arrived at baseline node `rank`, which runs
/// `algorithm` and accepts messages of kind `expected` only. Throws message_error for a
/// malformed envelope and for any other kind (Swarm SGD's kinds: "every node must run the same
/// algorithm"); a failure message is rethrown as the category it carries.
[[nodiscard]] inline envelope read_baseline_envelope(const received_message& m, std::size_t rank,
                                                     message_kind expected, const char* algorithm) {
    const envelope e = read_envelope(m.bytes, m.source);
    if (e.kind == expected) return e;
    if (e.kind == message_kind::failure) {
        const failure_report report =
            read_failure_payload(std::span<const std::byte>(m.bytes).subspan(envelope_size));
        throw_failure(report.code, concat("node ", rank, " (", algorithm, "): node ", m.source,
                                          " reported a failure: ", report.reason));
    }
    if (e.kind == message_kind::collective || e.kind == message_kind::neighbour_model)
        throw message_error(concat("node ", rank, " (", algorithm, ") got a ", to_string(e.kind),
                                   " message from node ", m.source, " (interaction ", e.interaction,
                                   "), which another baseline sends; it expects ",
                                   to_string(expected),
                                   " messages only: every node must run the same algorithm"));
    throw message_error(concat("node ", rank, " (", algorithm, ") got a ", to_string(e.kind),
                               " message from node ", m.source,
                               ": that is a Swarm SGD message (swarm_node), not one of ", algorithm,
                               "'s; every node must run the same algorithm"));
}

/// Builds a message whose payload is `values` encoded by `q` (room for the envelope first).
/// Refuses non-finite values with non_finite_error naming `what`, its element and `dest`
/// (nothing is sent). On return `values` holds the reconstruction the receiver decodes.
template <class V, class Quant>
[[nodiscard]] std::vector<std::byte> encode_message(Quant& q, std::span<V> values, rng& random,
                                                    std::size_t rank, std::size_t dest,
                                                    const char* what) {
    if (const auto k = first_non_finite(values.data(), values.size()); k != values.size())
        throw non_finite_error(concat("node ", rank, ": ", what, " element ", k, " is ", values[k],
                                      "; refusing to send it to node ", dest));
    std::vector<std::byte> bytes(envelope_size + q.max_encoded_size(values.size()));
    const std::size_t payload =
        q.encode(values, std::span<std::byte>(bytes).subspan(envelope_size), random);
    bytes.resize(envelope_size + payload);
    return bytes;
}

/// Decodes the payload of message `e` (from `e.sender`) against `reference` into `out`,
/// validating it: a malformed payload, a payload of another size, a decode that fails for some
/// elements or that yields a non-finite value throw message_error / size_mismatch_error naming
/// this node, the sender, the kind and `where()` (round and hop; only called on an error).
/// `out` is then unspecified.
template <class V, class Quant, class Where>
void decode_message(Quant& q, const envelope& e, std::span<const std::byte> payload,
                    std::span<const V> reference, std::span<V> out, std::size_t rank, Where where) {
    decode_result result;
    try {
        result = q.decode(payload, reference, out);
    } catch (const size_mismatch_error& err) {
        throw size_mismatch_error(concat("node ", rank, " expected ", out.size(),
                                         " elements in the ", to_string(e.kind), " from node ",
                                         e.sender, " (", where(), "): ", err.what()));
    } catch (const message_error& err) {
        throw message_error(concat("node ", rank, " got a malformed ", to_string(e.kind),
                                   " from node ", e.sender, " (", where(), "): ", err.what()));
    }
    if (!result.ok())
        throw message_error(concat("node ", rank, ": ", q.name(), " could not decode ",
                                   result.failed_elements(), " elements of the ", to_string(e.kind),
                                   " from node ", e.sender, " (", where(),
                                   "); the baselines do not recover failed decodes"));
    if (const auto k = first_non_finite(out.data(), out.size()); k != out.size())
        throw message_error(concat("node ", rank, ": ", to_string(e.kind), " from node ", e.sender,
                                   " (", where(), ") decodes to a non-finite element ", k));
}

/// Checks a gradient for a step of a baseline node: size, then finiteness (the model is not
/// touched and nothing is sent when it throws).
template <class V>
void check_gradient(std::span<const V> grad, std::size_t size, std::size_t rank,
                    std::uint64_t step) {
    if (grad.size() != size)
        throw size_mismatch_error(concat("node ", rank, ": gradient has ", grad.size(),
                                         " elements, the model has ", size));
    if (const auto k = first_non_finite(grad.data(), grad.size()); k != grad.size())
        throw non_finite_error(concat("node ", rank, ": gradient element ", k, " is ", grad[k],
                                      " at step ", step,
                                      "; the step was not applied and nothing was sent"));
}

/// The blocking loop of a baseline node's step(): calls `progress()` until it returns true,
/// sleeping in `comm.wait_for_message` (at most `max_sleep` at a time) in between. Throws
/// peer_timeout_error when `position()` (what the node has received so far) has not changed
/// for `timeout`, with `describe()` saying what the node is waiting for (the peer, the round,
/// the hop).
template <class Comm, class Progress, class Position, class Describe>
void wait_until_complete(Comm& comm, std::size_t rank, std::chrono::milliseconds timeout,
                         std::chrono::milliseconds max_sleep, Progress progress, Position position,
                         Describe describe) {
    auto since = baseline_clock::now();
    auto mark = position();
    while (!progress()) {
        const auto now = baseline_clock::now();
        if (const auto p = position(); p != mark) {
            mark = p;
            since = now;
        } else if (now - since > timeout) {
            throw peer_timeout_error(concat("node ", rank, ": ", describe(), " after ",
                                            milliseconds_since(since),
                                            " ms (timeout = ", timeout.count(),
                                            " ms); the peer crashed, hung or is far too slow"));
        }
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(since + timeout - now);
        comm.wait_for_message(std::clamp(left, std::chrono::milliseconds(1), max_sleep));
    }
}

/// The shutdown of a synchronous baseline node: waits (polling with `poll()`) until its sends
/// have completed (`pending_destination()` returns the destination of one that has not, or
/// nullopt), announces that it is done and waits until every node is, all within
/// `shutdown_timeout`; throws peer_timeout_error naming what did not happen.
template <class Comm, class Poll, class Pending>
void finish_synchronous(Comm& comm, std::size_t rank, const char* algorithm,
                        std::chrono::milliseconds shutdown_timeout, Poll poll,
                        Pending pending_destination) {
    const auto start = baseline_clock::now();
    const auto deadline = start + shutdown_timeout;
    while (const auto dest = pending_destination()) {
        poll();
        if (!pending_destination()) break;
        if (baseline_clock::now() > deadline)
            throw peer_timeout_error(
                concat("node ", rank, " (", algorithm, "): the send to node ", *dest,
                       " did not complete within shutdown_timeout = ", shutdown_timeout.count(),
                       " ms; the peer crashed or hung"));
        comm.wait_for_message(std::chrono::milliseconds(1));
    }
    comm.announce_done();
    while (!comm.all_done()) {
        poll();
        if (baseline_clock::now() > deadline)
            throw peer_timeout_error(concat(
                "node ", rank, " (", algorithm,
                "): not every node finished within "
                "shutdown_timeout = ",
                shutdown_timeout.count(),
                " ms (every node of a synchronous baseline must take the same number of steps; "
                "a node that takes more waits for the others forever)"));
        comm.wait_for_message(std::chrono::milliseconds(2));
    }
    poll();
}

}  // namespace swarmsgd::detail
