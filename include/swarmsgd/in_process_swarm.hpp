#pragma once
/// \file in_process_swarm.hpp
/// The embedded default driver: trains n models with n threads of this process, each a
/// swarm_node over the in-process communicator, averaging without any global round.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "communicators/in_process.hpp"
#include "consensus.hpp"
#include "detail/type_checks.hpp"
#include "errors.hpp"
#include "model.hpp"
#include "node_stats.hpp"
#include "problem.hpp"
#include "quantizers/identity.hpp"
#include "swarm_node.hpp"
#include "thread_world.hpp"
#include "topology.hpp"

namespace swarmsgd {

/// A node that failed in a run that went on without it (failure_policy::exclude).
struct node_failure {
    std::size_t node = 0;  ///< which node
    std::string what;      ///< its exception's message
};

/// What a run of the in-process swarm did.
struct swarm_report {
    std::vector<node_stats> nodes;  ///< per node (a failed node's: as they were when it failed)
    /// failure_policy::exclude: the nodes that failed while the others trained on and finished
    /// (their models are as they were when they failed). Empty otherwise: a failure is thrown.
    std::vector<node_failure> failures;
    double wall_seconds = 0;        ///< wall time of the whole run
    double consensus_distance = 0;  ///< Gamma of the final models

    /// Totals over every node.
    [[nodiscard]] node_stats total() const {
        node_stats t;
        for (const auto& n : nodes) t += n;
        return t;
    }
    /// Share of the nodes' time spent averaging (summed averaging time over summed wall time).
    [[nodiscard]] double averaging_share() const {
        return wall_seconds > 0
                   ? total().seconds_averaging / (wall_seconds * static_cast<double>(nodes.size()))
                   : 0.0;
    }
};

/// Checkpoints taken by the threaded drivers (run_nodes_in_process): node i saves
/// `dir/node<i>.ckpt` (swarm_node::save_checkpoint) after every `every` local steps, each on
/// its own schedule, with no global round; with `resume`, node i first restores that file and
/// trains only the steps it had left (its node_stats::local_steps says where it stopped).
struct checkpoint_schedule {
    std::filesystem::path dir;  ///< where the files go (created if needed)
    std::size_t every = 0;      ///< local steps between saves; 0: never save
    bool resume = false;        ///< restore each node from `dir` before training
    /// Whether it does anything.
    [[nodiscard]] bool active() const noexcept { return every != 0 || resume; }
    /// Node i's file.
    [[nodiscard]] std::filesystem::path file(std::size_t i) const {
        return dir / ("node" + std::to_string(i) + ".ckpt");
    }
};

/// A callback that does nothing (the default of run_in_process).
struct no_step_callback {
    /// Ignores the step.
    template <class... Args>
    void operator()(Args&&...) const noexcept {}
};

/// The generic threaded driver: trains `models[i]` on node i with `steps[i]` local steps, one
/// thread per node, over the endpoints of `world` (any thread_world: in_process_world, or your
/// own transport or wrapper), each thread owning the node `make_node(i, models[i], comm)`
/// returns (any algorithm with blocking `step(grad)` and `finish()`: swarm_node, the baselines
/// of baselines/), `comm` being `world.endpoint_for(i)`. Each step computes node i's gradient
/// with `problem`, calls `node.step(grad)` and then `on_step(node, step, loss, stats)` from that
/// node's thread; then `node.finish()`. If a node throws, `world.abort` stops the others and
/// the first error is rethrown here, not the aborts it caused; except a node whose
/// `options().failure` is failure_policy::exclude: the others then go on without it, and its
/// error is listed in swarm_report::failures (rethrown only when no node finished). `seed`
/// seeds node i's data stream rng(seed, n + i). `checkpoints` saves and resumes each node (a
/// node type with save_checkpoint/restore_checkpoint, as swarm_node over host models; else
/// invalid_argument_error); `on_step` then sees the steps from where the node resumed.
template <thread_world World, class Model, class Problem, class MakeNode,
          class OnStep = no_step_callback>
swarm_report run_nodes_in_process(World& world, std::vector<Model>& models, Problem& problem,
                                  std::span<const std::size_t> steps, std::uint64_t seed,
                                  MakeNode make_node, OnStep on_step = OnStep{},
                                  const checkpoint_schedule& checkpoints = {}) {
    static_assert(detail::check_model<Model>());
    using value_type = model_value_t<Model>;
    using detail::require;
    static_assert(!any_model<Model> || problem_for<Problem, Model>,  // else check_model reported
                  "swarmsgd: the Problem type needs a member "
                  "`double gradient(std::size_t node, const Model& x, std::span<value_type> grad, "
                  "swarmsgd::rng& random)`; see problem.hpp");
    const std::size_t n = models.size();
    require<invalid_argument_error>(n >= 1, "run_in_process: no models (n = 0)");
    require<invalid_argument_error>(static_cast<std::size_t>(world.size()) == n,
                                    "run_in_process: the world has ", world.size(),
                                    " endpoints for ", n, " models");
    require<invalid_argument_error>(steps.size() == n, "run_in_process: ", steps.size(),
                                    " step counts for ", n, " nodes");
    const std::size_t size = model_size(models[0]);
    for (std::size_t i = 1; i < n; ++i)
        require<size_mismatch_error>(model_size(models[i]) == size, "run_in_process: node ", i,
                                     " has a model of ", model_size(models[i]),
                                     " elements, node 0 has ", size);

    swarm_report report;
    report.nodes.resize(n);
    std::vector<std::exception_ptr> errors(n);
    std::vector<char> survivable(n, 0);  // node i's failure is survived by the others
    std::once_flag aborted;
    const auto abort = [&](const std::string& reason) {
        std::call_once(aborted, [&] { world.abort(reason); });
    };
    const auto start = std::chrono::steady_clock::now();
    {
        std::vector<std::jthread> threads;
        threads.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            threads.emplace_back([&, i] {
                try {
                    auto comm = world.endpoint_for(i);
                    auto node = make_node(i, models[i], comm);
                    if constexpr (requires { node.options().failure; })
                        survivable[i] = node.options().failure == failure_policy::exclude;
                    try {
                        constexpr bool can_checkpoint = requires(const std::filesystem::path& p) {
                            node.save_checkpoint(p);
                            node.restore_checkpoint(p);
                        };
                        std::size_t first = 0;
                        if constexpr (can_checkpoint) {
                            if (checkpoints.resume) {
                                node.restore_checkpoint(checkpoints.file(i));
                                first = static_cast<std::size_t>(node.stats().local_steps);
                            }
                            if (checkpoints.every != 0)
                                std::filesystem::create_directories(checkpoints.dir);
                        } else {
                            detail::require<invalid_argument_error>(
                                !checkpoints.active(), "run_in_process: node ", i,
                                " cannot save or restore checkpoints (no save_checkpoint / "
                                "restore_checkpoint: a baseline, or a system model)");
                        }
                        rng data_random(seed, n + i);
                        std::vector<value_type> grad(size);
                        for (std::size_t s = first; s < steps[i]; ++s) {
                            const double loss =
                                problem.gradient(i, static_cast<const Model&>(models[i]),
                                                 std::span<value_type>(grad), data_random);
                            node.step(std::span<const value_type>(grad));
                            on_step(i, s, loss, node.stats());
                            if constexpr (can_checkpoint) {
                                if (checkpoints.every != 0 && (s + 1) % checkpoints.every == 0)
                                    node.save_checkpoint(checkpoints.file(i));
                            }
                        }
                        node.finish();
                    } catch (...) {
                        report.nodes[i] = node.stats();
                        throw;
                    }
                    report.nodes[i] = node.stats();
                } catch (const aborted_error&) {
                    errors[i] = std::current_exception();
                } catch (const std::exception& e) {
                    errors[i] = std::current_exception();
                    if (survivable[i] == 0)
                        abort(detail::concat("node ", i, " failed: ", e.what()));
                } catch (...) {
                    errors[i] = std::current_exception();
                    if (survivable[i] == 0)
                        abort(detail::concat("node ", i, " failed with a non-standard exception"));
                }
            });
        }
    }
    report.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // Failures the others survived (failure_policy::exclude) are reported, not thrown, as long
    // as some node finished and nothing else failed.
    std::size_t finished = 0, survived = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (!errors[i])
            ++finished;
        else if (survivable[i] != 0)
            ++survived;
    }
    if (finished > 0 && finished + survived == n) {
        for (std::size_t i = 0; i < n; ++i) {
            if (!errors[i]) continue;
            try {
                std::rethrow_exception(errors[i]);
            } catch (const std::exception& e) {
                report.failures.push_back({i, e.what()});
            } catch (...) {
                report.failures.push_back({i, "a non-standard exception"});
            }
        }
        errors.assign(n, nullptr);
    }
    // Rethrow the original failure rather than the aborts it caused.
    std::exception_ptr first_abort;
    for (auto& e : errors) {
        if (!e) continue;
        try {
            std::rethrow_exception(e);
        } catch (const aborted_error&) {
            if (!first_abort) first_abort = e;
        } catch (...) {
            throw;
        }
    }
    if (first_abort) std::rethrow_exception(first_abort);
    report.consensus_distance = consensus_distance(models);
    return report;
}

/// The same over a fresh in_process_world of `models.size()` nodes (the embedded default).
template <class Model, class Problem, class MakeNode, class OnStep = no_step_callback>
swarm_report run_nodes_in_process(std::vector<Model>& models, Problem& problem,
                                  std::span<const std::size_t> steps, std::uint64_t seed,
                                  MakeNode make_node, OnStep on_step = OnStep{},
                                  const checkpoint_schedule& checkpoints = {}) {
    static_assert(detail::check_model<Model>());
    detail::require<invalid_argument_error>(!models.empty(), "run_in_process: no models (n = 0)");
    in_process_world world(models.size());
    return run_nodes_in_process(world, models, problem, steps, seed, std::move(make_node),
                                std::move(on_step), checkpoints);
}

/// Trains `models[i]` on node i with `steps[i]` local steps, one thread per node, over the
/// endpoints of `world` (any thread_world: your own transport, or a wrapper around
/// in_process_world's endpoints), until every node has finished and the shutdown protocol
/// completed. `on_step(node, step, loss, stats)` is called after each local step from that
/// node's thread (print progress from node 0, say). If a node throws, the others are stopped
/// and the first error is rethrown here (under failure_policy::fail; see run_nodes_in_process
/// for exclude). `checkpoints`: save every N local steps and resume (checkpoint_schedule).
template <thread_world World, class Model, class Problem,
          class Quant = typename detail::default_quantizer<Model>::type,
          class OnStep = no_step_callback>
swarm_report run_in_process(World& world, std::vector<Model>& models, const topology& graph,
                            Problem& problem, std::span<const std::size_t> steps,
                            const swarm_options& options, Quant quantizer = Quant{},
                            OnStep on_step = OnStep{},
                            const checkpoint_schedule& checkpoints = {}) {
    static_assert(detail::check_model<Model>());
    static_assert(detail::check_quantizer<Model, Quant>());
    // The generic driver checks n and the sizes; the topology is swarm_node's concern, but is
    // checked here, after n, so that a mismatch is reported before any thread starts.
    detail::require<invalid_argument_error>(!models.empty(), "run_in_process: no models (n = 0)");
    detail::require<topology_error>(graph.size() == models.size(), "run_in_process: topology has ",
                                    graph.size(), " nodes but there are ", models.size(),
                                    " models");
    options.validate();
    return run_nodes_in_process(
        world, models, problem, steps, options.seed,
        [&](std::size_t /*i*/, Model& model, auto& comm) {
            using comm_type = std::remove_reference_t<decltype(comm)>;
            return swarm_node<Model, comm_type, Quant>(model, comm, graph, options, quantizer);
        },
        std::move(on_step), checkpoints);
}

/// The same over a fresh in_process_world of `models.size()` nodes (the embedded default).
template <class Model, class Problem, class Quant = typename detail::default_quantizer<Model>::type,
          class OnStep = no_step_callback>
swarm_report run_in_process(std::vector<Model>& models, const topology& graph, Problem& problem,
                            std::span<const std::size_t> steps, const swarm_options& options,
                            Quant quantizer = Quant{}, OnStep on_step = OnStep{},
                            const checkpoint_schedule& checkpoints = {}) {
    static_assert(detail::check_model<Model>());
    detail::require<invalid_argument_error>(!models.empty(), "run_in_process: no models (n = 0)");
    in_process_world world(models.size());
    return run_in_process(world, models, graph, problem, steps, options, std::move(quantizer),
                          std::move(on_step), checkpoints);
}

/// Same, over `world`, with the same number of local steps on every node.
template <thread_world World, class Model, class Problem,
          class Quant = typename detail::default_quantizer<Model>::type,
          class OnStep = no_step_callback>
swarm_report run_in_process(World& world, std::vector<Model>& models, const topology& graph,
                            Problem& problem, std::size_t steps_per_node,
                            const swarm_options& options, Quant quantizer = Quant{},
                            OnStep on_step = OnStep{}) {
    static_assert(detail::check_model<Model>());
    const std::vector<std::size_t> steps(models.size(), steps_per_node);
    return run_in_process(world, models, graph, problem, std::span<const std::size_t>(steps),
                          options, std::move(quantizer), std::move(on_step));
}

/// Same, with the same number of local steps on every node.
template <class Model, class Problem, class Quant = typename detail::default_quantizer<Model>::type,
          class OnStep = no_step_callback>
swarm_report run_in_process(std::vector<Model>& models, const topology& graph, Problem& problem,
                            std::size_t steps_per_node, const swarm_options& options,
                            Quant quantizer = Quant{}, OnStep on_step = OnStep{},
                            const checkpoint_schedule& checkpoints = {}) {
    static_assert(detail::check_model<Model>());
    const std::vector<std::size_t> steps(models.size(), steps_per_node);
    return run_in_process(models, graph, problem, std::span<const std::size_t>(steps), options,
                          std::move(quantizer), std::move(on_step), checkpoints);
}

}  // namespace swarmsgd
