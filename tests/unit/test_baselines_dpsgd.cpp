// dpsgd_node (baselines/dpsgd.hpp), single-threaded over a simulated_network: the step is
// x_i + sum_j W_ij (x_j - x_i) - lr g_i with Metropolis-Hastings weights, the sum of the models
// is preserved (also quantized), gossip reaches consensus, training converges, the result does
// not depend on message delays or the order of progress() calls, and errors are named.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <swarmsgd/baselines/dpsgd.hpp>
#include <swarmsgd/communicators/in_process.hpp>
#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/consensus.hpp>
#include <swarmsgd/quantizers/fp16.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/stepping_node.hpp>

#include "baseline_harness.hpp"
#include "problems.hpp"

using namespace swarmsgd;
using namespace test_support::baselines;
using endpoint = simulated_network::endpoint;

static_assert(stepping_node<dpsgd_node<std::vector<float>, endpoint>>);
static_assert(stepping_node<dpsgd_node<std::vector<double>, in_process_communicator>>);
static_assert(std::is_move_constructible_v<dpsgd_node<std::vector<float>, endpoint>>);

namespace {

template <class Model, class Quant = identity_quantizer<model_value_t<Model>>>
using fixture = node_fixture<dpsgd_node, Model, dpsgd_options, Quant>;

std::vector<std::vector<double>> random_models(std::size_t n, std::size_t d, std::uint64_t seed) {
    rng r(seed);
    std::vector<std::vector<double>> m(n, std::vector<double>(d));
    for (auto& x : m)
        for (auto& v : x) v = r.uniform01() * 4 - 2;
    return m;
}

}  // namespace

TEST_CASE("D-PSGD: Metropolis-Hastings weights") {
    // A star: the centre has degree 3, the leaves degree 1.
    const auto star = topology::from_adjacency({{1, 2, 3}, {0}, {0}, {0}});
    dpsgd_options o;
    fixture<std::vector<double>> f(star, random_models(4, 2, 1), o);
    for (std::size_t k = 0; k < 3; ++k) CHECK(f.nodes[0].weight(k) == 0.25);
    CHECK(f.nodes[0].self_weight() == doctest::Approx(0.25));
    CHECK(f.nodes[2].weight(0) == 0.25);
    CHECK(f.nodes[2].self_weight() == doctest::Approx(0.75));
    fixture<std::vector<double>> r(topology::ring(6), random_models(6, 2, 1), o);
    CHECK(r.nodes[4].weight(1) == doctest::Approx(1.0 / 3));
}

TEST_CASE("D-PSGD: one step is W x - lr g, and the sum moves only by the SGD updates") {
    const auto g = topology::from_adjacency({{1, 2, 3}, {0, 2}, {0, 1}, {0}});
    constexpr std::size_t n = 4, d = 5;
    dpsgd_options o;
    o.sgd.learning_rate = 0.1;
    fixture<std::vector<double>> f(g, random_models(n, d, 7), o);
    const auto before = f.models;
    std::vector<std::vector<double>> grads(n, std::vector<double>(d));
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t k = 0; k < d; ++k) grads[i][k] = double(i) - double(k) * 0.5;
    rng order(2);
    step_all(f.nodes, f.world, grads, &order);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t k = 0; k < d; ++k) {
            double expected = before[i][k] - o.sgd.learning_rate * grads[i][k];
            for (std::size_t j = 0; j < g.degree(i); ++j) {
                const std::size_t nb = g.neighbour(i, j);
                const double w = 1.0 / (1.0 + double(std::max(g.degree(i), g.degree(nb))));
                expected += w * (before[nb][k] - before[i][k]);
            }
            CHECK(f.models[i][k] == doctest::Approx(expected).epsilon(1e-14));
        }
        CHECK(f.nodes[i].stats().messages_sent == g.degree(i));
        CHECK(f.nodes[i].stats().local_steps == 1);
    }
}

TEST_CASE_TEMPLATE("D-PSGD preserves the sum of the models, quantized too", Quant,
                   identity_quantizer<double>, fp16_quantizer<double>, lattice_quantizer<double>) {
    constexpr std::size_t n = 8, d = 33;
    dpsgd_options o;
    o.sgd.learning_rate = 0.05;
    o.sgd.momentum = 0.5;
    auto make = [] {
        if constexpr (std::is_same_v<Quant, lattice_quantizer<double>>)
            return Quant(lattice_options{.initial_distance = 8});
        else
            return Quant{};
    };
    fixture<std::vector<double>, Quant> f(topology::random_regular(n, 3, 5), random_models(n, d, 3),
                                          o, 3, 1, make());
    test_support::quadratic q;
    rng unused, order(4);
    std::vector<std::vector<double>> grads(n, std::vector<double>(d));
    // Sum of the models after T steps = initial sum - sum of the optimizer's displacements,
    // which every node applies to its own model: track them with an optimizer replica.
    std::vector<sgd<double>> replicas(n, sgd<double>(o.sgd, d));
    auto expected = sum_model(f.models);
    for (int s = 0; s < 30; ++s) {
        for (std::size_t i = 0; i < n; ++i) {
            q.gradient(i, f.models[i], grads[i], unused);
            std::vector<double> x = f.models[i], x0 = x;
            replicas[i].step(x, std::span<const double>(grads[i]));
            for (std::size_t k = 0; k < d; ++k) expected[k] += x[k] - x0[k];
        }
        step_all(f.nodes, f.world, grads, &order);
    }
    const auto sum = sum_model(f.models);
    for (std::size_t k = 0; k < d; ++k)
        CHECK(std::abs(sum[k] - expected[k]) < 1e-9 * (1 + std::abs(expected[k])));
}

TEST_CASE("D-PSGD gossip (zero gradients) reaches consensus on the mean") {
    constexpr std::size_t n = 8, d = 4;
    dpsgd_options o;
    fixture<std::vector<double>> f(topology::ring(n), random_models(n, d, 9), o);
    const auto mean = mean_model(f.models);
    const double gamma0 = consensus_distance(f.models);
    std::vector<std::vector<double>> zero(n, std::vector<double>(d, 0.0));
    for (int s = 0; s < 200; ++s) step_all(f.nodes, f.world, zero);
    CHECK(consensus_distance(f.models) < 1e-8 * gamma0);
    for (const auto& m : f.models)
        for (std::size_t k = 0; k < d; ++k) CHECK(m[k] == doctest::Approx(mean[k]));
}

TEST_CASE("D-PSGD converges to the least-squares optimum, the same bits for any delays") {
    constexpr std::size_t n = 6, d = 4;
    test_support::least_squares problem(n, 48, d, 17);
    auto run = [&](std::size_t max_delay, std::uint64_t net_seed, bool shuffle) {
        dpsgd_options o;
        o.sgd.learning_rate = 0.05;
        o.sgd.schedule = step_decay({300, 450}, 0.2);
        fixture<std::vector<float>> f(topology::ring(n),
                                      std::vector<std::vector<float>>(n, std::vector<float>(d)), o,
                                      max_delay, net_seed);
        std::vector<rng> data;
        for (std::size_t i = 0; i < n; ++i) data.emplace_back(3, n + i);
        std::vector<std::vector<float>> grads(n, std::vector<float>(d));
        rng order(net_seed);
        for (std::size_t s = 0; s < 600; ++s) {
            for (std::size_t i = 0; i < n; ++i)
                problem.gradient(i, f.models[i], std::span<float>(grads[i]), data[i]);
            step_all(f.nodes, f.world, grads, shuffle ? &order : nullptr);
        }
        return f.models;
    };
    const auto a = run(0, 1, false), b = run(5, 77, true);
    for (std::size_t i = 0; i < n; ++i) CHECK(same_bits(a[i], b[i]));
    const auto mean = mean_model(a);
    for (std::size_t k = 0; k < d; ++k) CHECK(std::abs(mean[k] - problem.optimum[long(k)]) < 0.03);
    CHECK(consensus_distance(a) < 1e-3);
}

TEST_CASE("D-PSGD with the lattice quantizer adapts its step and stays close to exact") {
    constexpr std::size_t n = 6, d = 16;
    dpsgd_options o;
    lattice_options lo;
    lo.bits = 8;
    lo.bucket = 8;
    lo.initial_distance = 8;
    auto init = random_models(n, d, 21);
    fixture<std::vector<double>, lattice_quantizer<double>> q(topology::ring(n), init, o, 1, 1,
                                                              lattice_quantizer<double>(lo));
    fixture<std::vector<double>> exact(topology::ring(n), init, o);
    std::vector<std::vector<double>> zero(n, std::vector<double>(d, 0.0));
    for (int s = 0; s < 40; ++s) {
        step_all(q.nodes, q.world, zero);
        step_all(exact.nodes, exact.world, zero);
    }
    CHECK(q.nodes[0].quantizer().distance_estimate() < 1.0);  // adapted down from 8
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t k = 0; k < d; ++k)
            CHECK(std::abs(q.models[i][k] - exact.models[i][k]) < 0.05);
}

TEST_CASE("D-PSGD errors: bad gradients, non-finite models, malformed and unexpected messages") {
    dpsgd_options o;
    auto make = [&] {
        return fixture<std::vector<float>>(topology::ring(4),
                                           std::vector<std::vector<float>>(4, {1, 2}), o, 0);
    };
    auto payload = [](std::size_t elements) {
        const std::vector<float> v(elements, 1.0f);
        return identity_payload<float>(v);
    };
    SUBCASE("gradient") {
        auto f = make();
        const std::vector<float> nan{std::numeric_limits<float>::quiet_NaN(), 0};
        CHECK(contains(what_of<non_finite_error>([&] { f.nodes[0].begin_step(nan); }),
                       "node 0: gradient element 0 is nan at step 0"));
        const std::vector<float> three{1, 2, 3};
        CHECK(contains(what_of<size_mismatch_error>([&] { f.nodes[0].begin_step(three); }),
                       "gradient has 3 elements, the model has 2"));
        CHECK(f.world.net.pending() == 0);
        CHECK(f.models[0] == std::vector<float>{1, 2});
    }
    SUBCASE("a non-finite model is never sent") {
        auto f = make();
        f.models[2][1] = std::numeric_limits<float>::infinity();
        const std::vector<float> g{0, 0};
        CHECK(contains(what_of<non_finite_error>([&] { f.nodes[2].begin_step(g); }),
                       "node 2: model element 1 is inf at step 0; refusing to send a non-finite "
                       "model to its neighbours"));
        CHECK(f.world.net.pending() == 0);
        CHECK_FALSE(f.nodes[2].busy());
    }
    SUBCASE("from a node that is not a neighbour") {
        auto f = make();
        (void)f.world.endpoints[2].isend(0, forge(message_kind::neighbour_model, 2, 0, payload(2)));
        CHECK(contains(what_of<message_error>([&] { f.nodes[0].progress(); }),
                       "node 0 got a neighbour_model message from node 2 (round 0), which is not "
                       "its neighbour in ring(4)"));
    }
    SUBCASE("twice the same round") {
        auto f = make();
        for (int k = 0; k < 2; ++k)
            (void)f.world.endpoints[1].isend(
                0, forge(message_kind::neighbour_model, 1, 0, payload(2)));
        CHECK(contains(what_of<message_error>([&] { f.nodes[0].progress(); }),
                       "node 0 got a neighbour_model message from node 1 for round 0 twice"));
    }
    SUBCASE("more than one round ahead") {
        auto f = make();
        (void)f.world.endpoints[1].isend(0, forge(message_kind::neighbour_model, 1, 1, payload(2)));
        CHECK(contains(what_of<message_error>([&] { f.nodes[0].progress(); }),
                       "node 0 got a neighbour_model message from node 1 for round 1 but expects "
                       "round 0: a message of a past round, or a neighbour more than one round "
                       "ahead"));
    }
    SUBCASE("a Swarm SGD message or a ring message") {
        auto f = make();
        (void)f.world.endpoints[1].isend(0, forge(message_kind::reply, 1, 0, payload(2)));
        CHECK(contains(what_of<message_error>([&] { f.nodes[0].progress(); }),
                       "node 0 (D-PSGD) got a reply message from node 1: that is a Swarm SGD "
                       "message"));
        auto h = make();
        (void)h.world.endpoints[3].isend(0, forge(message_kind::collective, 3, 0, payload(2)));
        CHECK(contains(what_of<message_error>([&] { h.nodes[0].progress(); }),
                       "node 0 (D-PSGD) got a collective message from node 3"));
    }
    SUBCASE("a model of the wrong size leaves the model unchanged") {
        auto f = make();
        const std::vector<float> g{0, 0};
        f.nodes[0].begin_step(g);
        (void)f.world.endpoints[1].isend(0, forge(message_kind::neighbour_model, 1, 0, payload(2)));
        (void)f.world.endpoints[3].isend(0, forge(message_kind::neighbour_model, 3, 0, payload(3)));
        CHECK(contains(what_of<size_mismatch_error>([&] { f.nodes[0].progress(); }),
                       "node 0 expected 2 elements in the neighbour_model from node 3 (round 0)"));
        CHECK(f.models[0] == std::vector<float>{1, 2});
    }
    SUBCASE("a lattice decode that fails is reported") {
        lattice_options lo;
        lo.initial_distance = 1e-3;
        fixture<std::vector<double>, lattice_quantizer<double>> f(topology::complete(2),
                                                                  {{0.0, 0.0}, {5.0, -5.0}}, o, 0,
                                                                  1, lattice_quantizer<double>(lo));
        std::vector<std::vector<double>> zero(2, std::vector<double>(2, 0.0));
        CHECK(contains(
            what_of<message_error>([&] { step_all(f.nodes, f.world, zero); }),
            "node 1: lattice could not decode 2 elements of the neighbour_model from node 0 "
            "(round 0); the baselines do not recover failed decodes"));
    }
}

TEST_CASE("D-PSGD: a silent neighbour is named within the timeout, one node alone works") {
    in_process_world world(3);
    auto c0 = world.endpoint_for(0);
    std::vector<double> model(2, 0.0);
    const auto g = topology::complete(3);
    dpsgd_options o;
    o.timeout = std::chrono::milliseconds(100);
    dpsgd_node<std::vector<double>, in_process_communicator> node(model, c0, g, o);
    const std::vector<double> grad(2, 1.0);
    const auto what = what_of<peer_timeout_error>([&] { node.step(grad); });
    CHECK(contains(what,
                   "node 0: no neighbour_model message from node 1 for round 0 (D-PSGD; "
                   "neighbours not heard from: 1, 2) after"));
    CHECK(model == std::vector<double>(2, 0.0));

    in_process_world alone(1);
    auto c = alone.endpoint_for(0);
    std::vector<double> m(2, 1.0);
    dpsgd_node<std::vector<double>, in_process_communicator> single(m, c, topology::complete(1), o);
    single.step(grad);
    CHECK(m[0] == doctest::Approx(1.0 - o.sgd.learning_rate));
    single.finish();
}
