// The timed network (alpha-beta costs, link queues, FIFO order) and the discrete-event timed
// simulator: step-time model (cores of their own or shared), budgets, time accounting,
// bit-reproducibility, Swarm SGD's invariants in simulated time, and the error for a stalled
// synchronous run.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <limits>
#include <set>
#include <swarmsgd/baselines.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/swarmsgd.hpp>
#include <swarmsgd/timed_simulator.hpp>
#include <utility>
#include <vector>

#include "problems.hpp"

using namespace swarmsgd;
using test_support::least_squares;
using test_support::recording;
using test_support::zero_gradient;

namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

std::vector<std::byte> bytes_of(std::size_t n, unsigned char fill = 0) {
    return std::vector<std::byte>(n, std::byte{fill});
}

/// A minimal synchronous algorithm for the simulator's blocking paths: every step, each node
/// sends one token of `bytes` bytes to every other node and completes the step once it has
/// the tokens of all others for that step. Tokens of a later step are counted ahead. Node i
/// sends to i + 1, i + 2, ... (mod n), so each receiver gets one token per link slot.
struct barrier_node {
    using value_type = double;
    barrier_node(std::size_t rank, timed_network::endpoint& comm, std::size_t bytes)
        : rank_(rank), comm_(&comm), bytes_(bytes) {}
    std::size_t rank() const { return rank_; }
    void begin_step(std::span<const double>) {
        const std::size_t n = comm_->size();
        for (std::size_t s = 1; s < n; ++s) {
            const std::size_t j = (rank_ + s) % n;
            std::vector<std::byte> b(bytes_);
            b[0] = std::byte(static_cast<unsigned char>(step_ % 256));
            stats_.bytes_sent += b.size();
            (void)comm_->isend(j, std::move(b));
        }
        ++step_;
    }
    bool progress() {
        while (auto m = comm_->try_receive()) {
            stats_.bytes_received += m->bytes.size();
            ++tokens_;
        }
        return tokens_ >= step_ * (comm_->size() - 1);
    }
    const node_stats& stats() const { return stats_; }

    std::size_t rank_;
    timed_network::endpoint* comm_;
    std::size_t bytes_;
    std::size_t step_ = 0;
    std::size_t tokens_ = 0;
    node_stats stats_;
};
static_assert(stepping_node<barrier_node>);

std::vector<std::vector<double>> random_models(std::size_t n, std::size_t d, std::uint64_t seed) {
    rng r(seed);
    std::vector<std::vector<double>> models(n, std::vector<double>(d));
    for (auto& m : models)
        for (auto& v : m) v = r.uniform01() * 10 - 5;
    return models;
}

}  // namespace

TEST_CASE("timed network: an uncontended message costs latency + bytes / bandwidth") {
    timed_network net(3, {.latency_seconds = 0.5, .bandwidth_bytes_per_second = 100});
    auto a = net.endpoint_for(0);
    auto b = net.endpoint_for(1);
    net.set_now(2.0);
    (void)a.isend(1, bytes_of(50, 7));
    CHECK(net.in_transit() == 1);
    CHECK(net.next_event() == doctest::Approx(2.0 + 0.5));  // its head reaches node 1's link
    CHECK_FALSE(b.try_receive().has_value());
    CHECK(net.deliver_next() == 1);
    CHECK(net.now() == doctest::Approx(3.0));
    auto m = b.try_receive();
    REQUIRE(m.has_value());
    CHECK(m->source == 0);
    CHECK(m->bytes.size() == 50);
    CHECK(m->bytes[0] == std::byte{7});
    CHECK(net.bytes_sent(0) == 50);
    CHECK(net.model().message_seconds(50) == doctest::Approx(1.0));
}

TEST_CASE("timed network: messages queue on the sender's uplink and the receiver's downlink") {
    SUBCASE("two messages from one node leave one after the other, in order") {
        timed_network net(3, {.latency_seconds = 0.1, .bandwidth_bytes_per_second = 10});
        auto a = net.endpoint_for(0);
        (void)a.isend(1, bytes_of(10, 1));  // holds the uplink [0, 1)
        (void)a.isend(2, bytes_of(10, 2));  // [1, 2)
        CHECK(net.deliver_next() == 1);
        CHECK(net.now() == doctest::Approx(1.1));
        CHECK(net.deliver_next() == 2);
        CHECK(net.now() == doctest::Approx(2.1));
    }
    SUBCASE("incast: two senders to one receiver share its downlink") {
        timed_network net(3, {.latency_seconds = 0.1, .bandwidth_bytes_per_second = 10});
        auto a = net.endpoint_for(0);
        auto b = net.endpoint_for(1);
        (void)a.isend(2, bytes_of(10));
        (void)b.isend(2, bytes_of(10));
        net.deliver_next();
        CHECK(net.now() == doctest::Approx(1.1));
        net.deliver_next();
        CHECK(net.now() == doctest::Approx(2.1));
    }
    SUBCASE("disjoint pairs do not interfere on per-node links") {
        timed_network net(4, {.latency_seconds = 0.1, .bandwidth_bytes_per_second = 10});
        auto a = net.endpoint_for(0);
        auto c = net.endpoint_for(2);
        (void)a.isend(1, bytes_of(10));
        (void)c.isend(3, bytes_of(10));
        net.deliver_next();
        net.deliver_next();
        CHECK(net.now() == doctest::Approx(1.1));
    }
    SUBCASE("a shared link serializes every message") {
        timed_network net(4, {.latency_seconds = 0.1,
                              .bandwidth_bytes_per_second = 10,
                              .links = link_model::shared});
        auto a = net.endpoint_for(0);
        auto c = net.endpoint_for(2);
        (void)a.isend(1, bytes_of(10));
        (void)c.isend(3, bytes_of(10));
        net.deliver_next();
        CHECK(net.now() == doctest::Approx(1.1));
        net.deliver_next();
        CHECK(net.now() == doctest::Approx(2.1));
    }
    SUBCASE("per-pair FIFO: a small message does not overtake a large one") {
        timed_network net(2, {.latency_seconds = 0.0, .bandwidth_bytes_per_second = 10});
        auto a = net.endpoint_for(0);
        auto b = net.endpoint_for(1);
        (void)a.isend(1, bytes_of(100, 1));
        (void)a.isend(1, bytes_of(1, 2));
        net.deliver_next();
        net.deliver_next();
        CHECK(b.try_receive()->bytes[0] == std::byte{1});
        CHECK(b.try_receive()->bytes[0] == std::byte{2});
    }
}

TEST_CASE("timed network: bad options and sends are refused with the values named") {
    auto message_of = [](auto&& f) {
        try {
            f();
        } catch (const invalid_argument_error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(contains(message_of([] { timed_network(0, {}); }), "n = 0"));
    CHECK(contains(message_of([] { timed_network(2, {.latency_seconds = -1}); }),
                   "latency_seconds = -1"));
    CHECK(contains(message_of([] { timed_network(2, {.bandwidth_bytes_per_second = 0}); }),
                   "bandwidth_bytes_per_second = 0"));
    CHECK(contains(message_of([] {
                       timed_network(
                           2, {.local_seconds_per_byte = std::numeric_limits<double>::quiet_NaN()});
                   }),
                   "local_seconds_per_byte = nan"));
    timed_network net(2, {});
    auto a = net.endpoint_for(0);
    CHECK(contains(message_of([&] { (void)a.isend(0, bytes_of(1)); }), "to node 0"));
    CHECK(contains(message_of([&] { (void)a.isend(5, bytes_of(1)); }), "to node 5 (n = 2)"));
    CHECK(contains(message_of([&] { (void)net.endpoint_for(2); }), "rank 2 out of range"));
    net.set_now(3);
    CHECK(contains(message_of([&] { net.set_now(1); }), "time goes back from 3 s to 1 s"));
    CHECK(contains(message_of([&] { net.deliver_next(); }), "nothing in transit"));
}

TEST_CASE("compute_model: invalid values are refused with the value named") {
    auto message_of = [](compute_model c) {
        try {
            c.validate();
        } catch (const invalid_argument_error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(contains(message_of({.step_seconds = 0}), "step_seconds = 0"));
    CHECK(contains(message_of({.jitter = 1}), "jitter = 1"));
    CHECK(contains(message_of({.straggler_fraction = 1.5}), "straggler_fraction = 1.5"));
    CHECK(contains(message_of({.straggler_slowdown = 0.5}), "straggler_slowdown = 0.5"));
    CHECK(contains(message_of({.pause_probability = -0.1}), "pause_probability = -0.1"));
    CHECK(contains(message_of({.pause_seconds = -2}), "pause_seconds = -2"));
    CHECK(message_of({}) == "no error");
}

TEST_CASE("timed simulator: a synchronous algorithm's times follow the cost model") {
    // 4 nodes; each step every node sends 3 tokens of 100 bytes: its uplink is busy 3 x 1 s,
    // the last token lands 3 s + latency after the step's compute ends.
    const std::size_t n = 4;
    std::vector<std::vector<double>> models(n, std::vector<double>(2, 0.0));
    zero_gradient problem;
    timed_options options;
    options.compute.step_seconds = 2.0;
    options.network = {.latency_seconds = 0.25, .bandwidth_bytes_per_second = 100};
    timed_simulator sim(models, problem, options,
                        [](std::size_t i, std::vector<double>&, timed_network::endpoint& c) {
                            return barrier_node(i, c, 100);
                        });
    sim.run({.steps_per_node = 5});
    CHECK(sim.completed_steps() == 5 * n);
    CHECK(sim.now() == doctest::Approx(5 * (2.0 + 3.0 + 0.25)));
    for (std::size_t i = 0; i < n; ++i) {
        const auto& t = sim.times(i);
        CHECK(t.steps == 5);
        CHECK(t.computing == doctest::Approx(10.0));
        CHECK(t.communicating == doctest::Approx(5 * 3.25));
        CHECK(t.waiting == doctest::Approx(0.0));
        CHECK(sim.network().bytes_sent(i) == 5 * 3 * 100);
    }
}

TEST_CASE("processor sharing: a core each, or shared cores at min(1, cores / k) each") {
    using detail::processor_sharing;
    auto drain = [](processor_sharing& cpu) {
        std::vector<std::pair<std::size_t, std::array<double, 2>>> out;  // node, {end, seconds}
        while (cpu.next_event() < std::numeric_limits<double>::infinity()) {
            const double t = cpu.next_event();
            if (auto f = cpu.advance()) out.push_back({f->node, {t, f->seconds}});
        }
        return out;
    };
    SUBCASE("a core each: a computation ends at its start + its work") {
        processor_sharing cpu;
        cpu.start(0, 0.0, 3.0);
        cpu.start(1, 0.5, 1.0);
        cpu.start(2, 0.5, 1.0);
        const auto out = drain(cpu);
        REQUIRE(out.size() == 3);
        CHECK(out[0].first == 1);  // ties in end time: the order of start()
        CHECK(out[1].first == 2);
        CHECK(out[0].second[0] == 1.5);
        CHECK(out[2].second == std::array<double, 2>{3.0, 3.0});
    }
    SUBCASE("4 computations on 2 cores take twice as long together") {
        processor_sharing cpu(2);
        for (std::size_t i = 0; i < 4; ++i) cpu.start(i, 0.0, 1.0);
        CHECK(cpu.computing() == 0);  // they join at their start event
        const auto out = drain(cpu);
        REQUIRE(out.size() == 4);
        for (const auto& [node, t] : out) {
            CHECK(t[0] == doctest::Approx(2.0));
            CHECK(t[1] == doctest::Approx(2.0));
        }
    }
    SUBCASE("staggered starts on one core: the rate changes when the second joins and leaves") {
        // A (work 1) alone on [0, 0.5): 0.5 done. Both at rate 1/2: A's last 0.5 takes 1 s, so A
        // ends at 1.5 with B half done; B alone does its last 0.5 by 2.0.
        processor_sharing cpu(1);
        cpu.start(0, 0.0, 1.0);
        cpu.start(1, 0.5, 1.0);
        const auto out = drain(cpu);
        REQUIRE(out.size() == 2);
        CHECK(out[0].first == 0);
        CHECK(out[0].second[0] == doctest::Approx(1.5));
        CHECK(out[0].second[1] == doctest::Approx(1.5));
        CHECK(out[1].first == 1);
        CHECK(out[1].second[0] == doctest::Approx(2.0));
        CHECK(out[1].second[1] == doctest::Approx(1.5));
    }
    SUBCASE("as many cores as computations: a core each") {
        processor_sharing cpu(3);
        cpu.start(0, 0.0, 2.0);
        cpu.start(1, 1.0, 2.0);
        cpu.start(2, 1.5, 0.25);
        const auto out = drain(cpu);
        REQUIRE(out.size() == 3);
        CHECK(out[0].first == 2);
        CHECK(out[0].second[0] == doctest::Approx(1.75));
        CHECK(out[1].second[0] == doctest::Approx(2.0));
        CHECK(out[2].second[0] == doctest::Approx(3.0));
    }
}

TEST_CASE("timed simulator: nodes sharing cores compute slower together, not when others wait") {
    const std::size_t n = 4;
    zero_gradient problem;
    auto run = [&](std::size_t cores, double bandwidth) {
        std::vector<std::vector<double>> models(n, std::vector<double>(2, 0.0));
        timed_options options;
        options.compute.step_seconds = 1.0;
        options.compute.cores = cores;
        options.network = {.latency_seconds = 0.0, .bandwidth_bytes_per_second = bandwidth};
        timed_simulator sim(models, problem, options,
                            [](std::size_t i, std::vector<double>&, timed_network::endpoint& c) {
                                return barrier_node(i, c, 100);
                            });
        sim.run({.steps_per_node = 3});
        return std::pair{sim.now(), sim.times(0).computing};
    };
    // A fast network: the 4 nodes always compute together, each step takes 2 s on 2 cores.
    const auto [own, own_computing] = run(0, 1e12);
    const auto [shared, shared_computing] = run(2, 1e12);
    CHECK(own == doctest::Approx(3.0));
    CHECK(shared == doctest::Approx(6.0));
    CHECK(own_computing == doctest::Approx(3.0));
    CHECK(shared_computing == doctest::Approx(6.0));
    CHECK(run(4, 1e12).first == doctest::Approx(3.0));
    // Swarm SGD never waits: its nodes always compute together.
    std::vector<std::vector<double>> models(n, std::vector<double>(3, 1.0));
    const auto graph = topology::complete(n);
    timed_options options;
    options.compute.step_seconds = 0.5;
    options.compute.cores = 1;
    timed_simulator sim(models, problem, options,
                        [&](std::size_t, std::vector<double>& m, timed_network::endpoint& c) {
                            swarm_options o;
                            o.sgd.learning_rate = 0.1;
                            return swarm_node(m, c, graph, o);
                        });
    sim.run({.steps_per_node = 4});
    CHECK(sim.times(0).computing == doctest::Approx(4 * 0.5 * 4));
}

TEST_CASE("timed simulator: a straggler sharing the cores computes alone at full speed") {
    // 2 nodes on 1 core, node 1 three times slower: they share the core while both compute
    // (each at half speed), then the straggler finishes alone while node 0 waits for it.
    const std::size_t n = 2;
    std::vector<std::vector<double>> models(n, std::vector<double>(2, 0.0));
    zero_gradient problem;
    timed_options options;
    options.compute = {
        .step_seconds = 1.0, .straggler_fraction = 0.5, .straggler_slowdown = 3.0, .cores = 1};
    options.network = {.latency_seconds = 0.0, .bandwidth_bytes_per_second = 1e12};
    timed_simulator sim(models, problem, options,
                        [](std::size_t i, std::vector<double>&, timed_network::endpoint& c) {
                            return barrier_node(i, c, 10);
                        });
    sim.run({.steps_per_node = 1});
    // Both at rate 1/2 until the fast one's 1 s of work is done (t = 2, the slow one has done
    // 1 of 3), then the slow one alone: 2 more seconds.
    CHECK(sim.now() == doctest::Approx(4.0));
    const std::size_t slow = sim.slowdown(0) > 1 ? 0 : 1;
    CHECK(sim.times(slow).computing == doctest::Approx(4.0));
    CHECK(sim.times(1 - slow).computing == doctest::Approx(2.0));
    CHECK(sim.times(1 - slow).waiting == doctest::Approx(2.0));
}

TEST_CASE("timed simulator: stragglers are a fixed seeded set, and the others wait for them") {
    const std::size_t n = 10;
    std::vector<std::vector<double>> models(n, std::vector<double>(2, 0.0));
    zero_gradient problem;
    timed_options options;
    options.compute = {.step_seconds = 1.0, .straggler_fraction = 0.2, .straggler_slowdown = 4.0};
    options.seed = 11;
    timed_simulator sim(models, problem, options,
                        [](std::size_t i, std::vector<double>&, timed_network::endpoint& c) {
                            return barrier_node(i, c, 1);
                        });
    std::size_t slow = 0;
    for (std::size_t i = 0; i < n; ++i) slow += sim.slowdown(i) == 4.0 ? 1 : 0;
    CHECK(slow == 2);
    sim.run({.steps_per_node = 3});
    for (std::size_t i = 0; i < n; ++i) {
        const auto& t = sim.times(i);
        CAPTURE(i);
        CHECK(t.computing == doctest::Approx(3 * sim.slowdown(i)));
        // A normal node waits 3 s per step for the stragglers; a straggler waits for nobody.
        CHECK(t.waiting == doctest::Approx(sim.slowdown(i) == 4.0 ? 0.0 : 9.0));
        CHECK(t.communicating == doctest::Approx(0.0));
    }
    CHECK(sim.now() == doctest::Approx(12.0));
}

TEST_CASE("timed simulator: a stalled synchronous run is an error, not a hang") {
    const std::size_t n = 3;
    std::vector<std::vector<double>> models(n, std::vector<double>(2, 0.0));
    zero_gradient problem;
    timed_simulator sim(models, problem, timed_options{},
                        [](std::size_t i, std::vector<double>&, timed_network::endpoint& c) {
                            return barrier_node(i, c, 1);
                        });
    // 4 steps in total: node 0 begins a second step that nobody answers.
    try {
        sim.run({.total_steps = 4});
        FAIL("no error");
    } catch (const error& e) {
        CHECK(contains(e.what(), " 1 node(s) (first: node "));
        CHECK(contains(e.what(), ") wait in step 2 with nothing in transit"));
        CHECK(contains(e.what(), "same number of steps"));
    }
}

TEST_CASE("timed simulator: Swarm SGD keeps the mean, never waits, and is bit-reproducible") {
    const std::size_t n = 16, d = 12;
    auto run = [&](std::uint64_t seed, std::vector<std::vector<double>>& models,
                   recording<least_squares>& problem) {
        timed_options options;
        options.compute = {.step_seconds = 0.01,
                           .jitter = 0.3,
                           .straggler_fraction = 0.25,
                           .straggler_slowdown = 4,
                           .pause_probability = 0.01,
                           .pause_seconds = 0.05};
        // A model message (~130 bytes) takes ~2 steps: requests cross and snapshots are stale.
        options.network = {.latency_seconds = 0.001,
                           .bandwidth_bytes_per_second = 6'000,
                           .local_seconds_per_byte = 1e-6};
        options.seed = seed;
        const auto graph = topology::ring(n);
        swarm_options node_options;
        node_options.sgd.learning_rate = 0.02;
        node_options.seed = seed;
        node_options.max_in_flight = 2;
        timed_simulator sim(models, problem, options,
                            [&](std::size_t, std::vector<double>& m, timed_network::endpoint& c) {
                                return swarm_node(m, c, graph, node_options);
                            });
        std::size_t observed = 0;
        sim.run({.total_steps = 3000}, [&](const auto& s) {
            ++observed;
            CHECK(s.completed_steps() == observed);
        });
        CHECK(sim.completed_steps() == 3000);
        CHECK(sim.network().in_transit() == 0);
        CHECK(sim.network().queued() == 0);
        std::vector<double> totals;
        for (std::size_t i = 0; i < n; ++i) {
            CHECK(sim.node(i).in_flight() == 0);
            CHECK(sim.times(i).waiting == 0.0);
            totals.push_back(sim.times(i).computing);
            totals.push_back(sim.times(i).communicating);
            totals.push_back(static_cast<double>(sim.times(i).steps));
        }
        totals.push_back(sim.now());
        // Stragglers take fewer steps: the 4x slower nodes did about a quarter of a fast one's.
        std::uint64_t slow = 0, fast = 0;
        for (std::size_t i = 0; i < n; ++i)
            (sim.slowdown(i) > 1 ? slow : fast) += sim.times(i).steps;
        CHECK(double(slow) / 4 < double(fast) / 12 * 0.4);
        const auto total = [&] {
            node_stats t;
            for (std::size_t i = 0; i < n; ++i) t += sim.node(i).stats();
            return t;
        }();
        CHECK(total.interactions_completed > 300);
        CHECK(total.postponed > 0);  // the slow network limits the interactions in flight
        return totals;
    };
    least_squares base(n, 20, d, 5);
    recording<least_squares> p1(base, n, d), p2(base, n, d);
    auto m1 = random_models(n, d, 3), m2 = random_models(n, d, 3);
    const auto before = sum_model(m1);
    const auto t1 = run(7, m1, p1);
    const auto t2 = run(7, m2, p2);
    CHECK(m1 == m2);  // bit for bit
    CHECK(t1 == t2);
    // sum_i X_i(T) = sum_i X_i(0) - lr * (every gradient applied)
    const auto after = sum_model(m1);
    for (std::size_t k = 0; k < d; ++k) {
        double updates = 0;
        for (const auto& node : p1.sums) updates += -0.02 * node[k];
        CHECK(after[k] == doctest::Approx(before[k] + updates).epsilon(1e-9));
    }
    recording<least_squares> p3(base, n, d);
    auto m3 = random_models(n, d, 3);
    const auto t3 = run(8, m3, p3);
    CHECK(t3 != t1);
}

TEST_CASE("timed simulator: Swarm SGD over the lattice quantizer converges in simulated time") {
    const std::size_t n = 8, d = 6;
    least_squares problem(n, 40, d, 17);
    std::vector<std::vector<double>> models(n, std::vector<double>(d, 0.0));
    timed_options options;
    options.compute.step_seconds = 0.01;
    options.network = {.latency_seconds = 0.0005, .bandwidth_bytes_per_second = 1e5};
    const auto graph = topology::ring(n);
    swarm_options node_options;
    node_options.sgd.learning_rate = 0.02;
    node_options.steps = local_steps::fixed(2);
    timed_simulator sim(models, problem, options,
                        [&](std::size_t, std::vector<double>& m, timed_network::endpoint& c) {
                            return swarm_node(m, c, graph, node_options,
                                              lattice_quantizer<double>(lattice_options{}));
                        });
    sim.run({.steps_per_node = 1500});
    const auto mean = sim.mean_model();
    double err = 0;
    for (std::size_t k = 0; k < d; ++k)
        err += (mean[k] - problem.optimum[Eigen::Index(k)]) *
               (mean[k] - problem.optimum[Eigen::Index(k)]);
    CHECK(std::sqrt(err) < 0.05);
    CHECK(sim.now() == doctest::Approx(1500 * 0.01).epsilon(0.01));
    CHECK(sim.total_times().sync_share() == 0.0);  // no local cost configured, never blocked
}

TEST_CASE("timed simulator: budgets in steps per node, total steps and seconds") {
    const std::size_t n = 4;
    std::vector<std::vector<double>> models(n, std::vector<double>(2, 0.0));
    zero_gradient problem;
    timed_options options;
    options.compute = {.step_seconds = 1.0, .straggler_fraction = 0.25, .straggler_slowdown = 3};
    const auto graph = topology::complete(n);
    auto make = [&](std::size_t, std::vector<double>& m, timed_network::endpoint& c) {
        return swarm_node(m, c, graph, swarm_options{});
    };
    SUBCASE("steps per node") {
        timed_simulator sim(models, problem, options, make);
        sim.run({.steps_per_node = 6});
        for (std::size_t i = 0; i < n; ++i) CHECK(sim.times(i).steps == 6);
        CHECK(sim.now() == doctest::Approx(18.0));
    }
    SUBCASE("total steps: fast nodes take more") {
        timed_simulator sim(models, problem, options, make);
        sim.run({.total_steps = 20});
        CHECK(sim.completed_steps() == 20);
        std::set<std::uint64_t> counts;
        for (std::size_t i = 0; i < n; ++i) counts.insert(sim.times(i).steps);
        CHECK(counts.size() == 2);
    }
    SUBCASE("seconds") {
        timed_simulator sim(models, problem, options, make);
        sim.run({.seconds = 5.5});
        for (std::size_t i = 0; i < n; ++i)
            CHECK(sim.times(i).steps == (sim.slowdown(i) > 1 ? 2u : 6u));
    }
}

TEST_CASE("timed simulator: allreduce SGD costs what its ring costs; the native collective too") {
    // The ring of messages and the network's native allreduce (charged as that ring) take the
    // same simulated time, send the same bytes and train the same model (up to the order of the
    // sums); with stragglers everybody waits for the slowest node every step.
    const std::size_t n = 6, d = 42;
    least_squares problem(n, 30, d, 3);
    auto run = [&](bool native, double stragglers, std::vector<std::vector<double>>& models) {
        timed_options options;
        options.compute = {
            .step_seconds = 0.1, .straggler_fraction = stragglers, .straggler_slowdown = 3};
        options.network = {.latency_seconds = 0.001, .bandwidth_bytes_per_second = 1e4};
        const auto graph = topology::complete(n);
        allreduce_sgd_options a;
        a.sgd.learning_rate = 0.05;
        a.use_native_collective = native;
        timed_simulator sim(models, problem, options,
                            [&](std::size_t, std::vector<double>& m, timed_network::endpoint& c) {
                                return allreduce_sgd_node(m, c, graph, a);
                            });
        sim.run({.steps_per_node = 20});
        std::vector<double> out{sim.now(), sim.total_times().waiting,
                                sim.total_times().communicating,
                                static_cast<double>(sim.network().bytes_sent(0))};
        return out;
    };
    const double ring =
        timed_network(n, {.latency_seconds = 0.001, .bandwidth_bytes_per_second = 1e4})
            .model()
            .ring_allreduce_seconds(d, sizeof(double), n);
    CHECK(ring == doctest::Approx(2 * 5 * (0.001 + (24 + 16 + 7 * 8) / 1e4)));
    for (const double stragglers : {0.0, 1.0 / 3}) {
        CAPTURE(stragglers);
        std::vector<std::vector<double>> a(n, std::vector<double>(d, 0.0)), b = a;
        const auto by_messages = run(false, stragglers, a);
        const auto native = run(true, stragglers, b);
        if (stragglers == 0) {
            CHECK(by_messages[0] == doctest::Approx(20 * (0.1 + ring)).epsilon(1e-9));
            CHECK(native[0] == doctest::Approx(by_messages[0]).epsilon(1e-9));
            CHECK(native[1] == 0.0);
            CHECK(by_messages[1] == 0.0);
        } else {
            // Nodes that join early run the first hops of the ring while the stragglers
            // compute; the native collective starts the whole ring at the last join, so it is
            // conservative by less than one ring per step.
            CHECK(by_messages[0] >= 20 * 0.3 + ring);
            CHECK(native[0] == doctest::Approx(20 * (0.3 + ring)).epsilon(1e-9));
            CHECK(native[0] >= by_messages[0]);
            CHECK(native[0] < by_messages[0] + 20 * ring);
            // 2 of 6 nodes 3x slower: the 4 others wait 0.2 s per step.
            CHECK(native[1] == doctest::Approx(4 * 20 * 0.2));
        }
        CHECK(native[3] == by_messages[3]);
        for (std::size_t i = 0; i < n; ++i) {
            CHECK(a[i] == a[0]);  // bit for bit on every node
            CHECK(b[i] == b[0]);
            for (std::size_t k = 0; k < d; ++k) CHECK(a[i][k] == doctest::Approx(b[i][k]));
        }
    }
}

TEST_CASE("timed simulator: every baseline runs, converges and is bit-reproducible") {
    // Jitter and stragglers make the nodes' steps interleave differently every step; the same
    // seed must still give the same models and times, and the algorithms their invariants.
    const std::size_t n = 8, d = 6;
    least_squares problem(n, 40, d, 17);
    const auto graph = topology::ring(n);
    sgd_options sgd;
    sgd.learning_rate = 0.02;
    timed_options options;
    options.compute = {
        .step_seconds = 0.01, .jitter = 0.5, .straggler_fraction = 0.25, .straggler_slowdown = 3};
    options.network = {.latency_seconds = 0.0005,
                       .bandwidth_bytes_per_second = 2e4,
                       .local_seconds_per_byte = 1e-7};
    options.wait_graph = &graph;
    auto check = [&](const char* name, auto make) {
        CAPTURE(name);
        auto run = [&](std::vector<std::vector<double>>& models) {
            timed_simulator sim(models, problem, options, make);
            sim.run({.steps_per_node = 600});
            std::vector<double> t{sim.now()};
            for (std::size_t i = 0; i < n; ++i) {
                t.push_back(sim.times(i).waiting);
                t.push_back(sim.times(i).communicating);
            }
            CHECK(sim.network().in_transit() == 0);
            CHECK(sim.total_times().waiting > 0);  // the stragglers hold the others back
            return t;
        };
        std::vector<std::vector<double>> a(n, std::vector<double>(d, 0.0)), b = a;
        const auto ta = run(a);
        const auto tb = run(b);
        CHECK(a == b);
        CHECK(ta == tb);
        const auto mean = mean_model(a);
        double err = 0;
        for (std::size_t k = 0; k < d; ++k)
            err += std::pow(mean[k] - problem.optimum[Eigen::Index(k)], 2);
        CHECK(std::sqrt(err) < 0.05);
    };
    check("allreduce SGD (ring)",
          [&](std::size_t, std::vector<double>& m, timed_network::endpoint& c) {
              allreduce_sgd_options o;
              o.sgd = sgd;
              o.use_native_collective = false;
              return allreduce_sgd_node(m, c, graph, o);
          });
    check("local SGD (native)",
          [&](std::size_t, std::vector<double>& m, timed_network::endpoint& c) {
              local_sgd_options o;
              o.sgd = sgd;
              o.period = 4;
              return local_sgd_node(m, c, graph, o);
          });
    check("D-PSGD", [&](std::size_t, std::vector<double>& m, timed_network::endpoint& c) {
        dpsgd_options o;
        o.sgd = sgd;
        return dpsgd_node(m, c, graph, o);
    });
}
