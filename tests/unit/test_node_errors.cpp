// Node-level error handling, single-threaded: swarm_node over simulated_network endpoints.
// Every failure must throw the documented exception type with a message naming the nodes and
// values involved, leave the model unchanged and send nothing non-finite.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/errors.hpp>
#include <swarmsgd/message.hpp>
#include <swarmsgd/quantizers/identity.hpp>
#include <swarmsgd/swarm_node.hpp>
#include <swarmsgd/topology.hpp>

using swarmsgd::simulated_network;
using node_t = swarmsgd::swarm_node<std::vector<float>, simulated_network::endpoint>;

namespace {

template <class E, class Fn>
std::string what_of(Fn&& fn) {
    try {
        fn();
    } catch (const E& e) {
        return e.what();
    }
    return "<no exception of the expected type>";
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

std::vector<float> iota_model(std::size_t n, float start) {
    std::vector<float> m(n);
    for (std::size_t k = 0; k < n; ++k) m[k] = start + static_cast<float>(k);
    return m;
}

/// A complete message (envelope + identity payload of `values`) as node `sender` would send it.
std::vector<std::byte> model_message(swarmsgd::message_kind kind, std::uint32_t sender,
                                     std::uint64_t interaction, std::vector<float> values) {
    const swarmsgd::identity_quantizer<float> q;
    swarmsgd::rng random(0);
    std::vector<std::byte> bytes(swarmsgd::envelope_size + q.max_encoded_size(values.size()));
    const std::size_t payload =
        q.encode(std::span<float>(values),
                 std::span<std::byte>(bytes).subspan(swarmsgd::envelope_size), random);
    swarmsgd::write_envelope(bytes,
                             {kind, sender, interaction, static_cast<std::uint32_t>(payload)});
    return bytes;
}

/// n nodes with zero network delay, one float model each, on `graph`.
struct swarm {
    simulated_network network;
    swarmsgd::topology graph;
    std::vector<simulated_network::endpoint> endpoints;
    std::vector<std::vector<float>> models;
    std::vector<node_t> nodes;

    swarm(swarmsgd::topology g, const std::vector<std::size_t>& sizes,
          swarmsgd::swarm_options options = {})
        : network(sizes.size(), 0, 0, 1), graph(std::move(g)) {
        const std::size_t n = sizes.size();
        endpoints.reserve(n);
        models.reserve(n);
        nodes.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            endpoints.push_back(network.endpoint_for(i));
            models.push_back(iota_model(sizes[i], 10.0f * static_cast<float>(i)));
        }
        for (std::size_t i = 0; i < n; ++i)
            nodes.emplace_back(models[i], endpoints[i], graph, options);
    }
};

std::size_t messages_sent(const swarm& s) {
    std::size_t total = 0;
    for (const auto& node : s.nodes) total += node.stats().messages_sent;
    return total;
}

}  // namespace

// ------------------------------------------------------------------------------- gradients

TEST_CASE(
    "a NaN or infinite gradient is refused: non_finite_error, model unchanged, nothing sent") {
    const float bad_values[] = {std::numeric_limits<float>::quiet_NaN(),
                                std::numeric_limits<float>::infinity(),
                                -std::numeric_limits<float>::infinity()};
    for (const float bad : bad_values) {
        for (const std::size_t index : {std::size_t{0}, std::size_t{5}, std::size_t{9}}) {
            CAPTURE(bad);
            CAPTURE(index);
            swarm s(swarmsgd::topology::complete(2), {10, 10});
            const auto before = s.models[0];
            std::vector<float> grad(10, 0.5f);
            grad[index] = bad;
            const auto m =
                what_of<swarmsgd::non_finite_error>([&] { s.nodes[0].apply_gradient(grad); });
            CHECK(contains(m, "node 0"));
            CHECK(contains(m, "element " + std::to_string(index)));
            CHECK(s.models[0] == before);
            CHECK(s.network.pending() == 0);
            CHECK(s.nodes[0].stats().messages_sent == 0);

            // The node is still usable: a finite step, then a whole interaction.
            const std::vector<float> ok(10, 0.0f);
            CHECK_NOTHROW(s.nodes[0].apply_gradient(ok));
            s.nodes[0].after_local_step();  // fixed(1): initiates with node 1
            s.nodes[1].poll();
            s.nodes[0].poll();
            CHECK(s.nodes[0].stats().interactions_completed == 1);
        }
    }
}

TEST_CASE("a gradient of the wrong size: size_mismatch_error naming both sizes") {
    swarm s(swarmsgd::topology::complete(2), {10, 10});
    const auto before = s.models[0];
    for (const std::size_t n : {std::size_t{0}, std::size_t{9}, std::size_t{11}}) {
        CAPTURE(n);
        const std::vector<float> grad(n, 1.0f);
        const auto m =
            what_of<swarmsgd::size_mismatch_error>([&] { s.nodes[0].apply_gradient(grad); });
        CHECK(contains(m, "node 0"));
        CHECK(contains(m, "gradient has " + std::to_string(n)));
        CHECK(contains(m, "10"));
        CHECK(s.models[0] == before);
    }
    CHECK(s.network.pending() == 0);
}

// --------------------------------------------------------------------- mismatched partners

TEST_CASE("two nodes with different model sizes: both sides throw size_mismatch_error") {
    swarm s(swarmsgd::topology::complete(2), {10, 12});
    const auto before0 = s.models[0];
    const auto before1 = s.models[1];

    REQUIRE(s.nodes[0].initiate(1));
    CHECK(s.network.pending() == 1);

    const auto m1 = what_of<swarmsgd::size_mismatch_error>([&] { s.nodes[1].poll(); });
    CHECK(contains(m1, "node 0"));
    CHECK(contains(m1, "node 1"));
    CHECK(contains(m1, "10"));
    CHECK(contains(m1, "12"));
    CHECK(s.models[1] == before1);
    CHECK(s.nodes[1].stats().interactions_served == 0);
    // Node 1 told node 0 why.
    CHECK(s.network.pending() == 1);

    const auto m0 = what_of<swarmsgd::size_mismatch_error>([&] { s.nodes[0].poll(); });
    CHECK(contains(m0, "node 0"));
    CHECK(contains(m0, "node 1"));
    CHECK(contains(m0, "refused"));
    CHECK(contains(m0, "10"));
    CHECK(contains(m0, "12"));
    CHECK(s.models[0] == before0);
    CHECK(s.nodes[0].stats().interactions_completed == 0);
    CHECK(s.network.pending() == 0);
}

// ---------------------------------------------------------------------- non-finite models

TEST_CASE("a node whose model contains NaN refuses to send it") {
    swarm s(swarmsgd::topology::complete(2), {10, 10});
    s.models[0][3] = std::numeric_limits<float>::quiet_NaN();
    const auto m = what_of<swarmsgd::non_finite_error>([&] { (void)s.nodes[0].initiate(1); });
    CHECK(contains(m, "node 0"));
    CHECK(contains(m, "element 3"));
    CHECK(contains(m, "node 1"));
    CHECK(s.network.pending() == 0);
    CHECK(s.nodes[0].stats().messages_sent == 0);
    CHECK(s.nodes[0].stats().interactions_initiated == 0);
    CHECK(s.nodes[0].in_flight() == 0);
    CHECK(std::isnan(s.models[0][3]));
}

TEST_CASE("a responder whose model contains Inf refuses to answer and tells the initiator") {
    swarm s(swarmsgd::topology::complete(2), {6, 6});
    s.models[1][4] = std::numeric_limits<float>::infinity();
    const auto before0 = s.models[0];
    const auto before1 = s.models[1];
    REQUIRE(s.nodes[0].initiate(1));

    const auto m1 = what_of<swarmsgd::non_finite_error>([&] { s.nodes[1].poll(); });
    CHECK(contains(m1, "node 1"));
    CHECK(contains(m1, "element 4"));
    CHECK(s.models[1] == before1);
    // Only the failure message travels, never the infinite model.
    CHECK(s.network.pending() == 1);
    CHECK(s.nodes[1].stats().messages_sent == 1);
    CHECK(s.nodes[1].stats().bytes_sent <
          swarmsgd::envelope_size + swarmsgd::payload_header_size + 6 * sizeof(float) + 200);

    const auto m0 = what_of<swarmsgd::non_finite_error>([&] { s.nodes[0].poll(); });
    CHECK(contains(m0, "node 1"));
    CHECK(contains(m0, "refused"));
    CHECK(s.models[0] == before0);
}

// --------------------------------------------------------------------------------- timeouts

TEST_CASE("a peer that never answers: peer_timeout_error naming the peer and the timeout") {
    swarmsgd::swarm_options options;
    options.reply_timeout = std::chrono::milliseconds(50);
    swarm s(swarmsgd::topology::complete(2), {10, 10}, options);
    const auto before = s.models[0];
    REQUIRE(s.nodes[0].initiate(1));
    CHECK(s.nodes[0].in_flight() == 1);
    // Node 1 never polls.
    std::this_thread::sleep_for(std::chrono::milliseconds(80));
    const auto m = what_of<swarmsgd::peer_timeout_error>([&] { s.nodes[0].poll(); });
    CHECK(contains(m, "node 0"));
    CHECK(contains(m, "node 1"));
    CHECK(contains(m, "reply_timeout = 50 ms"));
    CHECK(s.models[0] == before);
}

// ------------------------------------------------------------------- configuration errors

TEST_CASE("initiate with a non-neighbour, itself or an out-of-range node: invalid_argument_error") {
    swarm s(swarmsgd::topology::ring(4), {5, 5, 5, 5});
    const auto m = what_of<swarmsgd::invalid_argument_error>([&] { (void)s.nodes[0].initiate(2); });
    CHECK(contains(m, "node 0"));
    CHECK(contains(m, "node 2"));
    CHECK(contains(m, "ring"));
    CHECK_THROWS_AS((void)s.nodes[0].initiate(0), swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS((void)s.nodes[0].initiate(7), swarmsgd::invalid_argument_error);
    CHECK(s.network.pending() == 0);
    CHECK(messages_sent(s) == 0);
    // Neighbours are fine.
    CHECK(s.nodes[0].initiate(1));
    CHECK(s.nodes[0].initiate(3) == false);  // max_in_flight = 1: postponed
    CHECK(s.nodes[0].stats().postponed == 1);
}

TEST_CASE("topology size != communicator size: topology_error naming both") {
    simulated_network network(2, 0, 0, 1);
    auto endpoint = network.endpoint_for(0);
    const auto graph = swarmsgd::topology::complete(3);
    std::vector<float> model(4);
    const auto m =
        what_of<swarmsgd::topology_error>([&] { node_t node(model, endpoint, graph, {}); });
    CHECK(contains(m, "node 0"));
    CHECK(contains(m, "3 nodes"));
    CHECK(contains(m, "2"));
}

TEST_CASE("invalid options are refused by the node constructor") {
    simulated_network network(2, 0, 0, 1);
    auto endpoint = network.endpoint_for(0);
    const auto graph = swarmsgd::topology::complete(2);
    std::vector<float> model(4);
    swarmsgd::swarm_options options;
    options.max_in_flight = 0;
    CHECK_THROWS_AS(node_t(model, endpoint, graph, options), swarmsgd::invalid_argument_error);
    options = {};
    options.sgd.learning_rate = -1;
    CHECK_THROWS_AS(node_t(model, endpoint, graph, options), swarmsgd::invalid_argument_error);
}

// ------------------------------------------------------------------------ forged and garbage

TEST_CASE("a forged reply for an interaction never started: message_error") {
    simulated_network network(2, 0, 0, 1);
    auto e0 = network.endpoint_for(0);
    auto forger = network.endpoint_for(1);
    const auto graph = swarmsgd::topology::complete(2);
    std::vector<float> model = iota_model(5, 1.0f);
    const auto before = model;
    node_t node(model, e0, graph, {});

    (void)forger.isend(
        0, model_message(swarmsgd::message_kind::reply, 1, 77, std::vector<float>(5, 100.0f)));
    const auto m = what_of<swarmsgd::message_error>([&] { node.poll(); });
    CHECK(contains(m, "node 0"));
    CHECK(contains(m, "node 1"));
    CHECK(contains(m, "interaction 77"));
    CHECK(model == before);
    CHECK(node.stats().interactions_completed == 0);
}

TEST_CASE("a reply from the wrong peer for a real interaction id: message_error") {
    swarm s(swarmsgd::topology::complete(3), {4, 4, 4});
    const auto before = s.models[0];
    REQUIRE(s.nodes[0].initiate(1));  // interaction 0 with node 1
    (void)s.endpoints[2].isend(
        0, model_message(swarmsgd::message_kind::reply, 2, 0, std::vector<float>(4, -3.0f)));
    const auto m = what_of<swarmsgd::message_error>([&] { s.nodes[0].poll(); });
    CHECK(contains(m, "node 2"));
    CHECK(contains(m, "interaction 0"));
    CHECK(s.models[0] == before);
    CHECK(s.nodes[0].in_flight() == 1);  // still waiting for node 1
}

TEST_CASE("garbage bytes in a node's inbox: message_error naming the sender") {
    const std::vector<std::vector<std::byte>> garbage{
        {},                                           // empty
        std::vector<std::byte>(5, std::byte{0x42}),   // truncated
        std::vector<std::byte>(40, std::byte{0x42}),  // no magic
    };
    for (const auto& bytes : garbage) {
        CAPTURE(bytes.size());
        simulated_network network(2, 0, 0, 1);
        auto e0 = network.endpoint_for(0);
        auto sender = network.endpoint_for(1);
        const auto graph = swarmsgd::topology::complete(2);
        std::vector<float> model = iota_model(5, 1.0f);
        const auto before = model;
        node_t node(model, e0, graph, {});
        (void)sender.isend(0, bytes);
        const auto m = what_of<swarmsgd::message_error>([&] { node.poll(); });
        CHECK(contains(m, "node 1"));
        CHECK(model == before);
    }
}

TEST_CASE("a request whose payload is malformed is refused and the sender is told") {
    simulated_network network(2, 0, 0, 1);
    auto e1 = network.endpoint_for(1);
    auto raw = network.endpoint_for(0);
    const auto graph = swarmsgd::topology::complete(2);
    std::vector<float> model = iota_model(5, 1.0f);
    const auto before = model;
    node_t node(model, e1, graph, {});

    // A request whose identity payload is one value short (envelope consistent, payload not).
    auto bytes = model_message(swarmsgd::message_kind::request, 0, 3, std::vector<float>(5, 1.0f));
    bytes.resize(bytes.size() - sizeof(float));
    swarmsgd::write_envelope(bytes,
                             {swarmsgd::message_kind::request, 0, 3,
                              static_cast<std::uint32_t>(bytes.size() - swarmsgd::envelope_size)});
    (void)raw.isend(1, bytes);
    const auto m = what_of<swarmsgd::message_error>([&] { node.poll(); });
    CHECK(contains(m, "node 1"));
    CHECK(contains(m, "node 0"));
    CHECK(model == before);

    // The failure message for interaction 3 waits in node 0's inbox.
    auto answer = raw.try_receive();
    REQUIRE(answer.has_value());
    CHECK(answer->source == 1);
    const auto e = swarmsgd::read_envelope(answer->bytes, 1);
    CHECK(e.kind == swarmsgd::message_kind::failure);
    CHECK(e.interaction == 3);
    CHECK(network.pending() == 0);
}

TEST_CASE("errors are all swarmsgd::error") {
    swarm s(swarmsgd::topology::complete(2), {3, 3});
    const std::vector<float> wrong(2, 0.0f);
    CHECK_THROWS_AS(s.nodes[0].apply_gradient(wrong), swarmsgd::error);
    std::vector<float> nan(3, std::numeric_limits<float>::quiet_NaN());
    CHECK_THROWS_AS(s.nodes[0].apply_gradient(nan), swarmsgd::error);
    CHECK_THROWS_AS((void)s.nodes[0].initiate(0), swarmsgd::error);
}
