#pragma once
/// \file topology.hpp
/// Communication graphs for Swarm SGD. A `topology` is an immutable, connected, undirected
/// simple graph on the nodes 0..n-1. In every interaction of Swarm SGD a node averages its model
/// with one uniformly random neighbour (`random_neighbour`), or equivalently a uniformly random
/// edge interacts (`random_edge`). The paper's bounds are stated in terms of the spectral gap of
/// the graph (`spectral_gap`).
///
/// Storage is CSR (an offset array plus one flat array of sorted neighbour lists), except for
/// the complete graph, which is implicit (O(1) memory, so `complete(4096)` is cheap).
///
/// Errors: a bad factory argument (n = 0, a torus dimension of 0, a hypercube size that is not a
/// power of two, an impossible random-regular degree) throws `invalid_argument_error`; a bad
/// graph (from `from_adjacency`: empty, out-of-range index, self-loop, duplicate or asymmetric
/// edge, disconnected) throws `topology_error`. Every message names the offending values.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "swarmsgd/errors.hpp"
#include "swarmsgd/random.hpp"

namespace swarmsgd {

/// An immutable, connected, undirected simple graph on nodes 0..n-1 (a value type: cheap to
/// move, safe to share between threads for reading).
class topology {
public:
    /// Largest n for which `spectral_gap` computes numerically (closed-form families have no
    /// limit).
    static constexpr std::size_t max_spectral_nodes = 2048;

    /// Largest n accepted by `complete` (keeps `edge_count` = n(n-1)/2 exact in 64 bits).
    static constexpr std::size_t max_complete_nodes = std::size_t{1} << 32;

    /// Attempts `random_regular` makes before giving up with `topology_error`.
    static constexpr int max_random_regular_attempts = 1000;

    // ------------------------------------------------------------------------------- factories

    /// The complete graph K_n, stored implicitly (no per-edge memory). n = 1 is a single node
    /// without edges. Throws `invalid_argument_error` for n = 0 or n > `max_complete_nodes`.
    [[nodiscard]] static topology complete(std::size_t n) {
        detail::require<invalid_argument_error>(n != 0, "complete(n): n = 0");
        detail::require<invalid_argument_error>(n <= max_complete_nodes, "complete(n): n = ", n,
                                                " exceeds ", max_complete_nodes);
        topology t;
        t.n_ = n;
        t.implicit_complete_ = true;
        t.edges_ = n * (n - 1) / 2;
        t.regular_ = true;
        t.name_ = detail::concat("complete(", n, ")");
        t.exact_gap_ = n == 1 ? 1.0 : static_cast<double>(n) / static_cast<double>(n - 1);
        return t;
    }

    /// The cycle C_n: node i is adjacent to i-1 and i+1 (mod n). n = 1 has no edges, n = 2 has
    /// one edge. Throws `invalid_argument_error` for n = 0.
    [[nodiscard]] static topology ring(std::size_t n) {
        detail::require<invalid_argument_error>(n != 0, "ring(n): n = 0");
        return torus_impl(1, n, detail::concat("ring(", n, ")"));
    }

    /// The 2-D torus (wrap-around grid) with `rows` x `cols` nodes; node (r, c) is r * cols + c
    /// and is adjacent to (r±1 mod rows, c) and (r, c±1 mod cols). A dimension of 1 adds no edges
    /// along it and a dimension of 2 adds one (duplicates and self-loops are removed), so
    /// torus(1, n) is ring(n). Throws `invalid_argument_error` if rows or cols is 0.
    [[nodiscard]] static topology torus(std::size_t rows, std::size_t cols) {
        detail::require<invalid_argument_error>(rows != 0 && cols != 0, "torus(", rows, "x", cols,
                                                "): n = 0 (rows = ", rows, ", cols = ", cols, ")");
        detail::require<invalid_argument_error>(
            rows <= std::numeric_limits<std::size_t>::max() / cols, "torus(", rows, "x", cols,
            "): rows * cols overflows");
        return torus_impl(rows, cols, detail::concat("torus(", rows, "x", cols, ")"));
    }

    /// The hypercube on n = 2^d nodes: i and j are adjacent when they differ in exactly one bit.
    /// Throws `invalid_argument_error` for n = 0 or n not a power of two.
    [[nodiscard]] static topology hypercube(std::size_t n) {
        detail::require<invalid_argument_error>(n != 0, "hypercube(n): n = 0");
        detail::require<invalid_argument_error>((n & (n - 1)) == 0, "hypercube(n): n = ", n,
                                                " is not a power of two");
        std::size_t dim = 0;
        while ((std::size_t{1} << dim) < n) ++dim;
        std::vector<std::vector<std::size_t>> adjacency(n);
        for (std::size_t i = 0; i < n; ++i) {
            adjacency[i].reserve(dim);
            for (std::size_t b = 0; b < dim; ++b) adjacency[i].push_back(i ^ (std::size_t{1} << b));
        }
        const double gap = dim == 0 ? 1.0 : 2.0 / static_cast<double>(dim);
        return from_lists(std::move(adjacency), detail::concat("hypercube(", n, ")"), gap);
    }

    /// A random connected `degree`-regular simple graph on n nodes, a deterministic function of
    /// (n, degree, seed) on every platform. Requires n * degree even and degree < n; degree must
    /// be 0 for n = 1, 1 only for n = 2 (a perfect matching on more nodes is disconnected) and at
    /// least 1 otherwise; violations throw `invalid_argument_error`.
    ///
    /// Method: degree n-1 is the complete graph; degree 2 is a uniformly random Hamiltonian cycle
    /// (the connected 2-regular graphs); otherwise the Steger-Wormald pairing algorithm (random
    /// pairing of the n * degree half-edges that never creates a loop or a multi-edge, restarted
    /// when it gets stuck), which is asymptotically uniform, repeated until the graph is
    /// connected. For degree > (n-1)/2 the complement (degree n-1-degree) is generated instead
    /// and complemented; the result is then connected automatically. Throws `topology_error`
    /// after `max_random_regular_attempts` failures (never observed for valid arguments).
    [[nodiscard]] static topology random_regular(std::size_t n, std::size_t degree,
                                                 std::uint64_t seed) {
        std::string name = detail::concat("random_regular(", n, ",", degree, ",seed=", seed, ")");
        detail::require<invalid_argument_error>(n != 0, name, ": n = 0");
        detail::require<invalid_argument_error>(degree < n, name, ": degree = ", degree,
                                                " must be less than n = ", n);
        detail::require<invalid_argument_error>(n % 2 == 0 || degree % 2 == 0, name,
                                                ": n * degree = ", n, " * ", degree,
                                                " must be even");
        detail::require<invalid_argument_error>(n == 1 || degree >= 1, name,
                                                ": degree = 0 with n = ", n,
                                                " > 1 gives a disconnected graph");
        detail::require<invalid_argument_error>(degree != 1 || n == 2, name,
                                                ": degree = 1 with n = ", n,
                                                " > 2 gives a perfect matching, which is"
                                                " disconnected");
        if (degree + 1 == n) {
            topology t = complete(n);
            t.name_ = std::move(name);
            return t;
        }
        rng r(seed);
        if (degree == 2) {
            std::vector<std::size_t> order(n);
            for (std::size_t i = 0; i < n; ++i) order[i] = i;
            shuffle(order, r);
            std::vector<std::vector<std::size_t>> adjacency(n);
            for (std::size_t i = 0; i < n; ++i) {
                const std::size_t u = order[i];
                const std::size_t v = order[(i + 1) % n];
                adjacency[u].push_back(v);
                adjacency[v].push_back(u);
            }
            const double gap = 1.0 - std::cos(2.0 * std::numbers::pi / static_cast<double>(n));
            return from_lists(std::move(adjacency), std::move(name), gap);
        }
        const bool use_complement = 2 * degree > n - 1;
        const std::size_t generated_degree = use_complement ? n - 1 - degree : degree;
        for (int attempt = 0; attempt < max_random_regular_attempts; ++attempt) {
            auto adjacency = try_random_regular(n, generated_degree, r);
            if (!adjacency) continue;
            if (use_complement) adjacency = complement(*adjacency);
            if (!find_unreachable(*adjacency)) {
                return from_lists(std::move(*adjacency), std::move(name), std::nullopt);
            }
        }
        throw topology_error(detail::concat(name, ": no simple connected graph found after ",
                                            max_random_regular_attempts, " attempts"));
    }

    /// A user-supplied graph: `adjacency[i]` lists the neighbours of node i, in any order. The
    /// graph must be non-empty, undirected (j in adjacency[i] iff i in adjacency[j]), simple (no
    /// self-loop, no duplicate) and connected, else `topology_error` names the offending values
    /// ("n = 0", "node 3 lists neighbour 9 but n = 8", "node 2 lists itself", "node 1 lists
    /// neighbour 4 twice", "node 1 lists 4 but node 4 does not list 1", "graph is disconnected:
    /// node 5 is not reachable from node 0; ..."). `name` defaults to "from_adjacency(n)".
    [[nodiscard]] static topology from_adjacency(std::vector<std::vector<std::size_t>> adjacency,
                                                 std::string name = {}) {
        const std::size_t n = adjacency.size();
        if (name.empty()) name = detail::concat("from_adjacency(", n, ")");
        return from_lists(std::move(adjacency), std::move(name), std::nullopt);
    }

    // --------------------------------------------------------------------------------- queries

    /// Number of nodes n.
    [[nodiscard]] std::size_t size() const noexcept { return n_; }

    /// Number of neighbours of `node`. Throws `invalid_argument_error` if node >= n.
    [[nodiscard]] std::size_t degree(std::size_t node) const {
        check_node(node);
        return implicit_complete_ ? n_ - 1 : offsets_[node + 1] - offsets_[node];
    }

    /// The k-th neighbour of `node` (neighbours are in increasing order, k < degree(node)).
    /// Throws `invalid_argument_error` if node or k is out of range.
    [[nodiscard]] std::size_t neighbour(std::size_t node, std::size_t k) const {
        const std::size_t d = degree(node);
        detail::require<invalid_argument_error>(k < d, "topology ", name_, ": neighbour index ", k,
                                                " is out of range for node ", node, " of degree ",
                                                d);
        if (implicit_complete_) return k < node ? k : k + 1;
        return neighbours_[offsets_[node] + k];
    }

    /// Number of undirected edges.
    [[nodiscard]] std::size_t edge_count() const noexcept { return edges_; }

    /// Whether every node has the same degree.
    [[nodiscard]] bool is_regular() const noexcept { return regular_; }

    /// A short description such as "ring(8)", "torus(4x4)" or "random_regular(16,3,seed=7)".
    [[nodiscard]] const std::string& name() const noexcept { return name_; }

    /// Whether the edge {i, j} exists (false for i == j). Throws `invalid_argument_error` if i or
    /// j is out of range.
    [[nodiscard]] bool has_edge(std::size_t i, std::size_t j) const {
        check_node(i);
        check_node(j);
        if (implicit_complete_) return i != j;
        const auto first = neighbours_.begin() + static_cast<std::ptrdiff_t>(offsets_[i]);
        const auto last = neighbours_.begin() + static_cast<std::ptrdiff_t>(offsets_[i + 1]);
        return std::binary_search(first, last, j);
    }

    /// All neighbour lists (sorted), e.g. to copy and modify a graph through `from_adjacency`.
    /// Takes O(n + edges) memory, also for the implicit complete graph.
    [[nodiscard]] std::vector<std::vector<std::size_t>> adjacency() const {
        std::vector<std::vector<std::size_t>> lists(n_);
        for (std::size_t i = 0; i < n_; ++i) {
            const std::size_t d = degree(i);
            lists[i].reserve(d);
            for (std::size_t k = 0; k < d; ++k) lists[i].push_back(neighbour(i, k));
        }
        return lists;
    }

    // -------------------------------------------------------------------------------- sampling

    /// A uniformly random neighbour of `node`. Throws `invalid_argument_error` if node is out of
    /// range or has no neighbours (only possible when n = 1).
    [[nodiscard]] std::size_t random_neighbour(std::size_t node, rng& r) const {
        const std::size_t d = degree(node);
        detail::require<invalid_argument_error>(d != 0, "topology ", name_, ": node ", node,
                                                " has no neighbours");
        const auto k = static_cast<std::size_t>(r.uniform(d));
        if (implicit_complete_) return k < node ? k : k + 1;
        return neighbours_[offsets_[node] + k];
    }

    /// A uniformly random edge {u, v}, returned as (u, v) with a uniformly random orientation:
    /// each of the 2 * edge_count() ordered pairs is equally likely. Throws
    /// `invalid_argument_error` if the graph has no edges (only possible when n = 1).
    [[nodiscard]] std::pair<std::size_t, std::size_t> random_edge(rng& r) const {
        detail::require<invalid_argument_error>(edges_ != 0, "topology ", name_,
                                                " has no edges (n = ", n_, ")");
        if (implicit_complete_) {
            const auto u = static_cast<std::size_t>(r.uniform(n_));
            auto v = static_cast<std::size_t>(r.uniform(n_ - 1));
            if (v >= u) ++v;
            return {u, v};
        }
        // A uniform slot of the neighbour array is a uniform (owner, neighbour) ordered pair.
        const auto slot = static_cast<std::size_t>(r.uniform(neighbours_.size()));
        const auto it = std::upper_bound(offsets_.begin(), offsets_.end(), slot);
        const auto owner = static_cast<std::size_t>(it - offsets_.begin()) - 1;
        return {owner, neighbours_[slot]};
    }

    // -------------------------------------------------------------------------------- spectrum

    /// The spectral gap 1 - lambda_2 of the (non-lazy) random-walk matrix P = D^-1 A, where
    /// lambda_2 is the second largest (algebraic, not absolute) eigenvalue of P. It lies in
    /// (0, n/(n-1)]; it is positive because the graph is connected, and the -1 eigenvalue of a
    /// bipartite graph does not affect it. It equals 2 * (1 - lambda_2((I + P) / 2)), the gap of
    /// the lazy walk doubled, and the second smallest eigenvalue of the normalized Laplacian.
    /// Convention for n = 1 (no walk): 1.
    ///
    /// Known values: complete K_n: n/(n-1); ring C_n (n >= 3): 1 - cos(2 pi / n); hypercube on
    /// 2^d nodes: 2/d; torus: the smallest adjacency gap of its two ring factors divided by the
    /// degree. These closed forms are returned exactly for the graphs built by `complete`,
    /// `ring`, `torus`, `hypercube` (and `random_regular` of degree 2 or n-1), for any n.
    ///
    /// Other graphs (`random_regular`, `from_adjacency`) are computed numerically, for n up to
    /// `max_spectral_nodes` only (else `invalid_argument_error`): Lanczos iteration with full
    /// reorthogonalization on D^-1/2 A D^-1/2 restricted to the complement of its top
    /// eigenvector sqrt(D) 1, followed by bisection on the tridiagonal matrix. The Ritz value
    /// converges from below, so (up to rounding) the estimate never underestimates the gap. It
    /// stops when the gap estimate changes by less than a relative 1e-11 over 8 steps, when the
    /// Krylov space becomes invariant or after n-1 steps (exact up to rounding); the result agrees
    /// with a dense eigensolver to about 1e-9 relative. Cost O(k (edges + n k)) time and O(n k)
    /// memory for k <= n-1 steps: k is tens to hundreds for well-connected graphs
    /// (random_regular(2048, 3): under 0.1 s) but close to n for ring- or path-like graphs (a copy
    /// of ring(2048) via from_adjacency: about 2 s; a path on 2048 nodes: about 10 s, at -O2).
    [[nodiscard]] double spectral_gap() const {
        if (exact_gap_) return *exact_gap_;
        if (n_ == 1) return 1.0;
        detail::require<invalid_argument_error>(
            n_ <= max_spectral_nodes, "spectral_gap of ", name_, ": n = ", n_, " exceeds ",
            max_spectral_nodes, " (only closed-form families are supported above that)");
        return lanczos_gap();
    }

private:
    topology() = default;

    /// Throws `invalid_argument_error` if node >= n.
    void check_node(std::size_t node) const {
        detail::require<invalid_argument_error>(node < n_, "topology ", name_, ": node ", node,
                                                " is out of range for n = ", n_);
    }

    /// Fisher-Yates shuffle driven by `rng::uniform` (portable, unlike std::shuffle).
    static void shuffle(std::vector<std::size_t>& v, rng& r) {
        for (std::size_t i = v.size(); i > 1; --i) {
            const auto j = static_cast<std::size_t>(r.uniform(i));
            std::swap(v[i - 1], v[j]);
        }
    }

    /// The Cartesian product ring(rows) x ring(cols) with duplicates and self-loops removed.
    [[nodiscard]] static topology torus_impl(std::size_t rows, std::size_t cols, std::string name) {
        const std::size_t n = rows * cols;
        std::vector<std::vector<std::size_t>> adjacency(n);
        for (std::size_t r = 0; r < rows; ++r) {
            for (std::size_t c = 0; c < cols; ++c) {
                auto& list = adjacency[r * cols + c];
                const std::size_t candidates[4] = {
                    ((r + 1) % rows) * cols + c, ((r + rows - 1) % rows) * cols + c,
                    r * cols + (c + 1) % cols, r * cols + (c + cols - 1) % cols};
                for (const std::size_t v : candidates) {
                    if (v != r * cols + c) list.push_back(v);
                }
                std::sort(list.begin(), list.end());
                list.erase(std::unique(list.begin(), list.end()), list.end());
            }
        }
        // Adjacency spectrum of ring(k): degree d_k and gap d_k - alpha_2 (none for k = 1).
        const auto ring_degree = [](std::size_t k) -> double {
            return k >= 3 ? 2.0 : k == 2 ? 1.0 : 0.0;
        };
        const auto ring_gap = [](std::size_t k) -> double {
            return k == 2 ? 2.0
                          : 2.0 * (1.0 - std::cos(2.0 * std::numbers::pi / static_cast<double>(k)));
        };
        double gap = 1.0;  // n = 1
        if (n > 1) {
            double adjacency_gap = std::numeric_limits<double>::infinity();
            if (rows > 1) adjacency_gap = std::min(adjacency_gap, ring_gap(rows));
            if (cols > 1) adjacency_gap = std::min(adjacency_gap, ring_gap(cols));
            gap = adjacency_gap / (ring_degree(rows) + ring_degree(cols));
        }
        return from_lists(std::move(adjacency), std::move(name), gap);
    }

    /// One Steger-Wormald attempt at a simple `degree`-regular graph (not necessarily
    /// connected); nullopt when the pairing gets stuck.
    [[nodiscard]] static std::optional<std::vector<std::vector<std::size_t>>> try_random_regular(
        std::size_t n, std::size_t degree, rng& r) {
        std::vector<std::vector<std::size_t>> adjacency(n);
        for (auto& list : adjacency) list.reserve(degree);
        std::unordered_set<std::uint64_t> edges;
        edges.reserve(n * degree);
        const auto key = [n](std::size_t u, std::size_t v) {
            if (u > v) std::swap(u, v);
            return static_cast<std::uint64_t>(u) * n + v;
        };
        std::vector<std::size_t> stubs;
        stubs.reserve(n * degree);
        for (std::size_t i = 0; i < n; ++i) stubs.insert(stubs.end(), degree, i);
        std::vector<std::size_t> leftover(n, 0);
        constexpr int max_rounds = 1000;
        for (int round = 0; !stubs.empty(); ++round) {
            if (round == max_rounds) return std::nullopt;
            shuffle(stubs, r);
            bool any_leftover = false;
            for (std::size_t s = 0; s + 1 < stubs.size(); s += 2) {
                const std::size_t u = stubs[s];
                const std::size_t v = stubs[s + 1];
                if (u != v && edges.insert(key(u, v)).second) {
                    adjacency[u].push_back(v);
                    adjacency[v].push_back(u);
                } else {
                    ++leftover[u];
                    ++leftover[v];
                    any_leftover = true;
                }
            }
            stubs.clear();
            if (!any_leftover) break;
            std::vector<std::size_t> pending;
            for (std::size_t i = 0; i < n; ++i) {
                if (leftover[i] != 0) pending.push_back(i);
                stubs.insert(stubs.end(), leftover[i], i);
                leftover[i] = 0;
            }
            // Stuck unless some pair of distinct pending nodes is not yet adjacent.
            bool suitable = false;
            for (std::size_t a = 0; a < pending.size() && !suitable; ++a) {
                for (std::size_t b = 0; b < a && !suitable; ++b) {
                    suitable = !edges.contains(key(pending[a], pending[b]));
                }
            }
            if (!suitable) return std::nullopt;
        }
        return adjacency;
    }

    /// The complement of a simple graph given by adjacency lists.
    [[nodiscard]] static std::vector<std::vector<std::size_t>> complement(
        const std::vector<std::vector<std::size_t>>& adjacency) {
        const std::size_t n = adjacency.size();
        std::vector<std::vector<std::size_t>> result(n);
        std::vector<char> mark(n, 0);
        for (std::size_t i = 0; i < n; ++i) {
            for (const std::size_t j : adjacency[i]) mark[j] = 1;
            mark[i] = 1;
            result[i].reserve(n - adjacency[i].size() - 1);
            for (std::size_t j = 0; j < n; ++j) {
                if (!mark[j]) result[i].push_back(j);
            }
            for (const std::size_t j : adjacency[i]) mark[j] = 0;
            mark[i] = 0;
        }
        return result;
    }

    /// Breadth-first search from node 0 over valid adjacency lists: the component id of every
    /// node (components numbered by their smallest node) and the component sizes.
    static void components(const std::vector<std::vector<std::size_t>>& adjacency,
                           std::vector<std::size_t>& component, std::vector<std::size_t>& sizes) {
        const std::size_t n = adjacency.size();
        constexpr std::size_t unseen = std::numeric_limits<std::size_t>::max();
        component.assign(n, unseen);
        sizes.clear();
        std::vector<std::size_t> queue;
        queue.reserve(n);
        for (std::size_t start = 0; start < n; ++start) {
            if (component[start] != unseen) continue;
            const std::size_t id = sizes.size();
            queue.clear();
            queue.push_back(start);
            component[start] = id;
            for (std::size_t head = 0; head < queue.size(); ++head) {
                for (const std::size_t v : adjacency[queue[head]]) {
                    if (component[v] == unseen) {
                        component[v] = id;
                        queue.push_back(v);
                    }
                }
            }
            sizes.push_back(queue.size());
        }
    }

    /// The smallest node not reachable from node 0, if any.
    [[nodiscard]] static std::optional<std::size_t> find_unreachable(
        const std::vector<std::vector<std::size_t>>& adjacency) {
        std::vector<std::size_t> component, sizes;
        components(adjacency, component, sizes);
        for (std::size_t i = 0; i < component.size(); ++i) {
            if (component[i] != 0) return i;
        }
        return std::nullopt;
    }

    /// Validates adjacency lists (see `from_adjacency`) and builds the CSR representation.
    [[nodiscard]] static topology from_lists(std::vector<std::vector<std::size_t>> adjacency,
                                             std::string name, std::optional<double> exact_gap) {
        const std::size_t n = adjacency.size();
        detail::require<topology_error>(n != 0, name, ": n = 0 (empty adjacency list)");
        for (std::size_t i = 0; i < n; ++i) {
            auto& list = adjacency[i];
            for (const std::size_t j : list) {
                detail::require<topology_error>(j < n, name, ": node ", i, " lists neighbour ", j,
                                                " but n = ", n);
                detail::require<topology_error>(j != i, name, ": node ", i, " lists itself");
            }
            std::sort(list.begin(), list.end());
            const auto dup = std::adjacent_find(list.begin(), list.end());
            detail::require<topology_error>(dup == list.end(), name, ": node ", i,
                                            " lists neighbour ", dup == list.end() ? 0 : *dup,
                                            " twice (duplicate edge)");
        }
        std::size_t slots = 0;
        for (std::size_t i = 0; i < n; ++i) {
            for (const std::size_t j : adjacency[i]) {
                detail::require<topology_error>(
                    std::binary_search(adjacency[j].begin(), adjacency[j].end(), i), name,
                    ": node ", i, " lists ", j, " but node ", j, " does not list ", i);
            }
            slots += adjacency[i].size();
        }
        std::vector<std::size_t> component, sizes;
        components(adjacency, component, sizes);
        if (sizes.size() > 1) {
            std::size_t unreachable = 0;
            while (component[unreachable] == 0) ++unreachable;
            std::string list;
            constexpr std::size_t shown = 8;
            for (std::size_t c = 0; c < sizes.size() && c < shown; ++c) {
                list += detail::concat(c == 0 ? "" : ", ", sizes[c]);
            }
            if (sizes.size() > shown) list += ", ...";
            throw topology_error(detail::concat(name, ": graph is disconnected: node ", unreachable,
                                                " is not reachable from node 0; component sizes ",
                                                list, " (", sizes.size(), " components)"));
        }
        topology t;
        t.n_ = n;
        t.name_ = std::move(name);
        t.exact_gap_ = exact_gap;
        t.edges_ = slots / 2;
        t.offsets_.reserve(n + 1);
        t.neighbours_.reserve(slots);
        t.offsets_.push_back(0);
        t.regular_ = true;
        for (std::size_t i = 0; i < n; ++i) {
            t.neighbours_.insert(t.neighbours_.end(), adjacency[i].begin(), adjacency[i].end());
            t.offsets_.push_back(t.neighbours_.size());
            if (adjacency[i].size() != adjacency[0].size()) t.regular_ = false;
        }
        return t;
    }

    /// Largest eigenvalue of the symmetric tridiagonal matrix with diagonal `a` and
    /// off-diagonal `b` (b.size() + 1 == a.size()), by Sturm-sequence bisection.
    [[nodiscard]] static double top_tridiagonal_eigenvalue(const std::vector<double>& a,
                                                           const std::vector<double>& b) {
        const std::size_t k = a.size();
        double lo = std::numeric_limits<double>::infinity();
        double hi = -lo;
        for (std::size_t i = 0; i < k; ++i) {
            const double radius =
                (i > 0 ? std::abs(b[i - 1]) : 0.0) + (i + 1 < k ? std::abs(b[i]) : 0.0);
            lo = std::min(lo, a[i] - radius);
            hi = std::max(hi, a[i] + radius);
        }
        // Number of eigenvalues strictly below x.
        const auto count_below = [&](double x) {
            std::size_t count = 0;
            double q = 1.0;
            for (std::size_t i = 0; i < k; ++i) {
                q = a[i] - x - (i > 0 ? b[i - 1] * b[i - 1] / q : 0.0);
                if (q == 0.0) q = -std::numeric_limits<double>::min();
                if (q < 0.0) ++count;
            }
            return count;
        };
        for (int iter = 0; iter < 200; ++iter) {
            const double mid = lo + (hi - lo) / 2;
            if (mid <= lo || mid >= hi) break;
            if (count_below(mid) == k) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        return lo + (hi - lo) / 2;
    }

    /// Numerical spectral gap of an explicit connected graph with n >= 2 (see `spectral_gap`).
    [[nodiscard]] double lanczos_gap() const {
        const std::size_t n = n_;
        std::vector<double> inv_sqrt_degree(n), top(n);
        const double total = static_cast<double>(neighbours_.size());
        for (std::size_t i = 0; i < n; ++i) {
            const auto d = static_cast<double>(offsets_[i + 1] - offsets_[i]);
            inv_sqrt_degree[i] = 1.0 / std::sqrt(d);
            top[i] = std::sqrt(d / total);  // unit eigenvector of S for eigenvalue 1
        }
        const auto dot = [n](const double* x, const double* y) {
            double s = 0.0;
            for (std::size_t i = 0; i < n; ++i) s += x[i] * y[i];
            return s;
        };
        const auto axpy = [n](double alpha, const double* x, double* y) {
            for (std::size_t i = 0; i < n; ++i) y[i] += alpha * x[i];
        };
        const std::size_t max_steps = n - 1;  // dimension of the complement of `top`
        std::vector<double> basis;            // Lanczos vectors q_0, q_1, ... (row-major)
        basis.reserve(std::min<std::size_t>(max_steps, 64) * n);
        std::vector<double> alpha, beta, history;
        std::vector<double> w(n);
        // Projects w onto the complement of `top` and of the stored Lanczos vectors (twice).
        const auto orthogonalize = [&](std::size_t count) {
            for (int pass = 0; pass < 2; ++pass) {
                axpy(-dot(top.data(), w.data()), top.data(), w.data());
                for (std::size_t j = 0; j < count; ++j) {
                    const double* q = basis.data() + j * n;
                    axpy(-dot(q, w.data()), q, w.data());
                }
            }
        };
        rng r(0x5eed5eedULL);
        for (std::size_t i = 0; i < n; ++i) w[i] = r.uniform01() - 0.5;
        orthogonalize(0);
        double norm = std::sqrt(dot(w.data(), w.data()));
        for (auto& x : w) x /= norm;
        double theta = 0.0;
        constexpr std::size_t window = 8;
        constexpr double tolerance = 1e-11;
        for (std::size_t step = 0; step < max_steps; ++step) {
            basis.insert(basis.end(), w.begin(), w.end());
            const double* q = basis.data() + step * n;
            for (std::size_t i = 0; i < n; ++i) {  // w = S q, S = D^-1/2 A D^-1/2
                double s = 0.0;
                for (std::size_t e = offsets_[i]; e < offsets_[i + 1]; ++e) {
                    const std::size_t j = neighbours_[e];
                    s += q[j] * inv_sqrt_degree[j];
                }
                w[i] = s * inv_sqrt_degree[i];
            }
            alpha.push_back(dot(q, w.data()));
            orthogonalize(step + 1);
            theta = top_tridiagonal_eigenvalue(alpha, beta);
            history.push_back(1.0 - theta);
            if (history.size() > window && history[history.size() - 1 - window] - history.back() <=
                                               tolerance * history.back()) {
                break;
            }
            norm = std::sqrt(dot(w.data(), w.data()));
            if (norm < 1e-10) break;  // invariant subspace: the Ritz values are exact
            beta.push_back(norm);
            for (auto& x : w) x /= norm;
        }
        return 1.0 - theta;
    }

    std::size_t n_ = 0;                    ///< Number of nodes.
    bool implicit_complete_ = false;       ///< Complete graph without stored edges.
    std::size_t edges_ = 0;                ///< Number of undirected edges.
    bool regular_ = false;                 ///< All degrees equal.
    std::string name_;                     ///< Description, e.g. "ring(8)".
    std::optional<double> exact_gap_;      ///< Closed-form spectral gap, when known.
    std::vector<std::size_t> offsets_;     ///< CSR offsets (n + 1 entries; explicit graphs).
    std::vector<std::size_t> neighbours_;  ///< CSR neighbour lists, each sorted.
};

}  // namespace swarmsgd
