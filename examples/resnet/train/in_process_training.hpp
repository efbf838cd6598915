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
#include "in_process_program.hpp"
#include "options.hpp"
#include "progress_bar.hpp"
#include "resnet.hpp"
#include "resnet_problem.hpp"
#include "training_setup.hpp"

namespace swarmsgd::examples::resnet {

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
    const epoch_publisher publisher{plan, result, out};
    epoch_monitor monitor(n, plan.boundaries, [&](epoch_snapshot& s) {
        if (!eval_net) eval_net = std::make_unique<resnet>(config, eval_chunk);
        epoch_record r = publisher.record_of(s);
        std::vector<float> mean;
        r.gamma = mean_and_gamma(s.models, mean);
        const std::size_t count = d.test.count();
        r.acc_mean = static_cast<double>(
                         count_correct(*eval_net, mean, d.test, d.norm, 0, count, eval_chunk)) /
                     static_cast<double>(count);
        r.acc_node0 = static_cast<double>(count_correct(*eval_net, s.models[0], d.test, d.norm, 0,
                                                        count, eval_chunk)) /
                      static_cast<double>(count);
        publisher.publish(r);
    });

    swarm_progress progress(out, n, plan.steps_per_node, o.epochs, o.batch);
    auto on_step = [&](std::size_t node, std::size_t step, double loss, const node_stats& stats) {
        monitor.on_step(node, step, loss, stats, models[node]);
        progress.on_step(node, step, loss, stats);
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
    publisher.publish_final(monitor.last());
    return result;
}

}  // namespace swarmsgd::examples::resnet
