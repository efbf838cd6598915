// Swarm SGD on Fashion-MNIST: n in-process nodes (threads), each training its own copy of a
// small MLP on its own shard of the data and averaging with one random neighbour every H
// local steps, without any global round. Prints progress, then the test accuracy of the mean
// model and of node 0, the share of time spent averaging and the bytes sent.
//
//   fashion_mnist_swarm [--nodes 8] [--epochs 10] [--hidden 128] [--batch 64] [--lr 0.1]
//                       [--momentum 0.9] [--H 2] [--geometric] [--topology ring|complete|torus|
//                       hypercube] [--mode nonblocking|blocking|pull] [--seed 1] [--data DIR]
//                       [--checkpoint-every STEPS] [--checkpoint-dir checkpoints] [--resume]
//                       [--failure fail|exclude]
// --checkpoint-every saves every node's whole state (checkpoint-dir/node<i>.ckpt) every STEPS
// local steps; --resume restores them and trains the steps each node had left.
#include <swarmsgd/eigen.hpp>
#include <swarmsgd/swarmsgd.hpp>

#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include "demo_common.hpp"

namespace ex = swarmsgd::examples;
using namespace swarmsgd::examples::demo;

int main(int argc, char** argv) try {
    const config c = parse(argc, argv);
    const auto dir =
        c.data.empty() ? ex::default_fashion_mnist_dir() : std::filesystem::path(c.data);
    std::printf("Loading Fashion-MNIST from %s\n", dir.c_str());
    const auto train = ex::load_fashion_mnist(dir, true);
    const auto test = ex::load_fashion_mnist(dir, false);

    const ex::mlp_layout layout(train.pixels_per_image(), c.hidden, 10);
    std::vector<std::vector<float>> models(c.nodes, std::vector<float>(layout.parameter_count()));
    for (auto& m : models) ex::init_params(layout, m, c.seed);  // same start on every node

    const auto graph = make_topology(c.topology, c.nodes);
    const std::size_t steps_per_node = swarmsgd::examples::demo::steps_per_node(c, train.count);
    const auto options = make_options(c, steps_per_node);

    std::printf(
        "Swarm SGD: %zu in-process nodes on %s, %s averaging, H = %s, MLP 784-%zu-10 (%zu "
        "parameters), batch %zu, %.2f epochs = %zu local steps per node\n",
        c.nodes, graph.name().c_str(), swarmsgd::to_string(options.mode),
        options.steps.describe().c_str(), c.hidden, layout.parameter_count(), c.batch, c.epochs,
        steps_per_node);

    shard_problem problem(train, layout, c.nodes, c.batch, c.seed);
    const bool tty = isatty(fileno(stdout)) != 0;
    const auto start = std::chrono::steady_clock::now();
    double smoothed_loss = 0;
    auto last_print = start;
    auto progress = [&](std::size_t node, std::size_t step, double loss,
                        const swarmsgd::node_stats& stats) {
        if (node != 0) return;  // node 0's thread reports for everyone
        smoothed_loss = step == 0 ? loss : 0.98 * smoothed_loss + 0.02 * loss;
        const auto now = std::chrono::steady_clock::now();
        const bool last = step + 1 == steps_per_node;
        if (!last && now - last_print < std::chrono::milliseconds(tty ? 200 : 2000)) return;
        last_print = now;
        const double elapsed = std::chrono::duration<double>(now - start).count();
        const double done = static_cast<double>(step + 1) / static_cast<double>(steps_per_node);
        const double eta = elapsed / done - elapsed;
        const double images_per_s =
            static_cast<double>((step + 1) * c.batch * c.nodes) / std::max(elapsed, 1e-9);
        const int width = 30, filled = static_cast<int>(done * width);
        std::printf(
            "%s[%.*s%*s] %5.1f%%  epoch %.2f  loss %.3f  %.0f img/s  averaging %.1f%%  ETA %.0fs%s",
            tty ? "\r" : "", filled, "##############################", width - filled, "",
            100 * done, done * c.epochs, smoothed_loss, images_per_s,
            100 * stats.seconds_averaging / std::max(elapsed, 1e-9), eta, tty ? "   " : "\n");
        std::fflush(stdout);
    };
    if (c.resume) std::printf("Resuming every node from %s\n", c.checkpoint_dir.c_str());
    const auto report = swarmsgd::run_in_process(models, graph, problem, steps_per_node, options,
                                                 swarmsgd::identity_quantizer<float>{}, progress,
                                                 make_checkpoints(c));
    if (tty) std::printf("\n");

    const auto mean = swarmsgd::mean_model(models);
    const std::vector<float> mean_f(mean.begin(), mean.end());
    const double acc_mean = ex::accuracy(layout, mean_f, test);
    const double acc_node0 = ex::accuracy(layout, models[0], test);
    const auto total = report.total();
    std::printf("Finished in %.1f s (%.0f images/s over all nodes)\n", report.wall_seconds,
                static_cast<double>(total.local_steps * c.batch) / report.wall_seconds);
    std::printf("Test accuracy: mean model %.2f%%, node 0 %.2f%%\n", 100 * acc_mean,
                100 * acc_node0);
    std::printf(
        "Interactions: %llu completed (%.2f per local step), %llu postponed (partner "
        "still busy with the previous one), consensus distance Gamma = %.4g\n",
        static_cast<unsigned long long>(total.interactions_completed),
        static_cast<double>(total.interactions_completed) /
            static_cast<double>(std::max<std::uint64_t>(total.local_steps, 1)),
        static_cast<unsigned long long>(total.postponed), report.consensus_distance);
    for (const auto& f : report.failures)
        std::printf("Node %zu failed and was excluded; the others trained on: %s\n", f.node,
                    f.what.c_str());
    std::printf("Averaging share of time: %.2f%%; bytes sent: %s (%s per node)\n",
                100 * report.averaging_share(), human_bytes(double(total.bytes_sent)).c_str(),
                human_bytes(double(total.bytes_sent) / double(c.nodes)).c_str());
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "fashion_mnist_swarm: %s\n", e.what());
    return 1;
}
