// local_sgd_node (baselines/local_sgd.hpp), single-threaded over a simulated_network: the models
// are averaged every H steps (equal bit for bit afterwards, sum preserved), local steps in
// between are each node's own, the run converges and is reproducible; errors are named.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <swarmsgd/baselines/local_sgd.hpp>
#include <swarmsgd/communicators/in_process.hpp>
#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/consensus.hpp>
#include <swarmsgd/quantizers/bf16.hpp>
#include <swarmsgd/stepping_node.hpp>

#include "baseline_harness.hpp"
#include "problems.hpp"

using namespace swarmsgd;
using namespace test_support::baselines;
using endpoint = simulated_network::endpoint;

static_assert(stepping_node<local_sgd_node<std::vector<float>, endpoint>>);
static_assert(stepping_node<local_sgd_node<std::vector<double>, in_process_communicator>>);
static_assert(std::is_move_constructible_v<local_sgd_node<std::vector<float>, endpoint>>);

namespace {

template <class Model, class Quant = identity_quantizer<model_value_t<Model>>>
using fixture = node_fixture<local_sgd_node, Model, local_sgd_options, Quant>;

std::vector<std::vector<double>> spread(std::size_t n, std::size_t d) {
    std::vector<std::vector<double>> m(n, std::vector<double>(d));
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t k = 0; k < d; ++k) m[i][k] = 0.25 * double(i) - 0.5 * double(k);
    return m;
}

}  // namespace

TEST_CASE("local SGD: the average every H steps preserves the sum and makes the models equal") {
    constexpr std::size_t n = 5, d = 7, H = 3;
    local_sgd_options o;
    o.sgd.learning_rate = 0.1;
    o.period = H;
    fixture<std::vector<double>> f(spread(n, d), o);
    test_support::quadratic q;
    rng unused;
    std::vector<std::vector<double>> grads(n, std::vector<double>(d));
    std::vector<double> expected_sum = sum_model(f.models);
    rng order(3);
    for (std::size_t s = 1; s <= 4 * H; ++s) {
        for (std::size_t i = 0; i < n; ++i) {
            q.gradient(i, f.models[i], grads[i], unused);
            for (std::size_t k = 0; k < d; ++k)
                expected_sum[k] -= o.sgd.learning_rate * grads[i][k];
        }
        step_all(f.nodes, f.world, grads, &order);
        const auto sum = sum_model(f.models);
        for (std::size_t k = 0; k < d; ++k) CHECK(sum[k] == doctest::Approx(expected_sum[k]));
        if (s % H == 0) {
            for (std::size_t i = 1; i < n; ++i) CHECK(same_bits(f.models[i], f.models[0]));
        } else {
            CHECK_FALSE(same_bits(f.models[1], f.models[0]));  // local steps pull apart
        }
    }
    for (const auto& node : f.nodes) {
        CHECK(node.stats().local_steps == 4 * H);
        CHECK(node.stats().interactions_completed == 4);
        CHECK(node.stats().messages_sent == 4 * 2 * (n - 1));
    }
}

TEST_CASE("local SGD with H = 1 averages after every step, even with one node") {
    local_sgd_options o;
    o.period = 1;
    o.sgd.learning_rate = 0.5;
    fixture<std::vector<double>> f(spread(3, 2), o, 0);
    std::vector<std::vector<double>> grads{{0, 0}, {2, 2}, {4, 4}};
    step_all(f.nodes, f.world, grads);
    // mean of the initial models is (0.25, -0.25); mean of the steps -0.5 * 2.
    CHECK(f.models[0][0] == doctest::Approx(0.25 - 1.0));
    CHECK(same_bits(f.models[0], f.models[2]));

    fixture<std::vector<float>> one(std::vector<std::vector<float>>(1, {1.0f}), o);
    const std::vector<float> g{1.0f};
    one.nodes[0].step(g);
    CHECK(one.models[0][0] == 0.5f);
    CHECK(one.nodes[0].stats().interactions_completed == 1);
    one.nodes[0].finish();
}

TEST_CASE("local SGD converges to the least-squares optimum, reproducibly") {
    constexpr std::size_t n = 4, d = 5;
    test_support::least_squares problem(n, 64, d, 21);
    auto run = [&](std::size_t max_delay, std::uint64_t net_seed) {
        local_sgd_options o;
        o.sgd.learning_rate = 0.05;
        o.sgd.schedule = step_decay({400, 600}, 0.2);
        o.period = 4;
        fixture<std::vector<double>> f(std::vector<std::vector<double>>(n, std::vector<double>(d)),
                                       o, max_delay, net_seed);
        std::vector<rng> data;
        for (std::size_t i = 0; i < n; ++i) data.emplace_back(5, n + i);
        std::vector<std::vector<double>> grads(n, std::vector<double>(d));
        for (std::size_t s = 0; s < 800; ++s) {
            for (std::size_t i = 0; i < n; ++i)
                problem.gradient(i, f.models[i], std::span<double>(grads[i]), data[i]);
            step_all(f.nodes, f.world, grads);
        }
        return f.models;
    };
    const auto a = run(0, 1), b = run(4, 8);
    for (std::size_t i = 0; i < n; ++i) CHECK(same_bits(a[i], b[i]));
    for (std::size_t i = 1; i < n; ++i) CHECK(same_bits(a[i], a[0]));  // 800 = 200 H
    for (std::size_t k = 0; k < d; ++k) CHECK(std::abs(a[0][k] - problem.optimum[long(k)]) < 0.02);
}

TEST_CASE("local SGD with bf16 models on the wire: equal models after each average") {
    local_sgd_options o;
    o.period = 2;
    o.sgd.learning_rate = 0.1;
    std::vector<std::vector<float>> init(4, std::vector<float>(9));
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t k = 0; k < 9; ++k) init[i][k] = float(i) * 0.3f + float(k) * 0.01f;
    fixture<std::vector<float>, bf16_quantizer<float>> f(init, o);
    std::vector<std::vector<float>> grads(4, std::vector<float>(9, 0.5f));
    for (int s = 0; s < 4; ++s) step_all(f.nodes, f.world, grads);
    for (std::size_t i = 1; i < 4; ++i) CHECK(same_bits(f.models[i], f.models[0]));
    // the average of the initial means (0.45 + 0.01 k) minus 4 steps of 0.05, to bf16 precision
    for (std::size_t k = 0; k < 9; ++k)
        CHECK(std::abs(f.models[0][k] - (0.45f + 0.01f * float(k) - 0.2f)) < 0.01f);
}

TEST_CASE("local SGD errors") {
    local_sgd_options o;
    o.period = 0;
    std::vector<float> model(2, 0.0f);
    in_process_world world(1);
    auto comm = world.endpoint_for(0);
    const auto g = topology::complete(1);
    CHECK(what_of<invalid_argument_error>([&] {
              local_sgd_node<std::vector<float>, in_process_communicator> n(model, comm, g, o);
          }) == "local_sgd_options: period = 0; at least 1 local step must separate two averages");

    o.period = 2;
    fixture<std::vector<float>> f(std::vector<std::vector<float>>(2, {1, 2}), o);
    const std::vector<float> inf_grad{std::numeric_limits<float>::infinity(), 0};
    CHECK(contains(what_of<non_finite_error>([&] { f.nodes[0].begin_step(inf_grad); }),
                   "node 0: gradient element 0 is inf at step 0"));
    CHECK(f.models[0] == std::vector<float>{1, 2});
    // A finite gradient that makes the model overflow: refused at the average, nothing sent.
    const std::vector<float> big{0, -3e38f};
    o.sgd.learning_rate = 1e10;
    o.period = 1;
    fixture<std::vector<float>> g2(std::vector<std::vector<float>>(2, {1, 2}), o);
    CHECK(contains(what_of<non_finite_error>([&] { g2.nodes[1].begin_step(big); }),
                   "node 1: model element 1 is inf after step 1; refusing to send a non-finite "
                   "model to the average"));
    CHECK(g2.world.net.pending() == 0);
}

TEST_CASE("local SGD: a silent peer is named within the timeout") {
    in_process_world world(2);
    auto c0 = world.endpoint_for(0);
    std::vector<double> model(3, 0.0);
    const auto g = topology::complete(2);
    local_sgd_options o;
    o.period = 2;
    o.timeout = std::chrono::milliseconds(100);
    local_sgd_node<std::vector<double>, in_process_communicator> node(model, c0, g, o);
    const std::vector<double> grad(3, 1.0);
    node.step(grad);  // a local step: nothing to wait for
    CHECK(contains(what_of<peer_timeout_error>([&] { node.step(grad); }),
                   "node 0: no collective message from node 1 for round 0, hop 0 of 2 "
                   "(reduce-scatter) after"));
}
