#pragma once
/// \file communicators/timed.hpp
/// A deterministic message network with a clock in seconds, for the timed simulator
/// (timed_simulator.hpp). A message of b bytes costs latency + b / bandwidth (the alpha-beta
/// model) and occupies links while it is transmitted:
/// - `link_model::per_node` (a switched cluster): every node has its own link, full duplex.
///   A message holds its sender's uplink for b / bandwidth, starting when the uplink is free,
///   and its receiver's downlink for b / bandwidth, starting `latency` after its transmission
///   began or, when the downlink is busy, once it is free (messages queue there in the order
///   they reach it). Messages from one node therefore queue on its link, and many messages to
///   one node queue on its downlink (incast).
/// - `link_model::shared`: one medium for everybody (one rate-limited loopback, a hub): every
///   message holds the single link for b / bandwidth.
/// An uncontended message is delivered latency + b / bandwidth after it was sent, so a ring
/// allreduce of M bytes over n nodes costs 2 (n - 1) (latency + M / (n bandwidth)).
/// The endpoints also offer a native allreduce (the native_allreduce capability of
/// baselines/native_allreduce.hpp): it sums the nodes' vectors at once and completes, on every
/// node, when the ring allreduce it stands for would (2 (n - 1) hops of latency + one chunk
/// message of the ring engine, which is what the ring of messages costs when the links carry
/// nothing else), so a simulation of thousands of nodes need not send 2 n (n - 1) messages per
/// step.
/// Nothing depends on wall time; the same sends in the same order give the same deliveries.

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <queue>
#include <span>
#include <vector>

#include "../communicator.hpp"
#include "../detail/inboxes.hpp"
#include "../errors.hpp"
#include "../message.hpp"
#include "../tensor_traits.hpp"

namespace swarmsgd {

/// How the nodes' links share the network.
enum class link_model {
    per_node,  ///< one full-duplex link per node (a switched cluster)
    shared,    ///< one link shared by every message (a hub, one rate-limited loopback)
};

/// The alpha-beta cost of messages and of handling them.
struct network_model {
    /// alpha: seconds from the end of a message's transmission on the sender's link to the
    /// start of its reception (wire and software latency).
    double latency_seconds = 0;
    /// beta: bytes per second of one link (each direction); infinity for a free network.
    double bandwidth_bytes_per_second = std::numeric_limits<double>::infinity();
    /// Which links a message occupies.
    link_model links = link_model::per_node;
    /// CPU seconds a node spends per wire byte it sends or receives (encoding, decoding,
    /// reducing, applying): charged to the node by the timed simulator, 0 to ignore.
    double local_seconds_per_byte = 0;

    /// Throws invalid_argument_error naming the offending value.
    void validate() const {
        detail::require<invalid_argument_error>(
            std::isfinite(latency_seconds) && latency_seconds >= 0,
            "network_model: latency_seconds = ", latency_seconds, "; it must be finite and >= 0");
        detail::require<invalid_argument_error>(
            bandwidth_bytes_per_second > 0 && !std::isnan(bandwidth_bytes_per_second),
            "network_model: bandwidth_bytes_per_second = ", bandwidth_bytes_per_second,
            "; it must be > 0 (infinity for a free network)");
        detail::require<invalid_argument_error>(
            std::isfinite(local_seconds_per_byte) && local_seconds_per_byte >= 0,
            "network_model: local_seconds_per_byte = ", local_seconds_per_byte,
            "; it must be finite and >= 0");
    }

    /// Seconds one uncontended message of `bytes` bytes takes: latency + bytes / bandwidth.
    [[nodiscard]] double message_seconds(std::size_t bytes) const noexcept {
        return latency_seconds + transmission_seconds(bytes);
    }
    /// Seconds a ring allreduce of `elements` values of `value_bytes` bytes over `n` nodes
    /// takes when the links carry nothing else: 2 (n - 1) hops, each a message of the ring
    /// engine (envelope, payload header and ceil(elements / n) values; on a shared link the n
    /// messages of a hop follow each other).
    [[nodiscard]] double ring_allreduce_seconds(std::size_t elements, std::size_t value_bytes,
                                                std::size_t n) const noexcept {
        if (n <= 1) return 0;
        const std::size_t chunk = ring_chunk_bytes(elements, value_bytes, n);
        const double per_hop =
            links == link_model::shared
                ? latency_seconds + static_cast<double>(n) * transmission_seconds(chunk)
                : message_seconds(chunk);
        return 2.0 * static_cast<double>(n - 1) * per_hop;
    }
    /// Bytes of one message of the ring allreduce engine (baselines/ring_allreduce.hpp) with
    /// the identity quantizer: envelope, payload header, ceil(elements / n) values.
    [[nodiscard]] static std::size_t ring_chunk_bytes(std::size_t elements, std::size_t value_bytes,
                                                      std::size_t n) noexcept {
        return envelope_size + payload_header_size + (elements + n - 1) / n * value_bytes;
    }
    /// Seconds `bytes` bytes hold a link: bytes / bandwidth.
    [[nodiscard]] double transmission_seconds(std::size_t bytes) const noexcept {
        return static_cast<double>(bytes) / bandwidth_bytes_per_second;
    }
};

/// The shared network of a timed simulation: n nodes, one clock in seconds set by the driver.
class timed_network {
public:
    /// A network of `n` nodes with the costs of `model`.
    timed_network(std::size_t n, network_model model)
        : model_(model),
          inboxes_(n),
          uplink_free_(n, 0.0),
          downlink_free_(n, 0.0),
          bytes_sent_(n, 0) {
        detail::require<invalid_argument_error>(n >= 1, "timed_network: n = 0 nodes");
        model_.validate();
    }

    /// Number of nodes.
    [[nodiscard]] std::size_t size() const noexcept { return inboxes_.size(); }
    /// The cost model.
    [[nodiscard]] const network_model& model() const noexcept { return model_; }
    /// Current time in seconds (sends are stamped with it).
    [[nodiscard]] double now() const noexcept { return now_; }
    /// Sets the clock; time never goes back.
    void set_now(double t) {
        detail::require<invalid_argument_error>(t >= now_, "timed_network: time goes back from ",
                                                now_, " s to ", t, " s");
        now_ = t;
    }
    /// Messages sent and not yet delivered into an inbox.
    [[nodiscard]] std::size_t in_transit() const noexcept { return in_transit_.size(); }
    /// Messages delivered and not yet taken out of an inbox.
    [[nodiscard]] std::size_t queued() const noexcept { return inboxes_.queued(); }
    /// Time of the network's next event (infinity when nothing is in transit): a message
    /// reaching its receiver's link, or a message delivered into its receiver's inbox.
    [[nodiscard]] double next_event() const noexcept {
        return in_transit_.empty() ? std::numeric_limits<double>::infinity()
                                   : in_transit_.top().due;
    }
    /// Advances the clock to the next event and runs it: a message that reaches its receiver's
    /// downlink is queued there (in the order messages reach it), a message whose reception
    /// ends goes into its receiver's inbox. Returns the receiver's rank for a delivery, nothing
    /// otherwise (a native allreduce that completes on a node returns that node too, with
    /// nothing in its inbox). Precondition: in_transit() > 0.
    std::optional<std::size_t> advance() {
        detail::require<invalid_argument_error>(!in_transit_.empty(),
                                                "timed_network: nothing in transit");
        auto top = in_transit_.top();
        in_transit_.pop();
        set_now(top.due);
        if (top.body == wake) return top.dest;  // a native allreduce completed on this node
        if (!top.delivered) {
            // The head of the message reaches the receiver's downlink now.
            const double hold = model_.transmission_seconds(bodies_[top.body].bytes.size());
            const double start = std::max(now_, downlink_free_[top.dest]);
            downlink_free_[top.dest] = start + hold;
            in_transit_.push({start + hold, sequence_++, top.dest, top.body, true});
            return std::nullopt;
        }
        inboxes_.push(top.dest, std::move(bodies_[top.body]));
        free_bodies_.push_back(top.body);
        return top.dest;
    }
    /// Runs events until a message is delivered (or a native allreduce completes); returns the
    /// receiver's rank. Precondition: in_transit() > 0.
    std::size_t deliver_next() {
        while (true)
            if (const auto rank = advance()) return *rank;
    }
    /// Whether node `rank` has a delivered message waiting.
    [[nodiscard]] bool has_message(std::size_t rank) const { return inboxes_.has_message(rank); }
    /// Bytes node `rank` has sent.
    [[nodiscard]] std::uint64_t bytes_sent(std::size_t rank) const { return bytes_sent_.at(rank); }

    class endpoint;
    /// The endpoint of node `rank`.
    [[nodiscard]] endpoint endpoint_for(std::size_t rank);

private:
    friend class endpoint;
    struct delivery {
        double due;
        std::uint64_t sequence;
        std::size_t dest;
        std::size_t body;
        bool delivered;  // the event ends the reception (else: the head reaches the downlink)
        // The earliest due first; among equal times, the first sent first.
        bool operator<(const delivery& o) const noexcept {
            return due != o.due ? due > o.due : sequence > o.sequence;
        }
    };

    void post(std::size_t source, std::size_t dest, std::vector<std::byte> bytes) {
        const double hold = model_.transmission_seconds(bytes.size());
        // Sends happen in time order, so a link reserved in posting order is FIFO in time.
        double& link = uplink_free_[model_.links == link_model::shared ? 0 : source];
        const double start = std::max(now_, link);
        link = start + hold;
        // On a shared medium the message is received while it is sent; on per-node links its
        // head reaches the receiver's downlink `latency` after its transmission began, and is
        // queued there in arrival order (advance()).
        const bool shared = model_.links == link_model::shared;
        const double due =
            shared ? start + hold + model_.latency_seconds : start + model_.latency_seconds;
        bytes_sent_[source] += bytes.size();
        std::size_t body = 0;
        received_message m{source, std::move(bytes)};
        if (free_bodies_.empty()) {
            body = bodies_.size();
            bodies_.push_back(std::move(m));
        } else {
            body = free_bodies_.back();
            free_bodies_.pop_back();
            bodies_[body] = std::move(m);
        }
        in_transit_.push({due, sequence_++, dest, body, shared});
    }

    static constexpr std::size_t wake = std::numeric_limits<std::size_t>::max();

    /// One native allreduce: the k-th call of every node.
    struct collective {
        std::vector<void*> data;  // each node's vector (value type checked by value_bytes)
        std::size_t elements = 0;
        std::size_t value_bytes = 0;
        std::size_t joined = 0;
        std::size_t observed = 0;  // nodes whose request saw it complete
        double complete_at = std::numeric_limits<double>::infinity();
    };

    template <class V>
    std::uint64_t join_allreduce(std::size_t rank, std::span<V> data) {
        using detail::require;
        const std::uint64_t k = next_collective_[rank]++;
        auto& c = collectives_[k];
        if (c.joined == 0) {
            c.data.assign(size(), nullptr);
            c.elements = data.size();
            c.value_bytes = sizeof(V);
        }
        require<size_mismatch_error>(c.elements == data.size() && c.value_bytes == sizeof(V),
                                     "timed native allreduce ", k, ": node ", rank, " gives ",
                                     data.size(), " values of ", sizeof(V), " bytes, another node ",
                                     c.elements, " values of ", c.value_bytes, " bytes");
        c.data[rank] = data.data();
        if (++c.joined < size()) return k;
        // Everybody is in: sum in rank order (the same bits everywhere), then every node's
        // request completes when the ring would have.
        std::vector<V> sum(c.elements, V(0));
        for (void* p : c.data) {
            const V* x = static_cast<const V*>(p);
            for (std::size_t e = 0; e < c.elements; ++e) sum[e] += x[e];
        }
        for (void* p : c.data) std::copy(sum.begin(), sum.end(), static_cast<V*>(p));
        c.complete_at = now_ + model_.ring_allreduce_seconds(c.elements, sizeof(V), size());
        const auto chunk = network_model::ring_chunk_bytes(c.elements, sizeof(V), size());
        for (std::size_t r = 0; r < size(); ++r) {
            bytes_sent_[r] += 2 * (size() - 1) * chunk;
            uplink_free_[r] = std::max(uplink_free_[r], c.complete_at);
            downlink_free_[r] = std::max(downlink_free_[r], c.complete_at);
            in_transit_.push({c.complete_at, sequence_++, r, wake, true});
        }
        return k;
    }

    bool allreduce_complete(std::uint64_t k) {
        const auto it = collectives_.find(k);
        if (it == collectives_.end()) return true;  // every node saw it complete already
        if (now_ < it->second.complete_at) return false;
        if (++it->second.observed == size()) collectives_.erase(it);
        return true;
    }

    network_model model_;
    detail::inboxes inboxes_;
    std::vector<double> uplink_free_;    // per node (index 0 is the medium when shared)
    std::vector<double> downlink_free_;  // per node (unused when shared)
    std::vector<std::uint64_t> bytes_sent_;
    std::priority_queue<delivery> in_transit_;
    std::vector<received_message> bodies_;  // messages in transit, by delivery::body
    std::vector<std::size_t> free_bodies_;
    std::map<std::uint64_t, collective> collectives_;  // native allreduces not yet over
    std::vector<std::uint64_t> next_collective_ = std::vector<std::uint64_t>(inboxes_.size(), 0);
    double now_ = 0;
    std::uint64_t sequence_ = 0;
};

/// One node's view of a timed_network; satisfies swarmsgd::communicator.
class timed_network::endpoint {
public:
    /// Rank of this node.
    [[nodiscard]] std::size_t rank() const noexcept { return rank_; }
    /// Number of nodes.
    [[nodiscard]] std::size_t size() const noexcept { return net_->size(); }

    /// Puts the message on the links at the network's current time.
    completed_request isend(std::size_t dest, std::vector<std::byte> bytes) {
        detail::require<invalid_argument_error>(dest < size() && dest != rank_,
                                                "timed isend from node ", rank_, " to node ", dest,
                                                " (n = ", size(), ")");
        net_->post(rank_, dest, std::move(bytes));
        return {};
    }

    /// Takes the oldest delivered message, if any.
    std::optional<received_message> try_receive() { return net_->inboxes_.pop(rank_); }

    /// Never sleeps (one thread drives every node): says whether the inbox is non-empty.
    bool wait_for_message(std::chrono::nanoseconds /*timeout*/) {
        return net_->inboxes_.has_message(rank_);
    }

    /// The handle of a native allreduce (native_allreduce capability): test() is true once
    /// the ring it stands for would be complete on this node.
    class allreduce_request {
    public:
        /// Whether the result is in place (it stays true).
        [[nodiscard]] bool test() {
            if (!done_) done_ = net_->allreduce_complete(index_);
            return done_;
        }

    private:
        friend class endpoint;
        allreduce_request(timed_network* net, std::uint64_t index) : net_(net), index_(index) {}
        timed_network* net_;
        std::uint64_t index_;
        bool done_ = false;
    };

    /// Native allreduce (sum) of `data` over every node, in place; collective (every node
    /// calls it in the same order with the same size, else size_mismatch_error). The sum is
    /// taken in rank order once the last node called, and the request completes
    /// ring_allreduce_seconds() later, when the simulator wakes the node.
    template <tensor_value V>
    allreduce_request iallreduce_sum(std::span<V> data) {
        return allreduce_request(net_, net_->join_allreduce(rank_, data));
    }

    /// Counts this node as done (once).
    void announce_done() { net_->inboxes_.announce_done(rank_); }
    /// True once every node has announced.
    [[nodiscard]] bool all_done() const noexcept { return net_->inboxes_.all_done(); }

private:
    friend class timed_network;
    endpoint(timed_network* net, std::size_t rank) : net_(net), rank_(rank) {}
    timed_network* net_;
    std::size_t rank_;
};

inline timed_network::endpoint timed_network::endpoint_for(std::size_t rank) {
    detail::require<invalid_argument_error>(rank < size(), "timed_network: rank ", rank,
                                            " out of range, n = ", size());
    return endpoint(this, rank);
}

static_assert(communicator<timed_network::endpoint>);

}  // namespace swarmsgd
