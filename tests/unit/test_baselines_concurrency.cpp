// The baselines with one thread per node (run_nodes_in_process over the in-process
// communicator): they converge, keep their invariants (equal models, preserved sum), and a
// failing or silent node ends the run with its own error instead of a hang. Kept small: this
// executable also runs under TSan.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <exception>
#include <limits>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <swarmsgd/baselines.hpp>
#include <swarmsgd/consensus.hpp>
#include <swarmsgd/in_process_swarm.hpp>

#include "baseline_harness.hpp"
#include "problems.hpp"

using namespace swarmsgd;
using namespace test_support::baselines;
using comm_t = in_process_communicator;
using model_t = std::vector<double>;

namespace {

constexpr std::size_t n = 4, d = 4;

double distance_to(const std::vector<double>& x, const Eigen::VectorXd& optimum) {
    double e = 0;
    for (std::size_t k = 0; k < x.size(); ++k) e = std::max(e, std::abs(x[k] - optimum[long(k)]));
    return e;
}

sgd_options decaying() {
    sgd_options s;
    s.learning_rate = 0.05;
    s.schedule = step_decay({150, 250}, 0.2);
    return s;
}

}  // namespace

TEST_CASE("allreduce SGD and local SGD in threads: equal models at the optimum") {
    test_support::least_squares problem(n, 48, d, 8);
    const std::vector<std::size_t> steps(n, 300);
    const auto graph = topology::complete(n);
    SUBCASE("allreduce SGD") {
        std::vector<model_t> models(n, model_t(d, 0.0));
        allreduce_sgd_options o;
        o.sgd = decaying();
        o.timeout = std::chrono::seconds(20);
        const auto report = run_nodes_in_process(
            models, problem, steps, 1, [&](std::size_t, model_t& m, comm_t& c) {
                return allreduce_sgd_node<model_t, comm_t>(m, c, graph, o);
            });
        for (std::size_t i = 1; i < n; ++i) CHECK(same_bits(models[i], models[0]));
        CHECK(distance_to(models[0], problem.optimum) < 0.03);
        CHECK(report.total().local_steps == n * 300);
        CHECK(report.total().messages_sent == n * 300 * 2 * (n - 1));
    }
    SUBCASE("local SGD, H = 5") {
        std::vector<model_t> models(n, model_t(d, 0.0));
        local_sgd_options o;
        o.sgd = decaying();
        o.period = 5;
        const auto report = run_nodes_in_process(
            models, problem, steps, 2, [&](std::size_t, model_t& m, comm_t& c) {
                return local_sgd_node<model_t, comm_t>(m, c, graph, o);
            });
        for (std::size_t i = 1; i < n; ++i) CHECK(same_bits(models[i], models[0]));
        CHECK(distance_to(models[0], problem.optimum) < 0.03);
        CHECK(report.total().interactions_completed == n * 300 / 5);
    }
}

TEST_CASE("D-PSGD and AD-PSGD in threads: the sum moves only by the SGD steps") {
    test_support::least_squares inner(n, 48, d, 9);
    const std::vector<std::size_t> steps(n, 300);
    const auto graph = topology::ring(n);
    sgd_options s;
    s.learning_rate = 0.02;  // constant rate: the sum check needs lr * sum of the gradients
    auto check = [&](const std::vector<model_t>& models, const std::vector<model_t>& initial,
                     const test_support::recording<test_support::least_squares>& rec) {
        const auto sum = sum_model(models), start = sum_model(initial);
        for (std::size_t k = 0; k < d; ++k) {
            double expected = start[k];
            for (std::size_t i = 0; i < n; ++i) expected -= s.learning_rate * rec.sums[i][k];
            CHECK(sum[k] == doctest::Approx(expected).epsilon(1e-9));
        }
    };
    std::vector<model_t> initial(n, model_t(d));
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t k = 0; k < d; ++k) initial[i][k] = double(i) - double(k);
    SUBCASE("D-PSGD") {
        test_support::recording<test_support::least_squares> rec(inner, n, d);
        auto models = initial;
        dpsgd_options o;
        o.sgd = s;
        run_nodes_in_process(models, rec, steps, 3, [&](std::size_t, model_t& m, comm_t& c) {
            return dpsgd_node<model_t, comm_t>(m, c, graph, o);
        });
        check(models, initial, rec);
        CHECK(consensus_distance(models) < 0.05);
        CHECK(distance_to(mean_model(models), inner.optimum) < 0.1);
    }
    SUBCASE("AD-PSGD (swarm_node, H = 1, non-blocking)") {
        test_support::recording<test_support::least_squares> rec(inner, n, d);
        auto models = initial;
        const auto report = run_in_process(models, graph, rec, steps, ad_psgd_options(s, 4));
        // Threads run at their own pace here (a node may finish before another starts), so only
        // the invariant is checked, not the distance to the optimum.
        check(models, initial, rec);
        CHECK(report.total().interactions_initiated > 0);
    }
}

TEST_CASE("baselines in threads: a failing node ends the run with its own error") {
    struct poisoned {
        test_support::quadratic q;
        double gradient(std::size_t node, const model_t& x, std::span<double> g, rng& r) {
            const double loss = q.gradient(node, x, g, r);
            if (node == 2 && ++calls == 10) g[1] = std::numeric_limits<double>::quiet_NaN();
            return loss;
        }
        int calls = 0;
    } problem;
    const std::vector<std::size_t> steps(3, 50);
    std::vector<model_t> models(3, model_t(3, 0.0));
    const auto graph = topology::complete(3);
    dpsgd_options o;
    o.timeout = std::chrono::seconds(20);
    const auto what = what_of<non_finite_error>([&] {
        run_nodes_in_process(models, problem, steps, 5, [&](std::size_t, model_t& m, comm_t& c) {
            return dpsgd_node<model_t, comm_t>(m, c, graph, o);
        });
    });
    CHECK(contains(what, "node 2: gradient element 1 is nan at step 9"));
}

TEST_CASE("baselines in threads: a node that stops early is reported, no hang") {
    test_support::quadratic problem;
    const std::vector<std::size_t> steps{20, 20, 5};
    std::vector<model_t> models(3, model_t(3, 0.0));
    const auto graph = topology::complete(3);
    allreduce_sgd_options o;
    o.timeout = std::chrono::milliseconds(300);
    o.shutdown_timeout = std::chrono::seconds(5);
    const auto start = std::chrono::steady_clock::now();
    const auto what = what_of<peer_timeout_error>([&] {
        run_nodes_in_process(models, problem, steps, 6, [&](std::size_t, model_t& m, comm_t& c) {
            return allreduce_sgd_node<model_t, comm_t>(m, c, graph, o);
        });
    });
    // Node 0 waits for node 2 (its left neighbour), node 1 for node 0.
    CHECK(contains(what, "no collective message from node "));
    CHECK(contains(what, "for round 5, hop "));
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(4));
}

TEST_CASE("allreduce SGD in threads: begin_step + complete_step is step(), and it is bounded") {
    // The same run twice, one thread per node: once with step(), once with begin_step() then
    // complete_step() (how a driver times its waits apart). The ring's arithmetic does not
    // depend on timing, so the models must be the same bit for bit.
    test_support::quadratic problem;
    constexpr std::size_t nodes = 3, dim = 3, steps = 40;
    const auto graph = topology::complete(nodes);
    allreduce_sgd_options o;
    o.sgd.learning_rate = 0.1;
    o.sgd.momentum = 0.5;
    o.timeout = std::chrono::seconds(20);
    auto run = [&](bool split, std::size_t last_steps) {
        in_process_world world(nodes);
        std::vector<model_t> models(nodes, model_t(dim, 1.0));
        std::vector<std::string> errors(nodes);
        std::vector<std::thread> threads;
        for (std::size_t i = 0; i < nodes; ++i)
            threads.emplace_back([&, i] {
                try {
                    auto comm = world.endpoint_for(i);
                    allreduce_sgd_node<model_t, comm_t> node(models[i], comm, graph, o);
                    model_t grad(dim);
                    rng unused;
                    const std::size_t mine = i + 1 == nodes ? last_steps : steps;
                    for (std::size_t s = 0; s < mine; ++s) {
                        problem.gradient(i, models[i], std::span<double>(grad), unused);
                        if (split) {
                            node.begin_step(std::span<const double>(grad));
                            node.complete_step();
                            node.complete_step();  // none in progress: returns at once
                        } else {
                            node.step(std::span<const double>(grad));
                        }
                    }
                    if (mine == steps) node.finish();
                } catch (const std::exception& e) {
                    errors[i] = e.what();
                }
            });
        for (auto& t : threads) t.join();
        return std::make_pair(models, errors);
    };
    const auto [whole, whole_errors] = run(false, steps);
    const auto [split, split_errors] = run(true, steps);
    for (std::size_t i = 0; i < nodes; ++i) {
        CHECK(whole_errors[i].empty());
        CHECK(split_errors[i].empty());
        CHECK(same_bits(whole[i], split[i]));
    }
    // The last node stops after 5 steps: the others' complete_step() names the silent peer
    // within the timeout instead of waiting for ever.
    o.timeout = std::chrono::milliseconds(300);
    const auto start = std::chrono::steady_clock::now();
    const auto [stuck, stuck_errors] = run(true, 5);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
    CHECK(contains(stuck_errors[0] + stuck_errors[1], "no collective message from node "));
}
