#pragma once
// The semantic test suite shared by every communicator. A harness runs n nodes (all in this
// process, or one per MPI rank) and returns every node's initial model, final model and sum of
// applied gradients; the scenarios below check the invariants on that outcome, so the same
// checks run unchanged over the simulator, the in-process threads and MPI ranks.
//
// A harness is a callable:  run_outcome harness(const scenario& s)

#include <chrono>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <swarmsgd/swarmsgd.hpp>

namespace test_support::semantics {

/// What to run.
struct scenario {
    std::string name;
    std::size_t nodes = 4;
    std::size_t dim = 5;
    std::size_t steps = 200;  ///< local steps per node
    swarmsgd::swarm_options options;
    bool zero_gradient = false;  ///< pure gossip
    bool straggler = false;      ///< node 0 is 10x slower (where the harness has time)
    /// Node i's optimum is c_i[k] = i + k (true) or k for every node (false). With threads or
    /// ranks that finish at different times, a heterogeneous optimum is only reached when
    /// they run evenly; the deterministic simulator tests cover that case.
    bool heterogeneous = true;
};

/// Node i's objective 0.5 ||x - c_i||^2 with c_i[k] = i + k, or k (optimum: the mean of the c_i).
inline double target(const scenario& s, std::size_t node, std::size_t k) {
    return (s.heterogeneous ? double(node) : 0.0) + double(k);
}

/// Node i's initial model (deterministic in node and k).
inline std::vector<double> initial_model(std::size_t node, std::size_t dim) {
    swarmsgd::rng r(1234, node);
    std::vector<double> x(dim);
    for (auto& v : x) v = r.uniform01() * 10 - 5;
    return x;
}

/// Writes node's gradient at x into g and returns the loss.
inline double gradient(const scenario& s, std::size_t node, const std::vector<double>& x,
                       std::span<double> g) {
    double loss = 0;
    for (std::size_t k = 0; k < x.size(); ++k) {
        g[k] = s.zero_gradient ? 0.0 : x[k] - target(s, node, k);
        loss += 0.5 * g[k] * g[k];
    }
    return loss;
}

/// Every node's models and gradient sums after a run.
struct run_outcome {
    std::vector<std::vector<double>> initial, final, gradient_sums;
    std::uint64_t interactions_completed = 0, interactions_served = 0;
};

using failures = std::vector<std::string>;

/// sum_i X_i(T) == sum_i X_i(0) - lr * sum of every gradient (plain SGD), to fp tolerance.
inline failures mean_preserved(const run_outcome& o, double lr) {
    failures f;
    for (std::size_t k = 0; k < o.final[0].size(); ++k) {
        double before = 0, after = 0, grads = 0;
        for (std::size_t i = 0; i < o.final.size(); ++i) {
            before += o.initial[i][k];
            after += o.final[i][k];
            grads += o.gradient_sums[i][k];
        }
        const double expected = before - lr * grads;
        if (std::abs(after - expected) > 1e-9 * (1 + std::abs(expected)))
            f.push_back(swarmsgd::detail::concat("coordinate ", k, ": sum of models ", after,
                                                 ", expected ", expected));
    }
    if (o.interactions_completed != o.interactions_served)
        f.push_back(swarmsgd::detail::concat(o.interactions_completed,
                                             " interactions completed but ", o.interactions_served,
                                             " served"));
    return f;
}

/// Gamma / (initial Gamma) below `ratio`, and every model at the initial mean.
inline failures reached_consensus(const run_outcome& o, double ratio) {
    failures f;
    const double g0 = swarmsgd::consensus_distance(o.initial),
                 g1 = swarmsgd::consensus_distance(o.final);
    if (!(g1 <= ratio * g0))
        f.push_back(swarmsgd::detail::concat("Gamma ", g1, " > ", ratio, " * ", g0, " after ",
                                             o.interactions_completed, " interactions"));
    const auto mu0 = swarmsgd::mean_model(o.initial);
    for (const auto& m : o.final)
        for (std::size_t k = 0; k < m.size(); ++k)
            if (std::abs(m[k] - mu0[k]) > 1e-6 * (1 + std::abs(mu0[k])))
                f.push_back(swarmsgd::detail::concat("model coordinate ", k, " = ", m[k], ", mean ",
                                                     mu0[k]));
    return f;
}

/// The mean model is within `tolerance` of the optimum (the mean of the targets).
inline failures converged(const scenario& s, const run_outcome& o, double tolerance) {
    failures f;
    const auto mu = swarmsgd::mean_model(o.final);
    const double offset = s.heterogeneous ? (double(o.final.size()) - 1) / 2 : 0.0;
    for (std::size_t k = 0; k < mu.size(); ++k)
        if (std::abs(mu[k] - (offset + double(k))) > tolerance * (1 + offset))
            f.push_back(swarmsgd::detail::concat("mean coordinate ", k, " = ", mu[k], ", optimum ",
                                                 offset + double(k)));
    return f;
}

/// A harness for any model type over the library's in-process drivers: the simulator's
/// asynchronous schedule (Threads = false; a straggler runs at a tenth of the speed) or one
/// thread per node (run_in_process; node 0 sleeps longer per step as the straggler), on the
/// complete graph, with quantizer Quant. `IO` converts between the scenario's values and a
/// model: `static Model make(const std::vector<double>&)` and
/// `static std::vector<double> values(const Model&)` (a model must share its values with its
/// copies, or be the one the driver trains: the driver is given `models` and IO::values reads
/// the same objects afterwards).
template <class Model, bool Threads, class Quant, class IO>
struct driver_harness {
    run_outcome operator()(const scenario& s) const {
        run_outcome o;
        for (std::size_t i = 0; i < s.nodes; ++i) o.initial.push_back(initial_model(i, s.dim));
        o.gradient_sums.assign(s.nodes, std::vector<double>(s.dim, 0.0));
        std::vector<Model> models;
        for (const auto& x : o.initial) models.push_back(IO::make(x));
        struct problem {
            const scenario* s;
            std::vector<std::vector<double>>* sums;
            double gradient(std::size_t node, const Model& x, std::span<double> g,
                            swarmsgd::rng&) const {
                const double loss = semantics::gradient(*s, node, IO::values(x), g);
                for (std::size_t k = 0; k < g.size(); ++k) (*sums)[node][k] += g[k];
                if (Threads)
                    std::this_thread::sleep_for(
                        std::chrono::microseconds(node == 0 && s->straggler ? 200 : 20));
                return loss;
            }
        } p{&s, &o.gradient_sums};
        const auto g = swarmsgd::topology::complete(s.nodes);
        if constexpr (Threads) {
            const auto report = swarmsgd::run_in_process(models, g, p, s.steps, s.options, Quant{});
            o.interactions_completed = report.total().interactions_completed;
            o.interactions_served = report.total().interactions_served;
        } else {
            swarmsgd::simulator_options so;
            so.node = s.options;
            so.schedule = swarmsgd::simulation_schedule::asynchronous;
            if (so.node.mode == swarmsgd::averaging_mode::blocking)
                so.node.mode = swarmsgd::averaging_mode::nonblocking;
            so.max_delay = 10;
            so.speeds.assign(s.nodes, 1.0);
            if (s.straggler) so.speeds[0] = 0.1;
            swarmsgd::simulator<Model, problem, Quant> sim(models, g, p, so, Quant{});
            sim.run(s.steps * s.nodes);
            sim.drain();
            o.interactions_completed = sim.total_stats().interactions_completed;
            o.interactions_served = sim.total_stats().interactions_served;
        }
        for (const auto& m : models) o.final.push_back(IO::values(m));
        return o;
    }
};

/// The scenarios every communicator must pass; `run` is the harness.
template <class Harness>
std::vector<std::pair<std::string, failures>> run_all(Harness& run, std::size_t nodes) {
    using swarmsgd::averaging_mode;
    std::vector<std::pair<std::string, failures>> results;
    for (auto mode : {averaging_mode::nonblocking, averaging_mode::blocking}) {
        scenario s;
        s.name = std::string("mean preserved, ") + swarmsgd::to_string(mode) + ", straggler";
        s.nodes = nodes;
        s.options.mode = mode;
        s.options.sgd.learning_rate = 0.01;
        s.options.steps = swarmsgd::local_steps::geometric(2);
        s.options.max_in_flight = 2;
        s.straggler = true;
        results.emplace_back(s.name, mean_preserved(run(s), 0.01));
    }
    {
        scenario s;
        s.name = "pure gossip reaches the initial mean";
        s.nodes = nodes;
        s.zero_gradient = true;
        s.options.sgd.learning_rate = 0;
        s.steps = 3000;
        results.emplace_back(s.name, reached_consensus(run(s), 1e-12));
    }
    {
        scenario s;
        s.name = "quadratic converges";
        s.nodes = nodes;
        s.heterogeneous = false;
        // Blocking: a reply cannot land long after its request (on a loaded machine a
        // non-blocking reply may, and then moves a model by an old difference when no local
        // steps remain to absorb it; the mean stays exact, the final models do not).
        s.options.mode = averaging_mode::blocking;
        s.steps = 1500;
        s.options.sgd.learning_rate = 0.05;
        s.options.sgd.schedule = [](std::size_t t, double base) {
            return base / (1.0 + double(t) / 200.0);
        };
        results.emplace_back(s.name, converged(s, run(s), 0.02));
    }
    return results;
}

}  // namespace test_support::semantics
