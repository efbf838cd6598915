// Time to accuracy in simulated seconds: Swarm SGD against allreduce SGD, local SGD, D-PSGD and
// AD-PSGD on one timed network (timed_simulator.hpp), an MLP (or ResNet-20: --model resnet20)
// on Fashion-MNIST, n nodes with their own shards. Every algorithm runs the library's production
// node code over the same data, the same step-time model and the same alpha-beta network, from the
// same seed.
//
// The network is set from a comm/compute RATIO: the time one ring allreduce of the model takes
// over the compute time of one step. allreduce SGD always runs first, as the baseline of the
// same invocation; every other algorithm's summary line gives its speedup over it:
//
//   summary experiment=time_to_accuracy n=<n> ratio=<r> stragglers=<s> algorithm=<a>
//           seconds_to_target=<t> speedup_vs_allreduce=<x> sync_share=<f> final_acc=<a>
//
// Algorithms (--algorithms, comma-separated): allreduce, local-h<H>, dpsgd, ad-psgd,
// swarm-<fp32|lattice8>-h<H>, with their learning rates from --lr or --lr-<name>.
//
// --bandwidth B (bytes/s) with --links shared|per-node sets the network directly instead of
// --ratio (a calibrated model of a real link, bench/calibrate_emulated.py). --model timing
// trains nothing: every gradient is zero, on a model of --params floats and a training set of
// --train-count images, so a run gives only the times of the algorithms' steps and exchanges
// (what the wire carries has the real sizes) in seconds instead of minutes.
// docs/experiments.md has the results and the commands; bench/time_to_accuracy.sh the sweep.
#include <swarmsgd/baselines.hpp>
#include <swarmsgd/eigen.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/swarmsgd.hpp>
#include <swarmsgd/timed_simulator.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "common/command_line.hpp"
#include "common/topology_choice.hpp"
#include "fashion_mnist/demo_common.hpp"
#include "resnet/data/fashion_mnist.hpp"
#include "resnet/data/normalization.hpp"
#include "resnet/train/evaluation.hpp"
#include "resnet/train/resnet_problem.hpp"

namespace {

namespace ex = swarmsgd::examples;
namespace rn = swarmsgd::examples::resnet;
using swarmsgd::timed_network;
using model_t = std::vector<float>;

struct options {
    std::vector<std::string> algorithms{"allreduce", "swarm-lattice8-h2"};
    std::size_t nodes = 16;
    double ratio = 1.0;                   // one allreduce of the model / one step's compute
    double stragglers = 0.0;              // fraction of the nodes that are slow
    double slowdown = 4.0;                // how much slower they are
    double epochs = 10;                   // budget: passes over the training set by all nodes
    double target = 0.85;                 // test accuracy of the mean model
    double eval_every = 0.25;             // epochs between evaluations
    std::size_t batch = 16;               // per node
    std::string model = "mlp";            // mlp, resnet20 or timing
    std::size_t params = 273754;          // --model timing: model floats (ResNet-20, 1 channel)
    std::size_t train_count = 60000;      // --model timing: training images
    std::size_t hidden = 32;              // MLP 784-hidden-10
    double lr = 0.1;                      // default learning rate of every algorithm
    std::map<std::string, double> lr_of;  // --lr-<algorithm>
    double momentum = 0.9;
    double warmup_epochs = 1.0;    // linear warm-up, then cosine decay to 0 at the budget
    double step_seconds = 0.2;     // compute time of one local step
    std::size_t cores = 0;         // cores the nodes share (0: a core per node)
    bool native_allreduce = true;  // allreduce/local SGD: the network's native collective
    double latency = 2e-6;         // alpha, seconds
    double bandwidth = 0;          // beta, bytes/s (0: from --ratio)
    swarmsgd::link_model links = swarmsgd::link_model::per_node;
    double local_seconds_per_byte = 2e-10;  // CPU cost of handling one wire byte
    std::string topology = "expander";      // graph of the decentralized algorithms
    std::uint64_t seed = 1;
    std::size_t train_limit = 0;  // use only the first N training images (tests)
    std::size_t test_limit = 0;   // evaluate on the first N test images only (0: all)
    std::string csv;
    std::string data;
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(
        stderr,
        "error: %s\nusage: time_to_accuracy [--algorithms a,b,...] [--nodes N] [--ratio R] "
        "[--stragglers F] [--slowdown K] [--epochs E] [--target ACC] [--eval-every E] "
        "[--batch B] [--model mlp|resnet20|timing] [--params N] [--train-count N] [--hidden H] "
        "[--lr R] [--lr-<algorithm> R] [--momentum M] "
        "[--warmup-epochs E] [--step-seconds S] [--cores C] [--allreduce native|ring] [--latency "
        "S] [--bandwidth BYTES_PER_S] "
        "[--links per-node|shared] [--local-seconds-per-byte S] "
        "[--topology expander|ring|torus|complete|hypercube] [--seed S] "
        "[--train-limit N] [--test-limit N] [--csv FILE] [--data DIR]\n"
        "algorithms: allreduce, local-h<H>, dpsgd, ad-psgd, swarm-<fp32|lattice8>-h<H>\n",
        why.c_str());
    std::exit(2);
}

options parse(int argc, char** argv) try {
    options o;
    ex::command_line args(argc, argv);
    auto count = [&](double lo) { return static_cast<std::size_t>(args.whole_number(lo, 1e9)); };
    while (args.next()) {
        const std::string& arg = args.option();
        if (arg == "--algorithms") {
            o.algorithms.clear();
            std::stringstream list(args.value());
            for (std::string a; std::getline(list, a, ',');)
                if (!a.empty()) o.algorithms.push_back(a);
        } else if (arg == "--nodes")
            o.nodes = count(1);
        else if (arg == "--ratio")
            o.ratio = args.number(1e-6, 1e6);
        else if (arg == "--stragglers")
            o.stragglers = args.number(0, 1);
        else if (arg == "--slowdown")
            o.slowdown = args.number(1, 1e6);
        else if (arg == "--epochs")
            o.epochs = args.number(1e-3, 1e4);
        else if (arg == "--target")
            o.target = args.number(0, 1);
        else if (arg == "--eval-every")
            o.eval_every = args.number(1e-3, 1e4);
        else if (arg == "--batch")
            o.batch = count(1);
        else if (arg == "--hidden")
            o.hidden = count(0);
        else if (arg == "--model")
            o.model = args.choice({"mlp", "resnet20", "timing"});
        else if (arg == "--lr")
            o.lr = args.number(0, 1e3);
        else if (arg.rfind("--lr-", 0) == 0)
            o.lr_of[arg.substr(5)] = args.number(0, 1e3);
        else if (arg == "--momentum")
            o.momentum = args.number(0, 0.999);
        else if (arg == "--warmup-epochs")
            o.warmup_epochs = args.number(0, 1e4);
        else if (arg == "--step-seconds")
            o.step_seconds = args.number(1e-9, 1e6);
        else if (arg == "--allreduce")
            o.native_allreduce = args.choice({"native", "ring"}) == "native";
        else if (arg == "--cores")
            o.cores = static_cast<std::size_t>(args.whole_number(0, 1e6));
        else if (arg == "--params")
            o.params = static_cast<std::size_t>(args.whole_number(1, 1e10));
        else if (arg == "--train-count")
            o.train_count = static_cast<std::size_t>(args.whole_number(1, 1e10));
        else if (arg == "--bandwidth")
            o.bandwidth = args.number(1, 1e15);
        else if (arg == "--links")
            o.links = args.choice({"shared", "per-node"}) == "shared"
                          ? swarmsgd::link_model::shared
                          : swarmsgd::link_model::per_node;
        else if (arg == "--latency")
            o.latency = args.number(0, 1e3);
        else if (arg == "--local-seconds-per-byte")
            o.local_seconds_per_byte = args.number(0, 1);
        else if (arg == "--topology")
            o.topology = args.value();
        else if (arg == "--seed")
            o.seed = static_cast<std::uint64_t>(args.whole_number(0, 1e18));
        else if (arg == "--train-limit")
            o.train_limit = count(1);
        else if (arg == "--test-limit")
            o.test_limit = count(1);
        else if (arg == "--csv")
            o.csv = args.value();
        else if (arg == "--data")
            o.data = args.value();
        else
            args.unknown();
    }
    if (o.warmup_epochs >= o.epochs && o.warmup_epochs > 0)
        usage("--warmup-epochs (" + std::to_string(o.warmup_epochs) +
              ") must be shorter than --epochs (" + std::to_string(o.epochs) + ")");
    return o;
} catch (const ex::usage_error& e) {
    usage(e.what());
}

/// One algorithm of the command line.
struct algorithm_spec {
    std::string name;  // as given
    std::string kind;  // allreduce, local, dpsgd, ad-psgd, swarm
    std::string quantizer = "fp32";
    std::size_t h = 1;
};

algorithm_spec parse_algorithm(const std::string& name) {
    algorithm_spec a{name, name};
    auto parse_h = [&](const std::string& text) {
        if (text.size() < 2 || text[0] != 'h') usage("algorithm " + name + ": expected h<H>");
        const long h = std::strtol(text.c_str() + 1, nullptr, 10);
        if (h < 1) usage("algorithm " + name + ": H must be >= 1");
        return static_cast<std::size_t>(h);
    };
    if (name == "allreduce" || name == "dpsgd" || name == "ad-psgd") return a;
    if (name.rfind("local-", 0) == 0) {
        a.kind = "local";
        a.h = parse_h(name.substr(6));
        return a;
    }
    if (name.rfind("swarm-", 0) == 0) {
        a.kind = "swarm";
        const auto rest = name.substr(6);
        const auto dash = rest.find('-');
        if (dash == std::string::npos) usage("algorithm " + name + ": expected swarm-<q>-h<H>");
        a.quantizer = rest.substr(0, dash);
        if (a.quantizer != "fp32" && a.quantizer != "lattice8")
            usage("algorithm " + name + ": quantizer must be fp32 or lattice8");
        a.h = parse_h(rest.substr(dash + 1));
        return a;
    }
    usage("unknown algorithm " + name);
}

swarmsgd::topology make_graph(const std::string& name, std::size_t n, std::uint64_t seed) {
    try {
        return ex::make_topology(name, n, seed);
    } catch (const swarmsgd::invalid_argument_error& e) {
        usage(e.what());
    }
}

/// Warm-up then cosine decay over `total` steps of one node.
std::function<double(std::size_t, double)> schedule(std::size_t warmup, std::size_t total) {
    return [warmup, total](std::size_t t, double base) {
        if (t < warmup) return base * static_cast<double>(t + 1) / static_cast<double>(warmup);
        const double span = static_cast<double>(std::max<std::size_t>(total - warmup, 1));
        const double progress = std::min(1.0, static_cast<double>(t - warmup) / span);
        return base * 0.5 * (1 + std::cos(3.141592653589793 * progress));
    };
}

/// What one algorithm's run measured.
struct result {
    std::string algorithm;
    std::optional<double> seconds_to_target;
    double epochs_to_target = 0;
    double final_accuracy = 0;
    double sync_share = 0;
    double waiting_share = 0;
    double seconds = 0;
    double bytes_per_node = 0;
    double wall_seconds = 0;
};

/// What the algorithms train: the starting model, its training-set size, and the test accuracy
/// and loss of a model (the loss is NaN where the evaluation does not give one).
struct workload {
    std::string description;
    std::size_t train_count = 0;
    model_t initial;
    std::function<std::pair<double, double>(const model_t&)> evaluate;
};

/// --model timing: every gradient is zero (only the times of a run mean something).
struct zero_gradient_problem {
    double gradient(std::size_t, const model_t&, std::span<float> grad, swarmsgd::rng&) const {
        std::fill(grad.begin(), grad.end(), 0.0F);
        return 0.0;
    }
};

struct environment {
    const options& opt;
    const workload& work;
    const swarmsgd::topology& graph;
    swarmsgd::network_model network;
    std::ofstream* csv;
};

/// Runs one algorithm on `problem`: node i is make_node(i, model, endpoint, sgd_options).
template <class Problem, class MakeNode>
result run(const environment& env, Problem& problem, const algorithm_spec& spec, double lr,
           bool synchronous, MakeNode make_node) {
    const options& o = env.opt;
    const std::size_t n = o.nodes;
    const auto examples = static_cast<double>(env.work.train_count);
    const auto steps_per_node = static_cast<std::uint64_t>(
        std::ceil(o.epochs * examples / static_cast<double>(o.batch * n)));
    const auto warmup_steps =
        static_cast<std::size_t>(o.warmup_epochs * examples / static_cast<double>(o.batch * n));

    swarmsgd::sgd_options sgd;
    sgd.learning_rate = lr;
    sgd.momentum = o.momentum;
    sgd.schedule = schedule(warmup_steps, steps_per_node);

    std::vector<model_t> models(n, env.work.initial);
    swarmsgd::timed_options timed;
    timed.compute = {.step_seconds = o.step_seconds,
                     .straggler_fraction = o.stragglers,
                     .straggler_slowdown = o.slowdown,
                     .cores = o.cores};
    timed.network = env.network;
    timed.seed = o.seed;
    if (spec.kind == "dpsgd") timed.wait_graph = &env.graph;
    swarmsgd::timed_simulator sim(models, problem, timed,
                                  [&](std::size_t i, model_t& m, timed_network::endpoint& c) {
                                      return make_node(i, m, c, sgd);
                                  });
    result r;
    r.algorithm = spec.name;
    const auto wall_start = std::chrono::steady_clock::now();
    double next_eval = o.eval_every;
    model_t mean(env.work.initial.size());
    auto evaluate = [&](const auto& s, double epoch) {
        const auto mu = s.mean_model();
        std::transform(mu.begin(), mu.end(), mean.begin(),
                       [](double v) { return static_cast<float>(v); });
        const auto [accuracy, loss] = env.work.evaluate(mean);
        if (!r.seconds_to_target && accuracy >= o.target) {
            r.seconds_to_target = s.now();
            r.epochs_to_target = epoch;
        }
        r.final_accuracy = accuracy;
        // The ResNet's evaluation gives no loss (NaN): the line then leaves it out.
        if (std::isnan(loss))
            std::printf("  %-18s epoch %6.2f  t = %10.2f s  test acc %.2f%%\n", spec.name.c_str(),
                        epoch, s.now(), 100 * accuracy);
        else
            std::printf("  %-18s epoch %6.2f  t = %10.2f s  test acc %.2f%%  loss %.4f\n",
                        spec.name.c_str(), epoch, s.now(), 100 * accuracy, loss);
        std::fflush(stdout);
        if (env.csv != nullptr)
            *env.csv << spec.name << ',' << n << ',' << o.ratio << ',' << o.stragglers << ','
                     << epoch << ',' << s.now() << ',' << accuracy << ',' << loss << '\n';
    };
    sim.run(synchronous ? swarmsgd::timed_budget{.steps_per_node = steps_per_node}
                        : swarmsgd::timed_budget{.total_steps = steps_per_node * n},
            [&](const auto& s) {
                const double epoch = static_cast<double>(s.completed_steps() * o.batch) / examples;
                if (epoch + 1e-9 >= next_eval) {
                    evaluate(s, epoch);
                    next_eval += o.eval_every;
                }
            });
    const double final_epoch = static_cast<double>(sim.completed_steps() * o.batch) / examples;
    if (next_eval - o.eval_every + 1e-9 < final_epoch) evaluate(sim, final_epoch);
    const auto total = sim.total_times();
    r.sync_share = total.sync_share();
    r.waiting_share = total.total() > 0 ? total.waiting / total.total() : 0.0;
    r.seconds = sim.now();
    double bytes = 0;
    for (std::size_t i = 0; i < n; ++i) bytes += static_cast<double>(sim.network().bytes_sent(i));
    r.bytes_per_node = bytes / static_cast<double>(n);
    r.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    return r;
}

/// Runs `spec` with a fresh problem from `make_problem()` (node i samples its own shard from
/// its own data stream, so every algorithm sees the same data).
template <class MakeProblem>
result run_algorithm(const environment& env, const algorithm_spec& spec, double lr,
                     MakeProblem make_problem) {
    const options& o = env.opt;
    const auto& graph = env.graph;
    auto problem = make_problem();
    // Wall-clock timeouts mean nothing in simulated time: set out of reach.
    const auto never = std::chrono::hours(24);
    auto swarm_like = [&](std::size_t h, const swarmsgd::sgd_options& sgd) {
        swarmsgd::swarm_options s;
        s.steps = swarmsgd::local_steps::fixed(h);
        s.sgd = sgd;
        s.seed = o.seed;
        s.reply_timeout = never;
        return s;
    };
    using endpoint = timed_network::endpoint;
    using sgd_t = swarmsgd::sgd_options;
    if (spec.kind == "allreduce")
        return run(env, *problem, spec, lr, true,
                   [&](std::size_t, model_t& m, endpoint& c, const sgd_t& sgd) {
                       swarmsgd::allreduce_sgd_options a;
                       a.sgd = sgd;
                       a.timeout = never;
                       a.use_native_collective = env.opt.native_allreduce;
                       return swarmsgd::allreduce_sgd_node(m, c, graph, a);
                   });
    if (spec.kind == "local")
        return run(env, *problem, spec, lr, true,
                   [&](std::size_t, model_t& m, endpoint& c, const sgd_t& sgd) {
                       swarmsgd::local_sgd_options a;
                       a.sgd = sgd;
                       a.period = spec.h;
                       a.timeout = never;
                       a.use_native_collective = env.opt.native_allreduce;
                       return swarmsgd::local_sgd_node(m, c, graph, a);
                   });
    if (spec.kind == "dpsgd")
        return run(env, *problem, spec, lr, true,
                   [&](std::size_t, model_t& m, endpoint& c, const sgd_t& sgd) {
                       swarmsgd::dpsgd_options a;
                       a.sgd = sgd;
                       a.timeout = never;
                       return swarmsgd::dpsgd_node(m, c, graph, a);
                   });
    if (spec.kind == "ad-psgd")
        return run(env, *problem, spec, lr, false,
                   [&](std::size_t, model_t& m, endpoint& c, const sgd_t& sgd) {
                       auto s = swarmsgd::ad_psgd_options(sgd, o.seed);
                       s.reply_timeout = never;
                       return swarmsgd::swarm_node(m, c, graph, s);
                   });
    if (spec.quantizer == "lattice8")
        return run(env, *problem, spec, lr, false,
                   [&](std::size_t, model_t& m, endpoint& c, const sgd_t& sgd) {
                       return swarmsgd::swarm_node(m, c, graph, swarm_like(spec.h, sgd),
                                                   swarmsgd::lattice_quantizer<float>(
                                                       swarmsgd::lattice_options{.bits = 8}));
                   });
    return run(env, *problem, spec, lr, false,
               [&](std::size_t, model_t& m, endpoint& c, const sgd_t& sgd) {
                   return swarmsgd::swarm_node(m, c, graph, swarm_like(spec.h, sgd));
               });
}

}  // namespace

int main(int argc, char** argv) try {
    options o = parse(argc, argv);
    // One thread drives every node: no parallel products inside a node (with OpenMP, Eigen's
    // worker threads would spin against the other processes of a sweep).
    Eigen::setNbThreads(1);
    std::vector<algorithm_spec> specs;
    specs.push_back(parse_algorithm("allreduce"));  // the baseline of every invocation
    for (const auto& a : o.algorithms)
        if (a != "allreduce") specs.push_back(parse_algorithm(a));

    const auto dir =
        o.data.empty() ? ex::default_fashion_mnist_dir() : std::filesystem::path(o.data);
    // Both workloads read the same files, each in the form its network wants.
    std::optional<ex::image_set> mlp_train, mlp_test;
    std::optional<ex::mlp_layout> layout;
    std::optional<rn::image_dataset> rn_train, rn_test;
    rn::channel_normalization norm;
    rn::resnet_config config;
    workload work;
    if (o.model == "timing") {
        work.description = "timing only (" + std::to_string(o.params) + " floats, zero gradients)";
        work.train_count = o.train_count;
        work.initial.assign(o.params, 0.0F);
        work.evaluate = [](const model_t&) {
            return std::pair{std::numeric_limits<double>::quiet_NaN(),
                             std::numeric_limits<double>::quiet_NaN()};
        };
    } else if (o.model == "mlp") {
        mlp_train = ex::load_fashion_mnist(dir, true);
        mlp_test = ex::load_fashion_mnist(dir, false);
        if (o.train_limit > 0 && o.train_limit < mlp_train->count) {
            mlp_train->count = o.train_limit;
            mlp_train->pixels.resize(mlp_train->count * mlp_train->pixels_per_image());
            mlp_train->labels.resize(mlp_train->count);
        }
        if (o.test_limit > 0 && o.test_limit < mlp_test->count) {
            mlp_test->count = o.test_limit;
            mlp_test->pixels.resize(mlp_test->count * mlp_test->pixels_per_image());
            mlp_test->labels.resize(mlp_test->count);
        }
        layout.emplace(mlp_train->pixels_per_image(), o.hidden, 10);
        work.description = "MLP 784-" + std::to_string(o.hidden) + "-10";
        work.train_count = mlp_train->count;
        work.initial.resize(layout->parameter_count());
        ex::init_params(*layout, work.initial, o.seed);
        work.evaluate = [&](const model_t& m) {
            const auto e = ex::evaluate(*layout, m, *mlp_test);
            return std::pair{e.accuracy, e.loss};
        };
    } else {
        rn_train = rn::load_fashion_mnist_dataset(dir, true);
        rn_test = rn::load_fashion_mnist_dataset(dir, false);
        if (o.train_limit > 0 && o.train_limit < rn_train->count()) {
            rn_train->labels.resize(o.train_limit);
            rn_train->pixels.resize(o.train_limit * rn_train->image_bytes());
        }
        if (o.test_limit > 0 && o.test_limit < rn_test->count()) {
            rn_test->labels.resize(o.test_limit);
            rn_test->pixels.resize(o.test_limit * rn_test->image_bytes());
        }
        norm = rn::measure_normalization(*rn_train);
        config.depth = 20;
        config.in_channels = rn_train->channels;
        config.image_size = rn_train->height;
        config.classes = rn_train->classes;
        config.validate();
        const rn::resnet net(config, 1);
        work.description = "ResNet-20";
        work.train_count = rn_train->count();
        work.initial.resize(net.parameter_count());
        net.initialize(std::span<float>(work.initial), o.seed);
        work.evaluate = [&](const model_t& m) {
            return std::pair{rn::test_accuracy(config, m, *rn_test, norm),
                             std::numeric_limits<double>::quiet_NaN()};
        };
    }
    const auto graph = make_graph(o.topology, o.nodes, o.seed);

    // The network: alpha from --latency, beta such that a ring allreduce of the model,
    // 2 (n - 1) (alpha + chunk / beta), takes ratio * step_seconds.
    const std::size_t n = o.nodes;
    swarmsgd::network_model network;
    network.latency_seconds = o.latency;
    network.local_seconds_per_byte = o.local_seconds_per_byte;
    const double hops = 2.0 * static_cast<double>(n - 1);
    double allreduce_seconds = o.ratio * o.step_seconds;
    if (o.bandwidth > 0) {  // the network as given; the ratio follows from it
        network.bandwidth_bytes_per_second = o.bandwidth;
        network.links = o.links;
        allreduce_seconds = network.ring_allreduce_seconds(work.initial.size(), sizeof(float), n);
        o.ratio = allreduce_seconds / o.step_seconds;  // what the summary lines report
    } else if (n > 1) {
        const double transfer = allreduce_seconds - hops * o.latency;
        if (transfer <= 0)
            usage("--ratio " + std::to_string(o.ratio) +
                  " is below the latency alone: " + std::to_string(hops) + " hops x " +
                  std::to_string(o.latency) + " s >= ratio x step_seconds; lower --latency");
        network.bandwidth_bytes_per_second =
            hops *
            static_cast<double>(
                swarmsgd::network_model::ring_chunk_bytes(work.initial.size(), sizeof(float), n)) /
            transfer;
    }
    std::printf(
        "time_to_accuracy: %s (%zu parameters, %.1f KiB fp32), Fashion-MNIST (%zu train), n = "
        "%zu, batch %zu per node, %.2f epochs, target %.1f%%\n"
        "  compute %.3f s per step (%s), stragglers %.0f%% at %.1fx; network alpha = %.2e s, beta "
        "= "
        "%.3e B/s (%.3f Gbit/s, %s): one allreduce of the model = %.4f s = ratio %.3g; graph %s\n",
        work.description.c_str(), work.initial.size(),
        static_cast<double>(work.initial.size() * 4) / 1024, work.train_count, n, o.batch, o.epochs,
        100 * o.target, o.step_seconds,
        o.cores == 0 ? "a core per node" : (std::to_string(o.cores) + " shared cores").c_str(),
        100 * o.stragglers, o.slowdown, network.latency_seconds, network.bandwidth_bytes_per_second,
        network.bandwidth_bytes_per_second * 8e-9,
        network.links == swarmsgd::link_model::shared ? "one shared link" : "a link per node",
        allreduce_seconds, o.ratio, graph.name().c_str());

    std::ofstream csv_file;
    if (!o.csv.empty()) {
        csv_file.open(o.csv);
        if (!csv_file) usage("cannot write " + o.csv);
        csv_file << "algorithm,n,ratio,stragglers,epoch,seconds,accuracy,loss\n";
    }
    const environment env{o, work, graph, network, o.csv.empty() ? nullptr : &csv_file};

    std::vector<result> results;
    for (const auto& spec : specs) {
        const double lr = o.lr_of.count(spec.name) != 0 ? o.lr_of.at(spec.name) : o.lr;
        std::printf("%s (lr %.4g)\n", spec.name.c_str(), lr);
        if (o.model == "timing")
            results.push_back(run_algorithm(
                env, spec, lr, [&] { return std::make_unique<zero_gradient_problem>(); }));
        else if (o.model == "mlp")
            results.push_back(run_algorithm(env, spec, lr, [&] {
                return std::make_unique<ex::demo::shard_problem>(*mlp_train, *layout, n, o.batch,
                                                                 o.seed);
            }));
        else
            results.push_back(run_algorithm(env, spec, lr, [&] {
                return std::make_unique<rn::resnet_problem>(
                    config, static_cast<int>(o.batch), *rn_train, norm, n, false, 0.0F, o.seed);
            }));
    }

    const result& base = results.front();
    std::printf("\n");
    for (const auto& r : results) {
        const bool both = r.seconds_to_target && base.seconds_to_target;
        const double speedup = both ? *base.seconds_to_target / *r.seconds_to_target : 0.0;
        char seconds[32] = "none", speed[32] = "none";
        if (r.seconds_to_target)
            std::snprintf(seconds, sizeof seconds, "%.3f", *r.seconds_to_target);
        if (both) std::snprintf(speed, sizeof speed, "%.3f", speedup);
        std::printf(
            "summary experiment=time_to_accuracy n=%zu ratio=%g stragglers=%g algorithm=%s "
            "seconds_to_target=%s speedup_vs_allreduce=%s sync_share=%.4f final_acc=%.4f "
            "epochs_to_target=%.2f waiting_share=%.4f seconds=%.3f bytes_per_node=%.0f "
            "wall_seconds=%.1f\n",
            n, o.ratio, o.stragglers, r.algorithm.c_str(), seconds, speed, r.sync_share,
            r.final_accuracy, r.epochs_to_target, r.waiting_share, r.seconds, r.bytes_per_node,
            r.wall_seconds);
    }
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "time_to_accuracy: %s\n", e.what());
    return 1;
}
