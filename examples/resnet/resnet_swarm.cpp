// Swarm SGD training of a ResNet (He et al.'s CIFAR ResNet-6k+2) on n in-process nodes: each
// node trains its own copy on its own shard of Fashion-MNIST, CIFAR-10 or CIFAR-100 and every
// H local steps averages with one random neighbour, quantized, without any global round.
// Prints a progress line, the test accuracy of the mean model and of node 0 after every
// epoch, writes them to a CSV and plots them with gnuplot.
//
//   resnet_swarm [--dataset fashion-mnist|cifar10|cifar100] [--data DIR] [--nodes 8]
//                [--epochs 1] [--depth 20] [--batch 128] [--lr 0.1] [--quantizer lattice8] ...
//   resnet_swarm --help
#include <swarmsgd/swarmsgd.hpp>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include "train/epoch_record.hpp"
#include "train/in_process_training.hpp"
#include "train/options.hpp"
#include "train/plot.hpp"
#include "train/progress_bar.hpp"
#include "train/quantizer_choice.hpp"
#include "train/training_setup.hpp"

namespace rn = swarmsgd::examples::resnet;

int main(int argc, char** argv) {
    try {
        const rn::run_options o = rn::parse_run_options(argc, argv, false);
        std::printf("Loading %s%s%s\n", o.dataset.c_str(), o.data.empty() ? "" : " from ",
                    o.data.c_str());
        const rn::training_data d = rn::load_training_data(o);
        const rn::resnet_config config = rn::make_resnet_config(o, d.train);
        const rn::training_plan plan = rn::make_plan(o, d.train.count(), o.nodes);
        std::printf(
            "Swarm SGD: %zu in-process nodes on %s, %s averaging, H = %s, quantizer %s\n"
            "ResNet-%d (width %d) on %s: %zu training images (%s per node), %zu test images, "
            "%dx%dx%d\n"
            "batch %d per node, lr %g (%s%s), momentum %g, weight decay %g%s; %g epochs = %zu "
            "local steps per node\n",
            o.nodes, rn::make_topology(o.topology, o.nodes).name().c_str(), o.mode.c_str(),
            (o.geometric ? swarmsgd::local_steps::geometric(o.h)
                         : swarmsgd::local_steps::fixed(static_cast<std::size_t>(o.h)))
                .describe()
                .c_str(),
            o.quantizer.c_str(), config.depth, config.base_width, d.train.name.c_str(),
            d.train.count(), o.nodes > 1 ? "a shard" : "all", d.test.count(), d.train.channels,
            d.train.height, d.train.width, o.batch, o.lr, o.schedule.c_str(),
            o.warmup_epochs > 0
                ? (", warm-up " + std::to_string(o.warmup_epochs) + " epochs").c_str()
                : "",
            o.momentum, o.weight_decay, o.augment ? ", augmented" : "", o.epochs,
            plan.steps_per_node);
        std::fflush(stdout);

        rn::epoch_csv csv(o.csv);
        rn::progress_bar bar;
        rn::training_output out;
        out.bar = &bar;
        out.csv = &csv;
        out.say = [&](const std::string& line) { bar.print_line(line); };
        const rn::training_result r = rn::with_quantizer(
            o.quantizer, [&](auto q) { return rn::train_in_process(o, d, std::move(q), out); });

        const auto total = r.report.total();
        std::printf("Finished in %.1f s (%.0f images/s over all nodes), %zu parameters per model\n",
                    r.report.wall_seconds,
                    static_cast<double>(total.local_steps) * o.batch / r.report.wall_seconds,
                    r.parameters);
        std::printf(
            "Interactions: %llu completed, %llu postponed; averaging share of time %.2f%%; "
            "bytes sent %s; recovered elements %llu\n",
            static_cast<unsigned long long>(total.interactions_completed),
            static_cast<unsigned long long>(total.postponed), 100 * r.report.averaging_share(),
            rn::format_bytes(static_cast<double>(total.bytes_sent)).c_str(),
            static_cast<unsigned long long>(total.recovered_elements));
        std::printf("Per-epoch results: %s\n", std::filesystem::absolute(o.csv).c_str());
        if (!o.plot.empty()) {
            const std::string title = "Swarm SGD, " + std::to_string(o.nodes) + " nodes, " +
                                      o.quantizer + ", ResNet-" + std::to_string(config.depth) +
                                      " on " + d.train.name;
            const rn::plot_outcome p = rn::plot_epochs(o.csv, o.plot, title, r.epochs);
            if (p.made)
                std::printf("Plot: %s\n", std::filesystem::absolute(o.plot).c_str());
            else
                std::printf("Plot: none: %s; the figures are in the CSV above\n",
                            p.message.c_str());
        }
        std::printf("Test accuracy: mean model %.2f%%, node 0 %.2f%%\n", 100 * r.acc_mean,
                    100 * r.acc_node0);
        return 0;
    } catch (const rn::usage_error& e) {
        if (std::string(e.what()) == "help") {
            std::printf("%s", rn::usage_text("resnet_swarm", false).c_str());
            return 0;
        }
        std::fprintf(stderr, "resnet_swarm: %s\n%s", e.what(),
                     rn::usage_text("resnet_swarm", false).c_str());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "resnet_swarm: %s\n", e.what());
        return 1;
    }
}
