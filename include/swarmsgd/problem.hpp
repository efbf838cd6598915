#pragma once
/// \file problem.hpp
/// The problem concept used by the drivers (simulator, in-process swarm): something that
/// computes a stochastic gradient of node `node`'s loss at its model.

#include <concepts>
#include <cstddef>
#include <span>

#include "model.hpp"
#include "random.hpp"

namespace swarmsgd {

/// `p.gradient(node, x, grad, random)` writes the stochastic gradient of node `node`'s local
/// loss at model `x` into `grad` (flat, in the model's concatenated order, every element
/// written) and returns the loss (for display). `random` is that node's own data stream. The
/// in-process driver calls it concurrently for different nodes: it must be safe for that.
template <class P, class Model>
concept problem_for = any_model<Model> &&
    requires(P& p, std::size_t node, const Model& x, std::span<model_value_t<Model>> grad,
             rng& random) {
    { p.gradient(node, x, grad, random) } -> std::convertible_to<double>;
};

}  // namespace swarmsgd
