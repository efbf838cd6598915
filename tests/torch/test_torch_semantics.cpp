// The shared semantic suite (tests/support/semantics.hpp: mean preservation with a straggler in
// both modes, pure gossip to the initial mean, a quadratic that converges) over torch tensors:
// each node's model is a torch_model<double> of two tensors, on the simulator's asynchronous
// schedule and on one thread per node; through the exact exchange (identity) and the
// recovering one (lattice). The MPI harness is tests/torch/test_torch_mpi.cpp.

#include "torch_doctest.hpp"  // LibTorch, then doctest (first: see there)

#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/swarmsgd.hpp>

#include <cstring>
#include <span>
#include <vector>

#include "semantics.hpp"
#include "torch_io.hpp"

using namespace swarmsgd;
namespace sem = test_support::semantics;
using test_support::torch_io;

namespace {

template <bool Threads, class Quant>
struct torch_harness : sem::driver_harness<torch_model<double>, Threads, Quant, torch_io> {
    sem::run_outcome operator()(const sem::scenario& s) const {
        at::set_num_threads(1);
        return sem::driver_harness<torch_model<double>, Threads, Quant, torch_io>::operator()(s);
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
    std::vector<torch_model<double>> tm;
    std::vector<std::vector<double>> vm;
    for (std::size_t i = 0; i < nodes; ++i) {
        vm.push_back(sem::initial_model(i, dim));
        tm.push_back(torch_io::make(vm.back()));
    }
    lattice_options lo;
    lo.bits = 6;
    simulator a(tm, g, p, so, lattice_quantizer<double>(lo));
    simulator b(vm, g, p, so, lattice_quantizer<double>(lo));
    a.run(600);
    b.run(600);
    for (std::size_t i = 0; i < nodes; ++i) {
        CAPTURE(i);
        const auto x = torch_io::values(tm[i]);
        CHECK(std::memcmp(x.data(), vm[i].data(), dim * sizeof(double)) == 0);
    }
    CHECK(a.total_stats().interactions_completed == b.total_stats().interactions_completed);
}
