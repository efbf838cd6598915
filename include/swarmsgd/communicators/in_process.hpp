#pragma once
/// \file communicators/in_process.hpp
/// The embedded default: n nodes as n threads of one process, exchanging messages through
/// shared memory (one mutex-protected inbox per node). Sends never block; a message's
/// bytes are moved, not copied.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "../communicator.hpp"
#include "../errors.hpp"

namespace swarmsgd {

/// The shared state of n in-process nodes. Create one, then one endpoint per node with
/// `endpoint_for(rank)`; the world must outlive its endpoints.
class in_process_world {
public:
    /// A world of `n` nodes (n >= 1).
    explicit in_process_world(std::size_t n) : inboxes_(n) {
        detail::require<invalid_argument_error>(n >= 1, "in_process_world: n = 0 nodes");
        for (auto& box : inboxes_) box = std::make_unique<inbox>();
    }

    /// Number of nodes.
    [[nodiscard]] std::size_t size() const noexcept { return inboxes_.size(); }

    /// Makes every endpoint throw aborted_error with `reason` from now on, and wakes sleepers.
    void abort(const std::string& reason) {
        {
            std::lock_guard lock(abort_mutex_);
            if (aborted_.load()) return;
            abort_reason_ = reason;
            aborted_.store(true);
        }
        for (auto& box : inboxes_) {
            std::lock_guard lock(box->mutex);
            box->ready.notify_all();
        }
    }

    /// Whether abort() was called.
    [[nodiscard]] bool aborted() const noexcept { return aborted_.load(); }

    class endpoint;
    /// The endpoint of node `rank`.
    [[nodiscard]] endpoint endpoint_for(std::size_t rank);

private:
    friend class endpoint;
    struct inbox {
        std::mutex mutex;
        std::condition_variable ready;
        std::deque<received_message> messages;
    };

    void throw_if_aborted() const {
        if (aborted_.load()) {
            std::lock_guard lock(abort_mutex_);
            throw aborted_error("in-process swarm aborted: " + abort_reason_);
        }
    }

    std::vector<std::unique_ptr<inbox>> inboxes_;
    std::atomic<std::size_t> done_{0};
    std::atomic<bool> aborted_{false};
    mutable std::mutex abort_mutex_;
    std::string abort_reason_;
};

/// One node's view of an in_process_world; satisfies swarmsgd::communicator.
class in_process_world::endpoint {
public:
    /// Rank of this node.
    [[nodiscard]] std::size_t rank() const noexcept { return rank_; }
    /// Number of nodes.
    [[nodiscard]] std::size_t size() const noexcept { return world_->size(); }

    /// Appends the message to `dest`'s inbox; complete on return.
    completed_request isend(std::size_t dest, std::vector<std::byte> bytes) {
        world_->throw_if_aborted();
        detail::require<invalid_argument_error>(dest < size(), "in-process isend from node ", rank_,
                                                " to node ", dest, " but n = ", size());
        auto& box = *world_->inboxes_[dest];
        {
            std::lock_guard lock(box.mutex);
            box.messages.push_back({rank_, std::move(bytes)});
        }
        box.ready.notify_one();
        return {};
    }

    /// Pops the oldest message of this node's inbox, if any.
    std::optional<received_message> try_receive() {
        world_->throw_if_aborted();
        auto& box = *world_->inboxes_[rank_];
        std::lock_guard lock(box.mutex);
        if (box.messages.empty()) return std::nullopt;
        received_message m = std::move(box.messages.front());
        box.messages.pop_front();
        return m;
    }

    /// Sleeps until this node's inbox is non-empty, every node is done, the world is aborted,
    /// or `timeout` passed.
    bool wait_for_message(std::chrono::nanoseconds timeout) {
        auto& box = *world_->inboxes_[rank_];
        std::unique_lock lock(box.mutex);
        const bool any = box.ready.wait_for(lock, timeout, [&] {
            return !box.messages.empty() || world_->aborted_.load() ||
                   world_->done_.load() == world_->size();
        });
        lock.unlock();
        world_->throw_if_aborted();
        return any;
    }

    /// Counts this node as done (call once).
    void announce_done() {
        world_->done_.fetch_add(1);
        for (auto& box : world_->inboxes_) {  // wake nodes waiting in their shutdown loop
            std::lock_guard lock(box->mutex);
            box->ready.notify_all();
        }
    }

    /// True once every node has announced.
    [[nodiscard]] bool all_done() const noexcept { return world_->done_.load() == size(); }

private:
    friend class in_process_world;
    endpoint(in_process_world* world, std::size_t rank) : world_(world), rank_(rank) {}
    in_process_world* world_;
    std::size_t rank_;
};

inline in_process_world::endpoint in_process_world::endpoint_for(std::size_t rank) {
    detail::require<invalid_argument_error>(rank < size(), "in_process_world: rank ", rank,
                                            " out of range, n = ", size());
    return endpoint(this, rank);
}

/// The in-process communicator type (one node's endpoint).
using in_process_communicator = in_process_world::endpoint;

static_assert(communicator<in_process_communicator>);

}  // namespace swarmsgd
