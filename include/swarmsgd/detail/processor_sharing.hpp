#pragma once
/// \file detail/processor_sharing.hpp
/// The CPU of the timed simulator (timed_simulator.hpp): the local steps of the nodes as
/// computations of a given amount of work (seconds on a core of their own), on either
/// - a core per node (cores = 0): a computation of w seconds started at t ends at t + w; or
/// - `cores` shared cores (processor sharing): while k nodes compute, each progresses at
///   min(1, cores / k) seconds of work per second, so a step takes longer while more nodes
///   compute at once (4 ranks on 2 cores: twice as long when all compute together, as fast as
///   alone when the others wait for the network).
/// Deterministic: ties are broken by the order of start().

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <queue>
#include <vector>

namespace swarmsgd::detail {

/// Computations on a core each, or sharing `cores` cores equally.
class processor_sharing {
public:
    /// A computation that ended: its node and the seconds it took (start to end).
    struct finished {
        std::size_t node;
        double seconds;
    };

    /// `cores` = 0: a core per computation; otherwise the number of shared cores.
    explicit processor_sharing(std::size_t cores = 0) : cores_(cores) {}

    /// Node `node` starts a computation of `work` seconds at time `at` (not before the last
    /// event handled).
    void start(std::size_t node, double at, double work) {
        if (cores_ == 0) {
            finishing_.push({at + work, sequence_++, node, at, work});
        } else {
            pending_.push({at, sequence_++, node, work});
        }
    }

    /// Time of the next event (a computation starting on a shared core, or one ending), or
    /// infinity when nothing is computing or due to start.
    [[nodiscard]] double next_event() const {
        double t = finishing_.empty() ? inf : finish_time(finishing_.top().key);
        if (!pending_.empty()) t = std::min(t, pending_.top().at);
        return t;
    }

    /// Handles the event at next_event(): a computation that ends (returned), or one that
    /// starts sharing the cores (nullopt).
    std::optional<finished> advance() {
        const double t = next_event();
        if (!pending_.empty() && pending_.top().at <= t) {
            const auto p = pending_.top();
            pending_.pop();
            catch_up(p.at);
            finishing_.push({virtual_ + p.work, p.sequence, p.node, p.at, p.work});
            return std::nullopt;
        }
        const auto f = finishing_.top();
        if (cores_ == 0) {
            finishing_.pop();
            return finished{f.node, f.work};
        }
        catch_up(t);  // at the rate of the computations including this one
        finishing_.pop();
        virtual_ = std::max(virtual_, f.key);  // its work is done, whatever the rounding
        return finished{f.node, t - f.started};
    }

    /// Computations in progress.
    [[nodiscard]] std::size_t computing() const noexcept { return finishing_.size(); }

private:
    static constexpr double inf = std::numeric_limits<double>::infinity();

    struct running {
        double key;  // the end time (a core each) or the virtual finish tag (shared)
        std::uint64_t sequence;
        std::size_t node;
        double started;
        double work;
        bool operator<(const running& o) const noexcept {
            return key != o.key ? key > o.key : sequence > o.sequence;
        }
    };
    struct waiting {
        double at;
        std::uint64_t sequence;
        std::size_t node;
        double work;
        bool operator<(const waiting& o) const noexcept {
            return at != o.at ? at > o.at : sequence > o.sequence;
        }
    };

    /// Seconds of work per second for each computation now.
    [[nodiscard]] double rate() const {
        const auto k = static_cast<double>(finishing_.size());
        return k <= static_cast<double>(cores_) ? 1.0 : static_cast<double>(cores_) / k;
    }

    /// When the computation with virtual finish tag `key` ends if nothing starts meanwhile.
    [[nodiscard]] double finish_time(double key) const {
        if (cores_ == 0) return key;
        return last_ + std::max(0.0, key - virtual_) / rate();
    }

    /// Advances the work done per computation (the virtual time) to real time t.
    void catch_up(double t) {
        if (!finishing_.empty() && t > last_) virtual_ += (t - last_) * rate();
        last_ = std::max(last_, t);
    }

    std::size_t cores_;
    std::priority_queue<running> finishing_;
    std::priority_queue<waiting> pending_;
    double virtual_ = 0;  // work done by each computation since time 0 (shared cores)
    double last_ = 0;     // real time virtual_ refers to
    std::uint64_t sequence_ = 0;
};

}  // namespace swarmsgd::detail
