#pragma once
/// \file communicators/simulated.hpp
/// A deterministic, single-threaded message network for the simulator. Messages wait in
/// transit for a number of ticks drawn from the network's own seeded stream, then land in
/// their receiver's inbox in (due tick, send order) order; nothing depends on wall time.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <tuple>
#include <vector>

#include "../checkpoint.hpp"
#include "../communicator.hpp"
#include "../detail/inboxes.hpp"
#include "../errors.hpp"
#include "../random.hpp"

namespace swarmsgd {

/// The shared network of a simulation (n nodes, one clock).
class simulated_network {
public:
    /// A network of `n` nodes whose messages take between `min_delay` and `max_delay` ticks.
    simulated_network(std::size_t n, std::size_t min_delay, std::size_t max_delay,
                      std::uint64_t seed)
        : inboxes_(n), min_delay_(min_delay), max_delay_(max_delay), random_(seed, 0x5e7) {
        detail::require<invalid_argument_error>(n >= 1, "simulated_network: n = 0 nodes");
        detail::require<invalid_argument_error>(min_delay <= max_delay,
                                                "simulated_network: min_delay = ", min_delay,
                                                " > max_delay = ", max_delay);
    }

    /// Number of nodes.
    [[nodiscard]] std::size_t size() const noexcept { return inboxes_.size(); }
    /// Current tick.
    [[nodiscard]] std::uint64_t now() const noexcept { return now_; }
    /// Messages sent but not yet taken out of an inbox.
    [[nodiscard]] std::size_t pending() const noexcept {
        return in_transit_.size() + inboxes_.queued();
    }
    /// Whether node `rank` has a message waiting in its inbox.
    [[nodiscard]] bool has_message(std::size_t rank) const { return inboxes_.has_message(rank); }

    /// Cuts node `rank` off, as a crash would: the messages waiting in its inbox or in transit
    /// to it are dropped, and so is every message sent to it from now on. Messages it sent
    /// before stay in transit (they were on the wire). Idempotent.
    void disconnect(std::size_t rank) {
        detail::require<invalid_argument_error>(rank < size(), "simulated_network: disconnect(",
                                                rank, ") but n = ", size());
        if (disconnected_.empty()) disconnected_.assign(size(), 0);
        disconnected_[rank] = 1;
        while (inboxes_.pop(rank)) ++dropped_;
        std::erase_if(in_transit_, [&](const auto& m) {
            const bool to_it = m.second.first == rank;
            dropped_ += to_it ? 1 : 0;
            return to_it;
        });
    }
    /// Whether disconnect(rank) was called.
    [[nodiscard]] bool disconnected(std::size_t rank) const {
        return !disconnected_.empty() && disconnected_.at(rank) != 0;
    }
    /// Messages dropped because their receiver was disconnected.
    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }

    /// Appends the network's state (clock, send counter, delay stream, disconnected nodes,
    /// dropped count) to a simulator checkpoint. Nothing may be in transit or in an inbox.
    void save_state(detail::checkpoint_writer& w) const {
        detail::require<invalid_argument_error>(pending() == 0, "simulated_network: ", pending(),
                                                " messages in transit; a checkpoint needs none");
        w.put<std::uint64_t>(size());
        w.put<std::uint64_t>(now_);
        w.put<std::uint64_t>(sequence_);
        for (const auto word : random_.state()) w.put<std::uint64_t>(word);
        std::vector<std::uint8_t> cut(size(), 0);
        for (std::size_t i = 0; i < size(); ++i) cut[i] = disconnected(i) ? 1 : 0;
        w.put_values<std::uint8_t>(cut);
        w.put<std::uint64_t>(dropped_);
    }

    /// What save_state wrote, read back (read_state) and applied (set_state) in two steps, so
    /// a simulator can check every file before it changes anything.
    struct saved_state {
        std::uint64_t now = 0, sequence = 0, dropped = 0;
        std::array<std::uint64_t, 4> stream{};
        std::vector<std::uint8_t> disconnected;
    };

    /// Reads what save_state wrote; checkpoint_error (naming the file) when it does not fit a
    /// network of this size.
    [[nodiscard]] saved_state read_state(detail::checkpoint_reader& r) const {
        const auto n = r.get<std::uint64_t>("the network's size");
        if (n != size())
            throw checkpoint_error(detail::concat("checkpoint ", r.path(), ": the network has ", n,
                                                  " nodes, this one ", size()));
        saved_state st;
        st.now = r.get<std::uint64_t>("the network's clock");
        st.sequence = r.get<std::uint64_t>("the network's send counter");
        for (auto& word : st.stream) word = r.get<std::uint64_t>("the network's delay stream");
        st.disconnected = r.get_values<std::uint8_t>("the disconnected nodes", size());
        st.dropped = r.get<std::uint64_t>("the dropped-message count");
        return st;
    }

    /// Applies a state read by read_state to this network, which must have nothing in transit.
    void set_state(const saved_state& st) {
        detail::require<invalid_argument_error>(pending() == 0, "simulated_network: ", pending(),
                                                " messages in transit; restore into an idle one");
        now_ = st.now;
        sequence_ = st.sequence;
        random_.set_state(st.stream);
        disconnected_.clear();
        for (std::size_t i = 0; i < size(); ++i)
            if (st.disconnected.at(i) != 0) disconnect(i);
        dropped_ = st.dropped;
    }

    /// Advances the clock to `tick` and delivers every message due by then.
    void advance_to(std::uint64_t tick) {
        now_ = tick > now_ ? tick : now_;
        while (!in_transit_.empty() && std::get<0>(in_transit_.begin()->first) <= now_) {
            auto node = in_transit_.extract(in_transit_.begin());
            inboxes_.push(node.mapped().first, std::move(node.mapped().second));
        }
    }

    class endpoint;
    /// The endpoint of node `rank`.
    [[nodiscard]] endpoint endpoint_for(std::size_t rank);

private:
    friend class endpoint;
    void post(std::size_t source, std::size_t dest, std::vector<std::byte> bytes) {
        if (disconnected(dest)) {
            ++dropped_;
            return;
        }
        const std::uint64_t delay =
            min_delay_ +
            (max_delay_ > min_delay_ ? random_.uniform(max_delay_ - min_delay_ + 1) : 0);
        received_message m{source, std::move(bytes)};
        if (delay == 0) {
            inboxes_.push(dest, std::move(m));
        } else {
            in_transit_.emplace(std::tuple{now_ + delay, sequence_++},
                                std::pair{dest, std::move(m)});
        }
    }

    detail::inboxes inboxes_;
    std::map<std::tuple<std::uint64_t, std::uint64_t>, std::pair<std::size_t, received_message>>
        in_transit_;
    std::size_t min_delay_, max_delay_;
    rng random_;
    std::uint64_t now_ = 0;
    std::uint64_t sequence_ = 0;
    std::vector<char> disconnected_;  // per rank once disconnect() was called, else empty
    std::uint64_t dropped_ = 0;
};

/// One node's view of a simulated_network; satisfies swarmsgd::communicator.
class simulated_network::endpoint {
public:
    /// Rank of this node.
    [[nodiscard]] std::size_t rank() const noexcept { return rank_; }
    /// Number of nodes.
    [[nodiscard]] std::size_t size() const noexcept { return net_->size(); }

    /// Puts the message in transit (or straight into the inbox with zero delay).
    completed_request isend(std::size_t dest, std::vector<std::byte> bytes) {
        detail::require<invalid_argument_error>(dest < size(), "simulated isend from node ", rank_,
                                                " to node ", dest, " but n = ", size());
        net_->post(rank_, dest, std::move(bytes));
        return {};
    }

    /// Takes the oldest delivered message, if any.
    std::optional<received_message> try_receive() { return net_->inboxes_.pop(rank_); }

    /// Never sleeps (one thread drives every node): says whether the inbox is non-empty.
    bool wait_for_message(std::chrono::nanoseconds /*timeout*/) {
        return net_->inboxes_.has_message(rank_);
    }

    /// Counts this node as done (once).
    void announce_done() { net_->inboxes_.announce_done(rank_); }
    /// True once every node has announced.
    [[nodiscard]] bool all_done() const noexcept { return net_->inboxes_.all_done(); }

private:
    friend class simulated_network;
    endpoint(simulated_network* net, std::size_t rank) : net_(net), rank_(rank) {}
    simulated_network* net_;
    std::size_t rank_;
};

inline simulated_network::endpoint simulated_network::endpoint_for(std::size_t rank) {
    detail::require<invalid_argument_error>(rank < size(), "simulated_network: rank ", rank,
                                            " out of range, n = ", size());
    return endpoint(this, rank);
}

static_assert(communicator<simulated_network::endpoint>);

}  // namespace swarmsgd
