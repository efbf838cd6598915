// swarm_node's fused path against its general path, bit for bit (issue 13). With an exact
// quantizer (identity_quantizer, exact_quantizer_for) and a host model a node reads and writes
// the wire payloads in place, in fused passes; with general_identity (support/general_identity.hpp:
// identity without the capability, the same wire bytes) it gathers, encodes, decodes and applies
// through its own buffers. Every case runs the same thing once per path and requires the same
// models bit for bit (memcmp), the same statistics, the same wire bytes and, where something
// fails, the same exception type and what() text and the same models right after it:
// - the deterministic simulator: float and double, std::vector models and lists of vectors,
//   sequential and asynchronous schedules, non-blocking, pull and (sequential schedule, where
//   it is the sequential model itself) blocking averaging, momentum, five topologies;
// - blocking averaging over the in-process communicator (two threads, one interaction at a
//   time, so deterministic);
// - two nodes driven by hand with every message tapped on the wire: alternating initiators,
//   crossed requests (declines), max_in_flight 2, parts laid out differently on each node;
// - the error paths: a non-finite model about to be sent (initiator; responder; responder and
//   request both), a non-finite or wrongly sized gradient, peers with models of different sizes,
//   a model resized under its node, malformed and truncated replies and requests. Each is
//   followed by normal interactions, so that a difference left behind would show.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <swarmsgd/communicators/in_process.hpp>
#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/errors.hpp>
#include <swarmsgd/local_steps.hpp>
#include <swarmsgd/message.hpp>
#include <swarmsgd/model.hpp>
#include <swarmsgd/node_stats.hpp>
#include <swarmsgd/quantizers/identity.hpp>
#include <swarmsgd/random.hpp>
#include <swarmsgd/simulator.hpp>
#include <swarmsgd/swarm_node.hpp>
#include <swarmsgd/swarm_options.hpp>
#include <swarmsgd/topology.hpp>

#include "general_identity.hpp"

using namespace swarmsgd;
using test_support::general_identity;

namespace {

template <class V>
using flat_model = std::vector<V>;
template <class V>
using list_model = std::vector<std::vector<V>>;

// The two paths are the ones meant.
static_assert(
    swarm_node<flat_model<float>, simulated_network::endpoint, identity_quantizer<float>>::exact);
static_assert(
    swarm_node<list_model<double>, simulated_network::endpoint, identity_quantizer<double>>::exact);
static_assert(
    !swarm_node<flat_model<float>, simulated_network::endpoint, general_identity<float>>::exact);
static_assert(
    !swarm_node<list_model<double>, simulated_network::endpoint, general_identity<double>>::exact);

/// Parts of a list model: one ending inside the first kernel block (1024 elements), one
/// crossing a block boundary, one of a single element, the rest. A flat model has their total.
const std::vector<std::size_t> default_parts{5, 1029, 1, 465};
constexpr std::size_t model_elements = 1500;
/// Elements where non-finite values are planted: first, end of the first part, around the
/// first block boundary of a flat model (1023, 1024) and of the second part (1029), the single
/// element part (1034), last.
const std::vector<std::size_t> probe_indices{0, 4, 1023, 1024, 1029, 1034, 1499};

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

/// A model of type M holding `values`, split into `parts` when M is a list.
template <class M, class V>
M make_model(const std::vector<V>& values, const std::vector<std::size_t>& parts) {
    if constexpr (std::is_same_v<M, flat_model<V>>) {
        return values;
    } else {
        M m;
        std::size_t at = 0;
        for (const std::size_t p : parts) {
            m.emplace_back(values.begin() + static_cast<std::ptrdiff_t>(at),
                           values.begin() + static_cast<std::ptrdiff_t>(at + p));
            at += p;
        }
        REQUIRE(at == values.size());
        return m;
    }
}

/// The model's elements, concatenated (as many as it has now).
template <class M>
std::vector<model_value_t<M>> flatten(const M& m) {
    std::vector<model_value_t<M>> out(model_size(m));
    gather(m, std::span<model_value_t<M>>(out));
    return out;
}

/// Element k of the concatenated model.
template <class M>
model_value_t<M>& element(M& m, std::size_t k) {
    model_value_t<M>* p = nullptr;
    for_each_part(m, [&](auto part, std::size_t offset) {
        if (k >= offset && k < offset + part.size()) p = part.data() + (k - offset);
    });
    REQUIRE(p != nullptr);
    return *p;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() &&
           (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

/// Index of the first element where two sequences of byte strings differ (a.size() and
/// b.size() equal and every string the same: -1).
long first_difference(const std::vector<std::vector<std::byte>>& a,
                      const std::vector<std::vector<std::byte>>& b) {
    const std::size_t n = std::min(a.size(), b.size());
    for (std::size_t k = 0; k < n; ++k)
        if (!same_bits(a[k], b[k])) return static_cast<long>(k);
    return a.size() == b.size() ? -1 : static_cast<long>(n);
}

/// Every counter of node_stats (the times are wall-clock and differ between any two runs).
std::string counters(const node_stats& s) {
    std::string t;
    const auto add = [&](const char* name, std::uint64_t v) {
        t += name;
        t += '=';
        t += std::to_string(v);
        t += ' ';
    };
    add("local_steps", s.local_steps);
    add("interactions_initiated", s.interactions_initiated);
    add("interactions_completed", s.interactions_completed);
    add("interactions_served", s.interactions_served);
    add("interactions_declined", s.interactions_declined);
    add("postponed", s.postponed);
    add("messages_sent", s.messages_sent);
    add("messages_received", s.messages_received);
    add("bytes_sent", s.bytes_sent);
    add("bytes_received", s.bytes_received);
    add("failed_decode_elements", s.failed_decode_elements);
    add("recovered_elements", s.recovered_elements);
    add("stalls_credited", s.stalls_credited);
    return t;
}

/// n random values in [-2 * (node + 1), 2 * (node + 1)), deterministic per (seed, node).
template <class V>
std::vector<V> initial_values(std::size_t n, std::uint64_t seed, std::size_t node) {
    rng r(seed, node);
    std::vector<V> v(n);
    for (auto& x : v) x = static_cast<V>((4 * r.uniform01() - 2) * static_cast<double>(node + 1));
    return v;
}

/// Node i pulls its model towards a target of its own, with noise from its data stream: the
/// gradients differ per node and per step, so the models never agree exactly.
struct noisy_quadratic {
    template <class M, class V>
    double gradient(std::size_t node, const M& x, std::span<V> g, rng& random) const {
        gather(x, g);
        double loss = 0;
        for (std::size_t k = 0; k < g.size(); ++k) {
            const double target = static_cast<double>((node * 7 + k * 3) % 11) * 0.25 - 1.0;
            g[k] = static_cast<V>(static_cast<double>(g[k]) - target +
                                  0.01 * (random.uniform01() - 0.5));
            loss += 0.5 * static_cast<double>(g[k]) * static_cast<double>(g[k]);
        }
        return loss;
    }
};

// ------------------------------------------------------------------------------- simulator

/// Final models (flat) and counters of one run.
template <class V>
struct run_result {
    std::vector<std::vector<V>> models;
    std::vector<std::string> stats;
    node_stats total;
};

template <class V>
void check_same(const run_result<V>& fused, const run_result<V>& general) {
    REQUIRE(fused.models.size() == general.models.size());
    for (std::size_t i = 0; i < fused.models.size(); ++i) {
        CAPTURE(i);
        REQUIRE(fused.models[i].size() == general.models[i].size());
        CHECK(std::memcmp(fused.models[i].data(), general.models[i].data(),
                          fused.models[i].size() * sizeof(V)) == 0);
        CHECK(fused.stats[i] == general.stats[i]);
    }
}

struct named_graph {
    const char* name;
    topology graph;
};

std::vector<named_graph> graphs() {
    std::vector<named_graph> g;
    g.push_back({"complete(5)", topology::complete(5)});
    g.push_back({"ring(6)", topology::ring(6)});
    g.push_back({"torus(3,3)", topology::torus(3, 3)});
    g.push_back({"hypercube(8)", topology::hypercube(8)});
    g.push_back({"random_regular(10,3)", topology::random_regular(10, 3, 5)});
    return g;
}

/// The simulator on `graph` from fixed initial models, momentum on; asynchronous: delays of 0
/// to 5 ticks, two interactions in flight per node and a straggler (node 0, 4x slower).
template <class M, class Q>
run_result<model_value_t<M>> simulate(const topology& graph, simulation_schedule schedule,
                                      averaging_mode mode, std::size_t ticks) {
    using V = model_value_t<M>;
    std::vector<M> models;
    for (std::size_t i = 0; i < graph.size(); ++i)
        models.push_back(make_model<M>(initial_values<V>(model_elements, 7, i), default_parts));
    simulator_options so;
    so.schedule = schedule;
    so.node.mode = mode;
    so.node.sgd.learning_rate = 0.05;
    so.node.sgd.momentum = 0.9;
    so.node.sgd.weight_decay = 1e-4;
    so.node.steps = local_steps::geometric(2);
    so.node.seed = 11;
    if (schedule == simulation_schedule::asynchronous) {
        so.max_delay = 5;
        so.node.max_in_flight = 2;
        so.speeds.assign(graph.size(), 1.0);
        so.speeds[0] = 0.25;
    }
    noisy_quadratic problem;
    simulator<M, noisy_quadratic, Q> sim(models, graph, problem, so, Q{});
    sim.run(ticks);
    sim.drain();
    run_result<V> r;
    for (std::size_t i = 0; i < models.size(); ++i) {
        r.models.push_back(flatten(models[i]));
        r.stats.push_back(counters(sim.node(i).stats()));
    }
    r.total = sim.total_stats();
    return r;
}

// ---------------------------------------------------------------------- blocking, threads

/// Two nodes over the in-process communicator in blocking mode, Nesterov momentum: each round
/// both take a local step, then one initiates (and blocks in initiate until the reply is
/// applied) while the other serves on a thread of its own. One interaction at a time, so the
/// run is deterministic although it has two threads.
template <class M, class Q>
run_result<model_value_t<M>> blocking_pair(std::size_t rounds) {
    using V = model_value_t<M>;
    using node_type = swarm_node<M, in_process_communicator, Q>;
    std::vector<M> models;
    for (std::size_t i = 0; i < 2; ++i)
        models.push_back(make_model<M>(initial_values<V>(model_elements, 5, i), default_parts));
    in_process_world world(2);
    std::vector<in_process_communicator> comms{world.endpoint_for(0), world.endpoint_for(1)};
    const auto graph = topology::complete(2);
    swarm_options options;
    options.mode = averaging_mode::blocking;
    options.sgd.learning_rate = 0.05;
    options.sgd.momentum = 0.9;
    options.sgd.nesterov = true;
    options.seed = 5;
    std::vector<node_type> nodes;
    nodes.reserve(2);
    for (std::size_t i = 0; i < 2; ++i) {
        nodes.emplace_back(models[i], comms[i], graph, options, Q{});
        nodes.back().set_auto_interact(false);
    }
    noisy_quadratic problem;
    std::vector<rng> data{rng(5, 2), rng(5, 3)};
    std::vector<V> grad(model_elements);
    for (std::size_t round = 0; round < rounds; ++round) {
        const std::size_t i = (round / 3) % 2, j = 1 - i;  // i initiates, j serves
        for (const std::size_t k : {i, j}) {
            problem.gradient(k, models[k], std::span<V>(grad), data[k]);
            nodes[k].apply_gradient(grad);
            nodes[k].after_local_step();
        }
        std::atomic<bool> stop{false};
        std::exception_ptr served_failure;
        std::thread server([&] {
            try {
                while (!stop.load()) {
                    nodes[j].poll();
                    (void)comms[j].wait_for_message(std::chrono::milliseconds(1));
                }
            } catch (...) {
                served_failure = std::current_exception();
            }
        });
        bool started = false;
        std::exception_ptr initiate_failure;
        try {
            started = nodes[i].initiate(j);  // returns once the reply was applied
        } catch (...) {
            initiate_failure = std::current_exception();
        }
        stop = true;
        server.join();  // the server finishes the poll that served the request
        if (served_failure) std::rethrow_exception(served_failure);
        if (initiate_failure) std::rethrow_exception(initiate_failure);
        REQUIRE(started);
        REQUIRE(nodes[i].in_flight() == 0);
    }
    run_result<V> r;
    for (std::size_t k = 0; k < 2; ++k) {
        r.models.push_back(flatten(models[k]));
        r.stats.push_back(counters(nodes[k].stats()));
        r.total += nodes[k].stats();
    }
    return r;
}

// ------------------------------------------------------------ hand-driven nodes, tapped wire

/// How a harness is set up: the parts of each node's model (their sum is its size), the
/// averaging mode and max_in_flight.
struct harness_config {
    std::vector<std::vector<std::size_t>> parts{default_parts, default_parts};
    averaging_mode mode = averaging_mode::nonblocking;
    std::size_t max_in_flight = 1;
};

/// Nodes with model type M and quantizer Q on a zero-delay simulated network, driven by hand.
/// A second endpoint per rank taps the wire: every message is taken from the inbox, recorded
/// and put back before the node polls (so `wire` holds every message delivered, in order), and
/// messages can be intercepted or forged. Every action is logged with its outcome: "ok", or the
/// exception's dynamic type and what().
template <class M, class Q>
struct harness {
    using V = model_value_t<M>;
    using node_type = swarm_node<M, simulated_network::endpoint, Q>;

    simulated_network network;
    topology graph;
    std::vector<simulated_network::endpoint> endpoints;
    std::vector<simulated_network::endpoint> taps;
    std::vector<M> models;
    std::vector<node_type> nodes;
    std::vector<rng> data;
    noisy_quadratic problem;
    std::string log;                                // every action and its outcome
    std::vector<std::vector<std::byte>> wire;       // every message delivered or intercepted
    std::vector<std::vector<std::byte>> snapshots;  // all models (bytes), at snapshot()

    explicit harness(const harness_config& c)
        : network(c.parts.size(), 0, 0, 1), graph(topology::complete(c.parts.size())) {
        const std::size_t n = c.parts.size();
        swarm_options options;
        options.mode = c.mode;
        options.max_in_flight = c.max_in_flight;
        options.sgd.learning_rate = 0.05;
        options.sgd.momentum = 0.9;
        options.seed = 3;
        endpoints.reserve(n);
        taps.reserve(n);
        models.reserve(n);  // the nodes keep references: no reallocation after this
        nodes.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            endpoints.push_back(network.endpoint_for(i));
            taps.push_back(network.endpoint_for(i));
            std::size_t size = 0;
            for (const std::size_t p : c.parts[i]) size += p;
            models.push_back(make_model<M>(initial_values<V>(size, 17, i), c.parts[i]));
            data.emplace_back(3, n + i);
        }
        for (std::size_t i = 0; i < n; ++i) {
            nodes.emplace_back(models[i], endpoints[i], graph, options, Q{});
            nodes.back().set_auto_interact(false);
        }
    }
    harness(const harness&) = delete;
    harness& operator=(const harness&) = delete;

    /// Runs `fn`, logging `what` and its outcome.
    template <class Fn>
    void attempt(const std::string& what, Fn&& fn) {
        log += what;
        try {
            fn();
            log += ": ok\n";
        } catch (const std::exception& e) {
            log += ": ";
            log += typeid(e).name();
            log += ": ";
            log += e.what();
            log += '\n';
        }
    }

    /// Records every message waiting for node `i` and puts it back.
    void relay(std::size_t i) {
        std::vector<received_message> messages;
        while (auto m = taps[i].try_receive()) messages.push_back(std::move(*m));
        for (auto& m : messages) {
            wire.push_back(m.bytes);
            (void)taps[m.source].isend(i, std::move(m.bytes));
        }
    }

    /// Takes the next message for node `i` off the wire (recorded, not delivered).
    std::optional<received_message> intercept(std::size_t i) {
        auto m = taps[i].try_receive();
        if (m) wire.push_back(m->bytes);
        return m;
    }

    /// Sends `bytes` to node `to` as if node `from` had sent them.
    void forge(std::size_t from, std::size_t to, std::vector<std::byte> bytes) {
        (void)taps[from].isend(to, std::move(bytes));
    }

    /// One local step of node i (gradient of its problem, then after_local_step).
    void step(std::size_t i) {
        attempt("node " + std::to_string(i) + " steps", [&] {
            std::vector<V> grad(model_size(models[i]));
            problem.gradient(i, models[i], std::span<V>(grad), data[i]);
            nodes[i].apply_gradient(grad);
            relay(i);
            nodes[i].after_local_step();
        });
    }

    /// Node i starts an interaction with node j (logs whether it was started).
    void initiate(std::size_t i, std::size_t j) {
        attempt("node " + std::to_string(i) + " initiates with node " + std::to_string(j),
                [&] { log += nodes[i].initiate(j) ? " (started)" : " (postponed)"; });
    }

    void poll(std::size_t i) {
        relay(i);
        attempt("node " + std::to_string(i) + " polls", [&] { nodes[i].poll(); });
    }

    /// Polls every node until nothing is in transit (a bounded number of rounds).
    void drain() {
        for (int round = 0; round < 8 && network.pending() != 0; ++round)
            for (std::size_t i = 0; i < nodes.size(); ++i) poll(i);
    }

    /// Normal interactions after whatever happened: both initiators, then everything delivered.
    void settle(std::size_t rounds = 4) {
        for (std::size_t r = 0; r < rounds; ++r) {
            const std::size_t i = r % nodes.size(), j = (i + 1) % nodes.size();
            step(i);
            step(j);
            initiate(i, j);
            drain();
        }
        snapshot();
    }

    /// Records the bytes of every model now.
    void snapshot() {
        std::vector<std::byte> bytes;
        for (const auto& m : models) {
            const auto flat = flatten(m);
            const auto* p = reinterpret_cast<const std::byte*>(flat.data());
            bytes.insert(bytes.end(), p, p + flat.size() * sizeof(V));
        }
        snapshots.push_back(std::move(bytes));
    }
};

/// Both harnesses did the same: same log (exception types and texts), same models at every
/// snapshot and at the end (memcmp), same counters, same messages on the wire, same in flight.
template <class HF, class HG>
void check_same(const HF& fused, const HG& general) {
    CHECK(fused.log == general.log);
    CHECK(first_difference(fused.snapshots, general.snapshots) == -1);
    CHECK(first_difference(fused.wire, general.wire) == -1);
    REQUIRE(fused.models.size() == general.models.size());
    for (std::size_t i = 0; i < fused.models.size(); ++i) {
        CAPTURE(i);
        const auto a = flatten(fused.models[i]);
        const auto b = flatten(general.models[i]);
        REQUIRE(a.size() == b.size());
        CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0);
        CHECK(counters(fused.nodes[i].stats()) == counters(general.nodes[i].stats()));
        CHECK(fused.nodes[i].in_flight() == general.nodes[i].in_flight());
    }
    CHECK(fused.network.pending() == general.network.pending());
}

/// Runs `scenario` (a callable taking a harness&) over the fused and the general path and
/// compares; returns the fused run's log (to check that the scenario provoked its error).
template <class M, class Scenario>
std::string compare_paths(const harness_config& config, Scenario&& scenario) {
    using V = model_value_t<M>;
    harness<M, identity_quantizer<V>> fused(config);
    harness<M, general_identity<V>> general(config);
    scenario(fused);
    scenario(general);
    check_same(fused, general);
    return fused.log;
}

/// What is wrong with a forged model message.
enum class defect {
    none,
    one_value_short,    ///< payload cut by sizeof(V) bytes (the envelope matches)
    header_only,        ///< only the payload header
    empty_payload,      ///< no payload at all
    one_byte_too_many,  ///< a trailing byte
    wrong_format,       ///< another quantizer's id
    wrong_width,        ///< the other value width (float <-> double)
    one_element_more,   ///< a consistent payload of n + 1 values
    one_element_less,   ///< a consistent payload of n - 1 values
    nan_first,          ///< NaN at element 0
    nan_block,          ///< NaN at element 1024 (a flat model's second kernel block)
    inf_part,           ///< +Inf at element 1034 (the one-element part of a list model)
    nan_last,           ///< -NaN at the last element
};

const char* to_string(defect d) {
    switch (d) {
        case defect::none: return "none";
        case defect::one_value_short: return "one_value_short";
        case defect::header_only: return "header_only";
        case defect::empty_payload: return "empty_payload";
        case defect::one_byte_too_many: return "one_byte_too_many";
        case defect::wrong_format: return "wrong_format";
        case defect::wrong_width: return "wrong_width";
        case defect::one_element_more: return "one_element_more";
        case defect::one_element_less: return "one_element_less";
        case defect::nan_first: return "nan_first";
        case defect::nan_block: return "nan_block";
        case defect::inf_part: return "inf_part";
        case defect::nan_last: return "nan_last";
    }
    return "?";
}

const std::vector<defect> all_defects{
    defect::one_value_short,   defect::header_only,      defect::empty_payload,
    defect::one_byte_too_many, defect::wrong_format,     defect::wrong_width,
    defect::one_element_more,  defect::one_element_less, defect::nan_first,
    defect::nan_block,         defect::inf_part,         defect::nan_last};

/// A complete message (envelope and identity payload of `values`) from node `sender`, with
/// `d` wrong in it; the envelope always announces the payload it carries.
template <class V>
std::vector<std::byte> forged_message(message_kind kind, std::uint32_t sender,
                                      std::uint64_t interaction, std::vector<V> values, defect d,
                                      std::uint8_t flags = 0) {
    switch (d) {
        case defect::one_element_more: values.push_back(V(1)); break;
        case defect::one_element_less: values.pop_back(); break;
        case defect::nan_first: values.at(0) = std::numeric_limits<V>::quiet_NaN(); break;
        case defect::nan_block: values.at(1024) = std::numeric_limits<V>::quiet_NaN(); break;
        case defect::inf_part: values.at(1034) = std::numeric_limits<V>::infinity(); break;
        case defect::nan_last: values.back() = -std::numeric_limits<V>::quiet_NaN(); break;
        default: break;
    }
    const identity_quantizer<V> q;
    rng random(0);
    std::vector<std::byte> bytes(envelope_size + q.max_encoded_size(values.size()));
    (void)q.encode(std::span<V>(values), std::span<std::byte>(bytes).subspan(envelope_size),
                   random);
    switch (d) {
        case defect::one_value_short: bytes.resize(bytes.size() - sizeof(V)); break;
        case defect::header_only: bytes.resize(envelope_size + payload_header_size); break;
        case defect::empty_payload: bytes.resize(envelope_size); break;
        case defect::one_byte_too_many: bytes.push_back(std::byte{0}); break;
        case defect::wrong_format:
            detail::store<std::uint16_t>(bytes.data() + envelope_size, 2);
            break;
        case defect::wrong_width:
            detail::store<std::uint8_t>(bytes.data() + envelope_size + 2, sizeof(V) == 4 ? 8 : 4);
            break;
        default: break;
    }
    write_envelope(bytes, {kind, sender, interaction,
                           static_cast<std::uint32_t>(bytes.size() - envelope_size), flags});
    return bytes;
}

template <class V>
V planted(std::size_t k) {
    return k % 3 == 0   ? std::numeric_limits<V>::quiet_NaN()
           : k % 3 == 1 ? std::numeric_limits<V>::infinity()
                        : -std::numeric_limits<V>::infinity();
}

}  // namespace

#define SWARMSGD_MODEL_TYPES \
    flat_model<float>, flat_model<double>, list_model<float>, list_model<double>

// --------------------------------------------------------------------------------- tests

TEST_CASE_TEMPLATE(
    "exact path: the simulator's models and counters are the general path's, bit "
    "for bit",
    M, SWARMSGD_MODEL_TYPES) {
    using V = model_value_t<M>;
    node_stats asynchronous;
    for (const auto& [name, graph] : graphs()) {
        for (const auto schedule :
             {simulation_schedule::sequential, simulation_schedule::asynchronous}) {
            const bool sequential = schedule == simulation_schedule::sequential;
            std::vector<averaging_mode> modes{averaging_mode::nonblocking, averaging_mode::pull};
            // blocking: the sequential model itself (the asynchronous schedule refuses it).
            if (sequential) modes.push_back(averaging_mode::blocking);
            for (const auto mode : modes) {
                const std::string graph_name = name;
                CAPTURE(graph_name);
                CAPTURE(sequential);
                const std::string mode_name = to_string(mode);
                CAPTURE(mode_name);
                const std::size_t ticks = sequential ? 300 : 900;
                const auto fused = simulate<M, identity_quantizer<V>>(graph, schedule, mode, ticks);
                const auto general = simulate<M, general_identity<V>>(graph, schedule, mode, ticks);
                check_same(fused, general);
                CHECK(fused.total.interactions_completed > 0);
                if (!sequential) asynchronous += fused.total;
            }
        }
    }
    // The asynchronous runs met crossed requests and a full max_in_flight.
    CHECK(asynchronous.interactions_declined > 0);
    CHECK(asynchronous.postponed > 0);
}

TEST_CASE_TEMPLATE("exact path: blocking averaging over threads matches the general path", M,
                   SWARMSGD_MODEL_TYPES) {
    using V = model_value_t<M>;
    const auto fused = blocking_pair<M, identity_quantizer<V>>(120);
    const auto general = blocking_pair<M, general_identity<V>>(120);
    check_same(fused, general);
    CHECK(fused.total.interactions_completed == 120);
}

TEST_CASE_TEMPLATE("exact path: every message on the wire is the general path's", M,
                   SWARMSGD_MODEL_TYPES) {
    // Node 1's parts are laid out differently (same size): a flat model ignores the layout.
    for (const auto mode : {averaging_mode::nonblocking, averaging_mode::pull}) {
        const std::string mode_name = to_string(mode);
        CAPTURE(mode_name);
        harness_config config;
        config.parts = {default_parts, {700, 3, 797}};
        config.mode = mode;
        config.max_in_flight = 2;
        const auto log = compare_paths<M>(config, [](auto& h) {
            for (std::size_t round = 0; round < 40; ++round) {
                h.step(0);
                h.step(1);
                switch (round % 4) {
                    case 0: h.initiate(0, 1); break;
                    case 1: h.initiate(1, 0); break;
                    case 2:  // crossed: node 1 declines node 0's request (non-blocking)
                        h.initiate(0, 1);
                        h.initiate(1, 0);
                        break;
                    default:  // two in flight from node 0, served in one poll
                        h.initiate(0, 1);
                        h.step(0);
                        h.initiate(0, 1);
                        break;
                }
                h.drain();
                h.snapshot();
            }
            CHECK(h.network.pending() == 0);
            CHECK(h.nodes[0].stats().interactions_completed > 0);
            CHECK(h.nodes[1].stats().interactions_completed > 0);
            if (h.nodes[0].options().mode == averaging_mode::nonblocking)
                CHECK(h.nodes[0].stats().interactions_declined > 0);
        });
        CHECK(!contains(log, "swarmsgd"));  // no exception at all
    }
}

TEST_CASE_TEMPLATE("exact path: a non-finite model about to be sent fails alike", M,
                   SWARMSGD_MODEL_TYPES) {
    using V = model_value_t<M>;
    harness_config pull;
    pull.mode = averaging_mode::pull;
    for (const std::size_t k : probe_indices) {
        CAPTURE(k);
        // The initiator's model: refused before anything is sent.
        auto log = compare_paths<M>({}, [k](auto& h) {
            h.settle(1);
            const V old = element(h.models[0], k);
            element(h.models[0], k) = planted<V>(k);
            const auto before = flatten(h.models[0]);
            h.initiate(0, 1);
            h.snapshot();
            CHECK(same_bits(before, flatten(h.models[0])));
            CHECK(h.network.pending() == 0);
            element(h.models[0], k) = old;
            h.settle();
        });
        CHECK(contains(log, "node 0 initiates with node 1: N8swarmsgd16non_finite_errorE"));

        // The responder's model: refused (the fused path has averaged the blocks before the
        // bad one and restores them), the initiator is told.
        log = compare_paths<M>({}, [k](auto& h) {
            h.settle(1);
            const V old = element(h.models[1], k);
            element(h.models[1], k) = planted<V>(k);
            const auto before = flatten(h.models[1]);
            h.initiate(0, 1);
            h.poll(1);
            h.snapshot();
            CHECK(same_bits(before, flatten(h.models[1])));
            h.poll(0);
            h.snapshot();
            element(h.models[1], k) = old;
            h.settle();
        });
        CHECK(contains(log, "node 1 polls: N8swarmsgd16non_finite_errorE"));
        CHECK(contains(log, "node 0 polls: N8swarmsgd16non_finite_errorE"));

        // The responder's model, pull averaging: the responder throws (and sends nothing).
        log = compare_paths<M>(pull, [k](auto& h) {
            h.settle(1);
            const V old = element(h.models[1], k);
            element(h.models[1], k) = planted<V>(k);
            const auto before = flatten(h.models[1]);
            h.initiate(0, 1);
            h.poll(1);
            h.poll(0);
            h.snapshot();
            CHECK(same_bits(before, flatten(h.models[1])));
            element(h.models[1], k) = old;
            h.settle();
        });
        CHECK(contains(log, "node 1 polls: N8swarmsgd16non_finite_errorE"));

        // The puller's own model: pull averaging does not check it, alike on both paths.
        log = compare_paths<M>(pull, [k](auto& h) {
            h.settle(1);
            element(h.models[0], k) = planted<V>(k);
            h.initiate(0, 1);
            h.poll(1);
            h.poll(0);
            h.snapshot();
            element(h.models[0], k) = V(0.5);
            h.settle();
        });
    }
}

TEST_CASE_TEMPLATE("exact path: a non-finite request to a non-finite responder fails alike", M,
                   SWARMSGD_MODEL_TYPES) {
    using V = model_value_t<M>;
    // (element of the responder's model, element of the request): either first, same block,
    // same element, neighbours across a block or part boundary.
    const std::vector<std::pair<std::size_t, std::size_t>> pairs{
        {0, 1499}, {1499, 0}, {1024, 1024}, {1023, 1024}, {1029, 1030}, {1034, 5}, {3, 4}};
    for (const auto& pair : pairs) {
        // (not a structured binding: clang cannot capture one, and CAPTURE is a lambda)
        const std::size_t own = pair.first, request = pair.second;
        CAPTURE(own);
        CAPTURE(request);
        const auto log = compare_paths<M>({}, [own, request](auto& h) {
            h.settle(1);
            const V old = element(h.models[1], own);
            element(h.models[1], own) = planted<V>(own);
            const auto before = flatten(h.models[1]);
            auto values = flatten(h.models[0]);
            values.at(request) = planted<V>(request + 1);
            h.forge(
                0, 1,
                forged_message<V>(message_kind::request, 0, 99, std::move(values), defect::none));
            h.poll(1);  // the request's value takes precedence: message_error
            h.snapshot();
            CHECK(same_bits(before, flatten(h.models[1])));
            REQUIRE(h.intercept(0).has_value());  // the failure message (recorded)
            element(h.models[1], own) = old;
            h.settle();
        });
        CHECK(contains(log, "node 1 polls: N8swarmsgd13message_errorE"));
    }
}

TEST_CASE_TEMPLATE("exact path: a NaN or wrongly sized gradient fails alike", M,
                   SWARMSGD_MODEL_TYPES) {
    using V = model_value_t<M>;
    const auto log = compare_paths<M>({}, [](auto& h) {
        h.settle(1);
        for (const std::size_t k : probe_indices) {
            std::vector<V> grad(model_elements, V(0.25));
            grad[k] = planted<V>(k);
            h.attempt("NaN gradient", [&] { h.nodes[0].apply_gradient(grad); });
        }
        for (const std::size_t n : {std::size_t{0}, model_elements - 1, model_elements + 1}) {
            const std::vector<V> grad(n, V(0.25));
            h.attempt("gradient of the wrong size", [&] { h.nodes[1].apply_gradient(grad); });
        }
        h.snapshot();
        h.settle();
    });
    CHECK(contains(log, "non_finite_error"));
    CHECK(contains(log, "size_mismatch_error"));
}

TEST_CASE_TEMPLATE("exact path: peers with models of different sizes fail alike", M,
                   SWARMSGD_MODEL_TYPES) {
    for (const auto mode : {averaging_mode::nonblocking, averaging_mode::pull}) {
        const std::string mode_name = to_string(mode);
        CAPTURE(mode_name);
        harness_config config;
        config.parts = {default_parts, {5, 1029, 1, 467}};
        config.mode = mode;
        const auto log = compare_paths<M>(config, [](auto& h) {
            for (const auto& [i, j] : {std::pair<std::size_t, std::size_t>{0, 1}, {1, 0}}) {
                h.step(i);
                h.initiate(i, j);
                h.poll(j);  // request: refused; pull request: served
                h.snapshot();
                h.poll(i);  // the refusal, or the pull reply of the wrong size
                h.snapshot();
            }
        });
        CHECK(contains(log, "size_mismatch_error"));
    }
}

TEST_CASE_TEMPLATE("exact path: a model resized under its node fails alike", M,
                   SWARMSGD_MODEL_TYPES) {
    // The node checks the model's size where it reads it (the general path in gather).
    const auto resize = [](auto& h, std::size_t i, std::size_t n) {
        M& m = h.models[i];
        if constexpr (std::is_same_v<M, flat_model<model_value_t<M>>>)
            m.resize(n);
        else
            m.back().resize(m.back().size() + n - model_size(m));
    };
    harness_config pull;
    pull.mode = averaging_mode::pull;
    for (const long delta : {-1L, 1L}) {
        CAPTURE(delta);
        const std::size_t n = static_cast<std::size_t>(static_cast<long>(model_elements) + delta);
        // The initiator's model.
        auto log = compare_paths<M>({}, [&](auto& h) {
            h.settle(1);
            resize(h, 0, n);
            h.initiate(0, 1);
            h.snapshot();
            resize(h, 0, model_elements);
            h.settle();
        });
        CHECK(contains(log, "node 0 initiates with node 1: N8swarmsgd19size_mismatch_errorE"));

        // The responder's model: it throws when the request lands (and sends nothing).
        log = compare_paths<M>({}, [&](auto& h) {
            h.settle(1);
            resize(h, 1, n);
            h.initiate(0, 1);
            h.poll(1);
            h.snapshot();
            resize(h, 1, model_elements);
            h.settle();
        });
        CHECK(contains(log, "node 1 polls: N8swarmsgd19size_mismatch_errorE"));

        // The puller's model when the pull reply lands.
        log = compare_paths<M>(pull, [&](auto& h) {
            h.settle(1);
            h.initiate(0, 1);
            h.poll(1);
            resize(h, 0, n);
            h.poll(0);
            h.snapshot();
            resize(h, 0, model_elements);
            h.settle();
        });
        CHECK(contains(log, "node 0 polls: N8swarmsgd19size_mismatch_errorE"));
    }
}

TEST_CASE_TEMPLATE("exact path: a malformed reply fails alike and changes no model", M,
                   SWARMSGD_MODEL_TYPES) {
    using V = model_value_t<M>;
    for (const auto mode : {averaging_mode::nonblocking, averaging_mode::pull}) {
        const message_kind kind =
            mode == averaging_mode::pull ? message_kind::pull_reply : message_kind::reply;
        std::vector<std::pair<defect, std::uint8_t>> cases;
        for (const defect d : all_defects) cases.push_back({d, 0});
        if (kind == message_kind::reply) cases.push_back({defect::none, flag_fallback});
        for (const auto& c : cases) {
            const defect d = c.first;  // (not a structured binding: CAPTURE is a lambda)
            const std::uint8_t flags = c.second;
            const std::string mode_name = to_string(mode);
            CAPTURE(mode_name);
            const std::string defect_name = to_string(d);
            CAPTURE(defect_name);
            CAPTURE(int(flags));
            harness_config config;
            config.mode = mode;
            const auto log = compare_paths<M>(config, [&](auto& h) {
                h.settle(1);
                h.initiate(0, 1);
                const auto request = h.intercept(1);  // node 1 never sees it
                REQUIRE(request.has_value());
                const auto e = read_envelope(request->bytes, 0);
                const auto before = flatten(h.models[0]);
                h.forge(1, 0,
                        forged_message<V>(kind, 1, e.interaction, flatten(h.models[1]), d, flags));
                h.relay(0);
                h.attempt("node 0 polls the forged reply", [&] { h.nodes[0].poll(); });
                h.snapshot();
                CHECK(same_bits(before, flatten(h.models[0])));
                CHECK(h.nodes[0].in_flight() == 0);
                h.settle();
            });
            CHECK(contains(log, "node 0 polls the forged reply: N8swarmsgd"));
        }
    }
}

TEST_CASE_TEMPLATE("exact path: a malformed request is refused alike", M, SWARMSGD_MODEL_TYPES) {
    using V = model_value_t<M>;
    for (const defect d : all_defects) {
        const std::string defect_name = to_string(d);
        CAPTURE(defect_name);
        const auto log = compare_paths<M>({}, [d](auto& h) {
            h.settle(1);
            const auto before = flatten(h.models[1]);
            h.forge(0, 1, forged_message<V>(message_kind::request, 0, 7, flatten(h.models[0]), d));
            h.relay(1);
            h.attempt("node 1 polls the forged request", [&] { h.nodes[1].poll(); });
            h.snapshot();
            CHECK(same_bits(before, flatten(h.models[1])));
            REQUIRE(h.intercept(0).has_value());  // the failure message, reason included
            h.settle();
        });
        CHECK(contains(log, "node 1 polls the forged request: N8swarmsgd"));
    }
}
