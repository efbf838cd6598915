// failure_policy::exclude in the simulator (kill schedules, bit-reproducible), the repair of a
// node's partners, and the checks around the policy (options, agreement, wire).

#include <doctest/doctest.h>

#include <cstring>
#include <set>
#include <vector>

#include <swarmsgd/agreement.hpp>
#include <swarmsgd/detail/live_partners.hpp>
#include <swarmsgd/simulator.hpp>

#include "error_text.hpp"
#include "problems.hpp"

using swarmsgd::failure_policy;
using swarmsgd::simulation_schedule;
using swarmsgd::topology;
using test_support::contains;
using test_support::what_of;
using models_t = std::vector<std::vector<double>>;

namespace {

/// n models of `size` elements, node i's element k = 10 i + k (far apart, so averaging shows).
models_t spread_models(std::size_t n, std::size_t size) {
    models_t m(n, std::vector<double>(size));
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t k = 0; k < size; ++k) m[i][k] = 10.0 * double(i) + double(k);
    return m;
}

/// Sum of every element of the models of the nodes not in `dead`.
double survivors_sum(const models_t& m, const std::set<std::size_t>& dead) {
    double s = 0;
    for (std::size_t i = 0; i < m.size(); ++i)
        if (dead.count(i) == 0)
            for (double v : m[i]) s += v;
    return s;
}

swarmsgd::simulator_options exclude_options(simulation_schedule schedule) {
    swarmsgd::simulator_options o;
    o.schedule = schedule;
    o.node.failure = failure_policy::exclude;
    o.node.seed = 17;
    o.node.sgd.learning_rate = 0.05;
    if (schedule == simulation_schedule::asynchronous) {
        o.min_delay = 1;
        o.max_delay = 6;
    }
    return o;
}

/// What a simulated run with kills left behind.
struct sim_result {
    models_t at_first_kill;  // the models just before the first kill
    models_t final_models;
    std::vector<std::vector<swarmsgd::peer_exclusion>> exclusions;
    std::vector<swarmsgd::node_stats> stats;
    std::vector<std::vector<std::size_t>> partners;
    std::vector<std::uint64_t> initiated_at_kill;
};

template <class Problem>
sim_result simulate(const topology& graph, Problem& problem, swarmsgd::simulator_options o,
                    std::size_t ticks) {
    models_t models = spread_models(graph.size(), 6);
    swarmsgd::simulator<std::vector<double>, Problem> sim(models, graph, problem, o);
    sim_result r;
    const std::size_t first = o.kills.empty() ? ticks : o.kills.front().tick;
    sim.run(first);
    r.at_first_kill = models;
    for (std::size_t i = 0; i < graph.size(); ++i)
        r.initiated_at_kill.push_back(sim.node(i).stats().interactions_initiated);
    sim.run(ticks - first);
    sim.drain();
    r.final_models = models;
    for (std::size_t i = 0; i < graph.size(); ++i) {
        r.exclusions.push_back(sim.node(i).exclusions());
        r.stats.push_back(sim.node(i).stats());
        r.partners.push_back(sim.node(i).partners());
    }
    return r;
}

}  // namespace

TEST_CASE("live_partners: the live neighbours, else the nearest live nodes through the dead") {
    using swarmsgd::detail::live_partners;
    const auto ring = topology::ring(8);
    std::vector<char> excluded(8, 0);
    CHECK(live_partners(ring, 4, excluded) == std::vector<std::size_t>{3, 5});
    excluded[3] = 1;
    CHECK(live_partners(ring, 4, excluded) == std::vector<std::size_t>{5});
    excluded[5] = 1;
    CHECK(live_partners(ring, 4, excluded) == std::vector<std::size_t>{2, 6});
    CHECK(live_partners(ring, 2, excluded) == std::vector<std::size_t>{1});
    excluded[2] = excluded[6] = 1;
    CHECK(live_partners(ring, 4, excluded) == std::vector<std::size_t>{1, 7});
    excluded.assign(8, 1);
    excluded[4] = 0;
    CHECK(live_partners(ring, 4, excluded).empty());
    // The complete graph: everyone live is a neighbour.
    const auto complete = topology::complete(5);
    std::vector<char> some(5, 0);
    some[1] = 1;
    CHECK(live_partners(complete, 0, some) == std::vector<std::size_t>{2, 3, 4});
}

TEST_CASE("simulator, sequential model: a killed node is excluded everywhere and nothing is lost") {
    test_support::zero_gradient gossip;
    const auto graph = topology::ring(8);
    auto o = exclude_options(simulation_schedule::sequential);
    o.kills = {{100, 3}};
    const sim_result r = simulate(graph, gossip, o, 600);

    // The dead node's model froze at the kill; the survivors' sum is exactly what it was
    // (pure gossip, and in the sequential model nothing is in flight at a kill).
    CHECK(r.final_models[3] == r.at_first_kill[3]);
    const double before = survivors_sum(r.at_first_kill, {3});
    CHECK(survivors_sum(r.final_models, {3}) == doctest::Approx(before).epsilon(1e-12));
    for (std::size_t i = 0; i < 8; ++i) {
        if (i == 3) continue;
        CAPTURE(i);
        REQUIRE(r.exclusions[i].size() == 1);
        CHECK(r.exclusions[i][0].peer == 3);
        // Its neighbours were told by the network; they told everyone else.
        if (i == 2 || i == 4) {
            CHECK(r.exclusions[i][0].decided_by == i);
            CHECK(contains(r.exclusions[i][0].reason,
                           "killed by the simulator's schedule at tick 100"));
        } else {
            CHECK((r.exclusions[i][0].decided_by == 2 || r.exclusions[i][0].decided_by == 4));
        }
        CHECK(r.stats[i].peers_excluded == 1);
        CHECK(r.stats[i].interactions_lost == 0);
        // The survivors kept averaging among themselves.
        CHECK(r.stats[i].interactions_initiated + r.stats[i].interactions_served >
              r.initiated_at_kill[i]);
    }
    CHECK(r.partners[2] == std::vector<std::size_t>{1});
    CHECK(r.partners[4] == std::vector<std::size_t>{5});
}

TEST_CASE(
    "simulator, asynchronous: two kills isolate a node, which repairs its partners; "
    "bit-reproducible") {
    test_support::quadratic problem;
    const auto graph = topology::ring(8);
    auto o = exclude_options(simulation_schedule::asynchronous);
    o.kills = {{900, 5}, {300, 3}};  // any order
    const sim_result r = simulate(graph, problem, o, 4000);

    for (std::size_t i = 0; i < 8; ++i) {
        if (i == 3 || i == 5) continue;
        CAPTURE(i);
        std::set<std::size_t> named;
        for (const auto& x : r.exclusions[i]) named.insert(x.peer);
        CHECK(named == std::set<std::size_t>{3, 5});  // the dead, and no live node, are named
        // Every own interaction is accounted for: completed, declined or lost with the dead.
        const auto& s = r.stats[i];
        CHECK(s.interactions_initiated ==
              s.interactions_completed + s.interactions_declined + s.interactions_lost);
        for (double v : r.final_models[i]) CHECK(std::isfinite(v));
    }
    // Node 4 lost both neighbours: it picks among the nearest live nodes and keeps averaging.
    CHECK(r.partners[4] == std::vector<std::size_t>{2, 6});
    CHECK(r.stats[4].interactions_completed > 0);

    // Same seed, same schedule: bit-identical models, statistics and exclusions.
    const sim_result again = simulate(graph, problem, o, 4000);
    for (std::size_t i = 0; i < 8; ++i) {
        CAPTURE(i);
        CHECK(std::memcmp(again.final_models[i].data(), r.final_models[i].data(),
                          r.final_models[i].size() * sizeof(double)) == 0);
        CHECK(again.stats[i].interactions_lost == r.stats[i].interactions_lost);
        CHECK(again.stats[i].messages_ignored == r.stats[i].messages_ignored);
        REQUIRE(again.exclusions[i].size() == r.exclusions[i].size());
        for (std::size_t k = 0; k < r.exclusions[i].size(); ++k)
            CHECK(again.exclusions[i][k].reason == r.exclusions[i][k].reason);
    }
}

TEST_CASE("simulator: kill schedules are checked") {
    test_support::zero_gradient gossip;
    const auto graph = topology::ring(4);
    models_t models = spread_models(4, 3);
    using sim_t = swarmsgd::simulator<std::vector<double>, test_support::zero_gradient>;
    auto o = exclude_options(simulation_schedule::sequential);
    o.kills = {{10, 1}};
    o.node.failure = failure_policy::fail;
    CHECK(contains(
        what_of<swarmsgd::invalid_argument_error>([&] { sim_t(models, graph, gossip, o); }),
        "1 kills scheduled, but a node's death can only be survived with node.failure "
        "= failure_policy::exclude"));
    o.node.failure = failure_policy::exclude;
    o.kills = {{10, 4}};
    CHECK(contains(
        what_of<swarmsgd::invalid_argument_error>([&] { sim_t(models, graph, gossip, o); }),
        "kill of node 4 at tick 10, but n = 4"));
    o.kills = {{10, 1}, {20, 1}};
    CHECK(contains(
        what_of<swarmsgd::invalid_argument_error>([&] { sim_t(models, graph, gossip, o); }),
        "node 1 is killed twice"));
    o.kills = {{1, 0}, {2, 1}, {3, 2}, {4, 3}};
    CHECK(contains(
        what_of<swarmsgd::invalid_argument_error>([&] { sim_t(models, graph, gossip, o); }),
        "all 4 nodes are killed"));
}

TEST_CASE("swarm_node: exclude_peer needs the exclude policy and another node") {
    swarmsgd::simulated_network net(3, 0, 0, 1);
    auto e0 = net.endpoint_for(0);
    std::vector<double> x(4, 1.0);
    const auto graph = topology::complete(3);
    swarmsgd::swarm_options o;
    swarmsgd::swarm_node fail_node(x, e0, graph, o);
    CHECK(
        contains(what_of<swarmsgd::invalid_argument_error>([&] { fail_node.exclude_peer(1, "x"); }),
                 "node 0: exclude_peer(1) needs failure_policy::exclude; this node uses "
                 "failure_policy::fail"));
    CHECK_FALSE(fail_node.is_excluded(1));
    o.failure = failure_policy::exclude;
    std::vector<double> y(4, 1.0);
    auto e1 = net.endpoint_for(1);
    swarmsgd::swarm_node node(y, e1, graph, o);
    CHECK(contains(what_of<swarmsgd::invalid_argument_error>([&] { node.exclude_peer(1, "x"); }),
                   "exclude_peer(1): not another node of a swarm of 3"));
    CHECK(contains(what_of<swarmsgd::invalid_argument_error>([&] { node.exclude_peer(7, "x"); }),
                   "exclude_peer(7): not another node"));
    node.exclude_peer(2, "the failure detector says so");
    CHECK(node.is_excluded(2));
    CHECK(node.partners() == std::vector<std::size_t>{0});
    CHECK(contains(what_of<swarmsgd::invalid_argument_error>([&] { (void)node.initiate(2); }),
                   "node 1 cannot interact with node 2: it was excluded"));
    // The others were told, node 2 included.
    CHECK(net.has_message(0));
    CHECK(net.has_message(2));
    CHECK(contains(what_of<swarmsgd::message_error>([&] { fail_node.poll(); }),
                   "node 0 got a excluded message from node 1: that belongs to "
                   "failure_policy::exclude, and this node uses failure_policy::fail"));
    std::vector<double> z(4, 1.0);
    auto e2 = net.endpoint_for(2);
    swarmsgd::swarm_node excluded(z, e2, graph, o);
    CHECK(contains(what_of<swarmsgd::excluded_error>([&] { excluded.poll(); }),
                   "node 2 was excluded from the swarm by node 1 (the failure detector says so)"));
    CHECK(z == std::vector<double>(4, 1.0));
}

TEST_CASE("agreement: a rank with another failure policy is named") {
    swarmsgd::swarm_options a, b;
    b.failure = failure_policy::exclude;
    const auto graph = topology::ring(4);
    const swarmsgd::identity_quantizer<double> q;
    const auto ra = swarmsgd::make_agreement(10, 8, a, q, graph);
    const auto rb = swarmsgd::make_agreement(10, 8, b, q, graph);
    CHECK(contains(what_of<swarmsgd::invalid_argument_error>(
                       [&] { swarmsgd::require_agreement(ra, 0, rb, 2, 1); }),
                   "rank 1: rank 2 has failure policy exclude but rank 0 has fail; every rank "
                   "must use the same swarm_options::failure"));
    swarmsgd::swarm_options bad;
    bad.failure = static_cast<failure_policy>(7);
    CHECK(contains(what_of<swarmsgd::invalid_argument_error>([&] { bad.validate(); }),
                   "swarm_options: failure = 7 is not a failure_policy"));
}
