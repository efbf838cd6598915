#pragma once
/// \file device_training.hpp
/// What the GPU training example's two programs share (fashion_mnist_device_swarm: one thread
/// per node; fashion_mnist_device_swarm_mpi: one MPI rank per node): options, the training set
/// in the device system, one node's training loop and its report, the test accuracy of a
/// model, the quantizer --quantizer names, and the summary lines.

#include <swarmsgd/quantizers/fp16.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/quantizers/min_max.hpp>
#include <swarmsgd/swarmsgd.hpp>
#include <swarmsgd/thrust.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "../common/command_line.hpp"
#include "../common/shuffled_passes.hpp"
#include "../common/topology_choice.hpp"
#include "../fashion_mnist/idx_reader.hpp"
#include "device_mlp.hpp"

#if defined(__CUDACC__)
#include <swarmsgd/cuda/cuda.hpp>
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace swarmsgd::examples::device {

/// The command line of both programs.
struct config {
    std::size_t nodes = 4;  ///< threads (the MPI program takes the number of ranks)
    double epochs = 1;
    std::size_t hidden = 128;
    std::size_t batch = 64;
    double lr = 0.05;
    double momentum = 0.9;
    std::size_t H = 2;
    std::string quantizer = "lattice8";
    std::string topology = "complete";
    std::uint64_t seed = 1;
    std::string data;
    double min_accuracy = 0;
};

/// Parses the options (usage_error naming a bad one); `with_nodes` is false for the MPI
/// program, whose node count is the number of ranks.
inline config parse(int argc, char** argv, bool with_nodes) {
    config c;
    command_line cl(argc, argv);
    while (cl.next()) {
        if (with_nodes && cl.is("--nodes"))
            c.nodes = std::size_t(cl.whole_number(1, 1024));
        else if (cl.is("--epochs"))
            c.epochs = cl.number(0.001, 1000);
        else if (cl.is("--hidden"))
            c.hidden = std::size_t(cl.whole_number(1, 65536));
        else if (cl.is("--batch"))
            c.batch = std::size_t(cl.whole_number(1, 65536));
        else if (cl.is("--lr"))
            c.lr = cl.number(0, 100);
        else if (cl.is("--momentum"))
            c.momentum = cl.number(0, 0.999);
        else if (cl.is("--H"))
            c.H = std::size_t(cl.whole_number(1, 1e6));
        else if (cl.is("--quantizer"))
            c.quantizer = cl.choice({"lattice8", "min_max8", "fp16", "identity"});
        else if (cl.is("--topology"))
            c.topology = cl.choice({"complete", "ring", "torus", "hypercube", "expander"});
        else if (cl.is("--seed"))
            c.seed = std::uint64_t(cl.whole_number(0, 1e15));
        else if (cl.is("--data"))
            c.data = cl.value();
        else if (cl.is("--min-accuracy"))
            c.min_accuracy = cl.number(0, 1);
        else
            cl.unknown();
    }
    return c;
}

/// Calls f(quantizer) with the quantizer --quantizer names (8-bit lattice by default).
template <class F>
decltype(auto) with_quantizer(const config& c, F&& f) {
    if (c.quantizer == "lattice8") {
        lattice_options o;
        o.bits = 8;
        return f(lattice_quantizer<float>(o));
    }
    if (c.quantizer == "min_max8") {
        min_max_options o;
        o.bits = 8;
        return f(min_max_quantizer<float>(o));
    }
    if (c.quantizer == "fp16") return f(fp16_quantizer<float>{});
    return f(identity_quantizer<float>{});
}

/// Prints the device system; false (with the reason printed) when a CUDA build finds no GPU.
inline bool print_device() {
#if defined(__CUDACC__)
    const auto probe = probe_cuda_device();
    if (!probe.available) {
        std::printf("SKIPPED: needs a CUDA GPU: %s\n", probe.reason.c_str());
        return false;
    }
    std::printf("Device: CUDA %s\n", probe.name.c_str());
#elif defined(_OPENMP)
    std::printf("Device: Thrust OMP system, %d threads per node\n", omp_get_max_threads());
#else
    std::printf("Device: Thrust CPP system (one thread per node)\n");
#endif
    return true;
}

/// Fashion-MNIST from --data, $SWARMSGD_FASHION_MNIST_DIR or Debian's place.
inline std::pair<image_set, image_set> load_data(const config& c) {
    const auto dir = c.data.empty() ? default_fashion_mnist_dir() : std::filesystem::path(c.data);
    std::printf("Loading Fashion-MNIST from %s\n", dir.c_str());
    return {load_fashion_mnist(dir, true), load_fashion_mnist(dir, false)};
}

/// An image set uploaded to the device system once and read by every node of the process.
struct device_data {
    thrust::device_vector<float> pixels;
    thrust::device_vector<std::uint8_t> labels;
    std::size_t count = 0;
    explicit device_data(const image_set& set)
        : pixels(set.pixels.begin(), set.pixels.end()),
          labels(set.labels.begin(), set.labels.end()),
          count(set.count) {}
    [[nodiscard]] const float* pixel_data() const {
        return thrust::raw_pointer_cast(pixels.data());
    }
    [[nodiscard]] const std::uint8_t* label_data() const {
        return thrust::raw_pointer_cast(labels.data());
    }
};

/// Fraction of `set` that parameters `p` classify correctly (in the device system).
inline double accuracy(const thrust::device_vector<float>& p, const mlp_shape& s,
                       const device_data& set) {
    const std::size_t chunk = 1000;
    mlp_workspace ws(s, chunk);
    std::size_t correct = 0;
    std::vector<int> index;
    for (std::size_t first = 0; first < set.count; first += chunk) {
        index.clear();
        for (std::size_t k = first; k < std::min(set.count, first + chunk); ++k)
            index.push_back(int(k));
        correct += ws.run(p, set.pixel_data(), set.label_data(), index, nullptr).correct;
    }
    return double(correct) / double(set.count);
}

/// How long every node trains: the same number of local steps for all (from the smallest
/// shard), so that no node finishes while others have barely started.
struct training_plan {
    std::size_t steps = 1;            ///< local steps of every node
    std::size_t steps_per_epoch = 1;  ///< of the smallest shard
};

/// The plan for `c.epochs` passes over a shard of `smallest_shard` images.
inline training_plan plan_for(const config& c, std::size_t smallest_shard) {
    training_plan p;
    p.steps_per_epoch = std::max<std::size_t>(1, smallest_shard / c.batch);
    p.steps = std::max<std::size_t>(1, std::size_t(c.epochs * double(p.steps_per_epoch)));
    return p;
}

/// What one node reports after training.
struct node_report {
    double loop_seconds = 0;  ///< the training loop, finish() excluded
    std::size_t steps = 0;
    node_stats stats;
    std::vector<double> epoch_loss, epoch_accuracy;  ///< over the node's own batches
};

/// Node `rank`'s training: `plan.steps` local steps on its shard (a new random order per pass),
/// the gradient computed on the device and handed to swarm_node, which takes the SGD step and
/// averages every H steps; then finish() (answering the others until every node is done).
template <class Comm, class Quant>
node_report train_node(Comm& comm, const config& c, const mlp_shape& s, const topology& graph,
                       const device_data& train, const std::vector<std::size_t>& shard,
                       const training_plan& plan, thrust::device_vector<float>& model,
                       Quant quantizer) {
    const std::size_t rank = comm.rank();
    swarm_options options;
    options.sgd.learning_rate = c.lr;
    options.sgd.momentum = c.momentum;
    options.steps = local_steps::fixed(c.H);
    options.seed = c.seed * 1000 + rank;
    swarm_node node(model, comm, graph, options, std::move(quantizer));
    mlp_workspace ws(s, c.batch);
    thrust::device_vector<float> gradient(s.size());
    rng order(c.seed, 100 + rank);
    shuffled_passes passes(shard.size());
    std::vector<int> index(c.batch);
    node_report r;
    double loss = 0;
    std::size_t correct = 0, seen = 0;
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t step = 0; step < plan.steps; ++step) {
        for (auto& k : index) k = int(shard[passes.next(order)]);
        const auto b = ws.run(model, train.pixel_data(), train.label_data(), index, &gradient);
        loss += b.loss_sum;
        correct += b.correct;
        seen += index.size();
        node.apply_gradient(gradient);
        node.after_local_step();
        if ((step + 1) % plan.steps_per_epoch == 0 || step + 1 == plan.steps) {
            r.epoch_loss.push_back(loss / double(seen));
            r.epoch_accuracy.push_back(double(correct) / double(seen));
            loss = 0;
            correct = seen = 0;
        }
    }
    r.loop_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.steps = plan.steps;
    node.finish();
    r.stats = node.stats();
    return r;
}

/// Sums over the nodes, for the summary line.
struct totals {
    double loop_seconds = 0, averaging_seconds = 0, optimizer_seconds = 0;
    double bytes_sent = 0, interactions = 0, steps = 0;

    /// Adds one node's report.
    void add(const node_report& r) {
        loop_seconds += r.loop_seconds;
        averaging_seconds += r.stats.seconds_averaging;
        optimizer_seconds += r.stats.seconds_optimizer;
        bytes_sent += double(r.stats.bytes_sent);
        interactions += double(r.stats.interactions_completed);
        steps += double(r.steps);
    }
};

/// The epoch lines: per epoch, the nodes' mean training loss and accuracy.
inline void print_epochs(const std::vector<double>& loss, const std::vector<double>& accuracy) {
    for (std::size_t e = 0; e < loss.size(); ++e)
        std::printf("epoch %zu: training loss %.4f, training accuracy %.2f%% (mean over nodes)\n",
                    e + 1, loss[e], 100 * accuracy[e]);
}

/// The result lines; returns the exit status (1 when the mean model is below --min-accuracy).
inline int print_results(const config& c, double mean_accuracy, double node0_accuracy,
                         double consensus, const totals& t, double batch, double wall) {
    std::printf("Test accuracy: mean model %.2f%%, node 0 %.2f%%; consensus distance %.3g\n",
                100 * mean_accuracy, 100 * node0_accuracy, consensus);
    std::printf(
        "Local step: %.3f ms per node (all nodes: %.0f images/s over %.1f s); averaging "
        "share of the step %.2f%%, optimizer %.2f%%; %.0f interactions, %.1f MB sent\n",
        1e3 * t.loop_seconds / t.steps, t.steps * batch / wall, wall,
        100 * t.averaging_seconds / t.loop_seconds, 100 * t.optimizer_seconds / t.loop_seconds,
        t.interactions, t.bytes_sent / 1e6);
    if (mean_accuracy < c.min_accuracy) {
        std::printf(
            "FAILED: the mean model's test accuracy %.2f%% is below --min-accuracy %.2f%%\n",
            100 * mean_accuracy, 100 * c.min_accuracy);
        return 1;
    }
    return 0;
}

}  // namespace swarmsgd::examples::device
