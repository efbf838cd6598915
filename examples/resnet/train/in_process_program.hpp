#pragma once
/// \file in_process_program.hpp
/// The main() of the in-process ResNet programs (resnet_swarm on the Eigen network,
/// resnet_torch_swarm on LibTorch): parse the command line, load the data, print the set-up,
/// train with the program's own training function, report (images/s, interactions, CSV, plot,
/// accuracy). Also what their training functions share: the progress line fed by every
/// node's thread, and the epoch records.

#include <swarmsgd/swarmsgd.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "epoch_monitor.hpp"
#include "epoch_record.hpp"
#include "options.hpp"
#include "plot.hpp"
#include "progress_bar.hpp"
#include "quantizer_choice.hpp"
#include "training_setup.hpp"

namespace swarmsgd::examples::resnet {

/// What a run produced.
struct training_result {
    std::vector<epoch_record> epochs;  ///< one per boundary, the last for the final models
    double acc_mean = 0;               ///< final mean model, test accuracy 0..1
    double acc_node0 = 0;              ///< final model of node 0
    swarm_report report;               ///< the nodes' statistics, wall time and final Gamma
    std::size_t parameters = 0;        ///< floats per model (BatchNorm running stats included)
    training_plan plan;                ///< steps and boundaries
};

/// Where a run reports while it trains (every member may be empty/null).
struct training_output {
    progress_bar* bar = nullptr;                  ///< progress line
    epoch_csv* csv = nullptr;                     ///< rows as they come
    std::function<void(const std::string&)> say;  ///< prints a line (epoch results)
};

/// Mean of `models` (accumulated in double) and their Gamma = sum_i ||X_i - mean||^2.
inline double mean_and_gamma(const std::vector<std::vector<float>>& models,
                             std::vector<float>& mean) {
    const std::size_t size = models.front().size();
    std::vector<double> sum(size, 0.0);
    for (const auto& m : models)
        for (std::size_t k = 0; k < size; ++k) sum[k] += m[k];
    const double n = static_cast<double>(models.size());
    mean.resize(size);
    double gamma = 0;
    for (std::size_t k = 0; k < size; ++k) {
        const double mu = sum[k] / n;
        mean[k] = static_cast<float>(mu);
        for (const auto& m : models) gamma += (m[k] - mu) * (m[k] - mu);
    }
    return gamma;
}

/// The epoch records of a run: what the monitor measured, completed by the evaluation, kept
/// in the result and written to the CSV and the screen.
struct epoch_publisher {
    const training_plan& plan;
    training_result& result;
    const training_output& out;

    /// The record of boundary s, less the accuracies and Gamma.
    [[nodiscard]] epoch_record record_of(const epoch_snapshot& s) const {
        epoch_record r;
        r.epoch = plan.epochs[s.index];
        r.train_loss = s.loss_count > 0 ? s.loss_sum / static_cast<double>(s.loss_count) : 0;
        r.bytes_sent = s.bytes_sent;
        r.averaging_share = s.node_seconds > 0 ? s.seconds_averaging / s.node_seconds : 0;
        r.seconds = s.completed_at;
        return r;
    }
    /// Keeps `r` and reports it.
    void publish(const epoch_record& r) const {
        result.epochs.push_back(r);
        if (out.csv != nullptr) out.csv->append(r);
        if (out.say) out.say(describe(r));
    }
    /// The last record: the final models (after finish()), with the run's totals.
    void publish_final(const epoch_snapshot& last_boundary) const {
        epoch_record last = record_of(last_boundary);
        last.acc_mean = result.acc_mean;
        last.acc_node0 = result.acc_node0;
        last.gamma = result.report.consensus_distance;
        last.bytes_sent = result.report.total().bytes_sent;
        last.seconds = result.report.wall_seconds;
        publish(last);
    }
};

/// The progress line of n nodes on threads: each node's thread reports its steps.
class swarm_progress {
public:
    swarm_progress(const training_output& out, std::size_t nodes, std::size_t steps_per_node,
                   double epochs, int batch)
        : out_(out),
          recent_loss_(nodes),
          averaging_(nodes),
          total_steps_(static_cast<std::uint64_t>(steps_per_node) * nodes),
          epochs_(epochs),
          batch_(batch) {
        for (auto& l : recent_loss_) l.store(-1.0);  // no step yet
    }

    /// Node `node` ended its step `step` (0-based) with `loss`. From that node's thread only.
    void on_step(std::size_t node, std::size_t step, double loss, const node_stats& stats) {
        const double previous = recent_loss_[node].load(std::memory_order_relaxed);
        recent_loss_[node].store(step == 0 ? loss : 0.9 * previous + 0.1 * loss,
                                 std::memory_order_relaxed);
        averaging_[node].store(stats.seconds_averaging, std::memory_order_relaxed);
        const std::uint64_t done = steps_done_.fetch_add(1, std::memory_order_relaxed) + 1;
        if (out_.bar == nullptr) return;
        progress_state p;
        const double elapsed = std::max(out_.bar->elapsed(), 1e-9);
        p.fraction = static_cast<double>(done) / static_cast<double>(total_steps_);
        p.epochs = epochs_;
        p.epoch = p.fraction * epochs_;
        double loss_sum = 0, averaging_sum = 0;
        std::size_t reporting = 0;
        for (std::size_t i = 0; i < recent_loss_.size(); ++i) {
            const double l = recent_loss_[i].load(std::memory_order_relaxed);
            if (l >= 0) loss_sum += l, ++reporting;
            averaging_sum += averaging_[i].load(std::memory_order_relaxed);
        }
        p.loss = loss_sum / static_cast<double>(std::max<std::size_t>(reporting, 1));
        p.images_per_s = static_cast<double>(done) * batch_ / elapsed;
        p.averaging_share = averaging_sum / (static_cast<double>(recent_loss_.size()) * elapsed);
        out_.bar->update(p, done == total_steps_);
    }

private:
    const training_output& out_;
    std::vector<std::atomic<double>> recent_loss_, averaging_;
    std::atomic<std::uint64_t> steps_done_{0};
    std::uint64_t total_steps_;
    double epochs_;
    int batch_;
};

/// How a program names itself and its framework.
struct program_text {
    std::string name;     ///< "resnet_swarm"
    std::string swarm;    ///< after "Swarm SGD" in the first line ("" or " in LibTorch 1.13.0")
    std::string nodes;    ///< after "in-process nodes" ("" or " (torch::optim::SGD each)")
    std::string network;  ///< after "width W" ("" or ", torch::nn")
};

/// main() of an in-process ResNet program. `train(o, d, quantizer, out)` returns a
/// training_result (rn::train_in_process's contract). Exit status: 0, 2 for a usage error
/// (the message and the usage on stderr), 1 for any other error.
template <class Train>
int in_process_main(int argc, char** argv, const program_text& text, const run_options& defaults,
                    Train train) {
    try {
        const run_options o = parse_run_options(argc, argv, false, defaults);
        std::printf("Loading %s%s%s\n", o.dataset.c_str(), o.data.empty() ? "" : " from ",
                    o.data.c_str());
        const training_data d = load_training_data(o);
        const resnet_config config = make_resnet_config(o, d.train);
        const training_plan plan = make_plan(o, d.train.count(), o.nodes);
        std::printf(
            "Swarm SGD%s: %zu in-process nodes%s on %s, %s averaging, H = %s, quantizer %s\n"
            "ResNet-%d (width %d%s) on %s: %zu training images (%s per node), %zu test images, "
            "%dx%dx%d\n"
            "batch %d per node, lr %g (%s%s), momentum %g, weight decay %g%s; %g epochs = %zu "
            "local steps per node\n",
            text.swarm.c_str(), o.nodes, text.nodes.c_str(),
            make_topology(o.topology, o.nodes).name().c_str(), o.mode.c_str(),
            (o.geometric ? local_steps::geometric(o.h)
                         : local_steps::fixed(static_cast<std::size_t>(o.h)))
                .describe()
                .c_str(),
            o.quantizer.c_str(), config.depth, config.base_width, text.network.c_str(),
            d.train.name.c_str(), d.train.count(), o.nodes > 1 ? "a shard" : "all", d.test.count(),
            d.train.channels, d.train.height, d.train.width, o.batch, o.lr, o.schedule.c_str(),
            o.warmup_epochs > 0 ? concat(", warm-up ", o.warmup_epochs, " epochs").c_str() : "",
            o.momentum, o.weight_decay, o.augment ? ", augmented" : "", o.epochs,
            plan.steps_per_node);
        std::fflush(stdout);

        epoch_csv csv(o.csv);
        progress_bar bar;
        training_output out;
        out.bar = &bar;
        out.csv = &csv;
        out.say = [&](const std::string& line) { bar.print_line(line); };
        const training_result r =
            with_quantizer(o.quantizer, [&](auto q) { return train(o, d, std::move(q), out); });

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
            format_bytes(static_cast<double>(total.bytes_sent)).c_str(),
            static_cast<unsigned long long>(total.recovered_elements));
        report_outputs(o.csv, o.plot,
                       "Swarm SGD" + text.swarm + ", " + std::to_string(o.nodes) + " nodes, " +
                           o.quantizer + ", ResNet-" + std::to_string(config.depth) + " on " +
                           d.train.name,
                       r.epochs);
        std::printf("Test accuracy: mean model %.2f%%, node 0 %.2f%%\n", 100 * r.acc_mean,
                    100 * r.acc_node0);
        return 0;
    } catch (const usage_error& e) {
        if (std::string(e.what()) == "help") {
            std::printf("%s", usage_text(text.name, false).c_str());
            return 0;
        }
        std::fprintf(stderr, "%s: %s\n%s", text.name.c_str(), e.what(),
                     usage_text(text.name, false).c_str());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", text.name.c_str(), e.what());
        return 1;
    }
}

}  // namespace swarmsgd::examples::resnet
