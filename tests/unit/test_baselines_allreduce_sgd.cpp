// allreduce_sgd_node (baselines/allreduce_sgd.hpp), single-threaded over a simulated_network
// and the in-process communicator: models stay equal bit for bit, the run is large-batch SGD
// (the mean gradient), converges to the optimum of a convex problem, is reproducible, and
// every error (bad gradient, bad options, a silent peer) is named.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <swarmsgd/baselines/allreduce_sgd.hpp>
#include <swarmsgd/communicators/in_process.hpp>
#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/quantizers/fp16.hpp>
#include <swarmsgd/stepping_node.hpp>

#include "baseline_harness.hpp"
#include "problems.hpp"

using namespace swarmsgd;
using namespace test_support::baselines;
using endpoint = simulated_network::endpoint;
using node_f = allreduce_sgd_node<std::vector<float>, endpoint>;
using node_d = allreduce_sgd_node<std::vector<double>, endpoint>;

static_assert(stepping_node<node_f>);
static_assert(stepping_node<node_d>);
static_assert(stepping_node<allreduce_sgd_node<std::vector<std::vector<float>>, endpoint>>);
static_assert(std::is_move_constructible_v<node_f>);
static_assert(!std::is_copy_constructible_v<node_f>);
static_assert(
    std::is_move_constructible_v<allreduce_sgd_node<std::vector<float>, in_process_communicator>>);

namespace {

template <class Model, class Quant = identity_quantizer<model_value_t<Model>>>
using fixture = node_fixture<allreduce_sgd_node, Model, allreduce_sgd_options, Quant>;

/// Runs `steps` steps of the least-squares problem; every node's gradient from its own shard.
template <class F, class Problem>
void train(F& f, Problem& p, std::size_t steps, std::uint64_t seed) {
    using V = typename F::node::value_type;
    const std::size_t n = f.models.size(), d = model_size(f.models[0]);
    std::vector<rng> data;
    for (std::size_t i = 0; i < n; ++i) data.emplace_back(seed, n + i);
    std::vector<std::vector<V>> grads(n, std::vector<V>(d));
    rng order(seed);
    for (std::size_t s = 0; s < steps; ++s) {
        for (std::size_t i = 0; i < n; ++i)
            p.gradient(i, f.models[i], std::span<V>(grads[i]), data[i]);
        step_all(f.nodes, f.world, grads, &order);
    }
}

}  // namespace

TEST_CASE("allreduce SGD converges to the least-squares optimum with identical models") {
    constexpr std::size_t n = 4, d = 5;
    test_support::least_squares problem(n, 64, d, 42);
    allreduce_sgd_options o;
    o.sgd.learning_rate = 0.05;
    o.sgd.schedule = step_decay({300, 450}, 0.2);
    fixture<std::vector<double>> f(std::vector<std::vector<double>>(n, std::vector<double>(d, 0.0)),
                                   o);
    train(f, problem, 600, 7);
    for (std::size_t i = 1; i < n; ++i) CHECK(same_bits(f.models[i], f.models[0]));
    double error = 0;
    for (std::size_t k = 0; k < d; ++k)
        error = std::max(error, std::abs(f.models[0][k] - problem.optimum[long(k)]));
    CHECK(error < 0.02);
    for (const auto& node : f.nodes) {
        CHECK(node.stats().local_steps == 600);
        CHECK(node.stats().interactions_completed == 600);
        CHECK(node.stats().messages_sent == 600 * 2 * (n - 1));
        CHECK(node.stats().bytes_sent > 0);
        CHECK_FALSE(node.busy());
    }
}

TEST_CASE("allreduce SGD is large-batch SGD: the step uses the mean gradient") {
    // Quadratic: node i's gradient is x - c_i, so the swarm takes x <- x - lr (x - mean c) with
    // momentum, exactly as one SGD with the mean gradient (to rounding).
    constexpr std::size_t n = 3, d = 4;
    allreduce_sgd_options o;
    o.sgd.learning_rate = 0.1;
    o.sgd.momentum = 0.5;
    fixture<std::vector<double>> f(std::vector<std::vector<double>>(n, std::vector<double>(d, 1.0)),
                                   o);
    std::vector<double> reference(d, 1.0), grad(d);
    sgd<double> single(o.sgd, d);
    test_support::quadratic q;
    rng unused;
    std::vector<std::vector<double>> grads(n, std::vector<double>(d));
    for (std::size_t s = 0; s < 50; ++s) {
        for (std::size_t i = 0; i < n; ++i) q.gradient(i, f.models[i], grads[i], unused);
        for (std::size_t k = 0; k < d; ++k)
            grad[k] = (grads[0][k] + grads[1][k] + grads[2][k]) / 3.0;
        single.step(reference, std::span<const double>(grad));
        step_all(f.nodes, f.world, grads);
    }
    for (std::size_t k = 0; k < d; ++k) {
        CHECK(f.models[0][k] == doctest::Approx(reference[k]).epsilon(1e-12));
        CHECK(f.models[2][k] == f.models[0][k]);
    }
    CHECK(f.models[0][0] == doctest::Approx(1.0).epsilon(1e-6));  // mean of c_i[0] = (0+1+2)/3
}

TEST_CASE("allreduce SGD: the same model bit for bit for a seed, whatever the delays") {
    constexpr std::size_t n = 5, d = 6;
    test_support::least_squares problem(n, 32, d, 3);
    auto run = [&](std::size_t max_delay, std::uint64_t net_seed) {
        allreduce_sgd_options o;
        o.sgd.learning_rate = 0.03;
        o.sgd.momentum = 0.9;
        o.sgd.nesterov = true;
        fixture<std::vector<float>> f(
            std::vector<std::vector<float>>(n, std::vector<float>(d, 0.5f)), o, max_delay,
            net_seed);
        train(f, problem, 40, 11);
        return f.models[0];
    };
    const auto a = run(0, 1), b = run(0, 1), c = run(5, 99);
    CHECK(same_bits(a, b));
    CHECK(same_bits(a, c));  // the ring's arithmetic does not depend on timing
}

TEST_CASE("allreduce SGD with fp16 gradients: models identical, still converges") {
    constexpr std::size_t n = 4, d = 5;
    test_support::least_squares problem(n, 64, d, 5);
    allreduce_sgd_options o;
    o.sgd.learning_rate = 0.05;
    o.sgd.schedule = step_decay({300}, 0.2);
    fixture<std::vector<float>, fp16_quantizer<float>> f(
        std::vector<std::vector<float>>(n, std::vector<float>(d, 0.0f)), o);
    train(f, problem, 450, 9);
    for (std::size_t i = 1; i < n; ++i) CHECK(same_bits(f.models[i], f.models[0]));
    for (std::size_t k = 0; k < d; ++k)
        CHECK(std::abs(f.models[0][k] - problem.optimum[long(k)]) < 0.05);
    // fp16 halves the payload: 2 bytes per element plus headers.
    CHECK(f.nodes[0].stats().bytes_sent < 450 * 2 * (n - 1) * (24 + 16 + 2 * 2 + 8));
}

TEST_CASE("allreduce SGD over a list of tensors, and one node alone") {
    using list = std::vector<std::vector<float>>;
    allreduce_sgd_options o;
    o.sgd.learning_rate = 0.5;
    fixture<list> f(std::vector<list>(3, list{{1.0f, 2.0f}, {3.0f}}), o);
    std::vector<std::vector<float>> grads{{1, 1, 1}, {2, 2, 2}, {3, 3, 3}};
    step_all(f.nodes, f.world, grads);
    for (const auto& m : f.models) {
        CHECK(m[0][0] == 0.0f);  // 1 - 0.5 * 2
        CHECK(m[0][1] == 1.0f);
        CHECK(m[1][0] == 2.0f);
    }

    fixture<std::vector<double>> one(std::vector<std::vector<double>>(1, {1.0, 2.0}), o);
    const std::vector<double> g{2.0, 4.0};
    one.nodes[0].step(g);
    CHECK(one.models[0] == std::vector<double>{0.0, 0.0});
    CHECK(one.nodes[0].stats().messages_sent == 0);
    one.nodes[0].finish();
}

TEST_CASE("allreduce SGD errors: bad gradients change nothing and send nothing") {
    allreduce_sgd_options o;
    fixture<std::vector<float>> f(std::vector<std::vector<float>>(3, {1, 2, 3}), o);
    const auto before = f.models[1];
    const std::vector<float> short_grad{1, 2};
    CHECK(what_of<size_mismatch_error>([&] { f.nodes[1].begin_step(short_grad); }) ==
          "node 1: gradient has 2 elements, the model has 3");
    const std::vector<float> nan_grad{1, std::numeric_limits<float>::quiet_NaN(), 3};
    const auto what = what_of<non_finite_error>([&] { f.nodes[1].begin_step(nan_grad); });
    CHECK(contains(what, "node 1: gradient element 1 is nan at step 0"));
    CHECK(contains(what, "nothing was sent"));
    CHECK(same_bits(f.models[1], before));
    CHECK(f.world.net.pending() == 0);
    CHECK(f.nodes[1].stats().messages_sent == 0);
    CHECK_FALSE(f.nodes[1].busy());

    const std::vector<float> good{1, 1, 1};
    f.nodes[1].begin_step(good);
    CHECK_FALSE(f.nodes[1].progress());
    CHECK(contains(what_of<invalid_argument_error>([&] { f.nodes[1].begin_step(good); }),
                   "node 1 (allreduce SGD): begin_step while step 0 is not complete"));
}

TEST_CASE("allreduce SGD errors: options and topology") {
    std::vector<float> model(3, 0.0f);
    in_process_world world(2);
    auto comm = world.endpoint_for(0);
    const auto g2 = topology::complete(2);
    allreduce_sgd_options o;
    o.timeout = std::chrono::milliseconds(0);
    CHECK(what_of<invalid_argument_error>([&] {
              allreduce_sgd_node<std::vector<float>, in_process_communicator> n(model, comm, g2, o);
          }) == "allreduce_sgd_options: timeout = 0 ms; it must be > 0");
    o = {};
    o.sgd.learning_rate = -1;
    CHECK(contains(what_of<invalid_argument_error>([&] {
                       allreduce_sgd_node<std::vector<float>, in_process_communicator> n(
                           model, comm, g2, o);
                   }),
                   "learning_rate = -1"));
    o = {};
    const auto g3 = topology::complete(3);
    CHECK(what_of<topology_error>([&] {
              allreduce_sgd_node<std::vector<float>, in_process_communicator> n(model, comm, g3, o);
          }) == "node 0: topology has 3 nodes but the communicator has 2");
}

TEST_CASE("allreduce SGD: a silent peer is named within the timeout, no hang") {
    // Three in-process nodes driven by this thread; only node 0 steps: it waits for node 2 (its
    // left neighbour in the ring), which never sends.
    in_process_world world(3);
    std::vector<in_process_communicator> comms;
    for (std::size_t i = 0; i < 3; ++i) comms.push_back(world.endpoint_for(i));
    std::vector<std::vector<double>> models(3, std::vector<double>(4, 0.0));
    const auto g = topology::ring(3);
    allreduce_sgd_options o;
    o.timeout = std::chrono::milliseconds(150);
    o.shutdown_timeout = std::chrono::milliseconds(150);
    allreduce_sgd_node<std::vector<double>, in_process_communicator> node(models[0], comms[0], g,
                                                                          o);
    const std::vector<double> grad(4, 1.0);
    const auto start = std::chrono::steady_clock::now();
    const auto what = what_of<peer_timeout_error>([&] { node.step(grad); });
    const auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(contains(what,
                   "node 0: no collective message from node 2 for round 0, hop 0 of 4 "
                   "(reduce-scatter) after "));
    CHECK(contains(what, "(timeout = 150 ms)"));
    CHECK(elapsed < std::chrono::seconds(5));
    CHECK(models[0] == std::vector<double>(4, 0.0));  // the step was never applied

    // finish() on a node whose peers never finish: bounded by shutdown_timeout.
    std::vector<double> m1(4, 0.0);
    allreduce_sgd_node<std::vector<double>, in_process_communicator> idle(m1, comms[1], g, o);
    CHECK(contains(what_of<peer_timeout_error>([&] { idle.finish(); }),
                   "node 1 (allreduce SGD): not every node finished within shutdown_timeout = "
                   "150 ms"));
}

TEST_CASE("allreduce SGD: nodes that take different numbers of steps fail, never hang") {
    allreduce_sgd_options o;
    o.timeout = std::chrono::milliseconds(100);
    o.shutdown_timeout = std::chrono::milliseconds(100);
    fixture<std::vector<float>> f(std::vector<std::vector<float>>(2, {1, 2}), o, 0);
    const std::vector<float> g{1, 1};
    f.nodes[0].begin_step(g);
    // Node 1 never takes that step: node 0's step cannot complete, finish() names the peer.
    CHECK(contains(what_of<peer_timeout_error>([&] { f.nodes[0].finish(); }),
                   "node 0: no collective message from node 1 for round 0, hop 0 of 2"));
    // Node 1 finishes with node 0's message of a step it never took in its inbox.
    f.world.net.advance_to(1);
    CHECK(contains(what_of<peer_timeout_error>([&] { f.nodes[1].finish(); }),
                   "not every node finished within shutdown_timeout"));
}
