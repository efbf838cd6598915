#pragma once
/// \file detail/inboxes.hpp
/// The inboxes of a network that one thread drives (simulated_network, timed_network): one
/// FIFO of delivered messages per node, their count, and the "done" flags of the shutdown
/// protocol. Internal.

#include <cstddef>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "../communicator.hpp"

namespace swarmsgd::detail {

/// n inboxes and the shutdown protocol's done flags.
class inboxes {
public:
    /// n empty inboxes.
    explicit inboxes(std::size_t n) : boxes_(n), done_(n, false) {}

    /// Number of nodes.
    [[nodiscard]] std::size_t size() const noexcept { return boxes_.size(); }
    /// Messages delivered and not yet taken out.
    [[nodiscard]] std::size_t queued() const noexcept { return queued_; }
    /// Whether node `rank` has a message waiting.
    [[nodiscard]] bool has_message(std::size_t rank) const { return !boxes_.at(rank).empty(); }

    /// Appends `m` to node `dest`'s inbox.
    void push(std::size_t dest, received_message m) {
        boxes_[dest].push_back(std::move(m));
        ++queued_;
    }
    /// Takes the oldest message of node `rank`'s inbox, if any.
    std::optional<received_message> pop(std::size_t rank) {
        auto& box = boxes_[rank];
        if (box.empty()) return std::nullopt;
        received_message m = std::move(box.front());
        box.pop_front();
        --queued_;
        return m;
    }

    /// Node `rank` is done (counted once however often it says so).
    void announce_done(std::size_t rank) {
        if (!done_[rank]) ++done_count_;
        done_[rank] = true;
    }
    /// Whether every node is done.
    [[nodiscard]] bool all_done() const noexcept { return done_count_ == boxes_.size(); }

private:
    std::vector<std::deque<received_message>> boxes_;
    std::vector<bool> done_;
    std::size_t queued_ = 0;
    std::size_t done_count_ = 0;
};

}  // namespace swarmsgd::detail
