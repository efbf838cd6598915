#pragma once
// The order in which a node visits its shard, shared by the examples' samplers: passes over
// positions 0 .. n-1, each in a fresh random order (sampling without replacement within a pass,
// as a shuffling data loader does); the next pass starts where one ends. The order comes from
// the rng the caller passes (the node's data stream), so a seed fixes it.

#include <swarmsgd/random.hpp>

#include <cstddef>
#include <utility>
#include <vector>

namespace swarmsgd::examples {

/// Positions 0 .. n-1 in one random order per pass (a Fisher-Yates shuffle of the previous
/// pass's order at the start of each).
class shuffled_passes {
public:
    /// Passes over `n` positions (n > 0; the caller checks).
    explicit shuffled_passes(std::size_t n) : order_(n), cursor_(n) {
        for (std::size_t i = 0; i < n; ++i) order_[i] = i;
    }

    /// The next position, shuffling first when a pass is complete (and before the first).
    std::size_t next(rng& random) {
        if (cursor_ == order_.size()) {
            for (std::size_t i = order_.size() - 1; i > 0; --i)
                std::swap(order_[i], order_[static_cast<std::size_t>(random.uniform(i + 1))]);
            cursor_ = 0;
        }
        return order_[cursor_++];
    }

private:
    std::vector<std::size_t> order_;
    std::size_t cursor_;
};

}  // namespace swarmsgd::examples
