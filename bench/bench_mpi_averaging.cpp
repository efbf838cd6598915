// Averaging overhead over MPI: per local step, the time a rank spends averaging (snapshot,
// encode, send, receive, decode, apply, waits) against the time of one local training batch of
// the bundled ResNet example (ResNet-20, batch 128, 3x32x32 images, one thread), measured in the
// same run by rank 0 alone. One interaction is started every local step (H = 1);
// the local batch itself is a busy-wait of the measured duration, so that the ranks overlap and
// compete for the cores as in training.
//   mpiexec -n <ranks> bench_mpi_averaging [steps]
// Prints per quantizer and model size:
//   summary ranks=<n> quantizer=<q> n=<floats> overhead_vs_batch=<ratio> bytes_per_interaction=<b>
// (0.27M floats is the size of ResNet-20; 2^24 floats a large model.)
#include <swarmsgd/communicators/mpi.hpp>
#include <swarmsgd/quantizers/bf16.hpp>
#include <swarmsgd/quantizers/fp16.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/quantizers/min_max.hpp>
#include <swarmsgd/swarmsgd.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "resnet/resnet.hpp"

using clock_type = std::chrono::steady_clock;

namespace {

/// Seconds of one training step (forward + backward, batch 128, 3x32x32, one thread) of the
/// bundled ResNet-20.
double batch_seconds(int repetitions) {
    namespace rn = swarmsgd::examples::resnet;
    const int batch = 128;
    rn::resnet net(rn::resnet_config{}, batch);
    std::vector<float> params(net.parameter_count()), grad(params.size());
    net.initialize(params, 1);
    std::vector<float> images(std::size_t{batch} * 3 * 32 * 32);
    std::vector<std::int32_t> labels(batch);
    swarmsgd::rng r(3);
    for (auto& v : images) v = static_cast<float>(r.uniform01() - 0.5);
    for (auto& l : labels) l = static_cast<std::int32_t>(r.uniform(10));
    (void)net.train_step(params, images.data(), labels.data(), batch, grad);  // warm-up
    const auto start = clock_type::now();
    for (int i = 0; i < repetitions; ++i)
        (void)net.train_step(params, images.data(), labels.data(), batch, grad);
    return std::chrono::duration<double>(clock_type::now() - start).count() / repetitions;
}

template <class Quant>
void run(const char* name, std::size_t n, std::size_t steps, double batch, Quant quantizer) {
    swarmsgd::mpi_communicator comm;
    const auto graph = swarmsgd::topology::complete(comm.size());
    std::vector<float> model(n), grad(n, 0.0f);
    swarmsgd::rng r(7, comm.rank());
    for (auto& v : model) v = static_cast<float>(r.uniform01() * 0.1);
    swarmsgd::swarm_options o;
    o.sgd.learning_rate = 0;
    swarmsgd::swarm_node node(model, comm, graph, o, quantizer);
    MPI_Barrier(MPI_COMM_WORLD);
    for (std::size_t s = 0; s < steps; ++s) {
        // The local batch (real compute, so the ranks overlap as in training).
        const auto until = clock_type::now() + std::chrono::duration<double>(batch);
        while (clock_type::now() < until) {
        }
        node.after_local_step();
    }
    node.finish();
    const auto& st = node.stats();
    double mine[3] = {st.seconds_averaging / double(st.local_steps), double(st.bytes_sent),
                      double(st.interactions_initiated)};
    double sum[3];
    MPI_Reduce(mine, sum, 3, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (comm.rank() == 0)
        std::printf(
            "summary ranks=%zu quantizer=%s n=%zu overhead_vs_batch=%.4f "
            "bytes_per_interaction=%.0f\n",
            comm.size(), name, n, sum[0] / double(comm.size()) / batch,
            sum[1] / std::max(sum[2], 1.0) / 2);  // a request and a reply each
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    swarmsgd::mpi_environment env(argc, argv);
    const std::size_t steps = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 20;
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    // Rank 0 times the step while the others wait in the barrier: the time of a step on a core
    // of its own, whatever the oversubscription (ranks measuring at once on shared cores would
    // report a longer step, and so a smaller overhead).
    double batch = rank == 0 ? batch_seconds(3) : 0.0;
    MPI_Bcast(&batch, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (rank == 0)
        std::printf(
            "baseline: one training step of ResNet-20 (batch 128, 3x32x32, 1 thread, measured "
            "on rank 0 alone) = %.3f ms; %d ranks on %u cores\n",
            1e3 * batch, size, std::thread::hardware_concurrency());
    for (std::size_t n : {std::size_t{272474}, std::size_t{1} << 24}) {
        const std::size_t s = n > 1'000'000 ? std::max<std::size_t>(steps / 10, 3) : steps;
        run("identity", n, s, batch, swarmsgd::identity_quantizer<float>{});
        run("fp16", n, s, batch, swarmsgd::fp16_quantizer<float>{});
        run("bf16", n, s, batch, swarmsgd::bf16_quantizer<float>{});
        run("min_max8", n, s, batch, swarmsgd::min_max_quantizer<float>{});
        run("lattice8", n, s, batch, swarmsgd::lattice_quantizer<float>{});
    }
    return 0;
}
