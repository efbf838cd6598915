// The LibTorch adapter over MPI, one node per rank (ctest torch_mpi_<scenario>_4, label torch):
//   test_torch_mpi semantics   the shared semantic suite (tests/support/semantics.hpp) with each
//                              rank's model a torch_model<double> of two tensors
//   test_torch_mpi external    each rank's torch::optim::SGD (momentum) steps a small network
//                              and the node only averages (local_optimizer::external): the sum
//                              over the ranks is what the optimizers moved, nothing more, and
//                              the momentum buffers are the optimizers' own
// Rank 0 prints "mpi <scenario> ranks=<n>: PASSED" (tests/support/mpi_scenario.hpp).

#include <swarmsgd/communicators/mpi.hpp>
#include <swarmsgd/swarmsgd.hpp>
#include <swarmsgd/torch.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "mpi_scenario.hpp"
#include "mpi_semantics.hpp"
#include "semantics.hpp"
#include "torch_io.hpp"

using namespace swarmsgd;
using test_support::rank_of;
namespace sem = test_support::semantics;
using test_support::torch_io;

namespace {

bool scenario(const std::string& name) {
    bool ok = true;
    const int size = test_support::size_of(), rank = rank_of();
    at::set_num_threads(1);
    if (name == "semantics") {
        sem::run_mpi_semantics(sem::mpi_harness<identity_quantizer<double>, torch_io>{}, size, ok);
    } else if (name == "external") {
        mpi_communicator comm;
        torch::manual_seed(1 + static_cast<std::uint64_t>(rank));
        torch::nn::Sequential net(torch::nn::Linear(6, 16), torch::nn::ReLU(),
                                  torch::nn::Linear(16, 1));
        torch_model<float> model(*net);
        torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.02).momentum(0.9));
        std::vector<float> before(model.elements()), after(before.size());
        std::vector<double> initial(before.size()), moved(before.size(), 0.0);
        gather(std::as_const(model), std::span<float>(after));
        for (std::size_t k = 0; k < after.size(); ++k) initial[k] = after[k];
        const auto x = torch::randn({64, 6}), y = torch::randn({64, 1}) + rank;
        swarm_options o;
        o.optimizer = local_optimizer::external;
        o.max_in_flight = 2;
        o.steps = local_steps::geometric(2);
        o.reply_timeout = std::chrono::seconds(20);
        const auto g = topology::ring(comm.size());
        node_stats stats;
        {
            swarm_node node(model, comm, g, o);
            for (int t = 0; t < 200; ++t) {
                opt.zero_grad();
                torch::mse_loss(net->forward(x), y).backward();
                gather(std::as_const(model), std::span<float>(before));
                opt.step();
                gather(std::as_const(model), std::span<float>(after));
                for (std::size_t k = 0; k < after.size(); ++k)
                    moved[k] += double(after[k]) - before[k];
                node.after_local_step();
            }
            node.finish();
            stats = node.stats();
        }
        gather(std::as_const(model), std::span<float>(after));
        std::vector<double> final(after.begin(), after.end());
        const auto n = static_cast<std::size_t>(size);
        const auto finals = sem::all_gather(final, n), initials = sem::all_gather(initial, n),
                   moves = sem::all_gather(moved, n);
        double worst = 0;
        for (std::size_t k = 0; k < final.size(); ++k) {
            double got = 0, expected = 0;
            for (std::size_t i = 0; i < n; ++i) {
                got += finals[i][k];
                expected += initials[i][k] + moves[i][k];
            }
            worst = std::max(worst, std::abs(got - expected) / (1 + std::abs(expected)));
        }
        if (rank == 0)
            std::printf("  largest relative sum error %.3g over %zu coordinates\n", worst,
                        final.size());
        EXPECT(worst < 1e-4);
        EXPECT(stats.interactions_completed + stats.interactions_served > 0);
        // The momentum buffers are the optimizer's: present, finite, never touched by averaging.
        for (auto& p : net->parameters()) {
            const auto& st = static_cast<torch::optim::SGDParamState&>(
                *opt.state().at(c10::guts::to_string(p.unsafeGetTensorImpl())));
            EXPECT(st.momentum_buffer().defined());
            EXPECT(torch::isfinite(st.momentum_buffer()).all().item<bool>());
        }
    } else {
        if (rank == 0) std::printf("unknown scenario '%s'\n", name.c_str());
        ok = false;
    }
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    return test_support::run_scenario_main(argc, argv, "semantics", scenario,
                                           [](const std::string&) { return false; });
}
