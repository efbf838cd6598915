// Averaging through every quantizer inside swarm_node: the mean stays exact (the sender's
// reconstruction trick), the lattice's failed decodes are all detected and recovered to the
// exact average, and the simulator reaches the optimum with each quantizer.
#include <doctest/doctest.h>

#include <cmath>
#include <swarmsgd/quantizers/bf16.hpp>
#include <swarmsgd/quantizers/fp16.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/quantizers/min_max.hpp>
#include <swarmsgd/quantizers/qsgd.hpp>
#include <swarmsgd/swarmsgd.hpp>

#include "problems.hpp"

using namespace swarmsgd;

namespace {

template <class Quant>
struct pair_of_nodes {
    using node = swarm_node<std::vector<double>, simulated_network::endpoint, Quant>;
    pair_of_nodes(std::vector<double>& x, std::vector<double>& y, Quant q)
        : net(2, 0, 0, 1),
          e0(net.endpoint_for(0)),
          e1(net.endpoint_for(1)),
          g(topology::complete(2)),
          a(x, e0, g, swarm_options{}, q),
          b(y, e1, g, swarm_options{}, q) {}
    void interact() {  // the sequential model: request, reply, and a fixup if needed
        a.initiate(1);
        while (net.pending() != 0) {
            b.poll();
            a.poll();
        }
    }
    simulated_network net;
    simulated_network::endpoint e0, e1;
    topology g;
    node a, b;
};

}  // namespace

TEST_CASE("lattice: pushed-apart buckets are all detected and recovered to the exact average") {
    const std::size_t n = 4096, bucket = 256;
    rng r(11);
    for (int trial = 0; trial < 200; ++trial) {
        CAPTURE(trial);
        std::vector<double> x(n), y(n);
        for (std::size_t k = 0; k < n; ++k) {
            x[k] = r.uniform01() * 2 - 1;
            y[k] = x[k] + 1e-3 * (r.uniform01() - 0.5);
        }
        // Push a random set of buckets apart on either side (beyond any lattice radius).
        std::vector<bool> far(n / bucket, false);
        for (std::size_t b = 0; b < n / bucket; ++b) {
            if (r.uniform(4) != 0) continue;
            far[b] = true;
            const std::size_t k = b * bucket + r.uniform(bucket);
            (r.uniform(2) ? x : y)[k] += (r.uniform(2) ? 1 : -1) * (1 + 100 * r.uniform01());
        }
        const auto x0 = x, y0 = y;
        lattice_options lo;
        lo.bucket = bucket;
        lo.initial_distance = 1e-3;
        pair_of_nodes<lattice_quantizer<double>> p(x, y, lattice_quantizer<double>(lo));
        p.interact();
        CHECK(p.a.in_flight() == 0);
        CHECK(p.b.in_flight() == 0);
        std::size_t far_elements = 0;
        for (std::size_t b = 0; b < n / bucket; ++b) far_elements += far[b] ? bucket : 0;
        // Every far bucket was detected (by one side or both) and sent at full precision.
        CHECK(p.a.stats().recovered_elements + p.b.stats().recovered_elements >= far_elements);
        const double eps = p.a.quantizer().step();
        for (std::size_t k = 0; k < n; ++k) {
            const double avg = (x0[k] + y0[k]) / 2;
            if (far[k / bucket]) {  // exact average (up to the rounding of x + (y - x) / 2)
                CHECK(x[k] == doctest::Approx(avg).epsilon(1e-15).scale(1.0));
                CHECK(y[k] == doctest::Approx(avg).epsilon(1e-15).scale(1.0));
            } else {  // within the lattice's error elsewhere
                CHECK(std::abs(x[k] - avg) <= eps);
                CHECK(std::abs(y[k] - avg) <= eps);
            }
            CHECK(x[k] + y[k] == doctest::Approx(x0[k] + y0[k]).epsilon(1e-14).scale(1.0));
        }
    }
}

TEST_CASE("lattice: the step grows after failures and shrinks back as models agree") {
    std::vector<double> x(1024, 0.0), y(1024, 0.0);
    for (std::size_t k = 0; k < x.size(); ++k) y[k] = (k % 7) * 0.5;  // far apart at first
    lattice_options lo;
    lo.initial_distance = 1e-4;
    pair_of_nodes<lattice_quantizer<double>> p(x, y, lattice_quantizer<double>(lo));
    p.interact();
    CHECK(p.a.stats().recovered_elements + p.b.stats().recovered_elements > 0);
    CHECK(p.a.quantizer().distance_estimate() >= 1.0);  // learnt the real distance
    for (int i = 0; i < 80; ++i) p.interact();          // now identical: the estimate decays
    CHECK(p.a.quantizer().distance_estimate() < 1e-2);
    for (std::size_t k = 0; k < x.size(); ++k) CHECK(x[k] == doctest::Approx(y[k]));
}

TEST_CASE_TEMPLATE("every quantizer keeps the sum of the models exact", Quant,
                   identity_quantizer<double>, fp16_quantizer<double>, bf16_quantizer<double>,
                   min_max_quantizer<double>, qsgd_quantizer<double>, lattice_quantizer<double>) {
    std::vector<std::vector<double>> models(8, std::vector<double>(1000));
    rng r(3);
    for (auto& m : models)
        for (auto& v : m) v = r.uniform01();
    const auto s0 = sum_model(models);
    test_support::zero_gradient z;
    for (auto schedule : {simulation_schedule::sequential, simulation_schedule::asynchronous}) {
        simulator_options o;
        o.schedule = schedule;
        o.max_delay = schedule == simulation_schedule::asynchronous ? 5 : 0;
        o.node.sgd.learning_rate = 0;
        auto g = topology::ring(8);
        simulator sim(models, g, z, o, Quant{});
        sim.run(400);
        sim.drain();
        const auto s1 = sum_model(models);
        for (std::size_t k = 0; k < s0.size(); ++k)
            CHECK(s1[k] == doctest::Approx(s0[k]).epsilon(1e-12));
    }
}

TEST_CASE_TEMPLATE("the simulator reaches the optimum with each quantizer", Quant,
                   identity_quantizer<double>, fp16_quantizer<double>, bf16_quantizer<double>,
                   min_max_quantizer<double>, qsgd_quantizer<double>, lattice_quantizer<double>) {
    test_support::least_squares p(8, 40, 6, 17);
    std::vector<std::vector<double>> models(8, std::vector<double>(6, 0.0));
    simulator_options o;
    o.node.steps = local_steps::fixed(2);
    o.node.seed = 5;
    o.node.sgd.learning_rate = 0.05;
    o.node.sgd.schedule = [](std::size_t t, double base) {
        return base / (1.0 + double(t) / 1000.0);
    };
    auto g = topology::torus(2, 4);
    simulator sim(models, g, p, o, Quant{});
    sim.run(8 * 2500);
    const auto mu = sim.mean_model();
    double err = 0;
    for (std::size_t k = 0; k < 6; ++k) err += std::pow(mu[k] - p.optimum[Eigen::Index(k)], 2);
    // Tolerance tied to the quantizer: the mean is exact for all of them, so only the
    // consensus (how far the nodes are from the mean) depends on the quantizer's error.
    CHECK(std::sqrt(err) / p.optimum.norm() < 0.02);
    const double gamma = sim.consensus_distance() / 8;
    const double bound = std::is_same_v<Quant, bf16_quantizer<double>> ||
                                 std::is_same_v<Quant, qsgd_quantizer<double>>
                             ? 1e-2
                             : 1e-3;
    CHECK(gamma < bound * p.optimum.squaredNorm());
}

TEST_CASE("lattice: adjacent ranges failing on both sides (F1 next to F2) keep the sum exact") {
    // Node 0's step is coarse, node 1's fine: bucket 0 of node 0's request cannot be decoded
    // by node 1 (F1), and bucket 1 of node 1's reply could not be decoded by node 0 (F2); the
    // two ranges touch and are sent as one fallback range.
    const std::size_t n = 1024, bucket = 256;
    std::vector<double> x(n), y(n);
    rng r(3);
    for (std::size_t k = 0; k < n; ++k) {
        x[k] = r.uniform01() * 2 - 1;
        y[k] = x[k] + 1e-3 * (r.uniform01() - 0.5);
    }
    x[10] += 500;
    y[bucket + 10] += 1.0;
    const auto x0 = x, y0 = y;
    simulated_network net(2, 0, 0, 1);
    auto e0 = net.endpoint_for(0), e1 = net.endpoint_for(1);
    auto g = topology::complete(2);
    lattice_options fine;
    fine.bucket = bucket;
    fine.initial_distance = 1e-3;
    lattice_options coarse = fine;
    coarse.initial_distance = 10;
    swarm_node a(x, e0, g, swarm_options{}, lattice_quantizer<double>(coarse));
    swarm_node b(y, e1, g, swarm_options{}, lattice_quantizer<double>(fine));
    a.initiate(1);
    while (net.pending() != 0) {
        b.poll();
        a.poll();
    }
    CHECK(a.in_flight() + b.in_flight() == 0);
    for (std::size_t k = 0; k < n; ++k)
        CHECK(x[k] + y[k] == doctest::Approx(x0[k] + y0[k]).epsilon(1e-14).scale(1.0));
    for (std::size_t k = 0; k < 2 * bucket; ++k) {  // both recovered buckets: exact average
        CHECK(x[k] == doctest::Approx((x0[k] + y0[k]) / 2).epsilon(1e-14).scale(1.0));
        CHECK(y[k] == doctest::Approx((x0[k] + y0[k]) / 2).epsilon(1e-14).scale(1.0));
    }
}
