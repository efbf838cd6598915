#pragma once
// The node error suite: swarm_node's error handling, single-threaded over simulated_network
// endpoints, run through every exchange (exchanges/: exact, general, recovering) and both
// memory back ends (host; Thrust system models). Every failure must throw the documented
// exception type with a message naming the nodes and values involved, leave the model
// unchanged and send nothing non-finite.
//
// A test program defines its configurations and invokes the suite:
//   struct my_config {
//       using model_type = ...;       // a model of float values
//       using quantizer_type = ...;   // picks the exchange
//       static model_type make(const std::vector<float>&);        // a model holding these
//       static std::vector<float> values(const model_type&);      // the model's values
//       static void assign(model_type&, const std::vector<float>&);  // same size, in place
//   };
//   SWARMSGD_NODE_ERROR_SUITE(my_config, other_config)
// (tests/unit/test_node_errors.cpp: host; tests/thrust/test_node_errors.cpp: Thrust).

#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/errors.hpp>
#include <swarmsgd/message.hpp>
#include <swarmsgd/swarm_node.hpp>
#include <swarmsgd/topology.hpp>

#include "error_text.hpp"

namespace test_support::node_errors {

using swarmsgd::simulated_network;

template <class Config>
using node_of = swarmsgd::swarm_node<typename Config::model_type, simulated_network::endpoint,
                                     typename Config::quantizer_type>;

using test_support::contains;
using test_support::what_of;

inline std::vector<float> iota_values(std::size_t n, float start) {
    std::vector<float> m(n);
    for (std::size_t k = 0; k < n; ++k) m[k] = start + static_cast<float>(k);
    return m;
}

/// A complete message (envelope + the configuration's encoding of `values`) as node `sender`
/// would send it.
template <class Config>
std::vector<std::byte> model_message(swarmsgd::message_kind kind, std::uint32_t sender,
                                     std::uint64_t interaction, std::vector<float> values) {
    typename Config::quantizer_type q{};
    swarmsgd::rng random(0);
    std::vector<std::byte> bytes(swarmsgd::envelope_size + q.max_encoded_size(values.size()));
    const std::size_t payload =
        q.encode(std::span<float>(values),
                 std::span<std::byte>(bytes).subspan(swarmsgd::envelope_size), random);
    bytes.resize(swarmsgd::envelope_size + payload);
    swarmsgd::write_envelope(bytes,
                             {kind, sender, interaction, static_cast<std::uint32_t>(payload)});
    return bytes;
}

/// A fixup (envelope + fallback section) for `ranges`, each filled with `value`.
inline std::vector<std::byte> fixup_message(
    std::uint32_t sender, std::uint64_t interaction,
    const std::vector<swarmsgd::detail::fallback_range>& ranges, float value) {
    std::vector<std::byte> bytes(swarmsgd::envelope_size);
    std::byte* p = swarmsgd::detail::append_fallback_header(bytes, ranges, sizeof(float));
    for (const auto& r : ranges)
        for (std::size_t k = r.begin; k < r.end; ++k, p += sizeof(float))
            std::memcpy(p, &value, sizeof(float));
    swarmsgd::write_envelope(bytes,
                             {swarmsgd::message_kind::fixup, sender, interaction,
                              static_cast<std::uint32_t>(bytes.size() - swarmsgd::envelope_size)});
    return bytes;
}

/// Polls `node` every 2 ms for `how_long` (a running node, whose waiting time counts).
template <class Node>
void keep_polling(Node& node, std::chrono::milliseconds how_long) {
    const auto end = std::chrono::steady_clock::now() + how_long;
    while (std::chrono::steady_clock::now() < end) {
        node.poll();
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

/// n nodes with zero network delay, one model each (node i holds 10 i, 10 i + 1, ...), on
/// `graph`.
template <class Config>
struct swarm {
    using model_type = typename Config::model_type;
    simulated_network network;
    swarmsgd::topology graph;
    std::vector<simulated_network::endpoint> endpoints;
    std::vector<model_type> models;
    std::vector<node_of<Config>> nodes;

    swarm(swarmsgd::topology g, const std::vector<std::size_t>& sizes,
          swarmsgd::swarm_options options = {})
        : network(sizes.size(), 0, 0, 1), graph(std::move(g)) {
        const std::size_t n = sizes.size();
        endpoints.reserve(n);
        models.reserve(n);
        nodes.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            endpoints.push_back(network.endpoint_for(i));
            models.push_back(Config::make(iota_values(sizes[i], 10.0f * static_cast<float>(i))));
        }
        for (std::size_t i = 0; i < n; ++i)
            nodes.emplace_back(models[i], endpoints[i], graph, options);
    }

    std::vector<float> values(std::size_t i) const { return Config::values(models[i]); }

    std::size_t messages_sent() const {
        std::size_t total = 0;
        for (const auto& node : nodes) total += node.stats().messages_sent;
        return total;
    }
};

// ----------------------------------------------------------------------------------- gradients

TEST_CASE_TEMPLATE_DEFINE(
    "a NaN or infinite gradient is refused: non_finite_error, model unchanged, nothing sent",
    Config, node_errors_non_finite_gradient) {
    const float bad_values[] = {std::numeric_limits<float>::quiet_NaN(),
                                std::numeric_limits<float>::infinity(),
                                -std::numeric_limits<float>::infinity()};
    for (const float bad : bad_values) {
        for (const std::size_t index : {std::size_t{0}, std::size_t{5}, std::size_t{9}}) {
            CAPTURE(bad);
            CAPTURE(index);
            swarm<Config> s(swarmsgd::topology::complete(2), {10, 10});
            const auto before = s.values(0);
            std::vector<float> grad(10, 0.5f);
            grad[index] = bad;
            const auto m =
                what_of<swarmsgd::non_finite_error>([&] { s.nodes[0].apply_gradient(grad); });
            CHECK(contains(m, "node 0"));
            CHECK(contains(m, "element " + std::to_string(index)));
            CHECK(s.values(0) == before);
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

TEST_CASE_TEMPLATE_DEFINE("a gradient of the wrong size: size_mismatch_error naming both sizes",
                          Config, node_errors_gradient_size) {
    swarm<Config> s(swarmsgd::topology::complete(2), {10, 10});
    const auto before = s.values(0);
    for (const std::size_t n : {std::size_t{0}, std::size_t{9}, std::size_t{11}}) {
        CAPTURE(n);
        const std::vector<float> grad(n, 1.0f);
        const auto m =
            what_of<swarmsgd::size_mismatch_error>([&] { s.nodes[0].apply_gradient(grad); });
        CHECK(contains(m, "node 0"));
        CHECK(contains(m, "gradient has " + std::to_string(n)));
        CHECK(contains(m, "10"));
        CHECK(s.values(0) == before);
    }
    CHECK(s.network.pending() == 0);
}

// ------------------------------------------------------------------------ mismatched partners

TEST_CASE_TEMPLATE_DEFINE(
    "two nodes with different model sizes: both sides throw size_mismatch_error", Config,
    node_errors_partner_size) {
    swarm<Config> s(swarmsgd::topology::complete(2), {10, 12});
    const auto before0 = s.values(0);
    const auto before1 = s.values(1);

    REQUIRE(s.nodes[0].initiate(1));
    CHECK(s.network.pending() == 1);

    const auto m1 = what_of<swarmsgd::size_mismatch_error>([&] { s.nodes[1].poll(); });
    CHECK(contains(m1, "node 0"));
    CHECK(contains(m1, "node 1"));
    CHECK(contains(m1, "10"));
    CHECK(contains(m1, "12"));
    CHECK(s.values(1) == before1);
    CHECK(s.nodes[1].stats().interactions_served == 0);
    // Node 1 told node 0 why.
    CHECK(s.network.pending() == 1);

    const auto m0 = what_of<swarmsgd::size_mismatch_error>([&] { s.nodes[0].poll(); });
    CHECK(contains(m0, "node 0"));
    CHECK(contains(m0, "node 1"));
    CHECK(contains(m0, "refused"));
    CHECK(contains(m0, "10"));
    CHECK(contains(m0, "12"));
    CHECK(s.values(0) == before0);
    CHECK(s.nodes[0].stats().interactions_completed == 0);
    CHECK(s.network.pending() == 0);
}

// ---------------------------------------------------------------------------- non-finite models

TEST_CASE_TEMPLATE_DEFINE("a node whose model contains NaN refuses to send it", Config,
                          node_errors_nan_model) {
    swarm<Config> s(swarmsgd::topology::complete(2), {10, 10});
    auto planted = s.values(0);
    planted[3] = std::numeric_limits<float>::quiet_NaN();
    Config::assign(s.models[0], planted);
    const auto m = what_of<swarmsgd::non_finite_error>([&] { (void)s.nodes[0].initiate(1); });
    CHECK(contains(m, "node 0"));
    CHECK(contains(m, "element 3"));
    CHECK(contains(m, "node 1"));
    CHECK(s.network.pending() == 0);
    CHECK(s.nodes[0].stats().messages_sent == 0);
    CHECK(s.nodes[0].stats().interactions_initiated == 0);
    CHECK(s.nodes[0].in_flight() == 0);
    CHECK(std::isnan(s.values(0)[3]));
}

TEST_CASE_TEMPLATE_DEFINE(
    "a responder whose model contains Inf refuses to answer and tells the initiator", Config,
    node_errors_inf_responder) {
    swarm<Config> s(swarmsgd::topology::complete(2), {6, 6});
    auto planted = s.values(1);
    planted[4] = std::numeric_limits<float>::infinity();
    Config::assign(s.models[1], planted);
    const auto before0 = s.values(0);
    const auto before1 = s.values(1);
    REQUIRE(s.nodes[0].initiate(1));

    const auto m1 = what_of<swarmsgd::non_finite_error>([&] { s.nodes[1].poll(); });
    CHECK(contains(m1, "node 1"));
    CHECK(contains(m1, "element 4"));
    CHECK(s.values(1) == before1);
    // Only the failure message travels, never the infinite model.
    CHECK(s.network.pending() == 1);
    CHECK(s.nodes[1].stats().messages_sent == 1);
    CHECK(s.nodes[1].stats().bytes_sent <
          swarmsgd::envelope_size + swarmsgd::payload_header_size + 6 * sizeof(float) + 200);

    const auto m0 = what_of<swarmsgd::non_finite_error>([&] { s.nodes[0].poll(); });
    CHECK(contains(m0, "node 1"));
    CHECK(contains(m0, "refused"));
    CHECK(s.values(0) == before0);
}

// ----------------------------------------------------------------------------------- timeouts

TEST_CASE_TEMPLATE_DEFINE(
    "a peer that never answers: peer_timeout_error naming the peer and the timeout", Config,
    node_errors_timeout) {
    swarmsgd::swarm_options options;
    options.reply_timeout = std::chrono::milliseconds(50);
    swarm<Config> s(swarmsgd::topology::complete(2), {10, 10}, options);
    const auto before = s.values(0);
    REQUIRE(s.nodes[0].initiate(1));
    CHECK(s.nodes[0].in_flight() == 1);
    // Node 1 never polls; node 0 keeps polling (it is running: the time counts).
    const auto m = what_of<swarmsgd::peer_timeout_error>(
        [&] { keep_polling(s.nodes[0], std::chrono::seconds(5)); });
    CHECK(contains(m, "node 0: no reply from node 1 to interaction 0 after "));
    CHECK(contains(m, "reply_timeout = 50 ms"));
    CHECK(s.values(0) == before);
}

TEST_CASE_TEMPLATE_DEFINE(
    "a node that was itself stopped does not blame its partner: the gap is credited", Config,
    node_errors_own_stall) {
    swarmsgd::swarm_options options;
    options.reply_timeout = std::chrono::milliseconds(200);
    swarm<Config> s(swarmsgd::topology::complete(2), {10, 10}, options);
    REQUIRE(s.nodes[0].initiate(1));
    s.nodes[0].poll();
    // Node 0 itself is away for 3x reply_timeout (stopped, descheduled): node 1 could not have
    // answered a node that was not there.
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    CHECK_NOTHROW(s.nodes[0].poll());
    CHECK(s.nodes[0].stats().stalls_credited >= 1);
    CHECK(s.nodes[0].in_flight() == 1);
    // Node 1 answers; the interaction completes as if nothing happened.
    s.nodes[1].poll();
    s.nodes[0].poll();
    CHECK(s.nodes[0].stats().interactions_completed == 1);
    CHECK(s.nodes[0].in_flight() == 0);
    // A partner that stays silent while this node runs is still reported, within one
    // reply_timeout of this node's running time.
    REQUIRE(s.nodes[0].initiate(1));
    const auto start = std::chrono::steady_clock::now();
    const auto m = what_of<swarmsgd::peer_timeout_error>(
        [&] { keep_polling(s.nodes[0], std::chrono::seconds(5)); });
    CHECK(contains(m, "no reply from node 1"));
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(4));
}

// ---------------------------------------------------------------------- configuration errors

TEST_CASE_TEMPLATE_DEFINE(
    "initiate with a non-neighbour, itself or an out-of-range node: invalid_argument_error", Config,
    node_errors_not_a_neighbour) {
    swarm<Config> s(swarmsgd::topology::ring(4), {5, 5, 5, 5});
    const auto m = what_of<swarmsgd::invalid_argument_error>([&] { (void)s.nodes[0].initiate(2); });
    CHECK(contains(m, "node 0"));
    CHECK(contains(m, "node 2"));
    CHECK(contains(m, "ring"));
    CHECK_THROWS_AS((void)s.nodes[0].initiate(0), swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS((void)s.nodes[0].initiate(7), swarmsgd::invalid_argument_error);
    CHECK(s.network.pending() == 0);
    CHECK(s.messages_sent() == 0);
    // Neighbours are fine.
    CHECK(s.nodes[0].initiate(1));
    CHECK(s.nodes[0].initiate(3) == false);  // max_in_flight = 1: postponed
    CHECK(s.nodes[0].stats().postponed == 1);
}

TEST_CASE_TEMPLATE_DEFINE("topology size != communicator size: topology_error naming both", Config,
                          node_errors_topology_size) {
    simulated_network network(2, 0, 0, 1);
    auto endpoint = network.endpoint_for(0);
    const auto graph = swarmsgd::topology::complete(3);
    auto model = Config::make(std::vector<float>(4));
    const auto m = what_of<swarmsgd::topology_error>(
        [&] { node_of<Config> node(model, endpoint, graph, {}); });
    CHECK(contains(m, "node 0"));
    CHECK(contains(m, "3 nodes"));
    CHECK(contains(m, "2"));
}

TEST_CASE_TEMPLATE_DEFINE("invalid options are refused by the node constructor", Config,
                          node_errors_options) {
    simulated_network network(2, 0, 0, 1);
    auto endpoint = network.endpoint_for(0);
    const auto graph = swarmsgd::topology::complete(2);
    auto model = Config::make(std::vector<float>(4));
    swarmsgd::swarm_options options;
    options.max_in_flight = 0;
    CHECK_THROWS_AS(node_of<Config>(model, endpoint, graph, options),
                    swarmsgd::invalid_argument_error);
    options = {};
    options.sgd.learning_rate = -1;
    CHECK_THROWS_AS(node_of<Config>(model, endpoint, graph, options),
                    swarmsgd::invalid_argument_error);
}

// -------------------------------------------------------------------------- forged and garbage

TEST_CASE_TEMPLATE_DEFINE("a forged reply for an interaction never started: message_error", Config,
                          node_errors_forged_reply) {
    simulated_network network(2, 0, 0, 1);
    auto e0 = network.endpoint_for(0);
    auto forger = network.endpoint_for(1);
    const auto graph = swarmsgd::topology::complete(2);
    auto model = Config::make(iota_values(5, 1.0f));
    const auto before = Config::values(model);
    node_of<Config> node(model, e0, graph, {});

    (void)forger.isend(0, model_message<Config>(swarmsgd::message_kind::reply, 1, 77,
                                                std::vector<float>(5, 100.0f)));
    const auto m = what_of<swarmsgd::message_error>([&] { node.poll(); });
    CHECK(contains(m, "node 0 got a reply from node 1 for interaction 77"));
    CHECK(Config::values(model) == before);
    CHECK(node.stats().interactions_completed == 0);
}

TEST_CASE_TEMPLATE_DEFINE("a reply from the wrong peer for a real interaction id: message_error",
                          Config, node_errors_wrong_peer) {
    swarm<Config> s(swarmsgd::topology::complete(3), {4, 4, 4});
    const auto before = s.values(0);
    REQUIRE(s.nodes[0].initiate(1));  // interaction 0 with node 1
    (void)s.endpoints[2].isend(0, model_message<Config>(swarmsgd::message_kind::reply, 2, 0,
                                                        std::vector<float>(4, -3.0f)));
    const auto m = what_of<swarmsgd::message_error>([&] { s.nodes[0].poll(); });
    CHECK(contains(m, "node 2"));
    CHECK(contains(m, "interaction 0"));
    CHECK(s.values(0) == before);
    CHECK(s.nodes[0].in_flight() == 1);  // still waiting for node 1
}

TEST_CASE_TEMPLATE_DEFINE("garbage bytes in a node's inbox: message_error naming the sender",
                          Config, node_errors_garbage) {
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
        auto model = Config::make(iota_values(5, 1.0f));
        const auto before = Config::values(model);
        node_of<Config> node(model, e0, graph, {});
        (void)sender.isend(0, bytes);
        const auto m = what_of<swarmsgd::message_error>([&] { node.poll(); });
        CHECK(contains(m, "node 1"));
        CHECK(Config::values(model) == before);
    }
}

TEST_CASE_TEMPLATE_DEFINE("a request whose payload is malformed is refused and the sender is told",
                          Config, node_errors_malformed_request) {
    simulated_network network(2, 0, 0, 1);
    auto e1 = network.endpoint_for(1);
    auto raw = network.endpoint_for(0);
    const auto graph = swarmsgd::topology::complete(2);
    auto model = Config::make(iota_values(5, 1.0f));
    const auto before = Config::values(model);
    node_of<Config> node(model, e1, graph, {});

    // A request whose payload is one value short (envelope consistent, payload not).
    auto bytes =
        model_message<Config>(swarmsgd::message_kind::request, 0, 3, std::vector<float>(5, 1.0f));
    bytes.resize(bytes.size() - sizeof(float));
    swarmsgd::write_envelope(bytes,
                             {swarmsgd::message_kind::request, 0, 3,
                              static_cast<std::uint32_t>(bytes.size() - swarmsgd::envelope_size)});
    (void)raw.isend(1, bytes);
    const auto m = what_of<swarmsgd::message_error>([&] { node.poll(); });
    CHECK(contains(m, "node 1 got a malformed request from node 0"));
    CHECK(Config::values(model) == before);

    // The failure message for interaction 3 waits in node 0's inbox.
    auto answer = raw.try_receive();
    REQUIRE(answer.has_value());
    CHECK(answer->source == 1);
    const auto e = swarmsgd::read_envelope(answer->bytes, 1);
    CHECK(e.kind == swarmsgd::message_kind::failure);
    CHECK(e.interaction == 3);
    CHECK(network.pending() == 0);
}

// ------------------------------------------------------------------ recovery messages (fixups)

TEST_CASE_TEMPLATE_DEFINE("a fixup nobody waits for: message_error, model unchanged", Config,
                          node_errors_unexpected_fixup) {
    swarm<Config> s(swarmsgd::topology::complete(2), {6, 6});
    const auto before = s.values(1);
    (void)s.endpoints[0].isend(1, fixup_message(0, 5, {{1, 3, false}}, 1.0f));
    const auto m = what_of<swarmsgd::message_error>([&] { s.nodes[1].poll(); });
    CHECK(contains(m, "node 1 got a fixup from node 0"));
    if constexpr (node_of<Config>::recovers)
        CHECK(contains(m, "for interaction 5 that it is not waiting for"));
    else
        CHECK(contains(m, "never fails to decode"));
    CHECK(s.values(1) == before);
}

TEST_CASE_TEMPLATE_DEFINE(
    "a fixup for other ranges than the responder asked for: message_error (recovering only)",
    Config, node_errors_fixup_ranges) {
    if constexpr (node_of<Config>::recovers) {
        // Models 10 apart, far beyond the quantizer's initial distance: node 1 cannot decode
        // the request, answers with its own values and waits for node 0's fixup.
        swarm<Config> s(swarmsgd::topology::complete(2), {64, 64});
        REQUIRE(s.nodes[0].initiate(1));
        s.nodes[1].poll();
        REQUIRE(s.nodes[1].in_flight() == 1);
        REQUIRE(s.nodes[1].stats().failed_decode_elements > 0);
        // Node 0 does not answer; a fixup for a range nobody asked for arrives instead.
        (void)s.endpoints[0].isend(1, fixup_message(0, 0, {{1, 2, false}}, 1.0f));
        const auto m = what_of<swarmsgd::message_error>([&] { s.nodes[1].poll(); });
        CHECK(contains(m, "node 1: fixup from node 0 for interaction 0 covers other ranges"));
        CHECK(s.nodes[1].in_flight() == 0);
    }
}

TEST_CASE_TEMPLATE_DEFINE(
    "a reply with a fallback section: refused unless the quantizer recovers, checked if it does",
    Config, node_errors_fallback_reply) {
    swarm<Config> s(swarmsgd::topology::complete(2), {6, 6});
    const auto before = s.values(0);
    REQUIRE(s.nodes[0].initiate(1));  // interaction 0
    // A reply flagged as carrying a fallback section, whose trailer (the length of the
    // quantized part) points past the end of the message.
    auto bytes =
        model_message<Config>(swarmsgd::message_kind::reply, 1, 0, std::vector<float>(6, 2.0f));
    const std::size_t at = bytes.size();
    bytes.resize(at + 8);
    swarmsgd::detail::store<std::uint64_t>(bytes.data() + at, std::uint64_t{1} << 40);
    swarmsgd::write_envelope(bytes,
                             {swarmsgd::message_kind::reply, 1, 0,
                              static_cast<std::uint32_t>(bytes.size() - swarmsgd::envelope_size),
                              swarmsgd::flag_fallback});
    (void)s.endpoints[1].isend(0, bytes);  // node 1 never polls: only this reply reaches node 0
    const auto m = what_of<swarmsgd::message_error>([&] { s.nodes[0].poll(); });
    CHECK(contains(m, "node 0"));
    CHECK(contains(m, "node 1"));
    if constexpr (node_of<Config>::recovers)
        CHECK(contains(m, "node 0 got a malformed reply from node 1: quantized part of"));
    else
        CHECK(contains(m, "never fails to decode"));
    CHECK(s.values(0) == before);
    CHECK(s.nodes[0].in_flight() == 0);  // forgotten: no spurious timeout later
}

TEST_CASE_TEMPLATE_DEFINE(
    "distance_guard: a partner absurdly far from this model is refused, named and counted", Config,
    node_errors_distance_guard) {
    swarmsgd::swarm_options options;
    options.distance_guard = 10;
    swarm<Config> s(swarmsgd::topology::complete(2), {64, 64}, options);
    // A normal interaction first (models 10 apart, RMS norms 32 and 41): accepted.
    REQUIRE(s.nodes[0].initiate(1));
    s.nodes[1].poll();
    s.nodes[0].poll();
    s.nodes[1].poll();  // a fixup, if the quantizer needed one
    CHECK(s.nodes[0].stats().interactions_completed == 1);
    CHECK(s.nodes[0].in_flight() + s.nodes[1].in_flight() == 0);
    CHECK(s.nodes[0].stats().refused_distant + s.nodes[1].stats().refused_distant == 0);

    // A broken node 0 now sends huge but finite values.
    (void)s.endpoints[0].isend(1, model_message<Config>(swarmsgd::message_kind::request, 0, 99,
                                                        std::vector<float>(64, 1e6f)));
    std::string m;
    auto before = s.values(1);
    if constexpr (node_of<Config>::recovers) {
        // Far beyond the quantizer's reach: node 1 cannot decode, answers with its own values
        // there and waits for node 0's raw values (a fixup), which the guard refuses.
        s.nodes[1].poll();
        REQUIRE(s.nodes[1].in_flight() == 1);
        auto reply = s.endpoints[0].try_receive();
        REQUIRE(reply.has_value());
        const auto e = swarmsgd::read_envelope(reply->bytes, 1);
        REQUIRE((e.flags & swarmsgd::flag_fallback) != 0);
        const auto payload =
            std::span<const std::byte>(reply->bytes).subspan(swarmsgd::envelope_size);
        const auto q = swarmsgd::detail::load<std::uint64_t>(payload.data() + payload.size() - 8);
        const auto section = swarmsgd::detail::read_fallback<float>(
            payload.subspan(q, payload.size() - 8 - q), 64, "test");
        std::vector<swarmsgd::detail::fallback_range> asked;
        for (const auto& r : section.ranges)
            if (r.needs_fixup) asked.push_back({r.begin, r.end, false});
        REQUIRE(!asked.empty());
        before = s.values(1);
        (void)s.endpoints[0].isend(1, fixup_message(0, 99, asked, 1e6f));
        m = what_of<swarmsgd::message_error>([&] { s.nodes[1].poll(); });
        CHECK(contains(m, "node 1: fixup from node 0 is at RMS distance"));
        CHECK(s.nodes[1].in_flight() == 0);
    } else {
        m = what_of<swarmsgd::message_error>([&] { s.nodes[1].poll(); });
        CHECK(contains(m, "node 1: request from node 0 is at RMS distance"));
        // The initiator is told why.
        auto answer = s.endpoints[0].try_receive();
        REQUIRE(answer.has_value());
        CHECK(swarmsgd::read_envelope(answer->bytes, 1).kind == swarmsgd::message_kind::failure);
    }
    CHECK(contains(m, "distance_guard = 10"));
    CHECK(contains(m, "the model was not changed"));
    CHECK(s.values(1) == before);
    CHECK(s.nodes[1].stats().refused_distant == 1);
}

TEST_CASE_TEMPLATE_DEFINE("errors are all swarmsgd::error", Config, node_errors_base_class) {
    swarm<Config> s(swarmsgd::topology::complete(2), {3, 3});
    const std::vector<float> wrong(2, 0.0f);
    CHECK_THROWS_AS(s.nodes[0].apply_gradient(wrong), swarmsgd::error);
    std::vector<float> nan(3, std::numeric_limits<float>::quiet_NaN());
    CHECK_THROWS_AS(s.nodes[0].apply_gradient(nan), swarmsgd::error);
    CHECK_THROWS_AS((void)s.nodes[0].initiate(0), swarmsgd::error);
}

}  // namespace test_support::node_errors

/// Runs the whole suite over the given configurations (see the file comment).
#define SWARMSGD_NODE_ERROR_SUITE(...)                                       \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_non_finite_gradient, __VA_ARGS__); \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_gradient_size, __VA_ARGS__);       \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_partner_size, __VA_ARGS__);        \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_nan_model, __VA_ARGS__);           \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_inf_responder, __VA_ARGS__);       \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_timeout, __VA_ARGS__);             \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_own_stall, __VA_ARGS__);           \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_not_a_neighbour, __VA_ARGS__);     \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_topology_size, __VA_ARGS__);       \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_options, __VA_ARGS__);             \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_forged_reply, __VA_ARGS__);        \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_wrong_peer, __VA_ARGS__);          \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_garbage, __VA_ARGS__);             \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_malformed_request, __VA_ARGS__);   \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_unexpected_fixup, __VA_ARGS__);    \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_fixup_ranges, __VA_ARGS__);        \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_fallback_reply, __VA_ARGS__);      \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_distance_guard, __VA_ARGS__);      \
    TEST_CASE_TEMPLATE_INVOKE(node_errors_base_class, __VA_ARGS__)
