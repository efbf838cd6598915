// The in-process communicator and driver under real concurrency: mean preservation with a
// straggler and delayed replies, no deadlock at scale, consensus, errors that stop every thread.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <limits>
#include <stdexcept>
#include <string>
#include <swarmsgd/swarmsgd.hpp>
#include <thread>

#include "problems.hpp"

using namespace swarmsgd;
using namespace std::chrono_literals;
using test_support::least_squares;
using test_support::quadratic;
using test_support::recording;
using test_support::zero_gradient;

namespace {

std::vector<std::vector<double>> random_models(std::size_t n, std::size_t d, std::uint64_t seed) {
    rng r(seed);
    std::vector<std::vector<double>> models(n, std::vector<double>(d));
    for (auto& m : models)
        for (auto& v : m) v = r.uniform01() * 10 - 5;
    return models;
}

void spin_for(std::chrono::microseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
}

/// A problem that costs time: node 0 is 10x slower than the others.
template <class Inner>
struct with_straggler {
    template <class M, class V>
    double gradient(std::size_t node, const M& x, std::span<V> g, rng& r) {
        spin_for(node == 0 ? 500us : 50us);
        return inner->gradient(node, x, g, r);
    }
    Inner* inner;
};

/// A user communicator wrapping another: holds each outgoing message for a random 0..2 ms
/// before passing it on, so replies land long after the request and requests cross.
template <class Inner>
class delaying_communicator {
public:
    delaying_communicator(Inner inner, std::uint64_t seed) : inner_(inner), random_(seed) {}
    std::size_t rank() const { return inner_.rank(); }
    std::size_t size() const { return inner_.size(); }
    completed_request isend(std::size_t dest, std::vector<std::byte> bytes) {
        const auto delay = std::chrono::microseconds(random_.uniform(2000));
        held_.push_back({std::chrono::steady_clock::now() + delay, dest, std::move(bytes)});
        flush();
        return {};
    }
    std::optional<received_message> try_receive() {
        flush();
        return inner_.try_receive();
    }
    bool wait_for_message(std::chrono::nanoseconds timeout) {
        flush();
        return inner_.wait_for_message(
            held_.empty() ? timeout : std::min<std::chrono::nanoseconds>(timeout, 100us));
    }
    void announce_done() { inner_.announce_done(); }
    bool all_done() const { return inner_.all_done(); }

private:
    struct held {
        std::chrono::steady_clock::time_point release;
        std::size_t dest;
        std::vector<std::byte> bytes;
    };
    void flush() {  // in order per destination: release only from the front
        const auto now = std::chrono::steady_clock::now();
        while (!held_.empty() && held_.front().release <= now) {
            (void)inner_.isend(held_.front().dest, std::move(held_.front().bytes));
            held_.pop_front();
        }
    }
    Inner inner_;
    rng random_;
    std::deque<held> held_;
};
static_assert(communicator<delaying_communicator<in_process_communicator>>);

/// The endpoints of an in_process_world wrapped in delaying communicators: a user's own
/// thread_world. Counts the aborts.
class delaying_world {
public:
    explicit delaying_world(std::size_t n) : inner_(n) {}
    std::size_t size() const { return inner_.size(); }
    delaying_communicator<in_process_communicator> endpoint_for(std::size_t i) {
        return {inner_.endpoint_for(i), 100 + i};
    }
    void abort(const std::string& reason) {
        ++aborts;
        inner_.abort(reason);
    }
    std::atomic<int> aborts{0};

private:
    in_process_world inner_;
};
static_assert(thread_world<delaying_world>);
static_assert(thread_world<in_process_world>);

/// Runs n threads of swarm_node over delaying communicators (run_in_process over a user's
/// thread_world).
template <class Problem>
std::vector<node_stats> run_delayed(std::vector<std::vector<double>>& models, const topology& g,
                                    Problem& p, std::size_t steps, const swarm_options& o) {
    delaying_world world(models.size());
    const auto report = run_in_process(world, models, g, p, steps, o);
    CHECK(world.aborts == 0);
    return report.nodes;
}

void check_mean_preserved(const std::vector<double>& s0,
                          const std::vector<std::vector<double>>& after,
                          const recording<quadratic>& rec, double lr) {
    const auto s1 = sum_model(after);
    for (std::size_t k = 0; k < s0.size(); ++k) {
        double updates = 0;
        for (const auto& node : rec.sums) updates += -lr * node[k];
        CHECK(s1[k] == doctest::Approx(s0[k] + updates).epsilon(1e-9).scale(1.0));
    }
}

}  // namespace

TEST_CASE("in-process: mean preserved with a 10x straggler, blocking and non-blocking") {
    for (auto mode : {averaging_mode::nonblocking, averaging_mode::blocking}) {
        CAPTURE(to_string(mode));
        auto models = random_models(6, 5, 1);
        const auto s0 = sum_model(models);
        quadratic q;
        recording rec(q, 6, 5);
        with_straggler<recording<quadratic>> slow{&rec};
        swarm_options o;
        o.mode = mode;
        o.sgd.learning_rate = 0.01;
        o.steps = local_steps::geometric(2);
        o.max_in_flight = 2;
        auto g = topology::complete(6);
        auto report = run_in_process(models, g, slow, 200, o);
        CHECK(report.total().interactions_completed > 50);
        CHECK(report.total().interactions_completed == report.total().interactions_served);
        check_mean_preserved(s0, models, rec, 0.01);
    }
}

TEST_CASE("in-process: mean preserved with delayed replies and crossed requests") {
    for (auto mode : {averaging_mode::nonblocking, averaging_mode::blocking}) {
        CAPTURE(to_string(mode));
        auto models = random_models(6, 4, 2);
        const auto s0 = sum_model(models);
        quadratic q;
        recording rec(q, 6, 4);
        with_straggler<recording<quadratic>> slow{&rec};
        swarm_options o;
        o.mode = mode;
        o.sgd.learning_rate = 0.01;
        o.max_in_flight = 3;
        auto g = topology::ring(6);
        const auto stats = run_delayed(models, g, slow, 150, o);
        node_stats total;
        for (const auto& s : stats) total += s;
        CHECK(total.interactions_completed > 30);
        CHECK(total.interactions_completed == total.interactions_served);
        check_mean_preserved(s0, models, rec, 0.01);
    }
}

TEST_CASE("in-process: no deadlock, 8 threads x 10,000 interactions each") {
    for (auto mode :
         {averaging_mode::nonblocking, averaging_mode::blocking, averaging_mode::pull}) {
        CAPTURE(to_string(mode));
        const std::size_t n = 8, per_node = 10'000;
        auto models = random_models(n, 8, 3);
        const auto s0 = sum_model(models);
        in_process_world world(n);
        auto g = topology::random_regular(n, 3, 4);
        swarm_options o;
        o.mode = mode;
        o.sgd.learning_rate = 0;
        o.max_in_flight = 2;
        std::vector<node_stats> stats(n);
        std::vector<std::exception_ptr> errors(n);
        {
            std::vector<std::jthread> threads;
            for (std::size_t i = 0; i < n; ++i)
                threads.emplace_back([&, i] {
                    try {
                        auto comm = world.endpoint_for(i);
                        swarm_node node(models[i], comm, g, o);
                        // Nothing to compute here: sleep until a message arrives rather than
                        // spin while the partner needs the core (8 threads on 2 cores).
                        while (node.stats().interactions_initiated < per_node) {
                            node.after_local_step();
                            if (node.in_flight() == o.max_in_flight)
                                comm.wait_for_message(std::chrono::milliseconds(1));
                        }
                        node.finish();
                        stats[i] = node.stats();
                    } catch (...) {
                        errors[i] = std::current_exception();
                        world.abort("node failed");
                    }
                });
        }
        for (auto& e : errors)
            if (e) std::rethrow_exception(e);
        for (const auto& s : stats) {
            CHECK(s.interactions_initiated == per_node);
            // Crossed requests are declined by the higher rank (no change on either side).
            CHECK(s.interactions_completed + s.interactions_declined == per_node);
        }
        if (mode != averaging_mode::pull) {
            const auto s1 = sum_model(models);
            for (std::size_t k = 0; k < s0.size(); ++k)
                CHECK(s1[k] == doctest::Approx(s0[k]).epsilon(1e-9));
        }
    }
}

TEST_CASE("in-process: pure gossip reaches the initial mean") {
    auto models = random_models(8, 6, 5);
    const auto mu0 = mean_model(models);
    const double gamma0 = consensus_distance(models);
    swarm_options o;
    o.sgd.learning_rate = 0;
    auto g = topology::hypercube(8);
    // Stop only once every node has initiated many interactions (threads may run unevenly).
    in_process_world world(8);
    {
        std::vector<std::jthread> threads;
        for (std::size_t i = 0; i < 8; ++i)
            threads.emplace_back([&, i] {
                auto comm = world.endpoint_for(i);
                swarm_node node(models[i], comm, g, o);
                while (node.stats().interactions_completed < 3000) {
                    node.after_local_step();
                    if (node.in_flight() != 0) comm.wait_for_message(std::chrono::milliseconds(1));
                }
                node.finish();
            });
    }
    CHECK(consensus_distance(models) < 1e-20 * gamma0);
    for (const auto& m : models)
        for (std::size_t k = 0; k < m.size(); ++k)
            CHECK(m[k] == doctest::Approx(mu0[k]).epsilon(1e-9));
}

TEST_CASE("in-process: least squares converges with 8 nodes, fixed and geometric H") {
    for (auto steps : {local_steps::fixed(2), local_steps::geometric(2)}) {
        CAPTURE(steps.describe());
        least_squares p(8, 40, 6, 21);
        std::vector<std::vector<double>> models(8, std::vector<double>(6, 0.0));
        with_straggler<least_squares> paced{&p};  // gives the threads time to interleave
        swarm_options o;
        o.steps = steps;
        o.sgd.learning_rate = 0.05;
        o.sgd.schedule = [](std::size_t t, double base) {
            return base / (1.0 + double(t) / 300.0);
        };
        auto g = topology::ring(8);
        auto report = run_in_process(models, g, paced, 1500, o);
        const auto mu = mean_model(models);
        double err = 0;
        for (std::size_t k = 0; k < 6; ++k)
            err += (mu[k] - p.optimum[Eigen::Index(k)]) * (mu[k] - p.optimum[Eigen::Index(k)]);
        CHECK(std::sqrt(err) / p.optimum.norm() < 0.03);
        CHECK(report.total().interactions_completed > 500);
    }
}

TEST_CASE("in-process: a NaN gradient on one node stops the swarm with that error, no hang") {
    struct nan_on_node_3 {
        double gradient(std::size_t node, const std::vector<double>&, std::span<double> g, rng&) {
            for (auto& v : g) v = 0.1;
            if (node == 3 && ++calls == 50) g[2] = std::numeric_limits<double>::quiet_NaN();
            spin_for(20us);
            return 0;
        }
        int calls = 0;  // touched by node 3's thread only
    } p;
    auto models = random_models(6, 4, 6);
    swarm_options o;
    o.sgd.learning_rate = 0.01;
    auto g = topology::complete(6);
    CHECK_THROWS_WITH_AS(run_in_process(models, g, p, 1000, o),
                         doctest::Contains("node 3: gradient element 2 is nan"), non_finite_error);
}

TEST_CASE("in-process: over a user's thread_world, a failing node's error is rethrown, once") {
    struct throw_on_node_2 {
        double gradient(std::size_t node, const std::vector<double>&, std::span<double> g, rng&) {
            for (auto& v : g) v = 0.1;
            if (node == 2 && ++calls == 30) throw std::runtime_error("node 2's data loader failed");
            spin_for(20us);
            return 0;
        }
        int calls = 0;  // touched by node 2's thread only
    } p;
    auto models = random_models(5, 4, 8);
    swarm_options o;
    o.sgd.learning_rate = 0.01;
    const auto g = topology::ring(5);
    delaying_world world(5);
    // The original error, not the aborted_error it caused on the other nodes; abort once.
    CHECK_THROWS_WITH_AS(run_in_process(world, models, g, p, 1000, o),
                         "node 2's data loader failed", std::runtime_error);
    CHECK(world.aborts == 1);

    // A world of the wrong size is refused before any thread starts.
    delaying_world small(4);
    CHECK_THROWS_WITH_AS(run_in_process(small, models, g, p, 10, o),
                         "run_in_process: the world has 4 endpoints for 5 models",
                         invalid_argument_error);
    CHECK(small.aborts == 0);
}

TEST_CASE("in-process: models of different sizes are rejected, naming nodes and sizes") {
    zero_gradient z;
    auto models = random_models(4, 5, 7);
    models[2].resize(7);
    auto g = topology::ring(4);
    CHECK_THROWS_WITH_AS(run_in_process(models, g, z, 10, swarm_options{}),
                         doctest::Contains("node 2 has a model of 7 elements, node 0 has 5"),
                         size_mismatch_error);
    // Across threads (as across processes): the protocol detects it on both sides.
    in_process_world world(2);
    auto g2 = topology::complete(2);
    std::vector<double> a(10, 1.0), b(12, 1.0);
    std::exception_ptr err0, err1;
    {
        std::jthread t0([&] {
            try {
                auto c = world.endpoint_for(0);
                swarm_node node(a, c, g2, swarm_options{});
                node.initiate(1);
                node.finish();
            } catch (...) {
                err0 = std::current_exception();
            }
        });
        std::jthread t1([&] {
            try {
                auto c = world.endpoint_for(1);
                swarm_node node(b, c, g2, swarm_options{});
                node.finish();
            } catch (...) {
                err1 = std::current_exception();
            }
        });
    }
    REQUIRE(err0);
    REQUIRE(err1);
    CHECK_THROWS_WITH_AS(
        std::rethrow_exception(err1),
        doctest::Contains("node 1 (model of 12 elements) got a request from node 0"),
        size_mismatch_error);
    CHECK_THROWS_WITH_AS(std::rethrow_exception(err0), doctest::Contains("10 elements"),
                         size_mismatch_error);
}

TEST_CASE("in-process: invalid options and set-ups") {
    zero_gradient z;
    auto models = random_models(4, 3, 8);
    auto g = topology::ring(4);
    swarm_options o;
    o.sgd.learning_rate = -0.1;
    CHECK_THROWS_WITH_AS(run_in_process(models, g, z, 10, o),
                         doctest::Contains("learning_rate = -0.1"), invalid_argument_error);
    std::vector<std::vector<double>> none;
    CHECK_THROWS_WITH_AS(run_in_process(none, g, z, 10, swarm_options{}),
                         doctest::Contains("n = 0"), invalid_argument_error);
    CHECK_THROWS_AS(in_process_world(0), invalid_argument_error);
}
