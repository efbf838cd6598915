// Example: Swarm SGD on models held in thrust::device_vector<float> (on the GPU when compiled
// by nvcc; in Thrust's OMP or CPP system otherwise). Eight in-process nodes, one thread each,
// embed swarm_node in their own training loop: the gradient is computed in the device system
// (thrust::transform) and handed to the node as a device vector, models are exchanged through
// the 8-bit lattice quantizer, and only encoded bytes ever reach host memory.
//
// Every node minimizes 0.5 ||x - c||^2 (c_k = sin(k / 100)) from its own random start, with
// gradient noise of its own. The program prints how far the mean model is from c, the consensus
// distance and the traffic, and fails (exit 1) if training did not get close.
#include <thrust/device_vector.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/transform.h>
#include <cmath>
#include <cstdio>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/swarmsgd.hpp>
#include <swarmsgd/thrust.hpp>
#include <thread>
#include <vector>
#if defined(__CUDACC__)
#include <swarmsgd/cuda/cuda.hpp>
#endif

namespace {

/// g_k = x_k - c_k + noise: computed where x lives.
struct gradient_op {
    const float* x;
    std::uint64_t key;
    SWARMSGD_HOST_DEVICE float operator()(std::size_t k) const {
        const float noise = 0.1f * (swarmsgd::detail::uniform01_at(key, k) - 0.5f);
        return x[k] - sinf(float(k) / 100.f) + noise;
    }
};

/// A random start in [-1, 1): x_k = 2 u_k - 1.
struct start_op {
    std::uint64_t key;
    SWARMSGD_HOST_DEVICE float operator()(std::size_t k) const {
        return 2.f * swarmsgd::detail::uniform01_at(key, k) - 1.f;
    }
};

}  // namespace

int main() {
#if defined(__CUDACC__)
    const auto probe = swarmsgd::probe_cuda_device();
    if (!probe.available) {
        std::printf("SKIPPED: needs a CUDA GPU: %s\n", probe.reason.c_str());
        return 77;
    }
    std::printf("CUDA device: %s\n", probe.name.c_str());
#endif
    const std::size_t nodes = 8, dim = 1 << 16, steps = 300;
    std::vector<thrust::device_vector<float>> models(nodes, thrust::device_vector<float>(dim));
    for (std::size_t i = 0; i < nodes; ++i) {
        std::uint64_t seed = i;
        thrust::transform(thrust::device, thrust::counting_iterator<std::size_t>(0),
                          thrust::counting_iterator<std::size_t>(dim), models[i].begin(),
                          start_op{swarmsgd::splitmix64(seed)});
    }
    swarmsgd::in_process_world world(nodes);
    const auto graph = swarmsgd::topology::ring(nodes);
    swarmsgd::swarm_options options;
    options.sgd.learning_rate = 0.1;
    options.steps = swarmsgd::local_steps::fixed(2);
    swarmsgd::lattice_options lattice;
    lattice.initial_distance = 2.0;  // the random starts are up to 2 apart
    std::vector<swarmsgd::node_stats> stats(nodes);
    std::vector<std::jthread> threads;
    for (std::size_t i = 0; i < nodes; ++i)
        threads.emplace_back([&, i] {
            auto comm = world.endpoint_for(i);
            swarmsgd::swarm_node node(models[i], comm, graph, options,
                                      swarmsgd::lattice_quantizer<float>(lattice));
            thrust::device_vector<float> grad(dim);
            for (std::size_t s = 0; s < steps; ++s) {
                const float* x = thrust::raw_pointer_cast(models[i].data());
                thrust::transform(thrust::device, thrust::counting_iterator<std::size_t>(0),
                                  thrust::counting_iterator<std::size_t>(dim), grad.begin(),
                                  gradient_op{x, node.random()()});
                node.apply_gradient(grad);  // checked and applied on the device
                node.after_local_step();    // answers partners, averages when due
            }
            node.finish();
            stats[i] = node.stats();
        });
    threads.clear();  // join

    const auto mean = swarmsgd::mean_model(models);  // host copy, for evaluation
    double error = 0;
    for (std::size_t k = 0; k < dim; ++k) {
        error = std::max(error, std::abs(mean[k] - std::sin(double(k) / 100.0)));
    }
    swarmsgd::node_stats total;
    for (const auto& s : stats) total += s;
    const double gamma = swarmsgd::consensus_distance(models);
    std::printf(
        "%zu nodes, %zu floats each, %zu steps: %llu interactions, %.1f MiB sent "
        "(%.3f bytes per float and message; %llu elements recovered at full precision), "
        "max |mean - optimum| = %.4f, Gamma = %.3g\n",
        nodes, dim, steps, static_cast<unsigned long long>(total.interactions_completed),
        double(total.bytes_sent) / (1 << 20),
        double(total.bytes_sent) / double(total.messages_sent) / double(dim),
        static_cast<unsigned long long>(total.recovered_elements), error, gamma);
    return error < 0.05 ? 0 : 1;
}
