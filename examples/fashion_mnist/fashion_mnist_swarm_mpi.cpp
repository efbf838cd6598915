// The Fashion-MNIST demo with one Swarm SGD node per MPI rank (any MPI library):
//   mpiexec -n 4 ./fashion_mnist_swarm_mpi [--epochs 10] [--hidden 128] [--H 2] ...
// (Open MPI as root: add --allow-run-as-root; more ranks than cores: --oversubscribe.)
// Same options as fashion_mnist_swarm, except --nodes: the number of ranks is the swarm size,
// and --failure: this demo ends with collectives (the mean model), which a dead rank would
// hang, so it keeps failure_policy::fail (see docs/mpi.md, "Faults", for a job that trains on).
// --checkpoint-every / --resume: each rank saves and restores its own checkpoint-dir/node<r>.ckpt.
#include <swarmsgd/communicators/mpi.hpp>
#include <swarmsgd/swarmsgd.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "../common/mpi_reductions.hpp"
#include "demo_common.hpp"

namespace ex = swarmsgd::examples;
using namespace swarmsgd::examples::demo;

int main(int argc, char** argv) {
    swarmsgd::mpi_environment env(argc, argv);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    try {
        swarmsgd::mpi_communicator comm;
        config c = parse(argc, argv);
        c.nodes = comm.size();
        const auto dir =
            c.data.empty() ? ex::default_fashion_mnist_dir() : std::filesystem::path(c.data);
        const auto train = ex::load_fashion_mnist(dir, true);
        const auto test = ex::load_fashion_mnist(dir, false);
        const ex::mlp_layout layout(train.pixels_per_image(), c.hidden, 10);
        std::vector<float> model(layout.parameter_count()), grad(layout.parameter_count());
        ex::init_params(layout, model, c.seed);  // same start on every rank

        const auto graph = make_topology(c.topology, c.nodes);
        const std::size_t steps = steps_per_node(c, train.count);
        const auto options = make_options(c, steps);
        if (c.failure != "fail")
            throw swarmsgd::invalid_argument_error(
                "--failure " + c.failure +
                " is for the in-process demo; this one ends with collectives");
        if (rank == 0)
            std::printf(
                "Swarm SGD: %zu MPI ranks on %s, %s averaging, H = %s, MLP 784-%zu-10, "
                "%.2f epochs = %zu local steps per rank\n",
                c.nodes, graph.name().c_str(), swarmsgd::to_string(options.mode),
                options.steps.describe().c_str(), c.hidden, c.epochs, steps);

        // This rank's shard only (shard_problem keeps one per node: build it for all, use ours).
        shard_problem problem(train, layout, c.nodes, c.batch, c.seed);
        swarmsgd::swarm_node node(model, comm, graph, options);
        const auto checkpoints = make_checkpoints(c);
        std::size_t first = 0;
        if (c.resume) {  // this rank's own file; it goes on from the step it had reached
            node.restore_checkpoint(checkpoints.file(comm.rank()));
            first = static_cast<std::size_t>(node.stats().local_steps);
            if (rank == 0)
                std::printf("Resumed from %s at step %zu\n", c.checkpoint_dir.c_str(), first);
        }
        if (c.checkpoint_every != 0) std::filesystem::create_directories(checkpoints.dir);
        swarmsgd::rng data(c.seed, c.nodes + comm.rank());
        const auto start = std::chrono::steady_clock::now();
        for (std::size_t s = first; s < steps; ++s) {
            const double loss = problem.gradient(comm.rank(), model, grad, data);
            node.apply_gradient(grad);
            node.after_local_step();
            if (c.checkpoint_every != 0 && (s + 1) % c.checkpoint_every == 0)
                node.save_checkpoint(checkpoints.file(comm.rank()));
            if (rank == 0 && (s + 1) % std::max<std::size_t>(steps / 10, 1) == 0) {
                const double elapsed =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                std::printf("  rank 0: step %zu/%zu  loss %.3f  averaging %.1f%% of its time\n",
                            s + 1, steps, loss, 100 * node.stats().seconds_averaging / elapsed);
                std::fflush(stdout);
            }
        }
        node.finish();
        const double wall =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

        // The mean model (one allreduce at the end) and the totals.
        swarmsgd::examples::mpi_reductions reductions;  // checked, on a communicator of its own
        std::vector<float> mean = model;
        reductions.sum_everywhere(mean);
        for (auto& v : mean) v /= static_cast<float>(c.nodes);
        const double mine[3] = {static_cast<double>(node.stats().bytes_sent),
                                node.stats().seconds_averaging / wall,
                                static_cast<double>(node.stats().interactions_completed)};
        double total[3] = {0, 0, 0};
        reductions.sum_to_root(mine, total);
        if (rank == 0) {
            std::printf("Finished in %.1f s\n", wall);
            std::printf("Test accuracy: mean model %.2f%%, rank 0 %.2f%%\n",
                        100 * ex::accuracy(layout, mean, test),
                        100 * ex::accuracy(layout, model, test));
            std::printf(
                "Interactions: %.0f; averaging share of time %.2f%% (mean over ranks); "
                "bytes sent: %s\n",
                total[2], 100 * total[1] / double(c.nodes), human_bytes(total[0]).c_str());
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fashion_mnist_swarm_mpi (rank %d): %s\n", rank, e.what());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}
