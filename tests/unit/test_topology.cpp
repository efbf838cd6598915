/// \file test_topology.cpp
/// Unit tests of swarmsgd::topology: structure of every factory, validation messages,
/// uniformity of neighbour and edge sampling, and spectral gaps against closed forms.

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include "swarmsgd/errors.hpp"
#include "swarmsgd/random.hpp"
#include "swarmsgd/topology.hpp"

using swarmsgd::invalid_argument_error;
using swarmsgd::rng;
using swarmsgd::topology;
using swarmsgd::topology_error;
using adjacency_lists = std::vector<std::vector<std::size_t>>;

namespace {

/// Checks the invariants every topology must satisfy: sorted neighbour lists without self-loops
/// or duplicates, symmetry, has_edge consistency, degree sum = 2 * edges, connectivity,
/// is_regular consistency.
void check_invariants(const topology& t) {
    INFO("topology ", t.name());
    const std::size_t n = t.size();
    REQUIRE(n > 0);
    std::size_t degree_sum = 0;
    bool regular = true;
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t d = t.degree(i);
        degree_sum += d;
        if (d != t.degree(0)) regular = false;
        for (std::size_t k = 0; k < d; ++k) {
            const std::size_t j = t.neighbour(i, k);
            REQUIRE(j < n);
            REQUIRE(j != i);
            if (k > 0) REQUIRE(t.neighbour(i, k - 1) < j);  // sorted, hence no duplicates
            REQUIRE(t.has_edge(i, j));
            REQUIRE(t.has_edge(j, i));
        }
        CHECK_FALSE(t.has_edge(i, i));
    }
    CHECK(degree_sum == 2 * t.edge_count());
    CHECK(t.is_regular() == regular);
    // Connectivity by breadth-first search through the public interface.
    std::vector<char> seen(n, 0);
    std::vector<std::size_t> queue{0};
    seen[0] = 1;
    for (std::size_t head = 0; head < queue.size(); ++head) {
        const std::size_t u = queue[head];
        for (std::size_t k = 0; k < t.degree(u); ++k) {
            const std::size_t v = t.neighbour(u, k);
            if (!seen[v]) {
                seen[v] = 1;
                queue.push_back(v);
            }
        }
    }
    CHECK(queue.size() == n);
}

/// Pearson chi-square statistic of observed counts against equal expected counts.
double chi_square(const std::vector<std::size_t>& counts, std::size_t samples) {
    const double expected = static_cast<double>(samples) / static_cast<double>(counts.size());
    double stat = 0.0;
    for (const std::size_t c : counts) {
        const double diff = static_cast<double>(c) - expected;
        stat += diff * diff / expected;
    }
    return stat;
}

/// A generous acceptance bound for a chi-square statistic with `dof` degrees of freedom
/// (mean + 6 standard deviations + slack; the seeds are fixed, so this is not flaky).
double chi_square_bound(std::size_t dof) {
    const auto k = static_cast<double>(dof);
    return k + 6.0 * std::sqrt(2.0 * k) + 10.0;
}

/// Checks that `f` throws exactly `Error` (not just a base class) with a message containing each
/// of `parts`.
template <class Error, class F>
void check_throws_containing(F&& f, const std::vector<std::string>& parts) {
    bool thrown = false;
    try {
        f();
    } catch (const Error& e) {
        thrown = true;
        const std::string message = e.what();
        INFO("message: ", message);
        for (const auto& part : parts) CHECK(message.find(part) != std::string::npos);
    }
    CHECK(thrown);
}

/// The path 0 - 1 - ... - (n-1).
adjacency_lists path(std::size_t n) {
    adjacency_lists adjacency(n);
    for (std::size_t i = 1; i < n; ++i) {
        adjacency[i].push_back(i - 1);
        adjacency[i - 1].push_back(i);
    }
    return adjacency;
}

}  // namespace

TEST_CASE("complete graph") {
    for (const std::size_t n : {1, 2, 3, 5, 16, 33}) {
        const topology t = topology::complete(n);
        check_invariants(t);
        CHECK(t.size() == n);
        CHECK(t.edge_count() == n * (n - 1) / 2);
        CHECK(t.is_regular());
        CHECK(t.degree(0) == n - 1);
        CHECK(t.name() == "complete(" + std::to_string(n) + ")");
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t j = 0; j < n; ++j) CHECK(t.has_edge(i, j) == (i != j));
        }
    }
}

TEST_CASE("complete(4096) is implicit and neighbour() skips the node itself") {
    const std::size_t n = 4096;
    const topology t = topology::complete(n);
    CHECK(t.size() == n);
    CHECK(t.edge_count() == n * (n - 1) / 2);
    CHECK(t.degree(17) == n - 1);
    CHECK(t.neighbour(0, 0) == 1);
    CHECK(t.neighbour(0, n - 2) == n - 1);
    CHECK(t.neighbour(5, 4) == 4);
    CHECK(t.neighbour(5, 5) == 6);
    CHECK(t.neighbour(n - 1, n - 2) == n - 2);
    for (const std::size_t i : {std::size_t{0}, std::size_t{1}, std::size_t{2048}, n - 1}) {
        for (std::size_t k = 0; k < n - 1; ++k) {
            const std::size_t j = t.neighbour(i, k);
            REQUIRE(j == (k < i ? k : k + 1));
        }
    }
    CHECK(t.has_edge(0, n - 1));
    CHECK_FALSE(t.has_edge(7, 7));
    rng r(3);
    for (int s = 0; s < 10000; ++s) {
        const std::size_t node = static_cast<std::size_t>(r.uniform(n));
        const std::size_t v = t.random_neighbour(node, r);
        REQUIRE(v < n);
        REQUIRE(v != node);
        const auto [a, b] = t.random_edge(r);
        REQUIRE(a < n);
        REQUIRE(b < n);
        REQUIRE(a != b);
    }
    CHECK(t.spectral_gap() == doctest::Approx(4096.0 / 4095.0).epsilon(1e-12));
}

TEST_CASE("ring") {
    for (const std::size_t n : {1, 2, 3, 4, 7, 8, 64}) {
        const topology t = topology::ring(n);
        check_invariants(t);
        CHECK(t.size() == n);
        CHECK(t.is_regular());
        CHECK(t.name() == "ring(" + std::to_string(n) + ")");
        if (n == 1) {
            CHECK(t.edge_count() == 0);
            CHECK(t.degree(0) == 0);
        } else if (n == 2) {
            CHECK(t.edge_count() == 1);
            CHECK(t.has_edge(0, 1));
        } else {
            CHECK(t.edge_count() == n);
            for (std::size_t i = 0; i < n; ++i) {
                CHECK(t.degree(i) == 2);
                CHECK(t.has_edge(i, (i + 1) % n));
            }
        }
    }
}

TEST_CASE("torus") {
    SUBCASE("proper dimensions") {
        for (const auto& [rows, cols] : std::vector<std::pair<std::size_t, std::size_t>>{
                 {3, 3}, {4, 4}, {3, 5}, {8, 4}, {10, 10}}) {
            const topology t = topology::torus(rows, cols);
            check_invariants(t);
            CHECK(t.size() == rows * cols);
            CHECK(t.edge_count() == 2 * rows * cols);
            CHECK(t.is_regular());
            CHECK(t.degree(0) == 4);
            // (r, c) = r * cols + c is adjacent to its four wrap-around neighbours.
            const std::size_t r = rows - 1;
            const std::size_t c = 0;
            const std::size_t node = r * cols + c;
            CHECK(t.has_edge(node, 0 * cols + c));
            CHECK(t.has_edge(node, (r - 1) * cols + c));
            CHECK(t.has_edge(node, r * cols + 1));
            CHECK(t.has_edge(node, r * cols + cols - 1));
        }
        CHECK(topology::torus(4, 4).name() == "torus(4x4)");
    }
    SUBCASE("degenerate dimensions have no self-loops or duplicate edges") {
        struct expected {
            std::size_t rows, cols, edges, degree;
        };
        for (const auto& e : std::vector<expected>{{1, 1, 0, 0},
                                                   {1, 2, 1, 1},
                                                   {2, 1, 1, 1},
                                                   {2, 2, 4, 2},
                                                   {1, 5, 5, 2},
                                                   {5, 1, 5, 2},
                                                   {2, 3, 9, 3},
                                                   {2, 6, 18, 3},
                                                   {6, 2, 18, 3}}) {
            const topology t = topology::torus(e.rows, e.cols);
            INFO("torus ", e.rows, "x", e.cols);
            check_invariants(t);
            CHECK(t.edge_count() == e.edges);
            CHECK(t.is_regular());
            CHECK(t.degree(0) == e.degree);
        }
        // torus(1, n) is ring(n).
        CHECK(topology::torus(1, 9).adjacency() == topology::ring(9).adjacency());
    }
}

TEST_CASE("hypercube") {
    for (std::size_t dim = 0; dim <= 10; ++dim) {
        const std::size_t n = std::size_t{1} << dim;
        const topology t = topology::hypercube(n);
        check_invariants(t);
        CHECK(t.size() == n);
        CHECK(t.edge_count() == n * dim / 2);
        CHECK(t.is_regular());
        CHECK(t.degree(0) == dim);
        for (std::size_t b = 0; b < dim; ++b) {
            CHECK(t.has_edge(n - 1, (n - 1) ^ (std::size_t{1} << b)));
        }
    }
    CHECK(topology::hypercube(16).name() == "hypercube(16)");
}

TEST_CASE("random_regular: structure") {
    for (const auto& [n, d] : std::vector<std::pair<std::size_t, std::size_t>>{{1, 0},
                                                                               {2, 1},
                                                                               {3, 2},
                                                                               {4, 2},
                                                                               {4, 3},
                                                                               {6, 3},
                                                                               {7, 4},
                                                                               {10, 8},
                                                                               {12, 2},
                                                                               {16, 3},
                                                                               {20, 4},
                                                                               {50, 3},
                                                                               {64, 6},
                                                                               {100, 5},
                                                                               {101, 10},
                                                                               {60, 40},
                                                                               {30, 29}}) {
        for (std::uint64_t seed = 0; seed < 3; ++seed) {
            const topology t = topology::random_regular(n, d, seed);
            check_invariants(t);
            CHECK(t.size() == n);
            CHECK(t.is_regular());
            CHECK(t.degree(0) == d);
            CHECK(t.edge_count() == n * d / 2);
        }
    }
    CHECK(topology::random_regular(16, 3, 7).name() == "random_regular(16,3,seed=7)");
}

TEST_CASE("random_regular: every valid small (n, degree) succeeds") {
    for (std::size_t n = 1; n <= 24; ++n) {
        for (std::size_t d = 0; d < n; ++d) {
            const bool valid = (n * d) % 2 == 0 && (n == 1 || d >= 1) && (d != 1 || n == 2);
            INFO("n = ", n, ", degree = ", d);
            if (valid) {
                const topology t = topology::random_regular(n, d, n * 100 + d);
                CHECK(t.is_regular());
                CHECK(t.degree(n - 1) == d);
                CHECK(t.edge_count() == n * d / 2);
            } else {
                CHECK_THROWS_AS((void)topology::random_regular(n, d, 1), invalid_argument_error);
            }
        }
    }
}

TEST_CASE("random_regular: deterministic in the seed") {
    const auto a = topology::random_regular(64, 4, 7).adjacency();
    const auto b = topology::random_regular(64, 4, 7).adjacency();
    const auto c = topology::random_regular(64, 4, 8).adjacency();
    CHECK(a == b);
    CHECK(a != c);
    CHECK(topology::random_regular(100, 2, 1).adjacency() ==
          topology::random_regular(100, 2, 1).adjacency());
    CHECK(topology::random_regular(100, 2, 1).adjacency() !=
          topology::random_regular(100, 2, 2).adjacency());
    CHECK(topology::random_regular(40, 30, 1).adjacency() !=
          topology::random_regular(40, 30, 2).adjacency());
    // The large-degree path (complement) is deterministic too.
    CHECK(topology::random_regular(40, 30, 5).adjacency() ==
          topology::random_regular(40, 30, 5).adjacency());
}

TEST_CASE("from_adjacency accepts valid graphs in any order") {
    // A star with an extra edge: irregular.
    const topology t = topology::from_adjacency({{3, 1, 2}, {0, 2}, {1, 0}, {0}});
    check_invariants(t);
    CHECK(t.size() == 4);
    CHECK(t.edge_count() == 4);
    CHECK_FALSE(t.is_regular());
    CHECK(t.degree(0) == 3);
    CHECK(t.neighbour(0, 0) == 1);  // sorted
    CHECK(t.neighbour(0, 2) == 3);
    CHECK(t.name() == "from_adjacency(4)");
    CHECK(topology::from_adjacency({{}}).size() == 1);
    CHECK(topology::from_adjacency({{1}, {0}}, "pair").name() == "pair");
    // Round trip of a factory graph.
    const topology ring = topology::ring(10);
    CHECK(topology::from_adjacency(ring.adjacency()).adjacency() == ring.adjacency());
}

TEST_CASE("from_adjacency rejects invalid graphs with topology_error naming the values") {
    check_throws_containing<topology_error>([] { (void)topology::from_adjacency({}); }, {"n = 0"});
    adjacency_lists out_of_range = path(8);
    out_of_range[3].push_back(9);
    check_throws_containing<topology_error>([&] { (void)topology::from_adjacency(out_of_range); },
                                            {"node 3 lists neighbour 9 but n = 8"});
    adjacency_lists self_loop = path(5);
    self_loop[2].push_back(2);
    check_throws_containing<topology_error>([&] { (void)topology::from_adjacency(self_loop); },
                                            {"node 2 lists itself"});
    adjacency_lists duplicate = path(5);
    duplicate[1].push_back(2);
    duplicate[2].push_back(1);
    check_throws_containing<topology_error>([&] { (void)topology::from_adjacency(duplicate); },
                                            {"node 1 lists neighbour 2 twice"});
    adjacency_lists asymmetric = path(6);
    asymmetric[1].push_back(4);
    check_throws_containing<topology_error>([&] { (void)topology::from_adjacency(asymmetric); },
                                            {"node 1 lists 4 but node 4 does not list 1"});
    // Two components: a 5-cycle {0..4} and a triangle {5, 6, 7}.
    const adjacency_lists disconnected = {{1, 4}, {0, 2}, {1, 3}, {2, 4},
                                          {3, 0}, {6, 7}, {5, 7}, {5, 6}};
    check_throws_containing<topology_error>(
        [&] { (void)topology::from_adjacency(disconnected); },
        {"graph is disconnected", "node 5 is not reachable from node 0", "component sizes 5, 3"});
    check_throws_containing<topology_error>(
        [] {
            (void)topology::from_adjacency({{}, {}});
        },
        {"node 1 is not reachable from node 0"});
    CHECK_THROWS_WITH_AS((void)topology::from_adjacency({{1}, {}}),
                         doctest::Contains("node 0 lists 1 but node 1 does not list 0"),
                         topology_error);
}

TEST_CASE("factories reject invalid arguments with invalid_argument_error") {
    check_throws_containing<invalid_argument_error>([] { (void)topology::complete(0); }, {"n = 0"});
    check_throws_containing<invalid_argument_error>([] { (void)topology::ring(0); }, {"n = 0"});
    check_throws_containing<invalid_argument_error>([] { (void)topology::torus(0, 4); },
                                                    {"n = 0", "rows = 0"});
    check_throws_containing<invalid_argument_error>([] { (void)topology::torus(3, 0); },
                                                    {"n = 0", "cols = 0"});
    check_throws_containing<invalid_argument_error>([] { (void)topology::hypercube(0); },
                                                    {"n = 0"});
    check_throws_containing<invalid_argument_error>([] { (void)topology::hypercube(12); },
                                                    {"n = 12", "power of two"});
    check_throws_containing<invalid_argument_error>([] { (void)topology::random_regular(0, 3, 1); },
                                                    {"n = 0"});
    check_throws_containing<invalid_argument_error>([] { (void)topology::random_regular(7, 3, 1); },
                                                    {"7 * 3", "even"});
    check_throws_containing<invalid_argument_error>([] { (void)topology::random_regular(8, 8, 1); },
                                                    {"degree = 8", "n = 8"});
    check_throws_containing<invalid_argument_error>([] { (void)topology::random_regular(8, 0, 1); },
                                                    {"degree = 0", "n = 8"});
    check_throws_containing<invalid_argument_error>([] { (void)topology::random_regular(6, 1, 1); },
                                                    {"degree = 1", "n = 6"});
    CHECK_THROWS_WITH_AS((void)topology::hypercube(6), doctest::Contains("n = 6"),
                         invalid_argument_error);
}

TEST_CASE("queries reject out-of-range nodes and indices") {
    const topology t = topology::ring(8);
    const topology k = topology::complete(8);
    check_throws_containing<invalid_argument_error>([&] { (void)t.degree(8); },
                                                    {"node 8", "n = 8"});
    check_throws_containing<invalid_argument_error>([&] { (void)k.degree(9); },
                                                    {"node 9", "n = 8"});
    check_throws_containing<invalid_argument_error>([&] { (void)t.neighbour(3, 2); },
                                                    {"index 2", "node 3", "degree 2"});
    check_throws_containing<invalid_argument_error>([&] { (void)k.neighbour(3, 7); },
                                                    {"index 7", "node 3", "degree 7"});
    check_throws_containing<invalid_argument_error>([&] { (void)t.has_edge(0, 10); }, {"node 10"});
    rng r(1);
    check_throws_containing<invalid_argument_error>([&] { (void)t.random_neighbour(8, r); },
                                                    {"node 8"});
}

TEST_CASE("sampling on graphs without edges throws") {
    rng r(1);
    for (const topology& t :
         {topology::complete(1), topology::ring(1), topology::torus(1, 1), topology::hypercube(1),
          topology::random_regular(1, 0, 3), topology::from_adjacency({{}})}) {
        INFO(t.name());
        CHECK(t.edge_count() == 0);
        check_throws_containing<invalid_argument_error>([&] { (void)t.random_neighbour(0, r); },
                                                        {"node 0", "no neighbours"});
        check_throws_containing<invalid_argument_error>([&] { (void)t.random_edge(r); },
                                                        {"no edges"});
    }
}

TEST_CASE("random_neighbour is uniform") {
    // An irregular graph: node 0 is adjacent to everyone, the others form a path.
    adjacency_lists adjacency = path(12);
    for (std::size_t i = 2; i < 12; ++i) {
        adjacency[0].push_back(i);
        adjacency[i].push_back(0);
    }
    const topology irregular = topology::from_adjacency(adjacency);
    for (const topology& t :
         {topology::complete(10), topology::ring(9), topology::torus(4, 5), topology::hypercube(32),
          topology::random_regular(30, 7, 11), irregular}) {
        INFO(t.name());
        rng r(12345);
        constexpr std::size_t samples = 20000;
        for (const std::size_t node : {std::size_t{0}, std::size_t{1}, t.size() - 1}) {
            const std::size_t d = t.degree(node);
            std::vector<std::size_t> counts(d, 0);
            std::map<std::size_t, std::size_t> slot;
            for (std::size_t k = 0; k < d; ++k) slot[t.neighbour(node, k)] = k;
            for (std::size_t s = 0; s < samples; ++s) {
                const std::size_t v = t.random_neighbour(node, r);
                REQUIRE(t.has_edge(node, v));
                ++counts[slot.at(v)];
            }
            CHECK(chi_square(counts, samples) < chi_square_bound(d - 1));
        }
    }
}

TEST_CASE("random_edge is uniform over edges, with a uniform orientation") {
    adjacency_lists adjacency = path(10);  // irregular: degrees 1..4
    for (const auto& [u, v] :
         std::vector<std::pair<std::size_t, std::size_t>>{{0, 5}, {0, 9}, {2, 7}, {3, 8}, {0, 3}}) {
        adjacency[u].push_back(v);
        adjacency[v].push_back(u);
    }
    const topology irregular = topology::from_adjacency(adjacency);
    CHECK_FALSE(irregular.is_regular());
    for (const topology& t :
         {topology::complete(9), topology::ring(7), topology::torus(4, 4), topology::torus(2, 3),
          topology::hypercube(16), topology::random_regular(20, 3, 5), irregular}) {
        INFO(t.name());
        // Index every undirected edge.
        std::map<std::pair<std::size_t, std::size_t>, std::size_t> index;
        for (std::size_t i = 0; i < t.size(); ++i) {
            for (std::size_t k = 0; k < t.degree(i); ++k) {
                const std::size_t j = t.neighbour(i, k);
                if (i < j) index.emplace(std::pair{i, j}, index.size());
            }
        }
        REQUIRE(index.size() == t.edge_count());
        const std::size_t samples = 2000 * t.edge_count();
        std::vector<std::size_t> counts(index.size(), 0);
        std::size_t forward = 0;
        rng r(777);
        for (std::size_t s = 0; s < samples; ++s) {
            const auto [a, b] = t.random_edge(r);
            REQUIRE(t.has_edge(a, b));
            if (a < b) ++forward;
            ++counts[index.at({std::min(a, b), std::max(a, b)})];
        }
        CHECK(chi_square(counts, samples) < chi_square_bound(counts.size() - 1));
        // Orientation: a fair coin, within 6 standard deviations.
        const double half = static_cast<double>(samples) / 2.0;
        CHECK(std::abs(static_cast<double>(forward) - half) < 6.0 * std::sqrt(half / 2.0));
    }
}

TEST_CASE("spectral gap: closed forms") {
    const double pi = std::numbers::pi;
    for (const std::size_t n : {2, 3, 10, 100, 4096}) {
        CHECK(topology::complete(n).spectral_gap() ==
              doctest::Approx(static_cast<double>(n) / static_cast<double>(n - 1)));
    }
    CHECK(topology::ring(2).spectral_gap() == doctest::Approx(2.0));
    for (const std::size_t n : {3, 4, 8, 100, 100000}) {
        CHECK(topology::ring(n).spectral_gap() ==
              doctest::Approx(1.0 - std::cos(2.0 * pi / static_cast<double>(n))).epsilon(1e-12));
    }
    CHECK(topology::hypercube(1024).spectral_gap() == doctest::Approx(0.2));
    CHECK(topology::torus(8, 8).spectral_gap() ==
          doctest::Approx((1.0 - std::cos(2.0 * pi / 8.0)) / 2.0));
    CHECK(topology::torus(4, 16).spectral_gap() ==
          doctest::Approx((1.0 - std::cos(2.0 * pi / 16.0)) / 2.0));
    CHECK(topology::torus(1, 12).spectral_gap() ==
          doctest::Approx(topology::ring(12).spectral_gap()));
    CHECK(topology::complete(1).spectral_gap() == 1.0);  // convention for a single node
    CHECK(topology::hypercube(1).spectral_gap() == 1.0);
    CHECK(topology::random_regular(50, 2, 3).spectral_gap() ==
          doctest::Approx(1.0 - std::cos(2.0 * pi / 50.0)));
    CHECK(topology::random_regular(6, 5, 3).spectral_gap() == doctest::Approx(6.0 / 5.0));
}

TEST_CASE("spectral gap: numerical path agrees with closed forms and known spectra") {
    // Copies through from_adjacency take the numerical (Lanczos) path.
    const auto numeric = [](const topology& t) {
        return topology::from_adjacency(t.adjacency()).spectral_gap();
    };
    for (const topology& t :
         {topology::complete(2), topology::complete(3), topology::complete(40), topology::ring(3),
          topology::ring(4), topology::ring(9), topology::ring(64), topology::torus(5, 7),
          topology::torus(2, 6), topology::torus(2, 2), topology::torus(8, 8),
          topology::hypercube(2), topology::hypercube(64), topology::random_regular(40, 2, 9)}) {
        INFO(t.name());
        CHECK(numeric(t) == doctest::Approx(t.spectral_gap()).epsilon(1e-8));
    }
    // Path on n nodes: random-walk eigenvalues cos(pi k / (n - 1)).
    for (const std::size_t n : {2, 3, 10, 50}) {
        CHECK(topology::from_adjacency(path(n)).spectral_gap() ==
              doctest::Approx(1.0 - std::cos(std::numbers::pi / static_cast<double>(n - 1)))
                  .epsilon(1e-8));
    }
    // Star K_{1,5} and complete bipartite K_{3,4}: eigenvalues 1, 0, -1, so the gap is 1.
    adjacency_lists star(6);
    for (std::size_t i = 1; i < 6; ++i) {
        star[0].push_back(i);
        star[i].push_back(0);
    }
    CHECK(topology::from_adjacency(star).spectral_gap() == doctest::Approx(1.0));
    adjacency_lists bipartite(7);
    for (std::size_t i = 0; i < 3; ++i) {
        for (std::size_t j = 3; j < 7; ++j) {
            bipartite[i].push_back(j);
            bipartite[j].push_back(i);
        }
    }
    CHECK(topology::from_adjacency(bipartite).spectral_gap() == doctest::Approx(1.0));
    // Random regular graphs are expanders: gap well away from 0, and at most n / (n - 1).
    const topology rr = topology::random_regular(200, 3, 1);
    const double gap = rr.spectral_gap();
    CHECK(gap > 0.01);
    CHECK(gap <= 200.0 / 199.0);
    CHECK(gap == rr.spectral_gap());  // deterministic
    // Alon-Boppana: for large 3-regular graphs lambda_2(A) >= about 2 sqrt(2), so the gap of
    // P = A / 3 cannot exceed about 1 - 2 sqrt(2) / 3 by much.
    CHECK(gap < 1.0 - 2.0 * std::sqrt(2.0) / 3.0 + 0.05);
}

TEST_CASE("spectral gap: numerical path is limited in size") {
    adjacency_lists big = path(topology::max_spectral_nodes + 1);
    const topology t = topology::from_adjacency(big);
    check_throws_containing<invalid_argument_error>([&] { (void)t.spectral_gap(); },
                                                    {"n = 2049", "2048"});
    CHECK(topology::from_adjacency({{}}).spectral_gap() == 1.0);
}
