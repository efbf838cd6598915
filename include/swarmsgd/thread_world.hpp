#pragma once
/// \file thread_world.hpp
/// The thread_world concept: a set of n communicator endpoints, one per node, that the
/// threaded drivers (run_in_process, run_nodes_in_process in in_process_swarm.hpp) run one
/// thread each on. `in_process_world` is one; a user's wrapper or own transport is another
/// (examples/plug_in/custom_communicator.cpp).

#include <concepts>
#include <cstddef>
#include <string>

#include "communicator.hpp"

namespace swarmsgd {

/// `w.size()` nodes; `w.endpoint_for(i)` returns node i's communicator (by value; called once
/// per node, from that node's thread); `w.abort(reason)` is called once, from the thread of
/// the first node that fails, and must make the other endpoints' waits end by throwing
/// `swarmsgd::aborted_error` (errors.hpp): the driver then rethrows the first failure, not the
/// aborts it caused. An abort that wakes nobody costs time, not correctness: every wait of a
/// node is bounded by its timeouts (swarm_options).
template <class W>
concept thread_world = requires(W& w, const W& cw, std::size_t i, const std::string& reason) {
    { cw.size() } -> std::convertible_to<std::size_t>;
    { w.endpoint_for(i) } -> communicator;
    w.abort(reason);
};

}  // namespace swarmsgd
