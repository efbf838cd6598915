#pragma once
/// \file training_setup.hpp
/// What both drivers (in-process and MPI) derive from the command line: the data, the network
/// configuration, the topology, the number of local steps with the epoch boundaries, and the
/// node options (learning-rate schedule included).

#include <swarmsgd/swarmsgd.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "../../common/checks.hpp"
#include "../../common/topology_choice.hpp"
#include "../data/cifar.hpp"
#include "../data/fashion_mnist.hpp"
#include "../data/image_dataset.hpp"
#include "../data/normalization.hpp"
#include "options.hpp"
#include "resnet.hpp"
#include "schedule.hpp"

namespace swarmsgd::examples::resnet {

/// The training and test sets and the normalization measured on the training set.
struct training_data {
    image_dataset train;
    image_dataset test;
    channel_normalization norm;
};

/// Seed of the --train-limit subset: fixed, so runs with different --seed train on the same
/// images.
inline constexpr std::uint64_t train_subset_seed = 0x53554253;  // "SUBS"

/// Loads the data set of `o` (--dataset, --data), keeps --train-limit random training images
/// and the first --test-limit test images, and measures the normalization. Throws data_error
/// naming the file for missing or damaged files, usage_error when a CIFAR set has no --data.
[[nodiscard]] inline training_data load_training_data(const run_options& o) {
    training_data d;
    if (o.dataset == "fashion-mnist") {
        const auto dir =
            o.data.empty() ? default_fashion_mnist_dir() : std::filesystem::path(o.data);
        d.train = load_fashion_mnist_dataset(dir, true);
        d.test = load_fashion_mnist_dataset(dir, false);
    } else {
        if (o.data.empty())
            throw usage_error(
                swarmsgd::examples::concat("--dataset ", o.dataset,
                                           " needs --data DIR: the directory of the binary version "
                                           "from https://www.cs.toronto.edu/~kriz/cifar.html"));
        const auto v = o.dataset == "cifar10" ? cifar_variant::cifar10 : cifar_variant::cifar100;
        d.train = load_cifar(o.data, v, true);
        d.test = load_cifar(o.data, v, false);
    }
    d.train = random_subset(d.train, o.train_limit, train_subset_seed);
    d.test = first_images(d.test, o.test_limit);
    d.norm = measure_normalization(d.train);
    return d;
}

/// The network for `o` and the data's image shape and classes.
[[nodiscard]] inline resnet_config make_resnet_config(const run_options& o,
                                                      const image_dataset& set) {
    resnet_config c;
    c.depth = o.depth;
    c.in_channels = set.channels;
    c.image_size = set.height;
    c.classes = set.classes;
    c.base_width = o.width;
    c.validate();
    return c;
}

/// The communication graph `name` on n nodes (torus: the most square rows x cols = n).
[[nodiscard]] inline topology make_topology(const std::string& name, std::size_t n) {
    return swarmsgd::examples::make_topology<usage_error>(name, n);
}

/// Local steps and epoch boundaries of a run.
struct training_plan {
    std::size_t steps_per_node = 0;       ///< local steps every node takes
    double steps_per_epoch = 0;           ///< per node: training images / (batch * nodes)
    std::vector<std::size_t> boundaries;  ///< steps done at each evaluation (last = steps_per_node)
    std::vector<double> epochs;           ///< the epoch reached at each boundary
    std::size_t warmup_steps = 0;         ///< learning-rate warm-up, per node
};

/// An epoch is one pass over the training data by all nodes together, i.e. train_count /
/// (batch * nodes) local steps of each node. Boundaries (evaluations) fall every --eval-every
/// epochs (every whole epoch by default) and at the end of the run. Throws usage_error when
/// the warm-up does not fit in the run.
[[nodiscard]] inline training_plan make_plan(const run_options& o, std::size_t train_count,
                                             std::size_t nodes) {
    training_plan p;
    p.steps_per_epoch = static_cast<double>(train_count) /
                        (static_cast<double>(o.batch) * static_cast<double>(nodes));
    p.steps_per_node = std::max<std::size_t>(
        1, static_cast<std::size_t>(std::llround(std::ceil(o.epochs * p.steps_per_epoch - 1e-9))));
    // Every --eval-every epochs before the end.
    for (std::size_t k = 1; static_cast<double>(k) * o.eval_every < o.epochs - 1e-9; ++k) {
        const double e = static_cast<double>(k) * o.eval_every;
        const auto b = static_cast<std::size_t>(std::llround(e * p.steps_per_epoch));
        if (b == 0 || b >= p.steps_per_node) continue;
        if (!p.boundaries.empty() && b <= p.boundaries.back()) continue;
        p.boundaries.push_back(b);
        p.epochs.push_back(e);
    }
    p.boundaries.push_back(p.steps_per_node);
    p.epochs.push_back(o.epochs);
    p.warmup_steps = static_cast<std::size_t>(std::llround(o.warmup_epochs * p.steps_per_epoch));
    if (o.warmup_epochs > 0 && p.warmup_steps >= p.steps_per_node)
        throw usage_error(swarmsgd::examples::concat("--warmup-epochs ", o.warmup_epochs,
                                                     " is as long as the run (--epochs ", o.epochs,
                                                     "); it must be shorter"));
    return p;
}

/// The node options: local steps, averaging mode, SGD with momentum and the schedule; weight
/// decay 0 (the driver adds it to the gradient with resnet::add_weight_decay, which skips the
/// BatchNorm running statistics that the node's own decay would shrink). Timeouts are
/// generous: 8 nodes on 2 cores take seconds per step, and a partner may lag.
[[nodiscard]] inline swarm_options make_swarm_options(const run_options& o,
                                                      const training_plan& p) {
    swarm_options s;
    if (o.mode == "blocking")
        s.mode = averaging_mode::blocking;
    else if (o.mode == "pull")
        s.mode = averaging_mode::pull;
    else
        s.mode = averaging_mode::nonblocking;
    s.steps = o.geometric ? local_steps::geometric(o.h)
                          : local_steps::fixed(static_cast<std::size_t>(o.h));
    s.sgd.learning_rate = o.lr;
    s.sgd.momentum = o.momentum;
    s.sgd.weight_decay = 0;
    s.sgd.schedule = make_schedule(o.schedule, p.steps_per_node, p.warmup_steps);
    s.seed = o.seed;
    s.reply_timeout = std::chrono::minutes(10);
    s.shutdown_timeout = std::chrono::minutes(60);
    return s;
}

}  // namespace swarmsgd::examples::resnet
