#pragma once
/// \file in_process_training.hpp
/// The training of resnet_torch_swarm: n in-process nodes, one thread each, every node with
/// its own torch::nn ResNet and torch::optim::SGD on its own shard; after each optimizer step
/// the node's swarm_node averages with one random neighbour when H steps are due. The epoch
/// results (mean model and node 0, evaluated with a torch module on a thread of their own),
/// the progress line, the CSV and the report are those of the Eigen example.

#include <swarmsgd/swarmsgd.hpp>
#include <swarmsgd/torch.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../resnet/train/epoch_monitor.hpp"
#include "../resnet/train/epoch_record.hpp"
#include "../resnet/train/in_process_program.hpp"
#include "../resnet/train/schedule.hpp"
#include "torch_training.hpp"

namespace swarmsgd::examples::torch_resnet {

/// LibTorch's intra-op threads for n nodes that each run on a thread of their own: the cores
/// shared out (at least 1), so that the nodes do not oversubscribe the machine.
[[nodiscard]] inline int intra_op_threads(std::size_t nodes) {
    const auto cores = std::max(1U, std::thread::hardware_concurrency());
    return static_cast<int>(std::max<std::size_t>(1, cores / std::max<std::size_t>(nodes, 1)));
}

/// Trains per `o` on `d` with `quantizer` for the averaging messages (rn::train_in_process's
/// contract: same options, result and output).
template <class Quant>
rn::training_result train_in_process(const rn::run_options& o, const rn::training_data& d,
                                     Quant quantizer, const rn::training_output& out = {}) {
    const std::size_t n = o.nodes;
    if (n > d.train.count())
        throw rn::usage_error(swarmsgd::examples::concat("--nodes ", n, " exceeds the ",
                                                         d.train.count(), " training images"));
    if (o.checkpoint_every != 0 || o.resume)
        throw rn::usage_error(
            "--checkpoint-every and --resume are not supported by the LibTorch example (the "
            "optimizer's state is LibTorch's: save it with torch::save)");
    at::set_num_threads(intra_op_threads(n));
    const rn::resnet_config config = rn::make_resnet_config(o, d.train);
    rn::training_result result;
    result.plan = rn::make_plan(o, d.train.count(), n);
    const rn::training_plan& plan = result.plan;
    const swarm_options options = make_node_options(o, plan);
    const topology graph = rn::make_topology(o.topology, n);
    const auto schedule = rn::make_schedule(o.schedule, plan.steps_per_node, plan.warmup_steps);

    // Same initial model on every node.
    std::vector<float> initial;
    {
        resnet net = make_module(config);
        initialize(net, o.seed);
        const torch_model<float> view(*net);
        initial.resize(view.elements());
        gather(view, std::span<float>(initial));
    }
    result.parameters = initial.size();
    std::vector<std::unique_ptr<node_trainer>> nodes;
    for (std::size_t i = 0; i < n; ++i)
        nodes.push_back(std::make_unique<node_trainer>(
            config, o, rn::batch_sampler(rn::node_shard(d.train, i, n, o.seed), d.norm, o.augment),
            initial));

    std::unique_ptr<evaluator> eval;  // the monitor's thread only
    const rn::epoch_publisher publisher{plan, result, out};
    rn::epoch_monitor monitor(n, plan.boundaries, [&](rn::epoch_snapshot& s) {
        if (!eval) eval = std::make_unique<evaluator>(config);
        rn::epoch_record r = publisher.record_of(s);
        std::vector<float> mean;
        r.gamma = rn::mean_and_gamma(s.models, mean);
        r.acc_mean = eval->accuracy(mean, d.test, d.norm);
        r.acc_node0 = eval->accuracy(s.models[0], d.test, d.norm);
        publisher.publish(r);
    });
    rn::swarm_progress progress(out, n, plan.steps_per_node, o.epochs, o.batch);

    in_process_world world(n);
    std::vector<node_stats> stats(n);
    std::vector<std::string> errors(n);
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            try {
                node_trainer& me = *nodes[i];
                auto comm = world.endpoint_for(i);
                swarm_node node(me.model, comm, graph, options, quantizer);
                rng random(o.seed ^ 0x746f726368ULL, i);  // "torch": the batches' stream
                std::vector<float> flat(me.model.elements());
                std::size_t next_boundary = 0;
                for (std::size_t step = 0; step < plan.steps_per_node; ++step) {
                    const double loss = me.step(schedule(step, o.lr), random);
                    node.after_local_step();  // averaging, when due: the Swarm SGD part
                    if (next_boundary < plan.boundaries.size() &&
                        step + 1 == plan.boundaries[next_boundary]) {
                        me.copy_model(flat);
                        ++next_boundary;
                    }
                    monitor.on_step(i, step, loss, node.stats(), flat);
                    progress.on_step(i, step, loss, node.stats());
                }
                node.finish();
                stats[i] = node.stats();
            } catch (const std::exception& e) {
                errors[i] = e.what();
                world.abort(concat("node ", i, " failed: ", e.what()));
            }
        });
    for (auto& t : threads) t.join();
    if (out.bar != nullptr) out.bar->finish();
    monitor.stop();
    for (std::size_t i = 0; i < n; ++i)
        if (!errors[i].empty()) throw error(concat("node ", i, ": ", errors[i]));
    result.report.nodes = stats;
    result.report.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    // The last row: the final models (after finish(), which applied the last averages).
    std::vector<std::vector<float>> finals(n, std::vector<float>(initial.size()));
    for (std::size_t i = 0; i < n; ++i) nodes[i]->copy_model(finals[i]);
    std::vector<float> mean;
    result.report.consensus_distance = rn::mean_and_gamma(finals, mean);
    evaluator final_eval(config);
    result.acc_mean = final_eval.accuracy(mean, d.test, d.norm);
    result.acc_node0 = final_eval.accuracy(finals[0], d.test, d.norm);
    publisher.publish_final(monitor.last());
    return result;
}

}  // namespace swarmsgd::examples::torch_resnet
