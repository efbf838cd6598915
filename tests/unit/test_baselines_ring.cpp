// The ring allreduce engine (baselines/ring_allreduce.hpp), single-threaded over a
// simulated_network: every node ends with the same vector bit for bit (also quantized), the
// mean to rounding, any n and size (size < n, empty segments), rounds back to back with peers
// a round ahead, and every malformed or unexpected message is a named error.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <swarmsgd/baselines/ring_allreduce.hpp>
#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/errors.hpp>
#include <swarmsgd/message.hpp>
#include <swarmsgd/quantizers/error_feedback.hpp>
#include <swarmsgd/quantizers/fp16.hpp>
#include <swarmsgd/quantizers/min_max.hpp>
#include <swarmsgd/quantizers/qsgd.hpp>

#include "baseline_harness.hpp"

using namespace swarmsgd;
using namespace test_support::baselines;
using endpoint = simulated_network::endpoint;

namespace {

template <class V, class Quant = identity_quantizer<V>>
struct ring_fixture {
    using engine = ring_allreduce<V, endpoint, Quant>;
    ring_fixture(std::size_t n, std::size_t size, std::size_t max_delay = 0, std::uint64_t seed = 1,
                 Quant q = Quant{})
        : world(n, max_delay, seed), data(n, std::vector<V>(size)) {
        rng r(seed, 77);
        for (auto& d : data)
            for (auto& v : d) v = static_cast<V>(r.uniform01() * 20 - 10);
        for (std::size_t i = 0; i < n; ++i) engines.emplace_back(world.endpoints[i], q, seed);
    }
    void start_all(reduce_op op = reduce_op::mean) {
        for (std::size_t i = 0; i < engines.size(); ++i)
            engines[i].start(std::span<V>(data[i]), op);
    }
    sim_world world;
    std::vector<std::vector<V>> data;
    std::vector<engine> engines;
};

template <class V>
std::vector<double> mean_of(const std::vector<std::vector<V>>& data) {
    std::vector<double> m(data[0].size(), 0.0);
    for (const auto& d : data)
        for (std::size_t k = 0; k < d.size(); ++k) m[k] += static_cast<double>(d[k]);
    for (auto& v : m) v /= static_cast<double>(data.size());
    return m;
}

}  // namespace

TEST_CASE_TEMPLATE("ring allreduce: every node ends with the mean, bit for bit", V, float, double) {
    for (std::size_t n : {1u, 2u, 3u, 4u, 5u, 8u}) {
        for (std::size_t size : {std::size_t{0}, std::size_t{1}, n - 1, n, n + 1, std::size_t{37},
                                 std::size_t{1000}}) {
            CAPTURE(n);
            CAPTURE(size);
            ring_fixture<V> f(n, size, 3, 10 * n + size);
            const auto expected = mean_of(f.data);
            rng order(5);
            f.start_all();
            complete_all(f.engines, f.world, &order);
            for (std::size_t i = 0; i < n; ++i) {
                CHECK(same_bits(f.data[i], f.data[0]));
                CHECK_FALSE(f.engines[i].busy());
                CHECK(f.engines[i].queued() == 0);
                const std::size_t messages = n == 1 ? 0 : 2 * (n - 1);
                CHECK(f.engines[i].traffic().messages_sent == messages);
                CHECK(f.engines[i].traffic().messages_received == messages);
            }
            const double tol = std::is_same_v<V, float> ? 1e-5 : 1e-13;
            for (std::size_t k = 0; k < size; ++k)
                CHECK(std::abs(static_cast<double>(f.data[0][k]) - expected[k]) <= tol * 10);
            CHECK(f.world.net.pending() == 0);
        }
    }
}

TEST_CASE("ring allreduce: the sum, and n = 1 is the identity with no messages") {
    ring_fixture<double> f(4, 10, 2, 3);
    std::vector<double> sum(10, 0.0);
    for (const auto& d : f.data)
        for (std::size_t k = 0; k < 10; ++k) sum[k] += d[k];
    f.start_all(reduce_op::sum);
    complete_all(f.engines, f.world);
    for (std::size_t k = 0; k < 10; ++k) CHECK(f.data[2][k] == doctest::Approx(sum[k]));

    ring_fixture<float> one(1, 5);
    const auto before = one.data[0];
    one.start_all();
    CHECK_FALSE(one.engines[0].busy());
    CHECK(one.engines[0].progress());
    CHECK(same_bits(one.data[0], before));
    CHECK(one.world.net.pending() == 0);
    CHECK(one.engines[0].traffic().messages_sent == 0);
}

TEST_CASE("ring allreduce: rounds back to back, peers up to a round ahead, any interleaving") {
    // Every node runs 6 rounds on its own schedule: whenever its round is complete it checks
    // the result and starts the next one, so fast nodes send the next round's messages while
    // slow ones are still in the previous one; progress() is called in a random order with
    // random message delays.
    constexpr std::size_t n = 5, size = 23, rounds = 6;
    sim_world w(n, 4, 9);
    std::vector<ring_allreduce<double, endpoint>> engines;
    for (std::size_t i = 0; i < n; ++i) engines.emplace_back(w.endpoints[i]);
    auto input = [](std::size_t node, std::size_t round, std::size_t k) {
        return static_cast<double>(node * 1000 + round * 10 + k);
    };
    std::vector<std::vector<double>> data(n, std::vector<double>(size));
    std::vector<std::vector<std::vector<double>>> results(rounds);
    std::vector<std::size_t> done(n, 0);
    rng r(11);
    bool ahead_seen = false;
    for (std::size_t t = 0; t < 100000; ++t) {
        w.shuffle(r);
        bool all = true;
        for (std::size_t i : w.order) {
            if (done[i] == rounds) continue;
            all = false;
            if (r.uniform(3) == 0) continue;  // this node is slow at this tick
            // Idle with messages queued: they are of its next round, sent by a peer ahead.
            if (!engines[i].busy() && engines[i].queued() > 0) ahead_seen = true;
            if (!engines[i].busy() && engines[i].rounds() == done[i]) {
                for (std::size_t k = 0; k < size; ++k) data[i][k] = input(i, done[i], k);
                engines[i].start(std::span<double>(data[i]));
            }
            if (engines[i].progress()) {
                results[done[i]].push_back(data[i]);
                ++done[i];
            }
        }
        if (all) break;
        w.tick();
    }
    CHECK(ahead_seen);  // the scenario exercised early messages of the next round
    for (std::size_t round = 0; round < rounds; ++round) {
        REQUIRE(results[round].size() == n);
        for (const auto& v : results[round]) CHECK(same_bits(v, results[round][0]));
        for (std::size_t k = 0; k < size; ++k) {
            double mean = 0;
            for (std::size_t i = 0; i < n; ++i) mean += input(i, round, k);
            CHECK(results[round][0][k] == doctest::Approx(mean / n));
        }
    }
}

TEST_CASE_TEMPLATE("ring allreduce with a quantizer: the same result on every node, bit for bit",
                   Quant, fp16_quantizer<float>, min_max_quantizer<float>, qsgd_quantizer<float>,
                   error_feedback<fp16_quantizer<float>>) {
    auto make = [] {
        if constexpr (std::is_same_v<Quant, min_max_quantizer<float>>)
            return Quant(min_max_options{.bits = 8, .bucket = 16, .stochastic = true});
        else if constexpr (std::is_same_v<Quant, qsgd_quantizer<float>>)
            return Quant(qsgd_options{.levels = 64, .bucket = 16});
        else
            return Quant{};
    };
    for (std::size_t n : {2u, 3u, 4u, 7u}) {
        CAPTURE(n);
        ring_fixture<float, Quant> f(n, 101, 2, n, make());
        const auto expected = mean_of(f.data);
        for (std::size_t round = 0; round < 2; ++round) {
            f.start_all();
            complete_all(f.engines, f.world);
        }
        for (std::size_t i = 1; i < n; ++i) CHECK(same_bits(f.data[i], f.data[0]));
        (void)expected;
    }
    // One round against the exact mean: the quantization error stays bounded.
    ring_fixture<float, Quant> f(4, 64, 1, 3, make());
    const auto expected = mean_of(f.data);
    f.start_all();
    complete_all(f.engines, f.world);
    for (std::size_t k = 0; k < 64; ++k)
        CHECK(std::abs(static_cast<double>(f.data[0][k]) - expected[k]) < 1.5);
}

TEST_CASE("ring allreduce: refuses a non-finite input (nothing sent) and a start while busy") {
    ring_fixture<float> f(3, 8);
    f.data[1][5] = std::numeric_limits<float>::infinity();
    const auto what = what_of<non_finite_error>([&] { f.engines[1].start(f.data[1]); });
    CHECK(contains(what, "node 1: element 5 of the allreduce input is inf"));
    CHECK(contains(what, "nothing was sent"));
    CHECK_FALSE(f.engines[1].busy());
    CHECK(f.world.net.pending() == 0);

    f.engines[0].start(f.data[0]);
    CHECK(f.engines[0].busy());
    CHECK(contains(what_of<invalid_argument_error>([&] { f.engines[0].start(f.data[0]); }),
                   "start() while round 0 is not complete"));
    CHECK(f.engines[0].awaited_peer() == std::optional<std::size_t>(2));
    CHECK(contains(f.engines[0].describe_wait(),
                   "no collective message from node 2 for round 0, hop 0 of 4 (reduce-scatter)"));
}

TEST_CASE("ring allreduce: an overflowing partial sum is refused before it is sent") {
    ring_fixture<float> f(2, 2);
    f.data[0] = {3e38f, 1};
    f.data[1] = {3e38f, 1};
    f.start_all();
    // node 0 sends segment 0 (3e38), node 1 segment 1; node 1 adds 3e38 + 3e38 = inf to its
    // segment 0, which it owns and must send next: refused.
    CHECK(contains(what_of<non_finite_error>([&] { complete_all(f.engines, f.world); }),
                   "allreduce result element 0 is inf; refusing to send it to node 0"));
}

TEST_CASE("ring allreduce: malformed and unexpected messages are named errors") {
    auto payload = [](std::size_t elements) {
        const std::vector<float> v(elements, 1.0f);
        return identity_payload<float>(v);
    };
    auto inject = [](ring_fixture<float>& f, std::size_t from, std::size_t to,
                     std::vector<std::byte> bytes) {
        (void)f.world.endpoints[from].isend(to, std::move(bytes));
    };
    SUBCASE("from a node that is not the left neighbour") {
        ring_fixture<float> f(4, 8);
        inject(f, 2, 0, forge(message_kind::collective, 2, 0, payload(2)));
        CHECK(contains(what_of<message_error>([&] { f.engines[0].poll(); }),
                       "node 0 got a collective message from node 2 (round 0, hop 0); in the "
                       "ring it receives only from node 3"));
    }
    SUBCASE("out of order is fine, a duplicate is not") {
        ring_fixture<float> f(3, 6);
        inject(f, 2, 0, forge(message_kind::collective, 2, 1, payload(2)));
        f.engines[0].poll();
        CHECK(f.engines[0].queued() == 1);
        inject(f, 2, 0, forge(message_kind::collective, 2, 1, payload(2)));
        CHECK(contains(what_of<message_error>([&] { f.engines[0].poll(); }),
                       "node 0 got collective round 0, hop 1 from node 2 twice"));
    }
    SUBCASE("a message of a past round") {
        ring_fixture<float> f(2, 2);
        f.start_all();
        complete_all(f.engines, f.world);
        inject(f, 1, 0, forge(message_kind::collective, 1, 1, payload(1)));
        CHECK(contains(what_of<message_error>([&] { f.engines[0].poll(); }),
                       "node 0 got collective round 0, hop 1 from node 1 but expects round 1 from "
                       "hop 0 on (started rounds: 1): a message of a past round or hop, or a peer "
                       "more than one round ahead"));
    }
    SUBCASE("a hop beyond the round") {
        ring_fixture<float> f(3, 6);
        inject(f, 2, 0, forge(message_kind::collective, 2, 4, payload(2)));
        CHECK(contains(what_of<message_error>([&] { f.engines[0].poll(); }),
                       "for hop 4 (round 0) but a round of 3 nodes has 4 hops"));
    }
    SUBCASE("more than one round ahead") {
        ring_fixture<float> f(2, 2);
        // Node 1 (left of 0) sends a whole round 0 and round 1 before node 0 started anything.
        for (std::uint64_t round = 0; round < 2; ++round)
            for (std::uint64_t hop = 0; hop < 2; ++hop)
                inject(f, 1, 0,
                       forge(message_kind::collective, 1, (round << 32) | hop, payload(1)));
        CHECK(contains(what_of<message_error>([&] { f.engines[0].poll(); }),
                       "node 0 got collective round 1, hop 0 from node 1 but expects round 0 "
                       "from hop 0 on (started rounds: 0)"));
    }
    SUBCASE("a Swarm SGD message") {
        ring_fixture<float> f(2, 2);
        inject(f, 1, 0, forge(message_kind::request, 1, 0, payload(2)));
        CHECK(contains(what_of<message_error>([&] { f.engines[0].poll(); }),
                       "that is a Swarm SGD message (swarm_node), not one of ring allreduce's; "
                       "every node must run the same algorithm"));
    }
    SUBCASE("another baseline's message") {
        ring_fixture<float> f(2, 2);
        inject(f, 1, 0, forge(message_kind::neighbour_model, 1, 0, payload(2)));
        CHECK(contains(what_of<message_error>([&] { f.engines[0].poll(); }),
                       "got a neighbour_model message from node 1"));
    }
    SUBCASE("a truncated message") {
        ring_fixture<float> f(2, 2);
        inject(f, 1, 0, std::vector<std::byte>(7));
        CHECK(contains(what_of<message_error>([&] { f.engines[0].poll(); }),
                       "message from node 1 is truncated"));
    }
    SUBCASE("a failure message is rethrown as its category") {
        ring_fixture<float> f(2, 2);
        std::vector<std::byte> reason{std::byte{3}, std::byte{'x'}};
        inject(f, 1, 0, forge(message_kind::failure, 1, 0, reason));
        CHECK(contains(what_of<non_finite_error>([&] { f.engines[0].poll(); }),
                       "node 0 (ring allreduce): node 1 reported a failure: x"));
    }
    SUBCASE("a segment of the wrong size (the nodes' vectors differ)") {
        ring_fixture<float> f(2, 4);
        f.engines[0].start(f.data[0]);
        inject(f, 1, 0, forge(message_kind::collective, 1, 0, payload(3)));
        CHECK(contains(what_of<size_mismatch_error>([&] { f.engines[0].progress(); }),
                       "node 0 expected 2 elements in the collective from node 1 (round 0, hop 0 "
                       "of 2, segment 1)"));
    }
    SUBCASE("a payload that decodes to a non-finite value") {
        ring_fixture<float> f(2, 4);
        f.engines[0].start(f.data[0]);
        const std::vector<float> bad{1.0f, std::numeric_limits<float>::quiet_NaN()};
        inject(f, 1, 0, forge(message_kind::collective, 1, 0, identity_payload<float>(bad)));
        CHECK(contains(what_of<message_error>([&] { f.engines[0].progress(); }),
                       "collective from node 1 (round 0, hop 0 of 2, segment 1) decodes to a "
                       "non-finite element 1"));
    }
    SUBCASE("a payload of another quantizer") {
        ring_fixture<float> f(2, 4);
        f.engines[0].start(f.data[0]);
        auto p = payload(2);
        p[0] = std::byte{2};  // fp16's id
        inject(f, 1, 0, forge(message_kind::collective, 1, 0, p));
        CHECK(contains(what_of<message_error>([&] { f.engines[0].progress(); }),
                       "node 0 got a malformed collective from node 1 (round 0, hop 0 of 2, "
                       "segment 1): payload was encoded by quantizer id 2"));
    }
}
