#pragma once
// The shared semantic suite (semantics.hpp) over MPI ranks: this rank runs its own node, then
// every rank gathers all models so the same checks run everywhere. Needs MPI to be initialized.

#include <swarmsgd/communicators/mpi.hpp>
#include <swarmsgd/swarmsgd.hpp>

#include <chrono>
#include <cstdio>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "mpi_scenario.hpp"
#include "semantics.hpp"

namespace test_support::semantics {

/// Every rank's vector, in rank order (MPI_Allgather).
inline std::vector<std::vector<double>> all_gather(const std::vector<double>& mine,
                                                   std::size_t ranks) {
    std::vector<double> all(ranks * mine.size());
    MPI_Allgather(mine.data(), int(mine.size()), MPI_DOUBLE, all.data(), int(mine.size()),
                  MPI_DOUBLE, MPI_COMM_WORLD);
    std::vector<std::vector<double>> out(ranks);
    for (std::size_t i = 0; i < ranks; ++i)
        out[i].assign(all.begin() + long(i * mine.size()),
                      all.begin() + long((i + 1) * mine.size()));
    return out;
}

/// The models of std::vector<double> (driver_harness's IO for plain vectors).
struct vector_io {
    static std::vector<double> make(const std::vector<double>& x) { return x; }
    static std::vector<double> values(const std::vector<double>& m) { return m; }
};

/// The suite's harness for MPI: this rank's node trains IO::make(its initial values) with
/// quantizer Quant on the complete graph (rank 0 is the straggler), then the ranks gather.
template <class Quant, class IO = vector_io>
struct mpi_harness {
    run_outcome operator()(const scenario& s) const {
        swarmsgd::mpi_communicator comm;
        const auto n = comm.size(), me = comm.rank();
        auto model = IO::make(initial_model(me, s.dim));
        std::vector<double> sums(s.dim, 0.0), grad(s.dim);
        const auto g = swarmsgd::topology::complete(n);
        swarmsgd::node_stats stats;
        {
            swarmsgd::swarm_node node(model, comm, g, s.options, Quant{});
            for (std::size_t t = 0; t < s.steps; ++t) {
                gradient(s, me, IO::values(model), grad);
                for (std::size_t k = 0; k < s.dim; ++k) sums[k] += grad[k];
                node.apply_gradient(grad);
                std::this_thread::sleep_for(
                    std::chrono::microseconds(me == 0 && s.straggler ? 1000 : 100));
                node.after_local_step();
            }
            node.finish();
            stats = node.stats();
        }
        run_outcome o;
        o.final = all_gather(IO::values(model), n);
        o.gradient_sums = all_gather(sums, n);
        for (std::size_t i = 0; i < n; ++i) o.initial.push_back(initial_model(i, s.dim));
        unsigned long long mine[2] = {stats.interactions_completed, stats.interactions_served},
                           total[2];
        MPI_Allreduce(mine, total, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
        o.interactions_completed = total[0];
        o.interactions_served = total[1];
        return o;
    }
};

/// The shared suite over `run` on `ranks` ranks; every rank checks (clearing `ok` on a
/// failure), rank 0 prints each scenario's verdict.
template <class Harness>
void run_mpi_semantics(Harness run, int ranks, bool& ok) {
    const int rank = rank_of();
    for (const auto& [what, failures] : run_all(run, static_cast<std::size_t>(ranks))) {
        if (rank == 0) std::printf("  %s: %s\n", what.c_str(), failures.empty() ? "ok" : "FAILED");
        for (const auto& f : failures)
            if (rank == 0) std::printf("    %s\n", f.c_str());
        EXPECT(failures.empty());
    }
}

}  // namespace test_support::semantics
