#pragma once
// What the Fashion-MNIST demos share: command line, topology and mode names, and node i's
// objective (mini-batches sampled from its own shard of the data).
#include <swarmsgd/swarmsgd.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../common/command_line.hpp"
#include "../common/topology_choice.hpp"
#include "idx_reader.hpp"
#include "mlp.hpp"

namespace swarmsgd::examples::demo {
namespace ex = swarmsgd::examples;

struct config {
    std::size_t nodes = 8;
    double epochs = 10;
    std::size_t hidden = 128;
    std::size_t batch = 64;
    double lr = 0.1;
    double momentum = 0.9;
    double h = 2;
    bool geometric = false;
    std::string topology = "ring";
    std::string mode = "nonblocking";
    std::uint64_t seed = 1;
    std::string data;
    std::size_t checkpoint_every = 0;            ///< local steps between checkpoints (0: none)
    std::string checkpoint_dir = "checkpoints";  ///< node<i>.ckpt go here
    bool resume = false;                         ///< restore every node from checkpoint_dir
    std::string failure = "fail";                ///< swarm_options::failure (in-process demo)
};

[[noreturn]] inline void usage(const char* why) {
    std::fprintf(stderr,
                 "error: %s\nusage: fashion_mnist_swarm [--nodes N] [--epochs E] [--hidden H] "
                 "[--batch B] [--lr R] [--momentum M] [--H STEPS] [--geometric] [--topology "
                 "ring|complete|torus|hypercube] [--mode nonblocking|blocking|pull] [--seed S] "
                 "[--data DIR] [--checkpoint-every STEPS] [--checkpoint-dir DIR] [--resume] "
                 "[--failure fail|exclude]\n",
                 why);
    std::exit(2);
}

inline config parse(int argc, char** argv) try {
    config c;
    ex::command_line args(argc, argv);
    while (args.next()) {
        if (args.is("--nodes"))
            c.nodes = static_cast<std::size_t>(args.whole_number(1, 4096));
        else if (args.is("--epochs"))
            c.epochs = args.number(0, 1e6);
        else if (args.is("--hidden"))
            c.hidden = static_cast<std::size_t>(args.whole_number(0, 1e6));
        else if (args.is("--batch"))
            c.batch = static_cast<std::size_t>(args.whole_number(1, 65536));
        else if (args.is("--lr"))
            c.lr = args.number(0, 1e3);
        else if (args.is("--momentum"))
            c.momentum = args.number(0, 1);
        else if (args.is("--H"))
            c.h = args.number(1, 1e6);
        else if (args.is("--geometric"))
            c.geometric = true;
        else if (args.is("--topology"))
            c.topology = args.choice({"ring", "complete", "torus", "hypercube"});
        else if (args.is("--mode"))
            c.mode = args.choice({"nonblocking", "blocking", "pull"});
        else if (args.is("--seed"))
            c.seed = static_cast<std::uint64_t>(args.whole_number(0, 9007199254740992.0));
        else if (args.is("--data"))
            c.data = args.value();
        else if (args.is("--checkpoint-every"))
            c.checkpoint_every = static_cast<std::size_t>(args.whole_number(1, 1e12));
        else if (args.is("--checkpoint-dir"))
            c.checkpoint_dir = args.value();
        else if (args.is("--resume"))
            c.resume = true;
        else if (args.is("--failure"))
            c.failure = args.choice({"fail", "exclude"});
        else if (args.is("--help") || args.is("-h"))
            usage("help requested");
        else
            args.unknown();
    }
    return c;
} catch (const ex::usage_error& e) {
    usage(e.what());
}

inline swarmsgd::topology make_topology(const std::string& name, std::size_t n) {
    try {
        return ex::make_topology(name, n);
    } catch (const swarmsgd::invalid_argument_error& e) {
        usage(e.what());
    }
}

inline swarmsgd::averaging_mode make_mode(const std::string& name) {
    if (name == "nonblocking") return swarmsgd::averaging_mode::nonblocking;
    if (name == "blocking") return swarmsgd::averaging_mode::blocking;
    if (name == "pull") return swarmsgd::averaging_mode::pull;
    usage(("unknown mode '" + name + "'").c_str());
}

/// Node i's local objective: mini-batches sampled from its own shard.
struct shard_problem {
    shard_problem(const ex::image_set& train, const ex::mlp_layout& layout, std::size_t nodes,
                  std::size_t batch, std::uint64_t seed)
        : layout(&layout), batch(batch), pixels(train.pixels_per_image()) {
        for (std::size_t i = 0; i < nodes; ++i) {
            shards.push_back(ex::shard(train, i, nodes, seed));
            workspaces.emplace_back();
            workspaces.back().reserve(layout, batch);
            images.emplace_back(batch * pixels);
            labels.emplace_back(batch);
        }
    }
    double gradient(std::size_t node, const std::vector<float>& x, std::span<float> g,
                    swarmsgd::rng& random) {
        const auto& s = shards[node];
        for (std::size_t b = 0; b < batch; ++b) {
            const std::size_t k = random.uniform(s.count);
            std::memcpy(images[node].data() + b * pixels, s.image(k), pixels * sizeof(float));
            labels[node][b] = s.labels[k];
        }
        return ex::loss_and_gradient(*layout, x, images[node].data(), labels[node].data(), batch, g,
                                     workspaces[node]);
    }
    const ex::mlp_layout* layout;
    std::size_t batch, pixels;
    std::vector<ex::image_set> shards;
    std::vector<ex::workspace> workspaces;
    std::vector<std::vector<float>> images;
    std::vector<std::vector<std::uint8_t>> labels;
};

/// Local steps per node: an epoch is one pass over the data by all nodes together.
inline std::size_t steps_per_node(const config& c, std::size_t examples) {
    const auto total = static_cast<std::size_t>(
        std::ceil(c.epochs * static_cast<double>(examples) / static_cast<double>(c.batch)));
    return (total + c.nodes - 1) / c.nodes;
}

/// The node options of the command line, with a cosine decay over `steps` local steps so the
/// final models settle.
inline swarmsgd::swarm_options make_options(const config& c, std::size_t steps) {
    swarmsgd::swarm_options options;
    options.mode = make_mode(c.mode);
    options.steps = c.geometric ? swarmsgd::local_steps::geometric(c.h)
                                : swarmsgd::local_steps::fixed(static_cast<std::size_t>(c.h));
    options.sgd.learning_rate = c.lr;
    options.sgd.momentum = c.momentum;
    options.seed = c.seed;
    options.failure =
        c.failure == "exclude" ? swarmsgd::failure_policy::exclude : swarmsgd::failure_policy::fail;
    options.sgd.schedule = [steps](std::size_t t, double base) {
        const double progress = static_cast<double>(t) / static_cast<double>(steps);
        return base * 0.5 * (1 + std::cos(3.141592653589793 * std::min(progress, 1.0)));
    };
    return options;
}

/// The checkpoints of --checkpoint-every, --checkpoint-dir and --resume.
inline swarmsgd::checkpoint_schedule make_checkpoints(const config& c) {
    return {c.checkpoint_dir, c.checkpoint_every, c.resume};
}

inline std::string human_bytes(double b) {
    const char* unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) b /= 1024, ++u;
    char out[32];
    std::snprintf(out, sizeof out, "%.1f %s", b, unit[u]);
    return out;
}

}  // namespace swarmsgd::examples::demo
