#pragma once
/// \file peer_exclusion.hpp
/// A record of one peer dropped under failure_policy::exclude (swarm_node::exclusions()).

#include <cstddef>
#include <string>

namespace swarmsgd {

/// One excluded peer, as a node saw it.
struct peer_exclusion {
    std::size_t peer = 0;        ///< the excluded node
    std::size_t decided_by = 0;  ///< the node that excluded it: this one, or the one that told us
    std::string reason;          ///< why (the timeout or the transport's report, with figures)
};

}  // namespace swarmsgd
