#pragma once
/// \file in_process_training.hpp
/// The training of resnet_swarm: n in-process nodes (run_in_process, one thread each) train
/// their own ResNet on their own shard, averaging with one random neighbour every H local
/// steps; ONE run over all the epochs, so momentum, the schedule and the lattice quantizer's
/// adaptive state persist. Evaluation per epoch through an epoch_monitor (no pause, no round).

#include <swarmsgd/swarmsgd.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "../../common/checks.hpp"
#include "epoch_monitor.hpp"
#include "epoch_record.hpp"
#include "evaluation.hpp"
#include "options.hpp"
#include "progress_bar.hpp"
#include "resnet.hpp"
#include "resnet_problem.hpp"
#include "training_setup.hpp"

namespace swarmsgd::examples::resnet {

/// What a run produced.
struct training_result {
    std::vector<epoch_record> epochs;  ///< one per boundary, the last for the final models
    double acc_mean = 0;               ///< final mean model, test accuracy 0..1
    double acc_node0 = 0;              ///< final model of node 0
    swarm_report report;               ///< run_in_process's report
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

/// Trains per `o` on `d` with `quantizer` for the averaging messages. Throws usage_error for
/// options that do not fit the data (more nodes than images), and what the swarm throws.
template <class Quant>
training_result train_in_process(const run_options& o, const training_data& d, Quant quantizer,
                                 const training_output& out = {}) {
    const std::size_t n = o.nodes;
    if (n > d.train.count())
        throw usage_error(swarmsgd::examples::concat("--nodes ", n, " exceeds the ",
                                                     d.train.count(),
                                                     " training images (every node needs one)"));
    const resnet_config config = make_resnet_config(o, d.train);
    training_result result;
    result.plan = make_plan(o, d.train.count(), n);
    const training_plan& plan = result.plan;
    const swarm_options options = make_swarm_options(o, plan);
    const topology graph = make_topology(o.topology, n);

    // Same initial model on every node.
    std::vector<std::vector<float>> models(1);
    {
        const resnet net(config, 1);
        result.parameters = net.parameter_count();
        models[0].resize(result.parameters);
        net.initialize(models[0], o.seed);
    }
    models.resize(n, models[0]);

    resnet_problem problem(config, o.batch, d.train, d.norm, n, o.augment,
                           static_cast<float>(o.weight_decay), o.seed);

    std::unique_ptr<resnet> eval_net;  // used by the evaluator thread only
    constexpr int eval_chunk = 100;
    auto finish_record = [&](epoch_record& r, const epoch_snapshot& s) {
        r.epoch = plan.epochs[s.index];
        r.train_loss = s.loss_count > 0 ? s.loss_sum / static_cast<double>(s.loss_count) : 0;
        r.bytes_sent = s.bytes_sent;
        r.averaging_share = s.node_seconds > 0 ? s.seconds_averaging / s.node_seconds : 0;
        r.seconds = s.completed_at;
    };
    auto publish = [&](const epoch_record& r) {
        result.epochs.push_back(r);
        if (out.csv != nullptr) out.csv->append(r);
        if (out.say) out.say(describe(r));
    };
    epoch_monitor monitor(n, plan.boundaries, [&](epoch_snapshot& s) {
        if (!eval_net) eval_net = std::make_unique<resnet>(config, eval_chunk);
        epoch_record r;
        finish_record(r, s);
        std::vector<float> mean;
        r.gamma = mean_and_gamma(s.models, mean);
        const std::size_t count = d.test.count();
        r.acc_mean = static_cast<double>(
                         count_correct(*eval_net, mean, d.test, d.norm, 0, count, eval_chunk)) /
                     static_cast<double>(count);
        r.acc_node0 = static_cast<double>(count_correct(*eval_net, s.models[0], d.test, d.norm, 0,
                                                        count, eval_chunk)) /
                      static_cast<double>(count);
        publish(r);
    });

    // Progress: shared counters, written by each node's thread for itself.
    std::atomic<std::uint64_t> steps_done{0};
    std::vector<std::atomic<double>> recent_loss(n), averaging(n);
    for (auto& l : recent_loss) l.store(-1.0);  // no step yet
    const std::uint64_t total_steps = static_cast<std::uint64_t>(plan.steps_per_node) * n;
    auto on_step = [&](std::size_t node, std::size_t step, double loss, const node_stats& stats) {
        monitor.on_step(node, step, loss, stats, models[node]);
        const double previous = recent_loss[node].load(std::memory_order_relaxed);
        recent_loss[node].store(step == 0 ? loss : 0.9 * previous + 0.1 * loss,
                                std::memory_order_relaxed);
        averaging[node].store(stats.seconds_averaging, std::memory_order_relaxed);
        const std::uint64_t done = steps_done.fetch_add(1, std::memory_order_relaxed) + 1;
        if (out.bar == nullptr) return;
        progress_state p;
        const double elapsed = std::max(out.bar->elapsed(), 1e-9);
        p.fraction = static_cast<double>(done) / static_cast<double>(total_steps);
        p.epochs = o.epochs;
        p.epoch = p.fraction * o.epochs;
        double loss_sum = 0, averaging_sum = 0;
        std::size_t reporting = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const double l = recent_loss[i].load(std::memory_order_relaxed);
            if (l >= 0) loss_sum += l, ++reporting;
            averaging_sum += averaging[i].load(std::memory_order_relaxed);
        }
        p.loss = loss_sum / static_cast<double>(std::max<std::size_t>(reporting, 1));
        p.images_per_s = static_cast<double>(done) * o.batch / elapsed;
        p.averaging_share = averaging_sum / (static_cast<double>(n) * elapsed);
        out.bar->update(p, done == total_steps);
    };

    result.report = run_in_process(
        models, graph, problem, plan.steps_per_node, options, std::move(quantizer), on_step,
        checkpoint_schedule{o.checkpoint_dir, o.checkpoint_every, o.resume});
    if (out.bar != nullptr) out.bar->finish();
    monitor.stop();  // the queued epochs are evaluated first

    // The last row: the final models (after finish(), which applied the last averages).
    const unsigned threads = std::max(1U, std::thread::hardware_concurrency());
    const auto mean_d = mean_model(models);
    const std::vector<float> mean(mean_d.begin(), mean_d.end());
    result.acc_mean = test_accuracy(config, mean, d.test, d.norm, threads, eval_chunk);
    result.acc_node0 = test_accuracy(config, models[0], d.test, d.norm, threads, eval_chunk);
    epoch_record last;
    finish_record(last, monitor.last());
    last.acc_mean = result.acc_mean;
    last.acc_node0 = result.acc_node0;
    last.gamma = result.report.consensus_distance;
    last.bytes_sent = result.report.total().bytes_sent;
    last.seconds = result.report.wall_seconds;
    publish(last);
    return result;
}

}  // namespace swarmsgd::examples::resnet
