// The baselines (allreduce SGD, local SGD, D-PSGD; baselines/) over system models (Thrust
// device vectors, and lists of them; thrust/detail/baseline_memory.hpp). The engines run on host
// buffers and the model and its optimizer stay in the model's system, so a run over device
// models must give the host run's models bit for bit. Checked:
// - over the simulated network (single thread), every model type, every algorithm, with a
//   quantizer on the wire (fp16 gradients, lattice-coded D-PSGD models) and without;
// - in the timed simulator: the same models AND the same simulated times;
// - over threads with the in-process communicator;
// - the errors: bad gradients leave the device model unchanged, a non-finite device model is
//   never sent.
// AD-PSGD is swarm_node (test_node.cpp).
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include <swarmsgd/baselines.hpp>
#include <swarmsgd/communicators/in_process.hpp>
#include <swarmsgd/in_process_swarm.hpp>
#include <swarmsgd/quantizers/fp16.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/swarmsgd.hpp>
#include <swarmsgd/thrust.hpp>
#include <swarmsgd/timed_simulator.hpp>

#include "baseline_harness.hpp"
#include "thrust_support.hpp"

using namespace swarmsgd;
using namespace test_support::thrust_models;
using test_support::baselines::node_fixture;
using test_support::baselines::same_bits;
using test_support::baselines::step_all;

namespace {

template <class V>
host_models<V> initial_models(std::size_t nodes, std::size_t dim) {
    host_models<V> m(nodes, std::vector<V>(dim));
    rng r(42);
    for (auto& x : m)
        for (auto& v : x) v = static_cast<V>(2 * r.uniform01() - 1);
    return m;
}

template <class M, class V>
std::vector<M> system_models(const host_models<V>& host) {
    std::vector<M> out;
    for (const auto& h : host) out.push_back(make_model<M>(h));
    return out;
}

sgd_options momentum_sgd() {
    sgd_options o;
    o.learning_rate = 0.05;
    o.momentum = 0.9;
    o.nesterov = true;
    o.weight_decay = 1e-3;
    return o;
}

/// Runs NodeT over host models and over system models of type M from the same start, `steps`
/// synchronous steps over a simulated network with random delays; the models, their bytes on
/// the wire and the step counts must be identical.
template <template <class, class, class> class NodeT, class M, class Options, class Quant>
void check_same_as_host(const topology& g, const Options& o, const Quant& q, std::size_t steps) {
    using V = model_value_t<M>;
    const std::size_t n = g.size(), dim = 700;
    const auto init = initial_models<V>(n, dim);
    node_fixture<NodeT, std::vector<V>, Options, Quant> host(g, init, o, 3, 5, q);
    node_fixture<NodeT, M, Options, Quant> dev(g, system_models<M>(init), o, 3, 5, q);
    noisy_quadratic p;
    std::vector<rng> host_data, dev_data;
    for (std::size_t i = 0; i < n; ++i) {
        host_data.emplace_back(7, n + i);
        dev_data.emplace_back(7, n + i);
    }
    host_models<V> hg(n, std::vector<V>(dim)), dg = hg;
    for (std::size_t s = 0; s < steps; ++s) {
        for (std::size_t i = 0; i < n; ++i) {
            p.gradient(i, host.models[i], std::span<V>(hg[i]), host_data[i]);
            p.gradient(i, dev.models[i], std::span<V>(dg[i]), dev_data[i]);
        }
        step_all(host.nodes, host.world, hg);
        step_all(dev.nodes, dev.world, dg);
    }
    for (std::size_t i = 0; i < n; ++i) {
        CAPTURE(i);
        CHECK(same_bits(host_values(dev.models[i]), host.models[i]));
        CHECK(dev.nodes[i].stats().bytes_sent == host.nodes[i].stats().bytes_sent);
        CHECK(dev.nodes[i].stats().local_steps == steps);
    }
}

}  // namespace

TEST_CASE_TEMPLATE("baselines on system models: the host run's models, bit for bit", M,
                   SWARMSGD_THRUST_MODEL_TYPES) {
    using V = model_value_t<M>;
    SUBCASE("allreduce SGD, exact ring") {
        allreduce_sgd_options o;
        o.sgd = momentum_sgd();
        check_same_as_host<allreduce_sgd_node, M>(topology::complete(5), o, identity_quantizer<V>{},
                                                  12);
    }
    SUBCASE("allreduce SGD, fp16 gradients on the wire") {
        allreduce_sgd_options o;
        o.sgd = momentum_sgd();
        o.seed = 3;
        check_same_as_host<allreduce_sgd_node, M>(topology::complete(4), o, fp16_quantizer<V>{},
                                                  10);
    }
    SUBCASE("local SGD, period 3") {
        local_sgd_options o;
        o.sgd = momentum_sgd();
        o.period = 3;
        check_same_as_host<local_sgd_node, M>(topology::complete(4), o, identity_quantizer<V>{},
                                              12);
    }
    SUBCASE("D-PSGD on a ring, lattice-coded models") {
        dpsgd_options o;
        o.sgd = momentum_sgd();
        lattice_options lo;
        lo.bits = 8;
        lo.bucket = 64;
        lo.initial_distance = 4;
        check_same_as_host<dpsgd_node, M>(topology::ring(5), o, lattice_quantizer<V>(lo), 10);
    }
}

TEST_CASE("baselines on system models: consensus and the mean, on the device models") {
    // The invariants themselves (not only the host's): after local SGD's average every device
    // model is the same; D-PSGD with zero gradients keeps the sum of the device models.
    using M = thrust::device_vector<double>;
    const std::size_t n = 4, dim = 300;
    const auto init = initial_models<double>(n, dim);
    {
        local_sgd_options o;
        o.sgd.learning_rate = 0.1;
        o.period = 2;
        node_fixture<local_sgd_node, M, local_sgd_options> f(system_models<M>(init), o);
        host_models<double> grads(n, std::vector<double>(dim, 0.5));
        step_all(f.nodes, f.world, grads);
        step_all(f.nodes, f.world, grads);
        for (std::size_t i = 1; i < n; ++i)
            CHECK(same_bits(host_values(f.models[i]), host_values(f.models[0])));
    }
    {
        dpsgd_options o;
        o.sgd.learning_rate = 0.1;
        node_fixture<dpsgd_node, M, dpsgd_options> f(topology::ring(n), system_models<M>(init), o);
        host_models<double> zero(n, std::vector<double>(dim, 0.0));
        for (int s = 0; s < 20; ++s) step_all(f.nodes, f.world, zero);
        for (std::size_t k = 0; k < dim; ++k) {
            double before = 0, after = 0;
            for (std::size_t i = 0; i < n; ++i) {
                before += init[i][k];
                after += host_values(f.models[i])[k];
            }
            CHECK(after == doctest::Approx(before).epsilon(1e-12));
        }
    }
}

TEST_CASE_TEMPLATE("baselines on system models in the timed simulator: same models, same times", M,
                   thrust::device_vector<double>, std::vector<thrust::cpp::vector<float>>) {
    using V = model_value_t<M>;
    const std::size_t n = 6, dim = 200;
    const auto graph = topology::ring(n);
    timed_options options;
    options.compute = {
        .step_seconds = 0.01, .jitter = 0.5, .straggler_fraction = 0.2, .straggler_slowdown = 3};
    options.network = {.latency_seconds = 0.0005,
                       .bandwidth_bytes_per_second = 2e5,
                       .local_seconds_per_byte = 1e-8};
    options.wait_graph = &graph;
    noisy_quadratic problem;
    auto check = [&](const char* name, auto make_host, auto make_dev) {
        CAPTURE(name);
        auto host = initial_models<V>(n, dim);
        auto dev = system_models<M>(host);
        timed_simulator a(host, problem, options, make_host);
        timed_simulator b(dev, problem, options, make_dev);
        a.run({.steps_per_node = 30});
        b.run({.steps_per_node = 30});
        CHECK(a.now() == b.now());
        CHECK(a.now() > 0);
        for (std::size_t i = 0; i < n; ++i) {
            CAPTURE(i);
            CHECK(same_bits(host_values(dev[i]), host[i]));
            CHECK(a.times(i).waiting == b.times(i).waiting);
            CHECK(a.times(i).communicating == b.times(i).communicating);
        }
    };
    sgd_options sgd = momentum_sgd();
    auto allreduce = [&](auto& m, timed_network::endpoint& c) {
        allreduce_sgd_options o;
        o.sgd = sgd;
        o.use_native_collective = false;
        return allreduce_sgd_node(m, c, graph, o);
    };
    auto native_local = [&](auto& m, timed_network::endpoint& c) {
        local_sgd_options o;
        o.sgd = sgd;
        o.period = 4;
        return local_sgd_node(m, c, graph, o);
    };
    auto dpsgd = [&](auto& m, timed_network::endpoint& c) {
        dpsgd_options o;
        o.sgd = sgd;
        return dpsgd_node(m, c, graph, o);
    };
    check(
        "allreduce SGD (ring)",
        [&](std::size_t, std::vector<V>& m, timed_network::endpoint& c) { return allreduce(m, c); },
        [&](std::size_t, M& m, timed_network::endpoint& c) { return allreduce(m, c); });
    check(
        "local SGD (native)",
        [&](std::size_t, std::vector<V>& m, timed_network::endpoint& c) {
            return native_local(m, c);
        },
        [&](std::size_t, M& m, timed_network::endpoint& c) { return native_local(m, c); });
    check(
        "D-PSGD",
        [&](std::size_t, std::vector<V>& m, timed_network::endpoint& c) { return dpsgd(m, c); },
        [&](std::size_t, M& m, timed_network::endpoint& c) { return dpsgd(m, c); });
}

TEST_CASE("baselines on system models over threads (in-process communicator)") {
    // The ring's and D-PSGD's arithmetic does not depend on timing: threads give the host
    // run's models too.
    using M = std::vector<thrust::device_vector<float>>;
    const std::size_t n = 4, dim = 500;
    const auto graph = topology::ring(n);
    const std::vector<std::size_t> steps(n, 25);
    noisy_quadratic problem;
    auto check = [&](const char* name, auto make) {
        CAPTURE(name);
        auto host = initial_models<float>(n, dim);
        auto dev = system_models<M>(host);
        run_nodes_in_process(host, problem, steps, 9, make);
        run_nodes_in_process(dev, problem, steps, 9, make);
        for (std::size_t i = 0; i < n; ++i) CHECK(same_bits(host_values(dev[i]), host[i]));
    };
    check("allreduce SGD", [&](std::size_t, auto& m, in_process_communicator& c) {
        allreduce_sgd_options o;
        o.sgd = momentum_sgd();
        o.timeout = std::chrono::milliseconds(30000);
        return allreduce_sgd_node(m, c, graph, o);
    });
    check("D-PSGD", [&](std::size_t, auto& m, in_process_communicator& c) {
        dpsgd_options o;
        o.sgd = momentum_sgd();
        o.timeout = std::chrono::milliseconds(30000);
        return dpsgd_node(m, c, graph, o);
    });
}

TEST_CASE("baselines on system models: bad gradients and non-finite models are refused") {
    using M = thrust::device_vector<float>;
    const std::size_t n = 2, dim = 64;
    const auto init = initial_models<float>(n, dim);
    local_sgd_options o;
    o.sgd.learning_rate = 0.1;
    o.period = 1;
    node_fixture<local_sgd_node, M, local_sgd_options> f(system_models<M>(init), o);
    std::vector<float> grad(dim, 0.25f);

    std::vector<float> nan_grad = grad;
    nan_grad[17] = std::nanf("");
    const std::string e1 = test_support::baselines::what_of<non_finite_error>(
        [&] { f.nodes[0].begin_step(std::span<const float>(nan_grad)); });
    CHECK(test_support::baselines::contains(e1, "gradient element 17"));
    CHECK(same_bits(host_values(f.models[0]), init[0]));

    std::vector<float> short_grad(dim - 1, 0.f);
    const std::string e2 = test_support::baselines::what_of<size_mismatch_error>(
        [&] { f.nodes[0].begin_step(std::span<const float>(short_grad)); });
    CHECK(test_support::baselines::contains(e2, "63 elements, the model has 64"));
    CHECK(same_bits(host_values(f.models[0]), init[0]));

    // A NaN in the device model: the node refuses to send it to the average.
    f.models[1][5] = std::numeric_limits<float>::infinity();
    const std::string e3 = test_support::baselines::what_of<non_finite_error>(
        [&] { f.nodes[1].begin_step(std::span<const float>(grad)); });
    CAPTURE(e3);
    CHECK(test_support::baselines::contains(e3, "node 1: model element 5 is"));
    CHECK(f.nodes[1].stats().messages_sent == 0);
}
