// The sequential-model simulator: invariants (mean preservation, gossip to consensus),
// convergence to known optima, and bit-identical reproducibility.
#include <doctest/doctest.h>

#include <cmath>
#include <swarmsgd/swarmsgd.hpp>

#include "problems.hpp"

using namespace swarmsgd;
using test_support::least_squares;
using test_support::logistic;
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

template <class Problem>
Problem make(std::size_t n) {
    if constexpr (std::is_same_v<Problem, logistic>)
        return logistic(n, 40, 6, 17, 0.01, 16);
    else
        return least_squares(n, 40, 6, 17);
}

double distance(const std::vector<double>& a, const Eigen::VectorXd& b) {
    double s = 0;
    for (std::size_t k = 0; k < a.size(); ++k)
        s += (a[k] - b[Eigen::Index(k)]) * (a[k] - b[Eigen::Index(k)]);
    return std::sqrt(s);
}

// sum_i X_i(T) == sum_i X_i(0) - lr * sum of every gradient applied (plain SGD).
void check_mean_preserved(const std::vector<std::vector<double>>& before,
                          const std::vector<std::vector<double>>& after,
                          const recording<quadratic>& rec, double lr) {
    const auto s0 = sum_model(before);
    const auto s1 = sum_model(after);
    for (std::size_t k = 0; k < s0.size(); ++k) {
        double updates = 0;
        for (const auto& node : rec.sums) updates += -lr * node[k];
        CHECK(s1[k] == doctest::Approx(s0[k] + updates).epsilon(1e-9).scale(1.0));
    }
}

}  // namespace

TEST_CASE("sequential model: averaging preserves the sum of the models exactly") {
    for (auto steps : {local_steps::fixed(1), local_steps::fixed(3), local_steps::geometric(2.5)}) {
        CAPTURE(steps.describe());
        auto models = random_models(16, 7, 1);
        const auto before = models;
        quadratic q;
        recording rec(q, 16, 7);
        simulator_options o;
        o.node.sgd.learning_rate = 0.01;
        o.node.steps = steps;
        o.node.seed = 42;
        auto g = topology::torus(4, 4);
        simulator sim(models, g, rec, o);
        sim.run(3000);
        check_mean_preserved(before, models, rec, 0.01);
    }
}

TEST_CASE("asynchronous schedule: stale snapshots, delays, crossed requests, a straggler") {
    for (std::size_t in_flight : {1u, 3u}) {
        CAPTURE(in_flight);
        auto models = random_models(8, 5, 2);
        const auto before = models;
        quadratic q;
        recording rec(q, 8, 5);
        simulator_options o;
        o.schedule = simulation_schedule::asynchronous;
        o.node.sgd.learning_rate = 0.02;
        o.node.steps = local_steps::geometric(2);
        o.node.max_in_flight = in_flight;
        o.node.seed = 7;
        o.speeds.assign(8, 1.0);
        o.speeds[3] = 0.1;  // 10x slower than the rest
        o.min_delay = 0;
        o.max_delay = 20;  // replies land many local steps later
        auto g = topology::complete(8);
        simulator sim(models, g, rec, o);
        sim.run(20000);
        sim.drain();
        const auto t = sim.total_stats();
        CHECK(t.interactions_completed > 1000);
        CHECK(t.interactions_completed == t.interactions_served);
        CHECK(sim.node(3).stats().local_steps < sim.node(0).stats().local_steps / 5);
        check_mean_preserved(before, models, rec, 0.02);
    }
}

TEST_CASE("pull mode (the authors' variant) does not preserve the mean, and says so") {
    auto models = random_models(8, 5, 3);
    const auto s0 = sum_model(models);
    zero_gradient z;
    simulator_options o;
    o.node.mode = averaging_mode::pull;
    o.node.sgd.learning_rate = 0.0;
    auto g = topology::ring(8);
    simulator sim(models, g, z, o);
    sim.run(200);
    const auto s1 = sum_model(models);
    double drift = 0;
    for (std::size_t k = 0; k < s0.size(); ++k) drift += std::abs(s1[k] - s0[k]);
    CHECK(drift > 1e-3);
    CHECK(sim.total_stats().interactions_completed == 200);
}

TEST_CASE("pure gossip (learning rate 0) drives every topology to the initial mean") {
    const std::vector<topology> graphs{topology::complete(16),
                                       topology::ring(16),
                                       topology::torus(4, 4),
                                       topology::hypercube(16),
                                       topology::random_regular(16, 3, 5),
                                       topology::from_adjacency({{1, 2}, {0, 2}, {0, 1, 3}, {2}})};
    for (const auto& g : graphs) {
        CAPTURE(g.name());
        for (auto schedule : {simulation_schedule::sequential, simulation_schedule::asynchronous}) {
            auto models = random_models(g.size(), 6, 4);
            const auto mu0 = mean_model(models);
            const double gamma0 = consensus_distance(models);
            zero_gradient z;
            simulator_options o;
            o.schedule = schedule;
            o.max_delay = schedule == simulation_schedule::asynchronous ? 3 : 0;
            o.node.sgd.learning_rate = 0.0;
            simulator sim(models, g, z, o);
            sim.run(g.size() * 4000);
            sim.drain();
            CHECK(sim.consensus_distance() < 1e-20 * gamma0);
            for (const auto& m : models)
                for (std::size_t k = 0; k < m.size(); ++k)
                    CHECK(m[k] == doctest::Approx(mu0[k]).epsilon(1e-9));
        }
    }
}

TEST_CASE("same seed gives bit-identical models, a different seed differs") {
    auto run = [](std::uint64_t seed, simulation_schedule schedule) {
        auto models = random_models(32, 9, 11);
        least_squares p(32, 20, 9, 5);
        simulator_options o;
        o.schedule = schedule;
        o.max_delay = schedule == simulation_schedule::asynchronous ? 4 : 0;
        o.node.seed = seed;
        o.node.sgd.learning_rate = 0.02;
        o.node.sgd.momentum = 0.9;
        o.node.steps = local_steps::geometric(3);
        auto g = topology::random_regular(32, 4, 9);
        simulator sim(models, g, p, o);
        sim.run(5000);
        sim.drain();
        return models;
    };
    for (auto schedule : {simulation_schedule::sequential, simulation_schedule::asynchronous}) {
        const auto a = run(1, schedule), b = run(1, schedule), c = run(2, schedule);
        CHECK(a == b);  // bit-identical
        CHECK(a != c);
    }
}

TEST_CASE("thousands of nodes: n = 1024 on a random 4-regular graph") {
    auto models = random_models(1024, 4, 12);
    const auto mu0 = mean_model(models);
    zero_gradient z;
    simulator_options o;
    o.node.sgd.learning_rate = 0;
    auto g = topology::random_regular(1024, 4, 3);
    simulator sim(models, g, z, o);
    const double gamma0 = sim.consensus_distance();
    sim.run(1024 * 30);
    CHECK(sim.consensus_distance() < 1e-3 * gamma0);
    const auto mu1 = sim.mean_model();
    for (std::size_t k = 0; k < mu0.size(); ++k)
        CHECK(mu1[k] == doctest::Approx(mu0[k]).epsilon(1e-9));
}

TEST_CASE_TEMPLATE("convergence to the known optimum, n = 1, 8, 64, fixed and geometric H", Problem,
                   least_squares, logistic) {
    for (std::size_t n : {1u, 8u, 64u}) {
        for (auto steps : {local_steps::fixed(2), local_steps::geometric(2)}) {
            CAPTURE(n);
            CAPTURE(steps.describe());
            Problem p = make<Problem>(n);
            std::vector<std::vector<double>> models(n, std::vector<double>(6, 0.0));
            simulator_options o;
            o.node.steps = steps;
            o.node.seed = 5;
            const double lr0 = std::is_same_v<Problem, logistic> ? 0.5 : 0.05;
            // Decaying rate 1/(1 + t/T): the stochastic gradients' noise vanishes.
            o.node.sgd.learning_rate = lr0;
            o.node.sgd.schedule = [](std::size_t t, double base) {
                return base / (1.0 + double(t) / 1000.0);
            };
            const auto g =
                n == 1 ? topology::complete(1) : topology::torus(n == 8 ? 2 : 8, n == 8 ? 4 : 8);
            simulator sim(models, g, p, o);
            if (n == 1) {
                // One node, no partner: plain local SGD.
                for (int t = 0; t < 20000; ++t) {
                    std::vector<double> grad(6);
                    p.gradient(0, models[0], std::span<double>(grad), sim.node(0).random());
                    sim.node(0).apply_gradient(grad);
                }
            } else {
                sim.run(n * 2500);
            }
            const auto mu = sim.mean_model();
            const double err = distance(mu, p.optimum) / p.optimum.norm();
            // Logistic SGD is noisier (sequential SGD itself ends at ~0.02-0.04 here).
            CHECK(err < (std::is_same_v<Problem, logistic> ? 0.06 : 0.02));
            CHECK(sim.consensus_distance() / double(n) < 5e-3 * p.optimum.squaredNorm());
        }
    }
}

TEST_CASE("simulator rejects bad set-ups with clear errors") {
    quadratic q;
    simulator_options o;
    std::vector<std::vector<double>> none;
    auto g8 = topology::ring(8);
    CHECK_THROWS_WITH_AS(simulator(none, g8, q, o), doctest::Contains("n = 0"),
                         invalid_argument_error);
    std::vector<std::vector<double>> models(8, std::vector<double>(3));
    models[5].resize(4);
    CHECK_THROWS_WITH_AS(simulator(models, g8, q, o),
                         doctest::Contains("node 5 has a model of 4 elements, node 0 has 3"),
                         size_mismatch_error);
    models[5].resize(3);
    auto g4 = topology::ring(4);
    CHECK_THROWS_WITH_AS(simulator(models, g4, q, o),
                         doctest::Contains("4 nodes but there are 8 models"), topology_error);
    o.max_delay = 3;  // delays need the asynchronous schedule
    CHECK_THROWS_WITH_AS(simulator(models, g8, q, o), doctest::Contains("max_delay = 3"),
                         invalid_argument_error);
    o.max_delay = 0;
    o.schedule = simulation_schedule::asynchronous;
    o.speeds.assign(8, 1.0);
    o.speeds[2] = 0;
    CHECK_THROWS_WITH_AS(simulator(models, g8, q, o), doctest::Contains("speed of node 2 is 0"),
                         invalid_argument_error);
    o.speeds.clear();
    o.node.mode = averaging_mode::blocking;
    CHECK_THROWS_AS(simulator(models, g8, q, o), invalid_argument_error);
}

TEST_CASE("crossed requests between two nodes average once instead of swapping the models") {
    simulated_network net(2, 0, 0, 1);
    auto e0 = net.endpoint_for(0), e1 = net.endpoint_for(1);
    auto g = topology::complete(2);
    std::vector<double> a{1.0, 2.0}, b{5.0, -2.0};
    swarm_node n0(a, e0, g, swarm_options{}), n1(b, e1, g, swarm_options{});
    n0.initiate(1);  // both start an interaction before either sees the other's request
    n1.initiate(0);
    while (net.pending() != 0) {
        n1.poll();
        n0.poll();
    }
    CHECK(a == std::vector<double>{3.0, 0.0});  // the average, not b
    CHECK(b == std::vector<double>{3.0, 0.0});
    CHECK(n1.stats().interactions_served + n0.stats().interactions_served == 1);
    CHECK(n0.stats().interactions_declined == 1);  // node 1 (higher rank) declined node 0's
    CHECK(n0.in_flight() + n1.in_flight() == 0);
}
