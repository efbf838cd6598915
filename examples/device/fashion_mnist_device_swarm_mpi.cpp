// The GPU training example with one MPI rank per node (see fashion_mnist_device_swarm.cpp for
// the model and the loop): each rank trains its classifier in a thrust::device_vector<float>
// on its own shard and averages with one random neighbour every H steps over MPI. MPI receives
// every message straight into a page-locked block of the node (the block capability); rank 0
// says once at start whether the MPI library is CUDA-aware and that payloads are staged
// through those blocks either way (the device-direct path is not built yet: docs/thrust.md).
//
//   mpiexec -n 4 fashion_mnist_device_swarm_mpi [--epochs 1] [--hidden 128] [--batch 64]
//       [--lr 0.05] [--momentum 0.9] [--H 2] [--quantizer lattice8|min_max8|fp16|identity]
//       [--topology complete|ring|torus|hypercube|expander] [--seed 1] [--data DIR]
//       [--min-accuracy A]
//
// Several ranks may share one GPU. Rank 0 prints the epochs, the test accuracy of the mean
// model (an allreduce of the models) and of its own model, and the averaging share.
#include <swarmsgd/communicators/mpi.hpp>
#include <swarmsgd/cuda/mpi.hpp>

#include <cstdio>
#include <exception>
#include <stdexcept>

#include "../common/mpi_reductions.hpp"
#include "device_training.hpp"

namespace ex = swarmsgd::examples;
namespace dev = swarmsgd::examples::device;

namespace {

template <class Quant>
int run(const dev::config& c, const ex::image_set& train_set, const ex::image_set& test_set,
        const Quant& quantizer) {
    swarmsgd::mpi_communicator comm;
    ex::mpi_reductions reduce;
    const std::size_t rank = comm.rank(), n = comm.size();
    const bool root = rank == 0;
    if (root) {
        const auto cuda = swarmsgd::query_mpi_cuda_support();
#if defined(__CUDACC__)
        const char* staging = "payloads are staged through page-locked blocks";
#else
        const char* staging = "the model is in host memory here, so nothing is staged";
#endif
        std::printf("MPI CUDA-aware: %s (%s); %s\n", cuda.aware ? "yes" : "no", cuda.how.c_str(),
                    staging);
    }
    const dev::mlp_shape s{train_set.pixels_per_image(), c.hidden, 10};
    const dev::device_data train(train_set);
    const auto graph = ex::make_topology<ex::usage_error>(c.topology, n, c.seed);
    const auto shard = ex::shard_indices(train_set.count, rank, n, c.seed);
    const auto plan = dev::plan_for(c, train_set.count / n);  // the smallest shard's size
    if (root)
        std::printf(
            "%zu nodes (MPI ranks), %s, %zu parameters (%zu-%zu-%zu MLP), %s, H = %zu, "
            "batch %zu, %zu local steps each (%.2f epochs of a shard)\n",
            n, graph.name().c_str(), s.size(), s.inputs, s.hidden, s.classes, c.quantizer.c_str(),
            c.H, c.batch, plan.steps, double(plan.steps) / double(plan.steps_per_epoch));
    thrust::device_vector<float> model;
    dev::initialize(model, s, c.seed);
    reduce.barrier();
    const auto start = std::chrono::steady_clock::now();
    const dev::node_report r =
        dev::train_node(comm, c, s, graph, train, shard, plan, model, quantizer);
    const double wall = reduce.max_to_root(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());

    // Per-epoch means, totals and the mean model, summed to rank 0.
    const std::size_t epochs = r.epoch_loss.size();
    std::vector<double> mine(2 * epochs + 6), sums(mine.size());
    for (std::size_t e = 0; e < epochs; ++e) {
        mine[e] = r.epoch_loss[e] / double(n);
        mine[epochs + e] = r.epoch_accuracy[e] / double(n);
    }
    const std::size_t at = 2 * epochs;
    mine[at] = r.loop_seconds;
    mine[at + 1] = r.stats.seconds_averaging;
    mine[at + 2] = r.stats.seconds_optimizer;
    mine[at + 3] = double(r.stats.bytes_sent);
    mine[at + 4] = double(r.stats.interactions_completed);
    mine[at + 5] = double(r.steps);
    reduce.sum_to_root(mine, sums);
    std::vector<float> own(s.size());
    swarmsgd::to_host(model, std::span<float>(own));
    const std::vector<double> host(own.begin(), own.end());
    std::vector<double> mean(root ? s.size() : 0);
    reduce.sum_to_root(host, mean);
    // Consensus distance: sum_i ||x_i - mu||^2 = sum_i ||x_i||^2 - n ||mu||^2.
    double squared = 0, mean_squared = 0;
    for (double v : host) squared += v * v;
    std::vector<double> squared_sum(root ? 1 : 0);
    reduce.sum_to_root(std::span<const double>(&squared, 1), squared_sum);
    int status = 0;
    if (root) {
        for (double& v : mean) v /= double(n);
        for (double v : mean) mean_squared += v * v;
        dev::print_epochs({sums.begin(), sums.begin() + long(epochs)},
                          {sums.begin() + long(epochs), sums.begin() + long(at)});
        dev::totals t;
        t.loop_seconds = sums[at];
        t.averaging_seconds = sums[at + 1];
        t.optimizer_seconds = sums[at + 2];
        t.bytes_sent = sums[at + 3];
        t.interactions = sums[at + 4];
        t.steps = sums[at + 5];
        const dev::device_data test(test_set);
        const thrust::device_vector<float> mean_model(mean.begin(), mean.end());
        status =
            dev::print_results(c, dev::accuracy(mean_model, s, test), dev::accuracy(model, s, test),
                               squared_sum[0] - double(n) * mean_squared, t, double(c.batch), wall);
    }
    return status;  // rank 0's verdict; mpiexec fails the job when a rank exits non-zero
}

}  // namespace

int main(int argc, char** argv) {
    swarmsgd::mpi_environment env(argc, argv);
    try {
        const dev::config c = dev::parse(argc, argv, false);
        int rank = 0;
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        if (rank != 0 && std::freopen("/dev/null", "w", stdout) == nullptr)  // rank 0 reports
            throw std::runtime_error("cannot silence the standard output of a rank");
        if (!dev::print_device()) return 77;
        const auto [train, test] = dev::load_data(c);
        return dev::with_quantizer(c, [&](auto q) { return run(c, train, test, q); });
    } catch (const ex::usage_error& e) {
        std::fprintf(stderr, "usage error: %s\n", e.what());
        MPI_Abort(MPI_COMM_WORLD, 2);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return 1;
}
