#pragma once
/// \file options.hpp
/// The command line of resnet_swarm and resnet_swarm_mpi. Every invalid option is a
/// usage_error whose message names the option and the value given.

#include <swarmsgd/errors.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "../../common/checks.hpp"

namespace swarmsgd::examples::resnet {

/// An invalid command line (the programs print it with the usage and exit with status 2).
class usage_error : public invalid_argument_error {
public:
    using invalid_argument_error::invalid_argument_error;
};

/// Everything the command line sets.
struct run_options {
    std::string dataset = "fashion-mnist";  ///< fashion-mnist | cifar10 | cifar100
    std::string data;                       ///< data directory ("" = the data set's default)
    std::size_t nodes = 8;                  ///< swarm size (in-process); ranks under MPI
    double epochs = 1;                      ///< passes over the training data by all nodes
    int depth = 20;                         ///< 6k+2
    int width = 16;                         ///< channels of the first stage
    int batch = 128;                        ///< per node and step
    double lr = 0.1;                        ///< base learning rate
    double momentum = 0.9;                  ///< SGD momentum
    double weight_decay = 5e-4;             ///< L2 on the trainable parameters
    std::string schedule = "cosine";        ///< cosine | step
    double warmup_epochs = 0;               ///< linear warm-up of the learning rate
    std::string quantizer = "lattice8";     ///< see quantizer_names
    double h = 2;                           ///< local steps between interactions
    bool geometric = false;                 ///< H geometric with mean h
    std::string topology = "ring";          ///< ring | complete | torus | hypercube
    std::string mode = "nonblocking";       ///< nonblocking | blocking | pull
    bool augment = false;                   ///< random crop (padding 4) + horizontal flip
    std::size_t train_limit = 0;            ///< train on this many images (0 = all)
    std::size_t test_limit = 0;             ///< evaluate on the first N test images (0 = all)
    std::string csv = "resnet_swarm.csv";   ///< per-epoch CSV
    std::string plot = "resnet_swarm.png";  ///< PNG plot ("" = none)
    std::uint64_t seed = 1;                 ///< every random choice
    /// MPI only: swarm | allreduce | local (the baselines of <swarmsgd/baselines.hpp>).
    std::string algorithm = "swarm";
    std::size_t period = 8;   ///< MPI only, --algorithm local: H of local SGD
    std::string export_plan;  ///< MPI only: write the run's data plan here and exit
    double eval_every = 1;    ///< epochs between two evaluations (the last one ends the run)
    /// MPI only: reduce and evaluate the boundaries' models after training, so that the
    /// measurement costs the training neither network traffic nor CPU time.
    bool deferred_evaluation = false;
    /// MPI only: a file holding a byte counter (/sys/class/net/lo/statistics/tx_bytes);
    /// rank 0 prints how much it grew during training.
    std::string traffic_counter;
};

/// The accepted --quantizer values.
inline const std::vector<std::string> quantizer_names = {
    "identity", "fp16", "bf16", "lattice8", "lattice4", "minmax8", "minmax4", "qsgd"};

/// The usage text (`program` is the name printed; `mpi` drops --nodes).
[[nodiscard]] inline std::string usage_text(const std::string& program, bool mpi) {
    return swarmsgd::examples::concat(
        "usage: ", program, " [options]\n",
        "  --dataset fashion-mnist|cifar10|cifar100   (default fashion-mnist)\n"
        "  --data DIR            data directory (Fashion-MNIST: /usr/share/datasets/fashion-mnist\n"
        "                        or $SWARMSGD_FASHION_MNIST_DIR; CIFAR: the unpacked binary "
        "version)\n",
        mpi ? "" : "  --nodes N             in-process nodes (default 8)\n",
        "  --epochs E            passes over the training data by all nodes, fractional ok (1)\n"
        "  --depth D             ResNet depth 6k+2: 8, 14, 20, 32, 44, 56, 110 (20)\n"
        "  --width W             channels of the first stage (16)\n"
        "  --batch B             images per node and step (128)\n"
        "  --lr R                base learning rate (0.1)\n"
        "  --momentum M          (0.9)\n"
        "  --weight-decay W      L2 on weights, not on BN running stats (5e-4)\n"
        "  --schedule cosine|step  cosine decay, or x0.1 at 50% and 75% of the run (cosine)\n"
        "  --warmup-epochs E     linear learning-rate warm-up (0)\n"
        "  --quantizer identity|fp16|bf16|lattice8|lattice4|minmax8|minmax4|qsgd  (lattice8)\n"
        "  --H H                 local steps between averagings (2); --geometric: mean H\n"
        "  --topology ring|complete|torus|hypercube  (ring)\n"
        "  --mode nonblocking|blocking|pull  (nonblocking)\n"
        "  --augment             random crop (4-pixel zero padding) + horizontal flip\n"
        "  --train-limit N       train on N images drawn at random (all)\n"
        "  --test-limit N        evaluate on the first N test images (all)\n"
        "  --csv PATH            per-epoch CSV (resnet_swarm.csv)\n"
        "  --plot PATH           PNG plot made with gnuplot (resnet_swarm.png); --no-plot: none\n"
        "  --eval-every E        epochs between evaluations of the mean model (1)\n"
        "  --seed S              (1)\n",
        mpi ? "  --algorithm swarm|allreduce|local  Swarm SGD (default), allreduce SGD (the\n"
              "                        gradients averaged every step) or local SGD (the models\n"
              "                        averaged every --period steps, 8); both over\n"
              "                        MPI_Iallreduce with --quantizer identity, else a ring\n"
              "  --export-plan DIR     write each rank's shard, batch order, the initial model "
              "and\n"
              "                        the test set to DIR (bench/ddp_resnet20.py trains on it)\n"
              "                        and exit without training\n"
              "  --deferred-evaluation reduce and evaluate the models of every boundary after\n"
              "                        training (timed when the last rank reached it), so that\n"
              "                        measuring costs the run no traffic and no CPU\n"
              "  --traffic-counter FILE  a file holding a byte counter, e.g.\n"
              "                        /sys/class/net/lo/statistics/tx_bytes: rank 0 prints\n"
              "                        'traffic bytes=N', how much it grew during training\n"
            : "");
}

namespace cli {

[[noreturn]] inline void bad(const std::string& what) { throw usage_error(what); }

[[nodiscard]] inline bool one_of(const std::string& v, const std::vector<std::string>& allowed) {
    for (const auto& a : allowed)
        if (v == a) return true;
    return false;
}

[[nodiscard]] inline std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
}

}  // namespace cli

/// Parses argv. `mpi` rejects --nodes (the swarm has one node per rank). Throws usage_error
/// naming the option and value for anything invalid, and for --help (message "help").
[[nodiscard]] inline run_options parse_run_options(int argc, const char* const* argv, bool mpi) {
    run_options o;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) cli::bad("option " + arg + " needs a value");
            return argv[++i];
        };
        // A finite number in [lo, hi]; `integer` also requires a whole number.
        auto number = [&](double lo, double hi, bool integer) {
            const std::string v = value();
            char* end = nullptr;
            const double d = std::strtod(v.c_str(), &end);
            const bool ok = end != v.c_str() && *end == '\0' && std::isfinite(d) && d >= lo &&
                            d <= hi && (!integer || d == std::floor(d));
            if (!ok)
                cli::bad(swarmsgd::examples::concat(arg, " needs ",
                                                    integer ? "a whole number" : "a number",
                                                    " in [", lo, ", ", hi, "], got '", v, "'"));
            return d;
        };
        auto choice = [&](const std::vector<std::string>& allowed) {
            const std::string v = value();
            if (!cli::one_of(v, allowed))
                cli::bad("unknown " + arg + " '" + v + "' (expected one of: " + cli::join(allowed) +
                         ")");
            return v;
        };
        if (arg == "--dataset")
            o.dataset = choice({"fashion-mnist", "cifar10", "cifar100"});
        else if (arg == "--data")
            o.data = value();
        else if (arg == "--nodes" && !mpi)
            o.nodes = static_cast<std::size_t>(number(1, 4096, true));
        else if (arg == "--epochs") {
            o.epochs = number(0, 1e6, false);
            if (o.epochs <= 0)
                cli::bad("--epochs needs a number > 0, got '" + std::string(argv[i]) + "'");
        } else if (arg == "--depth") {
            o.depth = static_cast<int>(number(8, 1000, true));
            if ((o.depth - 2) % 6 != 0)
                cli::bad(swarmsgd::examples::concat(
                    "--depth ", o.depth, " is not 6k+2 (8, 14, 20, 32, 44, 56, 110, ...)"));
        } else if (arg == "--width")
            o.width = static_cast<int>(number(1, 1024, true));
        else if (arg == "--batch")
            o.batch = static_cast<int>(number(1, 65536, true));
        else if (arg == "--lr")
            o.lr = number(0, 1e3, false);
        else if (arg == "--momentum") {
            o.momentum = number(0, 1, false);
            if (o.momentum >= 1)
                cli::bad("--momentum needs a number in [0, 1), got '" + std::string(argv[i]) + "'");
        } else if (arg == "--weight-decay")
            o.weight_decay = number(0, 1, false);
        else if (arg == "--schedule")
            o.schedule = choice({"cosine", "step"});
        else if (arg == "--warmup-epochs")
            o.warmup_epochs = number(0, 1e6, false);
        else if (arg == "--quantizer")
            o.quantizer = choice(quantizer_names);
        else if (arg == "--H")
            o.h = number(1, 1e6, false);
        else if (arg == "--geometric")
            o.geometric = true;
        else if (arg == "--topology")
            o.topology = choice({"ring", "complete", "torus", "hypercube"});
        else if (arg == "--mode")
            o.mode = choice({"nonblocking", "blocking", "pull"});
        else if (arg == "--augment")
            o.augment = true;
        else if (arg == "--train-limit")
            o.train_limit = static_cast<std::size_t>(number(1, 1e9, true));
        else if (arg == "--test-limit")
            o.test_limit = static_cast<std::size_t>(number(1, 1e9, true));
        else if (arg == "--csv")
            o.csv = value();
        else if (arg == "--plot")
            o.plot = value();
        else if (arg == "--no-plot")
            o.plot.clear();
        else if (arg == "--seed")
            o.seed = static_cast<std::uint64_t>(number(0, 9007199254740992.0, true));
        else if (arg == "--help" || arg == "-h")
            cli::bad("help");
        else if (arg == "--algorithm" && mpi)
            o.algorithm = choice({"swarm", "allreduce", "local"});
        else if (arg == "--period" && mpi)
            o.period = static_cast<std::size_t>(number(1, 1e9, true));
        else if (arg == "--eval-every")
            o.eval_every = number(1e-3, 1e6, false);
        else if (arg == "--deferred-evaluation" && mpi)
            o.deferred_evaluation = true;
        else if (arg == "--traffic-counter" && mpi)
            o.traffic_counter = value();
        else if (arg == "--export-plan" && mpi) {
            o.export_plan = value();
            if (o.export_plan.empty()) cli::bad("--export-plan needs a directory, got ''");
        } else if (arg == "--nodes")
            cli::bad(
                "--nodes is not an option under MPI: the swarm has one node per rank "
                "(mpiexec -n N)");
        else
            cli::bad("unknown option '" + arg + "'");
    }
    if (!o.geometric && o.h != std::floor(o.h))
        cli::bad(swarmsgd::examples::concat("--H ", o.h,
                                            " must be a whole number unless --geometric is given"));
    if (o.csv.empty()) cli::bad("--csv needs a file name, got ''");
    return o;
}

}  // namespace swarmsgd::examples::resnet
