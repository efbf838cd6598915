// failure_policy::exclude on threads: a node's thread dies or stops mid-run; the survivors
// name it (and no live node), train on and finish within reply_timeout + 2 s of the fault; a
// stopped node that comes back is told it was excluded. Also through run_in_process.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <swarmsgd/in_process_swarm.hpp>

#include "error_text.hpp"
#include "problems.hpp"

using swarmsgd::failure_policy;
using swarmsgd::topology;
using test_support::contains;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

enum class fault_kind { crash, stall };

struct fault {
    std::size_t node;
    std::size_t at_step;
    fault_kind kind;
    std::chrono::milliseconds stall{0};
};

struct node_outcome {
    bool finished = false;
    std::string error;
    bool excluded_error = false;
    std::vector<swarmsgd::peer_exclusion> exclusions;
    swarmsgd::node_stats stats;
    clock_type::time_point end{};
    std::vector<double> model;
};

/// n nodes on their own threads (quadratic problem, `steps` steps of about 1 ms each), with
/// `faults` injected; returns each node's outcome and the time of the first fault.
std::vector<node_outcome> run_with_faults(const topology& graph, std::size_t steps,
                                          const std::vector<fault>& faults,
                                          const swarmsgd::swarm_options& options,
                                          clock_type::time_point& first_fault) {
    const std::size_t n = graph.size();
    swarmsgd::in_process_world world(n);
    std::vector<std::vector<double>> models(n, std::vector<double>(8, 0.0));
    std::vector<node_outcome> out(n);
    std::atomic<clock_type::rep> fault_time{
        clock_type::time_point::max().time_since_epoch().count()};
    test_support::quadratic problem;
    {
        std::vector<std::jthread> threads;
        for (std::size_t i = 0; i < n; ++i) {
            threads.emplace_back([&, i] {
                auto comm = world.endpoint_for(i);
                swarmsgd::swarm_node node(models[i], comm, graph, options);
                swarmsgd::rng data(options.seed, n + i);
                std::vector<double> grad(models[i].size());
                try {
                    for (std::size_t s = 0; s < steps; ++s) {
                        problem.gradient(i, models[i], grad, data);
                        node.step(grad);
                        for (const auto& f : faults) {
                            if (f.node != i || f.at_step != s) continue;
                            auto now = clock_type::now().time_since_epoch().count();
                            auto seen = fault_time.load();
                            while (now < seen && !fault_time.compare_exchange_weak(seen, now)) {
                            }
                            if (f.kind == fault_kind::crash)
                                throw std::runtime_error("injected crash");
                            std::this_thread::sleep_for(f.stall);
                        }
                        std::this_thread::sleep_for(1ms);
                    }
                    node.finish();
                    out[i].finished = true;
                } catch (const swarmsgd::excluded_error& e) {
                    out[i].error = e.what();
                    out[i].excluded_error = true;
                } catch (const std::exception& e) {
                    out[i].error = e.what();
                }
                out[i].end = clock_type::now();
                out[i].exclusions = node.exclusions();
                out[i].stats = node.stats();
                out[i].model = models[i];
            });
        }
    }
    first_fault = clock_type::time_point(clock_type::duration(fault_time.load()));
    return out;
}

swarmsgd::swarm_options exclude_options() {
    swarmsgd::swarm_options o;
    o.failure = failure_policy::exclude;
    o.reply_timeout = 1000ms;
    o.shutdown_timeout = 30'000ms;
    o.send_linger = 200ms;
    o.sgd.learning_rate = 0.05;
    o.seed = 5;
    return o;
}

/// The survivors (nodes not in `faulty`) finished, name exactly `faulty` and nothing else,
/// reached the end of finish() within reply_timeout + 2 s of the fault, and hold finite models.
void check_survivors(const std::vector<node_outcome>& out, const std::set<std::size_t>& faulty,
                     clock_type::time_point fault_time, std::chrono::milliseconds reply_timeout) {
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (faulty.count(i) != 0) continue;
        CAPTURE(i);
        CAPTURE(out[i].error);
        CHECK(out[i].finished);
        std::set<std::size_t> named;
        for (const auto& x : out[i].exclusions) named.insert(x.peer);
        CHECK(named == faulty);
        CHECK(out[i].stats.peers_excluded == faulty.size());
        CHECK(out[i].end - fault_time < reply_timeout + 2s);
        for (double v : out[i].model) CHECK(std::isfinite(v));
    }
}

}  // namespace

TEST_CASE("threads, exclude: a node whose thread dies is excluded; the survivors finish") {
    const auto graph = topology::complete(6);
    const auto o = exclude_options();
    clock_type::time_point t;
    const auto out = run_with_faults(graph, 250, {{2, 40, fault_kind::crash}}, o, t);
    CHECK(out[2].error == "injected crash");
    check_survivors(out, {2}, t, o.reply_timeout);
}

TEST_CASE("threads, exclude: two dead nodes on a ring; the node between them repairs") {
    const auto graph = topology::ring(6);
    const auto o = exclude_options();
    clock_type::time_point t;
    const auto out =
        run_with_faults(graph, 250, {{1, 30, fault_kind::crash}, {3, 30, fault_kind::crash}}, o, t);
    check_survivors(out, {1, 3}, t, o.reply_timeout);
}

TEST_CASE("threads, exclude: a node stopped for 1.5 x reply_timeout is excluded and told so") {
    const auto graph = topology::complete(5);
    const auto o = exclude_options();
    clock_type::time_point t;
    const auto out =
        run_with_faults(graph, 300, {{4, 30, fault_kind::stall, o.reply_timeout * 3 / 2}}, o, t);
    check_survivors(out, {4}, t, o.reply_timeout);
    CAPTURE(out[4].error);
    CHECK(out[4].excluded_error);  // not a peer_timeout_error blaming a live node
    CHECK(contains(out[4].error, "node 4 was excluded from the swarm by node "));
    CHECK(out[4].exclusions.empty());
}

TEST_CASE("threads, exclude: a clean run excludes nobody and keeps the sum") {
    const auto graph = topology::ring(5);
    auto o = exclude_options();
    std::vector<std::vector<double>> models(5, std::vector<double>(7));
    for (std::size_t i = 0; i < 5; ++i)
        for (std::size_t k = 0; k < 7; ++k) models[i][k] = double(i * 7 + k);
    double before = 0;
    for (const auto& m : models)
        for (double v : m) before += v;
    test_support::zero_gradient gossip;
    const auto report = swarmsgd::run_in_process(models, graph, gossip, 200, o);
    double after = 0;
    for (const auto& m : models)
        for (double v : m) after += v;
    CHECK(after == doctest::Approx(before).epsilon(1e-12));
    CHECK(report.failures.empty());
    CHECK(report.total().peers_excluded == 0);
    CHECK(report.total().interactions_lost == 0);
}

TEST_CASE("run_in_process, exclude: a failed node is reported, the others finish") {
    const auto graph = topology::complete(4);
    const auto o = exclude_options();
    std::vector<std::vector<double>> models(4, std::vector<double>(5, 1.0));
    test_support::quadratic problem;
    const auto report = swarmsgd::run_in_process(
        models, graph, problem, 150, o, swarmsgd::identity_quantizer<double>{},
        [](std::size_t node, std::size_t step, double, const swarmsgd::node_stats&) {
            if (node == 1 && step == 20) throw std::runtime_error("node 1's data loader broke");
            std::this_thread::sleep_for(1ms);
        });
    REQUIRE(report.failures.size() == 1);
    CHECK(report.failures[0].node == 1);
    CHECK(report.failures[0].what == "node 1's data loader broke");
    for (std::size_t i : {0, 2, 3}) {
        CAPTURE(i);
        CHECK(report.nodes[i].peers_excluded == 1);
    }
    // Under failure_policy::fail the same failure stops the run and is thrown.
    auto fail = o;
    fail.failure = failure_policy::fail;
    CHECK(contains(
        test_support::what_of<std::runtime_error>([&] {
            (void)swarmsgd::run_in_process(
                models, graph, problem, 150, fail, swarmsgd::identity_quantizer<double>{},
                [](std::size_t node, std::size_t step, double, const swarmsgd::node_stats&) {
                    if (node == 1 && step == 20)
                        throw std::runtime_error("node 1's data loader broke");
                });
        }),
        "node 1's data loader broke"));
}
