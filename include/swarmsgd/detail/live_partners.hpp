#pragma once
/// \file detail/live_partners.hpp
/// Whom a node chooses its partners from once some nodes are excluded (failure_policy::exclude).

#include <algorithm>
#include <cstddef>
#include <vector>

#include "../topology.hpp"

namespace swarmsgd::detail {

/// The nodes `node` picks its partners from when the nodes flagged in `excluded` are gone: its
/// live neighbours; when none is left, the live nodes nearest to it in `graph`, reached through
/// excluded nodes only (the neighbours of its dead neighbours, then theirs...), so the swarm
/// closes up around the hole the way the graph runs. Sorted; empty when no live node is
/// reachable that way. Breadth-first: O(nodes + edges) at worst, and only when an exclusion
/// changes something.
[[nodiscard]] inline std::vector<std::size_t> live_partners(const topology& graph, std::size_t node,
                                                            const std::vector<char>& excluded) {
    std::vector<char> seen(graph.size(), 0);
    seen[node] = 1;
    std::vector<std::size_t> frontier{node}, live, dead;
    while (!frontier.empty()) {
        live.clear();
        dead.clear();
        for (const std::size_t f : frontier) {
            for (std::size_t k = 0, d = graph.degree(f); k < d; ++k) {
                const std::size_t j = graph.neighbour(f, k);
                if (seen[j] != 0) continue;
                seen[j] = 1;
                (excluded[j] != 0 ? dead : live).push_back(j);
            }
        }
        if (!live.empty()) {
            std::sort(live.begin(), live.end());
            return live;
        }
        frontier.swap(dead);
    }
    return {};
}

}  // namespace swarmsgd::detail
