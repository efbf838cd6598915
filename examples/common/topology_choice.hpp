#pragma once
// The communication graph an example's --topology option names, shared by every example.

#include <swarmsgd/errors.hpp>
#include <swarmsgd/topology.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "checks.hpp"

namespace swarmsgd::examples {

/// The graph `name` over n nodes: "complete", "ring", "torus" (rows x cols = n with rows the
/// largest divisor of n not above sqrt(n)), "hypercube" (n a power of two) or "expander" (a
/// random 4-regular graph drawn from `seed`; a ring where 4n is odd or n < 5). One node is
/// always complete(1). Throws Error (a usage error of the example, say) naming the option.
template <class Error = swarmsgd::invalid_argument_error>
[[nodiscard]] swarmsgd::topology make_topology(const std::string& name, std::size_t n,
                                               std::uint64_t seed = 1) {
    using swarmsgd::topology;
    if (n == 1) return topology::complete(1);
    if (name == "complete") return topology::complete(n);
    if (name == "ring") return topology::ring(n);
    if (name == "torus") {
        auto rows = static_cast<std::size_t>(std::sqrt(static_cast<double>(n)));
        while (n % rows != 0) --rows;
        return topology::torus(rows, n / rows);
    }
    if (name == "hypercube") {
        require<Error>((n & (n - 1)) == 0,
                       "--topology hypercube needs a power-of-two number of nodes, got ", n);
        return topology::hypercube(n);
    }
    if (name == "expander") {
        const std::size_t degree = n - 1 < 4 ? n - 1 : 4;
        if ((n * degree) % 2 != 0) return topology::ring(n);
        return topology::random_regular(n, degree, seed);
    }
    throw Error(
        concat("unknown --topology '", name, "' (complete, ring, torus, hypercube, expander)"));
}

}  // namespace swarmsgd::examples
