// Checkpoints (checkpoint.hpp, swarm_node::save_checkpoint / restore_checkpoint, and the
// simulator's): a restored node, or a whole simulation, continues bit for bit where the saved
// one stopped; a missing, truncated, corrupt or
// foreign checkpoint is refused with checkpoint_error naming the file and the mismatch, and the
// node is unchanged; the file is replaced atomically.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/in_process_swarm.hpp>
#include <swarmsgd/quantizers/error_feedback.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/quantizers/min_max.hpp>
#include <swarmsgd/simulator.hpp>
#include <swarmsgd/swarm_node.hpp>

#include "error_text.hpp"
#include "problems.hpp"

using namespace swarmsgd;

namespace {

namespace fs = std::filesystem;

fs::path temp_dir() {
    const fs::path dir = fs::temp_directory_path() / "swarmsgd_test_checkpoint";
    fs::create_directories(dir);
    return dir;
}

using test_support::contains;
using test_support::what_of;

/// Two nodes over a zero-delay simulated network, driven in lockstep from one thread: node i
/// takes the gradient of 0.5 ||x - c_i||^2 plus a step-dependent wiggle, so the run is
/// deterministic and every piece of state (momentum, lattice step, random stream, counters)
/// matters for the result.
template <class Quant>
struct pair_run {
    static constexpr std::size_t dim = 300;
    simulated_network network{2, 0, 0, 1};
    topology graph = topology::complete(2);
    std::vector<simulated_network::endpoint> endpoints{network.endpoint_for(0),
                                                       network.endpoint_for(1)};
    std::vector<std::vector<double>> models;
    std::vector<swarm_node<std::vector<double>, simulated_network::endpoint, Quant>> nodes;
    std::size_t step = 0;

    explicit pair_run(const swarm_options& o, Quant q = Quant{}) {
        for (std::size_t i = 0; i < 2; ++i) {
            std::vector<double> x(dim);
            for (std::size_t k = 0; k < dim; ++k) x[k] = double(i) * 3.0 + 0.01 * double(k);
            models.push_back(x);
        }
        nodes.reserve(2);
        for (std::size_t i = 0; i < 2; ++i)
            nodes.emplace_back(models[i], endpoints[i], graph, o, q);
    }

    void run(std::size_t steps) {
        std::vector<double> g(dim);
        for (std::size_t t = 0; t < steps; ++t, ++step) {
            for (std::size_t i = 0; i < 2; ++i) {
                for (std::size_t k = 0; k < dim; ++k)
                    g[k] = models[i][k] - double(i) - 0.1 * double((step + k) % 7);
                nodes[i].apply_gradient(g);
                nodes[i].after_local_step();
            }
        }
    }

    /// Lets every interaction in flight complete (as save_checkpoint would), without steps.
    void settle() {
        for (int round = 0; round < 8; ++round)
            for (auto& n : nodes) n.poll();
        REQUIRE(nodes[0].in_flight() == 0);
        REQUIRE(nodes[1].in_flight() == 0);
    }
};

swarm_options options() {
    swarm_options o;
    o.sgd.learning_rate = 0.05;
    o.sgd.momentum = 0.9;
    o.steps = local_steps::geometric(3);
    o.seed = 7;
    return o;
}

template <class Quant>
void check_resume_is_bit_identical(Quant q) {
    const auto dir = temp_dir();
    pair_run<Quant> straight(options(), q);
    straight.run(40);
    straight.settle();
    for (std::size_t i = 0; i < 2; ++i)
        straight.nodes[i].save_checkpoint(dir / ("node" + std::to_string(i) + ".ckpt"));
    straight.run(60);

    pair_run<Quant> resumed(options(), q);  // fresh nodes, fresh network, other models
    for (std::size_t i = 0; i < 2; ++i)
        resumed.nodes[i].restore_checkpoint(dir / ("node" + std::to_string(i) + ".ckpt"));
    resumed.step = 40;
    resumed.run(60);

    for (std::size_t i = 0; i < 2; ++i) {
        CAPTURE(i);
        CHECK(resumed.models[i] == straight.models[i]);  // bit for bit
        CHECK(resumed.nodes[i].stats().interactions_completed ==
              straight.nodes[i].stats().interactions_completed);
        CHECK(resumed.nodes[i].stats().local_steps == straight.nodes[i].stats().local_steps);
        CHECK(resumed.nodes[i].stats().bytes_sent == straight.nodes[i].stats().bytes_sent);
    }
    CHECK(straight.nodes[0].stats().interactions_completed > 10);
    CHECK(!fs::exists(dir / "node0.ckpt.tmp"));
}

std::vector<std::byte> read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(raw.size());
    for (std::size_t k = 0; k < raw.size(); ++k) out[k] = static_cast<std::byte>(raw[k]);
    return out;
}

void write_all(const fs::path& p, const std::vector<std::byte>& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), long(bytes.size()));
}

}  // namespace

TEST_CASE("checkpoint: a restored node continues bit for bit (identity, momentum SGD)") {
    check_resume_is_bit_identical(identity_quantizer<double>{});
}

TEST_CASE("checkpoint: the lattice step and stochastic rounding are restored too") {
    lattice_options lo;
    lo.bits = 4;
    lo.initial_distance = 0.5;
    lo.stochastic = true;
    check_resume_is_bit_identical(lattice_quantizer<double>(lo));
}

TEST_CASE("checkpoint: the error-feedback residual is restored") {
    min_max_options mo;
    mo.bits = 3;
    check_resume_is_bit_identical(
        error_feedback<min_max_quantizer<double>>(min_max_quantizer<double>(mo)));
}

TEST_CASE(
    "checkpoint: missing, truncated, corrupt and foreign files are refused; the node is "
    "unchanged") {
    const auto dir = temp_dir();
    const fs::path good = dir / "good.ckpt", bad = dir / "bad.ckpt";
    pair_run<identity_quantizer<double>> run(options());
    run.run(10);
    run.settle();
    run.nodes[0].save_checkpoint(good);
    const auto bytes = read_all(good);

    pair_run<identity_quantizer<double>> fresh(options());
    const auto before = fresh.models[0];
    auto& node = fresh.nodes[0];
    auto refused = [&](const std::vector<std::byte>& content) {
        write_all(bad, content);
        return what_of<checkpoint_error>([&] { node.restore_checkpoint(bad); });
    };

    CHECK(contains(what_of<checkpoint_error>([&] { node.restore_checkpoint(dir / "none.ckpt"); }),
                   "none.ckpt cannot be opened"));
    CHECK(contains(refused({}), "not a swarmsgd checkpoint"));
    {
        auto cut = bytes;
        cut.resize(cut.size() - 100);
        CHECK(contains(refused(cut), "truncated"));
    }
    {
        auto flipped = bytes;
        flipped[flipped.size() / 2] ^= std::byte{0x10};
        CHECK(contains(refused(flipped), "corrupt: its checksum does not match"));
    }
    {
        auto version = bytes;
        version[4] = std::byte{9};
        CHECK(contains(refused(version), "format version 9"));
    }
    CHECK(fresh.models[0] == before);
    CHECK(node.stats().local_steps == 0);

    // Another node's checkpoint: rank, then model size, mode, quantizer, topology.
    CHECK(contains(what_of<checkpoint_error>([&] { fresh.nodes[1].restore_checkpoint(good); }),
                   "the rank is 0, this node's is 1"));
    {
        simulated_network net(2, 0, 0, 1);
        auto e = net.endpoint_for(0);
        std::vector<double> small(10, 0.0);
        const auto g = topology::complete(2);
        swarm_node other(small, e, g, options());
        CHECK(contains(what_of<checkpoint_error>([&] { other.restore_checkpoint(good); }),
                       "the model size is 300, this node's is 10"));
        auto pull = options();
        pull.mode = averaging_mode::pull;
        std::vector<double> x(300, 0.0);
        swarm_node puller(x, e, g, pull);
        CHECK(contains(what_of<checkpoint_error>([&] { puller.restore_checkpoint(good); }),
                       "the averaging mode"));
        swarm_node quantized(x, e, g, options(), min_max_quantizer<double>{});
        CHECK(contains(what_of<checkpoint_error>([&] { quantized.restore_checkpoint(good); }),
                       "the quantizer id"));
    }
    {
        simulated_network net(3, 0, 0, 1);
        auto e = net.endpoint_for(0);
        std::vector<double> x(300, 0.0);
        const auto ring = topology::ring(3);
        swarm_node other(x, e, ring, options());
        CHECK(contains(what_of<checkpoint_error>([&] { other.restore_checkpoint(good); }),
                       "the swarm size is 2, this node's is 3"));
    }
    CHECK(fresh.models[0] == before);
}

TEST_CASE("checkpoint: saving replaces the previous file atomically") {
    const auto dir = temp_dir();
    const fs::path path = dir / "replace.ckpt";
    pair_run<identity_quantizer<double>> run(options());
    run.run(5);
    run.settle();
    run.nodes[0].save_checkpoint(path);
    const auto first = read_all(path);
    run.run(5);
    run.settle();
    run.nodes[0].save_checkpoint(path);
    const auto second = read_all(path);
    CHECK(first != second);
    CHECK(!fs::exists(dir / "replace.ckpt.tmp"));
    // A directory that cannot be written: a clear error, and the old file stays.
    const auto m = what_of<checkpoint_error>(
        [&] { run.nodes[0].save_checkpoint(dir / "no_such_dir" / "x.ckpt"); });
    CHECK(contains(m, "cannot create"));
    CHECK(read_all(path) == second);
}

namespace {

/// n models of 24 elements, all different.
std::vector<std::vector<double>> start_values(std::size_t n) {
    std::vector<std::vector<double>> m(n, std::vector<double>(24));
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t k = 0; k < 24; ++k) m[i][k] = double(i) - 0.05 * double(k);
    return m;
}

/// A simulation with momentum, geometric H, the exclude policy, a kill before tick 300 and
/// one after.
simulator_options simulation_options(simulation_schedule schedule) {
    simulator_options o;
    o.schedule = schedule;
    o.node = options();
    o.node.failure = failure_policy::exclude;
    o.kills = {{150, 2}, {420, 5}};
    if (schedule == simulation_schedule::asynchronous) {
        o.min_delay = 1;
        o.max_delay = 4;
    }
    return o;
}

}  // namespace

TEST_CASE("checkpoint: a resumed simulation continues bit for bit, kills and lattice step too") {
    using sim_t =
        simulator<std::vector<double>, test_support::quadratic, lattice_quantizer<double>>;
    const auto graph = topology::ring(8);
    test_support::quadratic problem;
    lattice_options lo;
    lo.bits = 8;
    for (const auto schedule :
         {simulation_schedule::sequential, simulation_schedule::asynchronous}) {
        CAPTURE(static_cast<int>(schedule));
        const auto dir = temp_dir() / "simulation";
        fs::remove_all(dir);
        const auto o = simulation_options(schedule);
        auto straight_models = start_values(8);
        sim_t straight(straight_models, graph, problem, o, lattice_quantizer<double>(lo));
        straight.run(300);
        straight.save_checkpoint(dir);
        straight.run(400);
        straight.drain();

        std::vector<std::vector<double>> resumed_models(8, std::vector<double>(24, 9.0));
        sim_t resumed(resumed_models, graph, problem, o, lattice_quantizer<double>(lo));
        resumed.restore_checkpoint(dir);
        resumed.run(400);
        resumed.drain();

        CHECK(resumed.ticks() == straight.ticks());
        for (std::size_t i = 0; i < 8; ++i) {
            CAPTURE(i);
            CHECK(resumed_models[i] == straight_models[i]);  // bit for bit
            CHECK(resumed.node(i).stats().local_steps == straight.node(i).stats().local_steps);
            CHECK(resumed.node(i).stats().interactions_completed ==
                  straight.node(i).stats().interactions_completed);
            CHECK(resumed.node(i).exclusions().size() == straight.node(i).exclusions().size());
            CHECK(resumed.node(i).quantizer().step() == straight.node(i).quantizer().step());
        }
        CHECK(straight.node(0).exclusions().size() == 2);  // both kills happened
        CHECK_FALSE(straight.alive(2));
        CHECK_FALSE(resumed.alive(2));

        // Refusals: a simulator that already ran, and one of another size.
        CHECK(contains(what_of<invalid_argument_error>([&] { straight.restore_checkpoint(dir); }),
                       "restore_checkpoint after"));
        const auto small = topology::ring(6);
        auto six = start_values(6);
        auto o6 = o;
        o6.kills = {};
        sim_t other(six, small, problem, o6, lattice_quantizer<double>(lo));
        CHECK(contains(what_of<checkpoint_error>([&] { other.restore_checkpoint(dir); }),
                       "simulator.ckpt: the number of nodes is 8, this simulator's is 6"));
        CHECK(six == start_values(6));  // unchanged
    }
}

TEST_CASE("checkpoint: the threaded driver saves every N steps and resumes where each node was") {
    const auto dir = temp_dir() / "threads";
    fs::remove_all(dir);
    const auto graph = topology::ring(4);
    test_support::quadratic problem;
    const auto o = options();
    const identity_quantizer<double> q;

    auto straight = start_values(4);
    (void)run_in_process(straight, graph, problem, 200, o, q);

    // The same run, stopped after 100 steps (saving every 50), then resumed to 200 from models
    // that are nothing like the saved ones: the checkpoints decide where each node is.
    auto interrupted = start_values(4);
    (void)run_in_process(interrupted, graph, problem, 100, o, q, no_step_callback{},
                         checkpoint_schedule{dir, 50, false});
    CHECK(fs::exists(dir / "node3.ckpt"));
    std::vector<std::vector<double>> resumed(4, std::vector<double>(24, 123.0));
    std::vector<std::size_t> first_step(4, 1000);
    const auto report = run_in_process(
        resumed, graph, problem, 200, o, q,
        [&](std::size_t node, std::size_t step, double, const node_stats&) {
            first_step[node] = std::min(first_step[node], step);
        },
        checkpoint_schedule{dir, 50, true});
    for (std::size_t i = 0; i < 4; ++i) {
        CAPTURE(i);
        CHECK(first_step[i] == 100);                // it went on from its step 100
        CHECK(report.nodes[i].local_steps == 200);  // counted across the interruption
        // Threads interleave differently from run to run (a node that finished early is still
        // averaged with nodes that start late, and non-blocking averaging with stale snapshots
        // overshoots), so this is no bit-for-bit comparison: the resumed models must lie where
        // a run's do (targets k .. k + 3, start about 0; an uninterrupted run stays within 30
        // of them), not at the 123 they were set to before the restore.
        for (std::size_t k = 0; k < 24; ++k) {
            CHECK(std::abs(straight[i][k] - double(k)) < 30);
            CHECK(std::abs(resumed[i][k] - double(k)) < 30);
        }
    }
}
