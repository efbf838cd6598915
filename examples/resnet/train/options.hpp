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
#include <utility>
#include <vector>

#include "../../common/checks.hpp"
#include "../../common/command_line.hpp"

namespace swarmsgd::examples::resnet {

/// An invalid command line (the programs print it with the usage and exit with status 2).
using examples::usage_error;

/// Everything the command line sets.
struct run_options {
    std::string dataset = "fashion-mnist";       ///< fashion-mnist | cifar10 | cifar100
    std::string data;                            ///< data directory ("" = the data set's default)
    std::size_t nodes = 8;                       ///< swarm size (in-process); ranks under MPI
    double epochs = 1;                           ///< passes over the training data by all nodes
    int depth = 20;                              ///< 6k+2
    int width = 16;                              ///< channels of the first stage
    int batch = 128;                             ///< per node and step
    double lr = 0.1;                             ///< base learning rate
    double momentum = 0.9;                       ///< SGD momentum
    double weight_decay = 5e-4;                  ///< L2 on the trainable parameters
    std::string schedule = "cosine";             ///< cosine | step
    double warmup_epochs = 0;                    ///< linear warm-up of the learning rate
    std::string quantizer = "lattice8";          ///< see quantizer_names
    double h = 2;                                ///< local steps between interactions
    bool geometric = false;                      ///< H geometric with mean h
    std::string topology = "ring";               ///< ring | complete | torus | hypercube
    std::string mode = "nonblocking";            ///< nonblocking | blocking | pull
    bool augment = false;                        ///< random crop (padding 4) + horizontal flip
    std::size_t train_limit = 0;                 ///< train on this many images (0 = all)
    std::size_t test_limit = 0;                  ///< evaluate on the first N test images (0 = all)
    std::string csv = "resnet_swarm.csv";        ///< per-epoch CSV
    std::string plot = "resnet_swarm.png";       ///< PNG plot ("" = none)
    std::uint64_t seed = 1;                      ///< every random choice
    std::size_t checkpoint_every = 0;            ///< in-process: local steps between checkpoints
    std::string checkpoint_dir = "checkpoints";  ///< in-process: node<i>.ckpt go here
    bool resume = false;                         ///< in-process: restore every node first
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
        mpi ? ""
            : "  --checkpoint-every N  save every node's whole state every N local steps (none)\n"
              "  --checkpoint-dir DIR  where node<i>.ckpt go (checkpoints)\n"
              "  --resume              restore every node from --checkpoint-dir and train the\n"
              "                        steps each had left\n",
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

/// Parses argv over `defaults` (another program's file names, say). `mpi` rejects --nodes (the
/// swarm has one node per rank). Throws usage_error naming the option and value for anything
/// invalid, and for --help (message "help").
[[nodiscard]] inline run_options parse_run_options(int argc, const char* const* argv, bool mpi,
                                                   run_options defaults = {}) {
    run_options o = std::move(defaults);
    examples::command_line args(argc, argv);
    using examples::bad_usage;
    while (args.next()) {
        if (args.is("--dataset"))
            o.dataset = args.choice({"fashion-mnist", "cifar10", "cifar100"});
        else if (args.is("--data"))
            o.data = args.value();
        else if (args.is("--nodes") && !mpi)
            o.nodes = static_cast<std::size_t>(args.whole_number(1, 4096));
        else if (args.is("--epochs")) {
            o.epochs = args.number(0, 1e6);
            if (o.epochs <= 0)
                bad_usage("--epochs needs a number > 0, got '" + args.last_value() + "'");
        } else if (args.is("--depth")) {
            o.depth = static_cast<int>(args.whole_number(8, 1000));
            if ((o.depth - 2) % 6 != 0)
                bad_usage(examples::concat("--depth ", o.depth,
                                           " is not 6k+2 (8, 14, 20, 32, 44, 56, 110, ...)"));
        } else if (args.is("--width"))
            o.width = static_cast<int>(args.whole_number(1, 1024));
        else if (args.is("--batch"))
            o.batch = static_cast<int>(args.whole_number(1, 65536));
        else if (args.is("--lr"))
            o.lr = args.number(0, 1e3);
        else if (args.is("--momentum")) {
            o.momentum = args.number(0, 1);
            if (o.momentum >= 1)
                bad_usage("--momentum needs a number in [0, 1), got '" + args.last_value() + "'");
        } else if (args.is("--weight-decay"))
            o.weight_decay = args.number(0, 1);
        else if (args.is("--schedule"))
            o.schedule = args.choice({"cosine", "step"});
        else if (args.is("--warmup-epochs"))
            o.warmup_epochs = args.number(0, 1e6);
        else if (args.is("--quantizer"))
            o.quantizer = args.choice(quantizer_names);
        else if (args.is("--H"))
            o.h = args.number(1, 1e6);
        else if (args.is("--geometric"))
            o.geometric = true;
        else if (args.is("--topology"))
            o.topology = args.choice({"ring", "complete", "torus", "hypercube"});
        else if (args.is("--mode"))
            o.mode = args.choice({"nonblocking", "blocking", "pull"});
        else if (args.is("--augment"))
            o.augment = true;
        else if (args.is("--train-limit"))
            o.train_limit = static_cast<std::size_t>(args.whole_number(1, 1e9));
        else if (args.is("--test-limit"))
            o.test_limit = static_cast<std::size_t>(args.whole_number(1, 1e9));
        else if (args.is("--csv"))
            o.csv = args.value();
        else if (args.is("--plot"))
            o.plot = args.value();
        else if (args.is("--no-plot"))
            o.plot.clear();
        else if (args.is("--seed"))
            o.seed = static_cast<std::uint64_t>(args.whole_number(0, 9007199254740992.0));
        else if (args.is("--checkpoint-every") && !mpi)
            o.checkpoint_every = static_cast<std::size_t>(args.whole_number(1, 1e12));
        else if (args.is("--checkpoint-dir") && !mpi)
            o.checkpoint_dir = args.value();
        else if (args.is("--resume") && !mpi)
            o.resume = true;
        else if (args.is("--help") || args.is("-h"))
            bad_usage("help");
        else if (args.is("--algorithm") && mpi)
            o.algorithm = args.choice({"swarm", "allreduce", "local"});
        else if (args.is("--period") && mpi)
            o.period = static_cast<std::size_t>(args.whole_number(1, 1e9));
        else if (args.is("--eval-every"))
            o.eval_every = args.number(1e-3, 1e6);
        else if (args.is("--deferred-evaluation") && mpi)
            o.deferred_evaluation = true;
        else if (args.is("--traffic-counter") && mpi)
            o.traffic_counter = args.value();
        else if (args.is("--export-plan") && mpi) {
            o.export_plan = args.value();
            if (o.export_plan.empty()) bad_usage("--export-plan needs a directory, got ''");
        } else if (args.is("--nodes"))
            bad_usage(
                "--nodes is not an option under MPI: the swarm has one node per rank "
                "(mpiexec -n N)");
        else
            args.unknown();
    }
    if (!o.geometric && o.h != std::floor(o.h))
        examples::bad_usage(swarmsgd::examples::concat(
            "--H ", o.h, " must be a whole number unless --geometric is given"));
    if (o.csv.empty()) examples::bad_usage("--csv needs a file name, got ''");
    return o;
}

}  // namespace swarmsgd::examples::resnet
