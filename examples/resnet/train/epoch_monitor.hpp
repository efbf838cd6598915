#pragma once
/// \file epoch_monitor.hpp
/// Per-epoch evaluation of an in-process swarm WITHOUT pausing training (there is no global
/// round in Swarm SGD, and the evaluation must not add one).
///
/// Each node calls on_step() from its own thread after every local step (run_in_process's
/// on_step callback). When node i ends epoch e it copies ITS OWN model (the only one its thread
/// may read: its partners' threads change theirs) into slot i of epoch e's snapshot set, with
/// its loss and counters for the epoch, and goes on training. The node that completes a set
/// hands it to an evaluator thread, which computes the mean of the snapshots, their Gamma and
/// the test accuracy of the mean and of node 0's snapshot. The evaluation runs on its own
/// thread rather than on the node's: a node busy evaluating for seconds would not answer its
/// partners' averaging requests meanwhile (and they would time out on a loaded machine).
///
/// The snapshots of one epoch are taken at the same local step count of every node, but not
/// at the same instant: the "mean model of epoch e" is the mean of the nodes' models as each
/// ended its e-th epoch. The parameter buffer holds the BatchNorm running statistics too, so
/// the mean model's running statistics are the mean of the nodes' (what averaging the buffer
/// does during training as well).

#include <swarmsgd/node_stats.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <thread>
#include <utility>
#include <vector>

namespace swarmsgd::examples::resnet {

/// What the nodes recorded for one epoch boundary.
struct epoch_snapshot {
    std::size_t index = 0;                   ///< which boundary (0-based)
    std::vector<std::vector<float>> models;  ///< node i's model at the boundary (if taken)
    double loss_sum = 0;                     ///< losses of every node's steps of the epoch
    std::uint64_t loss_count = 0;            ///< those steps
    std::uint64_t bytes_sent = 0;            ///< all nodes, since the start
    double seconds_averaging = 0;            ///< all nodes, during the epoch
    double node_seconds = 0;                 ///< wall time of the epoch summed over the nodes
    double completed_at = 0;                 ///< seconds since the start, last node's arrival
    std::size_t arrived = 0;                 ///< nodes that reached the boundary
};

/// Collects the epoch snapshots of n nodes and evaluates them on a thread of its own.
class epoch_monitor {
public:
    /// Called on the evaluator thread with each complete set, in boundary order.
    using evaluator = std::function<void(epoch_snapshot&)>;

    /// `boundaries[k]`: the local step count (steps done) at which boundary k is taken, strictly
    /// increasing and the same on every node. Model snapshots are taken at every boundary but
    /// the last (the caller evaluates the final models itself); the last one's counters are
    /// returned by last().
    epoch_monitor(std::size_t nodes, std::vector<std::size_t> boundaries, evaluator evaluate)
        : nodes_(nodes),
          boundaries_(std::move(boundaries)),
          evaluate_(std::move(evaluate)),
          per_node_(nodes),
          start_(std::chrono::steady_clock::now()),
          thread_([this] { run(); }) {}

    epoch_monitor(const epoch_monitor&) = delete;
    epoch_monitor& operator=(const epoch_monitor&) = delete;
    /// Stops the evaluator (after the queued sets); an error it had is dropped.
    ~epoch_monitor() { join(); }

    /// Node `node`'s step `step` (0-based) ended with `loss`; `model` is its own model. Call
    /// from that node's thread only.
    void on_step(std::size_t node, std::size_t step, double loss, const node_stats& stats,
                 std::span<const float> model) {
        node_state& me = per_node_[node];
        me.loss_sum += loss;
        ++me.loss_count;
        if (me.next >= boundaries_.size() || step + 1 != boundaries_[me.next]) return;
        const std::size_t index = me.next++;
        const bool last = index + 1 == boundaries_.size();
        const double now = seconds();
        std::lock_guard lock(mutex_);
        epoch_snapshot& s = pending_[index];
        s.index = index;
        if (!last) {
            if (s.models.empty()) s.models.resize(nodes_);
            s.models[node].assign(model.begin(), model.end());
        }
        s.loss_sum += me.loss_sum;
        s.loss_count += me.loss_count;
        s.bytes_sent += stats.bytes_sent;
        s.seconds_averaging += stats.seconds_averaging - me.averaging_at_boundary;
        s.node_seconds += now - me.time_at_boundary;
        s.completed_at = std::max(s.completed_at, now);
        me = node_state{me.next, 0, 0, stats.seconds_averaging, now};
        if (++s.arrived < nodes_) return;
        if (last) {
            last_ = std::move(s);
        } else {
            queue_.push_back(std::move(s));
            ready_.notify_one();
        }
        pending_.erase(index);
    }

    /// Queues a set assembled elsewhere (the MPI driver's reductions) for the evaluator.
    void submit(epoch_snapshot s) {
        {
            std::lock_guard lock(mutex_);
            queue_.push_back(std::move(s));
        }
        ready_.notify_one();
    }

    /// Waits until every queued set was evaluated, stops the evaluator thread and rethrows
    /// what the evaluator threw, if anything.
    void stop() {
        join();
        if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    }

    /// The counters of the last boundary (valid once every node took all its steps).
    [[nodiscard]] const epoch_snapshot& last() const noexcept { return last_; }

    /// Seconds since the monitor was created.
    [[nodiscard]] double seconds() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }

private:
    struct node_state {
        std::size_t next = 0;              // index of the next boundary
        double loss_sum = 0;               // since the last boundary
        std::uint64_t loss_count = 0;      //
        double averaging_at_boundary = 0;  // stats.seconds_averaging at the last boundary
        double time_at_boundary = 0;       // seconds() at the last boundary
    };

    void join() {
        {
            std::lock_guard lock(mutex_);
            closing_ = true;
        }
        ready_.notify_one();
        if (thread_.joinable()) thread_.join();
    }

    void run() {
        for (;;) {
            epoch_snapshot s;
            {
                std::unique_lock lock(mutex_);
                ready_.wait(lock, [&] { return closing_ || !queue_.empty(); });
                if (queue_.empty()) return;  // closing and drained
                s = std::move(queue_.front());
                queue_.pop_front();
            }
            try {
                evaluate_(s);
            } catch (...) {
                std::lock_guard lock(mutex_);
                if (!error_) error_ = std::current_exception();
            }
        }
    }

    std::size_t nodes_;
    std::vector<std::size_t> boundaries_;
    evaluator evaluate_;
    std::vector<node_state> per_node_;
    std::chrono::steady_clock::time_point start_;
    std::mutex mutex_;
    std::condition_variable ready_;
    std::map<std::size_t, epoch_snapshot> pending_;
    std::deque<epoch_snapshot> queue_;
    epoch_snapshot last_;
    bool closing_ = false;
    std::exception_ptr error_;
    std::jthread thread_;  // last: starts after every other member exists
};

}  // namespace swarmsgd::examples::resnet
