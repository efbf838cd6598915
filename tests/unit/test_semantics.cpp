// The shared semantic suite (tests/support/semantics.hpp) over the simulator (asynchronous
// schedule with message delays and a straggler) and the in-process threads, through each of
// the node's three exchanges (exchanges/): exact (identity), general (general_identity: the
// same wire bytes without the fused path) and recovering (lattice). The MPI test program runs
// the same suite with one node per rank (tests/mpi/test_mpi_swarm.cpp), the Thrust tests with
// device models (tests/thrust/test_node.cpp).
#include <doctest/doctest.h>

#include <chrono>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/swarmsgd.hpp>
#include <thread>
#include <type_traits>

#include "general_identity.hpp"
#include "semantics.hpp"

namespace sem = test_support::semantics;
using namespace swarmsgd;

namespace {

struct recorded {
    const sem::scenario* s;
    std::vector<std::vector<double>>* sums;
    double gradient(std::size_t node, const std::vector<double>& x, std::span<double> g, rng&) {
        const double loss = sem::gradient(*s, node, x, g);
        for (std::size_t k = 0; k < g.size(); ++k) (*sums)[node][k] += g[k];
        if (pace)
            std::this_thread::sleep_for(
                std::chrono::microseconds(node == 0 && s->straggler ? 200 : 20));
        return loss;
    }
    bool pace = false;
};

sem::run_outcome prepare(const sem::scenario& s) {
    sem::run_outcome o;
    for (std::size_t i = 0; i < s.nodes; ++i) o.initial.push_back(sem::initial_model(i, s.dim));
    o.final = o.initial;
    o.gradient_sums.assign(s.nodes, std::vector<double>(s.dim, 0.0));
    return o;
}

/// The simulator's asynchronous schedule: random interleaving, delays up to 10 ticks.
template <class Quant>
struct simulator_harness {
    using quantizer_type = Quant;
    sem::run_outcome operator()(const sem::scenario& s) const {
        auto o = prepare(s);
        recorded p{&s, &o.gradient_sums};
        simulator_options so;
        so.node = s.options;
        so.schedule = simulation_schedule::asynchronous;
        if (so.node.mode == averaging_mode::blocking) so.node.mode = averaging_mode::nonblocking;
        so.max_delay = 10;
        so.speeds.assign(s.nodes, 1.0);
        if (s.straggler) so.speeds[0] = 0.1;
        const auto g = topology::complete(s.nodes);
        simulator<std::vector<double>, recorded, Quant> sim(o.final, g, p, so, Quant{});
        sim.run(s.steps * s.nodes);
        sim.drain();
        const auto t = sim.total_stats();
        o.interactions_completed = t.interactions_completed;
        o.interactions_served = t.interactions_served;
        return o;
    }
};

/// One thread per node (the embedded default).
template <class Quant>
struct in_process_harness {
    using quantizer_type = Quant;
    sem::run_outcome operator()(const sem::scenario& s) const {
        auto o = prepare(s);
        recorded p{&s, &o.gradient_sums, true};
        const auto g = topology::complete(s.nodes);
        const auto report = run_in_process(o.final, g, p, s.steps, s.options, Quant{});
        o.interactions_completed = report.total().interactions_completed;
        o.interactions_served = report.total().interactions_served;
        return o;
    }
};

}  // namespace

using exact_q = identity_quantizer<double>;
using general_q = test_support::general_identity<double>;
using recovering_q = lattice_quantizer<double>;

// Each harness takes the exchange its quantizer selects.
static_assert(
    std::is_same_v<swarm_node<std::vector<double>, in_process_communicator, exact_q>::exchange_type,
                   exchanges::exact_exchange<
                       detail::node_core<std::vector<double>, in_process_communicator, exact_q>>>);
static_assert(std::is_same_v<
              swarm_node<std::vector<double>, in_process_communicator, general_q>::exchange_type,
              exchanges::general_exchange<
                  detail::node_core<std::vector<double>, in_process_communicator, general_q>>>);
static_assert(std::is_same_v<
              swarm_node<std::vector<double>, in_process_communicator, recovering_q>::exchange_type,
              exchanges::recovering_exchange<
                  detail::node_core<std::vector<double>, in_process_communicator, recovering_q>>>);

TEST_CASE_TEMPLATE("shared semantics", Harness, simulator_harness<exact_q>,
                   simulator_harness<general_q>, simulator_harness<recovering_q>,
                   in_process_harness<exact_q>, in_process_harness<general_q>,
                   in_process_harness<recovering_q>) {
    Harness run;
    for (std::size_t nodes : {2u, 5u}) {
        for (const auto& result : sem::run_all(run, nodes)) {
            const std::string& name = result.first;  // (no structured binding: clang 14
            const auto& failures = result.second;    // cannot capture one in CAPTURE's lambda)
            CAPTURE(nodes);
            CAPTURE(name);
            CHECK(failures.empty());
            for (const auto& f : failures) MESSAGE(f);
        }
    }
}
