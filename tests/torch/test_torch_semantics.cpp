// The shared semantic suite (tests/support/semantics.hpp: mean preservation with a straggler in
// both modes, pure gossip to the initial mean, a quadratic that converges) over torch tensors:
// each node's model is a torch_model<double> of two tensors, on the simulator's asynchronous
// schedule and on one thread per node; through the exact exchange (identity) and the
// recovering one (lattice). The MPI harness is tests/torch/test_torch_mpi.cpp.

#include "torch_doctest.hpp"  // LibTorch, then doctest (first: see there)

#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/swarmsgd.hpp>

#include <chrono>
#include <cstring>
#include <span>
#include <thread>
#include <vector>

#include "semantics.hpp"

using namespace swarmsgd;
namespace sem = test_support::semantics;

namespace {

/// A torch_model<double> holding `x` in two tensors (a 1 x k "weight" and the rest as "bias").
struct torch_values {
    std::vector<torch::Tensor> tensors;
    torch_model<double> model;
    explicit torch_values(const std::vector<double>& x)
        : tensors(split(x)), model(tensors, {"weight", "bias"}) {}
    static std::vector<torch::Tensor> split(const std::vector<double>& x) {
        const auto k = static_cast<std::int64_t>(x.size() / 2);
        auto all = torch::tensor(x, torch::kFloat64);
        return {all.slice(0, 0, k).reshape({1, k}).clone(), all.slice(0, k).clone()};
    }
    std::vector<double> values() const {
        std::vector<double> out(model.elements());
        gather(model, std::span<double>(out));
        return out;
    }
};

template <bool Threads, class Quant>
struct torch_harness {
    sem::run_outcome operator()(const sem::scenario& s) const {
        at::set_num_threads(1);
        sem::run_outcome o;
        for (std::size_t i = 0; i < s.nodes; ++i) o.initial.push_back(sem::initial_model(i, s.dim));
        o.gradient_sums.assign(s.nodes, std::vector<double>(s.dim, 0.0));
        std::vector<torch_values> owners;
        for (const auto& x : o.initial) owners.emplace_back(x);
        std::vector<torch_model<double>> models;
        for (const auto& w : owners) models.push_back(w.model);
        struct problem {
            const sem::scenario* s;
            std::vector<std::vector<double>>* sums;
            bool pace;
            double gradient(std::size_t node, const torch_model<double>& x, std::span<double> g,
                            rng&) const {
                std::vector<double> h(g.size());
                gather(x, std::span<double>(h));
                const double loss = sem::gradient(*s, node, h, g);
                for (std::size_t k = 0; k < g.size(); ++k) (*sums)[node][k] += g[k];
                if (pace)
                    std::this_thread::sleep_for(
                        std::chrono::microseconds(node == 0 && s->straggler ? 200 : 20));
                return loss;
            }
        } p{&s, &o.gradient_sums, Threads};
        const auto g = topology::complete(s.nodes);
        if constexpr (Threads) {
            const auto report = run_in_process(models, g, p, s.steps, s.options, Quant{});
            o.interactions_completed = report.total().interactions_completed;
            o.interactions_served = report.total().interactions_served;
        } else {
            simulator_options so;
            so.node = s.options;
            so.schedule = simulation_schedule::asynchronous;
            if (so.node.mode == averaging_mode::blocking)
                so.node.mode = averaging_mode::nonblocking;
            so.max_delay = 10;
            so.speeds.assign(s.nodes, 1.0);
            if (s.straggler) so.speeds[0] = 0.1;
            simulator<torch_model<double>, problem, Quant> sim(models, g, p, so, Quant{});
            sim.run(s.steps * s.nodes);
            sim.drain();
            o.interactions_completed = sim.total_stats().interactions_completed;
            o.interactions_served = sim.total_stats().interactions_served;
        }
        for (const auto& w : owners) o.final.push_back(w.values());
        return o;
    }
};

/// The semantic suite's quadratic for any model of doubles (the bit-identity test).
struct quad_problem {
    const sem::scenario* s;
    template <class M>
    double gradient(std::size_t node, const M& x, std::span<double> g, rng&) const {
        std::vector<double> h(g.size());
        gather(x, std::span<double>(h));
        return sem::gradient(*s, node, h, g);
    }
};

}  // namespace

using simulated_exact = torch_harness<false, identity_quantizer<double>>;
using threads_exact = torch_harness<true, identity_quantizer<double>>;
using simulated_recovering = torch_harness<false, lattice_quantizer<double>>;
using threads_recovering = torch_harness<true, lattice_quantizer<double>>;

TEST_CASE_TEMPLATE("torch models: the shared semantic suite", Harness, simulated_exact,
                   threads_exact, simulated_recovering, threads_recovering) {
    Harness run;
    for (std::size_t nodes : {2u, 4u}) {
        for (const auto& [name, failures] : sem::run_all(run, nodes)) {
            CAPTURE(nodes);
            CAPTURE(name);
            CHECK(failures.empty());
            for (const auto& f : failures) MESSAGE(f);
        }
    }
}

TEST_CASE("torch models: the simulator is bit-identical to plain vectors for a seed") {
    // Same run with the model in torch tensors and in std::vector<double>s: same bits.
    const std::size_t nodes = 6, dim = 9;
    simulator_options so;
    so.schedule = simulation_schedule::asynchronous;
    so.max_delay = 4;
    so.node.sgd.learning_rate = 0.05;
    so.node.sgd.momentum = 0.5;
    so.node.steps = local_steps::geometric(2);
    so.node.seed = 11;
    sem::scenario s;
    s.dim = dim;
    quad_problem p{&s};
    const auto g = topology::ring(nodes);
    std::vector<torch_values> owners;
    std::vector<torch_model<double>> tm;
    std::vector<std::vector<double>> vm;
    for (std::size_t i = 0; i < nodes; ++i) {
        vm.push_back(sem::initial_model(i, dim));
        owners.emplace_back(vm.back());
    }
    for (const auto& w : owners) tm.push_back(w.model);
    lattice_options lo;
    lo.bits = 6;
    simulator a(tm, g, p, so, lattice_quantizer<double>(lo));
    simulator b(vm, g, p, so, lattice_quantizer<double>(lo));
    a.run(600);
    b.run(600);
    for (std::size_t i = 0; i < nodes; ++i) {
        CAPTURE(i);
        const auto x = owners[i].values();
        CHECK(std::memcmp(x.data(), vm[i].data(), dim * sizeof(double)) == 0);
    }
    CHECK(a.total_stats().interactions_completed == b.total_stats().interactions_completed);
}
