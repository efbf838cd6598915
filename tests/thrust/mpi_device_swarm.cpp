// Device models over MPI, one node per rank (run under mpiexec): each rank trains a
// thrust::device_vector<double> (the build's device system) with the lattice quantizer, fine
// enough that some decodes fail and are recovered at full precision; only encoded bytes go
// through MPI. Checks, with an allreduce of host copies: the sum of the models equals the sum
// of the initial models minus lr times the sum of all gradients (mean preservation), and rank 0
// prints what the MPI library says about CUDA-aware MPI. The messages are received into blocks
// of the node's pool (block_communicator.hpp). Then the baselines on device models
// (staged through host buffers, thrust/detail/baseline_memory.hpp): allreduce SGD over
// MPI_Iallreduce and over the ring, whose models must be identical on every rank and follow
// large-batch SGD, and D-PSGD, which keeps the sum of the models. Prints "mpi_device ranks=<n>:
// PASSED".
#include <cmath>
#include <cstdio>
#include <span>
#include <swarmsgd/baselines.hpp>
#include <swarmsgd/communicators/mpi.hpp>
#include <swarmsgd/cuda/mpi.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/swarmsgd.hpp>
#include <swarmsgd/thrust.hpp>
#include <vector>

using namespace swarmsgd;

namespace {

/// Whether `host` is the same on every rank, bit for bit (min = max of every element).
bool same_on_every_rank(const std::vector<double>& host) {
    std::vector<double> lo(host.size()), hi(host.size());
    MPI_Allreduce(host.data(), lo.data(), int(host.size()), MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(host.data(), hi.data(), int(host.size()), MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi;
}

/// Allreduce SGD on a device model (native MPI_Iallreduce or the ring): 30 steps from the same
/// start, gradient x - sin(rank + k); the models must be identical on every rank and equal to
/// one SGD with the mean gradient (to rounding).
bool check_allreduce(mpi_communicator& comm, const topology& graph, bool native) {
    const std::size_t rank = comm.rank(), n = comm.size(), dim = 2000;
    std::vector<double> host(dim), grad(dim), reference(dim);
    for (std::size_t k = 0; k < dim; ++k) reference[k] = std::cos(double(k));
    thrust::device_vector<double> model(dim);
    from_host(std::span<const double>(reference), model);
    allreduce_sgd_options options;
    options.sgd.learning_rate = 0.1;
    options.use_native_collective = native;
    allreduce_sgd_node node(model, comm, graph, options);
    for (int step = 0; step < 30; ++step) {
        to_host(model, std::span<double>(host));
        for (std::size_t k = 0; k < dim; ++k) grad[k] = host[k] - std::sin(double(rank + k));
        node.step(grad);
        for (std::size_t k = 0; k < dim; ++k) {
            double mean = 0;
            for (std::size_t r = 0; r < n; ++r) mean += std::sin(double(r + k));
            reference[k] -= 0.1 * (reference[k] - mean / double(n));
        }
    }
    node.finish();
    to_host(model, std::span<double>(host));
    bool ok = same_on_every_rank(host) && node.engine().native() == native;
    for (std::size_t k = 0; k < dim && ok; ++k)
        if (std::abs(host[k] - reference[k]) > 1e-12 * (1 + std::abs(reference[k]))) {
            std::fprintf(stderr,
                         "rank %zu: allreduce SGD (%s) coordinate %zu: %.17g, expected %.17g\n",
                         rank, native ? "native" : "ring", k, host[k], reference[k]);
            ok = false;
        }
    return ok;
}

/// D-PSGD on device models over a ring, zero gradients: the sum of the models is kept.
bool check_dpsgd(mpi_communicator& comm) {
    const std::size_t rank = comm.rank(), dim = 1500;
    const auto graph = topology::ring(comm.size());
    std::vector<double> start(dim), host(dim), zero(dim, 0.0);
    rng r(5, rank);
    for (auto& v : start) v = r.uniform01() * 2 - 1;
    thrust::device_vector<double> model(dim);
    from_host(std::span<const double>(start), model);
    dpsgd_options options;
    options.sgd.learning_rate = 0.1;
    dpsgd_node node(model, comm, graph, options);
    for (int step = 0; step < 20; ++step) node.step(zero);
    node.finish();
    to_host(model, std::span<double>(host));
    std::vector<double> before(dim), after(dim);
    MPI_Allreduce(start.data(), before.data(), int(dim), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(host.data(), after.data(), int(dim), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    for (std::size_t k = 0; k < dim; ++k)
        if (std::abs(after[k] - before[k]) > 1e-12 * double(comm.size())) {
            std::fprintf(stderr, "rank %zu: D-PSGD coordinate %zu: sum %.17g, was %.17g\n", rank, k,
                         after[k], before[k]);
            return false;
        }
    return comm.size() == 1 || node.stats().messages_received > 0;
}

}  // namespace

int main(int argc, char** argv) {
    mpi_environment env(argc, argv);
    bool ok = true;
    {
        mpi_communicator comm(MPI_COMM_WORLD);
        const std::size_t rank = comm.rank(), n = comm.size(), dim = 3000;
        const auto graph = topology::complete(n);
        std::vector<double> start(dim);
        rng r(9, rank);
        for (auto& v : start) v = r.uniform01() * 2 - 1;
        thrust::device_vector<double> model(dim);
        from_host(std::span<const double>(start), model);

        swarm_options options;
        options.sgd.learning_rate = 0.05;
        options.reply_timeout = std::chrono::milliseconds(20000);
        lattice_options lo;
        lo.bits = 4;
        lo.bucket = 64;
        lo.initial_distance = 1e-3;
        lo.min_distance = 1e-4;
        swarm_node node(model, comm, graph, options, lattice_quantizer<double>(lo));
        // MPI receives every message straight into a block of the node's pool (page-locked on
        // CUDA): the block path of swarm_node runs here on every system.
        static_assert(decltype(node)::receives_into_blocks);
        std::vector<double> grad(dim), grad_sum(dim, 0.0), host(dim);
        for (int step = 0; step < 200; ++step) {
            to_host(model, std::span<double>(host));  // a host gradient (the problem's)
            for (std::size_t k = 0; k < dim; ++k) {
                grad[k] = host[k] - std::sin(double(rank + k));
                grad_sum[k] += grad[k];
            }
            node.apply_gradient(grad);
            node.after_local_step();
        }
        node.finish();

        to_host(model, std::span<double>(host));
        std::vector<double> before(dim), after(dim), grads(dim);
        MPI_Allreduce(start.data(), before.data(), int(dim), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(host.data(), after.data(), int(dim), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(grad_sum.data(), grads.data(), int(dim), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        for (std::size_t k = 0; k < dim; ++k) {
            const double expected = before[k] - 0.05 * grads[k];
            if (std::abs(after[k] - expected) > 1e-9 * (1 + std::abs(expected))) {
                std::fprintf(stderr, "rank %zu: coordinate %zu: sum %.17g, expected %.17g\n", rank,
                             k, after[k], expected);
                ok = false;
                break;
            }
        }
        unsigned long long mine[2] = {node.stats().interactions_completed,
                                      node.stats().recovered_elements},
                           total[2] = {0, 0};
        MPI_Allreduce(mine, total, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
        if (n > 1 && total[0] == 0) ok = false;
        ok = check_allreduce(comm, graph, true) && ok;
        ok = check_allreduce(comm, graph, false) && ok;
        ok = check_dpsgd(comm) && ok;
        int local = ok ? 1 : 0, all = 0;
        MPI_Allreduce(&local, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        ok = all == 1;
        if (rank == 0) {
            const auto cuda = query_mpi_cuda_support();
            std::printf("MPI CUDA support: %s (%s)\n", cuda.aware ? "yes" : "no", cuda.how.c_str());
            std::printf("mpi_device ranks=%zu: %llu interactions, %llu elements recovered: %s\n", n,
                        total[0], total[1], ok ? "PASSED" : "FAILED");
        }
    }
    return ok ? 0 : 1;
}
