// The Eigen adapter (eigen.hpp): which Eigen types are tensors, that their spans alias Eigen's
// storage, that a list of Maps into one parameter buffer (llm.c style) is a model over that
// buffer, and that nodes and the simulator train such models. Eigen types that must NOT be
// tensors (expressions, Blocks, const Maps) stop compilation with a static_assert by design, so
// they are covered by tests/failtest/eigen_*.cpp instead of static_assert(!tensor<...>) here.
#include <doctest/doctest.h>

#include <Eigen/Core>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <span>
#include <vector>

#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/consensus.hpp>
#include <swarmsgd/eigen.hpp>
#include <swarmsgd/model.hpp>
#include <swarmsgd/simulator.hpp>
#include <swarmsgd/swarm_node.hpp>
#include <swarmsgd/topology.hpp>

using swarmsgd::model;
using swarmsgd::tensor;
using swarmsgd::tensor_value_t;

using map_f = Eigen::Map<Eigen::VectorXf>;
using layered_model = std::vector<map_f>;

// ------------------------------------------------------------------------------ the concepts

static_assert(tensor<Eigen::VectorXf>);
static_assert(tensor<Eigen::VectorXd>);
static_assert(tensor<Eigen::ArrayXf>);
static_assert(tensor<Eigen::ArrayXd>);
static_assert(tensor<Eigen::MatrixXf>);
static_assert(tensor<Eigen::MatrixXd>);
static_assert(tensor<Eigen::RowVectorXf>);
static_assert(tensor<Eigen::ArrayXXd>);
static_assert(tensor<Eigen::Vector4f>);
static_assert(tensor<Eigen::Matrix3d>);
static_assert(tensor<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>);
static_assert(tensor<map_f>);
static_assert(tensor<Eigen::Map<Eigen::VectorXd>>);
static_assert(tensor<Eigen::Map<Eigen::MatrixXf>>);
static_assert(tensor<Eigen::Map<Eigen::ArrayXf>>);
static_assert(tensor<Eigen::Map<Eigen::Vector4f>>);
static_assert(tensor<Eigen::Map<Eigen::VectorXf, Eigen::Aligned16>>);

static_assert(std::is_same_v<tensor_value_t<Eigen::VectorXf>, float>);
static_assert(std::is_same_v<tensor_value_t<Eigen::ArrayXd>, double>);
static_assert(std::is_same_v<tensor_value_t<Eigen::Vector4f>, float>);
static_assert(std::is_same_v<tensor_value_t<map_f>, float>);
static_assert(std::is_same_v<tensor_value_t<Eigen::Map<Eigen::MatrixXd>>, double>);

static_assert(model<Eigen::VectorXf>);
static_assert(model<Eigen::MatrixXd>);
static_assert(model<layered_model>);
static_assert(model<std::vector<Eigen::VectorXd>>);
static_assert(model<std::vector<Eigen::MatrixXf>>);
static_assert(model<std::vector<Eigen::Map<Eigen::MatrixXf>>>);
static_assert(swarmsgd::tensor_list<layered_model>);
static_assert(std::is_same_v<swarmsgd::model_value_t<layered_model>, float>);
static_assert(std::is_same_v<swarmsgd::model_value_t<std::vector<Eigen::VectorXd>>, double>);

// ----------------------------------------------------------------------- spans alias storage

TEST_CASE_TEMPLATE("as_span of plain Eigen objects aliases their storage", T, Eigen::VectorXf,
                   Eigen::VectorXd, Eigen::ArrayXf, Eigen::ArrayXd) {
    T t = T::Zero(5);
    auto s = swarmsgd::as_span(t);
    CHECK(s.size() == 5);
    CHECK(s.data() == t.data());
    s[3] = 7;
    CHECK(t[3] == 7);
    const T& ct = t;
    auto cs = swarmsgd::as_span(ct);
    static_assert(std::is_const_v<typename decltype(cs)::element_type>);
    CHECK(cs.data() == t.data());
    CHECK(swarmsgd::model_size(t) == 5);
}

TEST_CASE("a MatrixXf is one tensor of rows * cols coefficients in storage order") {
    Eigen::MatrixXf m(3, 4);
    for (Eigen::Index c = 0; c < 4; ++c)
        for (Eigen::Index r = 0; r < 3; ++r) m(r, c) = static_cast<float>(10 * r + c);
    CHECK(swarmsgd::model_size(m) == 12);
    std::vector<float> flat(12);
    swarmsgd::gather(m, std::span<float>(flat));
    // Column-major: flat[r + 3 c] == m(r, c).
    for (Eigen::Index c = 0; c < 4; ++c)
        for (Eigen::Index r = 0; r < 3; ++r)
            CHECK(flat[static_cast<std::size_t>(r + 3 * c)] == m(r, c));
    for (auto& v : flat) v += 100;
    swarmsgd::scatter(std::span<const float>(flat), m);
    CHECK(m(2, 3) == 123.0f);
}

TEST_CASE("a fixed-size Vector4f is a tensor of 4") {
    Eigen::Vector4f v(1, 2, 3, 4);
    CHECK(swarmsgd::model_size(v) == 4);
    auto s = swarmsgd::as_span(v);
    CHECK(s.data() == v.data());
    CHECK(s[2] == 3.0f);
    std::vector<Eigen::Vector4f> list(3, Eigen::Vector4f::Constant(2));
    CHECK(swarmsgd::model_size(list) == 12);
}

TEST_CASE("a Map over a buffer is a view: writes through the span land in the buffer") {
    std::vector<float> buffer(8, 0.0f);
    map_f view(buffer.data() + 2, 5);
    CHECK(swarmsgd::model_size(view) == 5);
    auto s = swarmsgd::as_span(view);
    CHECK(s.data() == buffer.data() + 2);
    s[0] = 1.5f;
    CHECK(buffer[2] == 1.5f);

    // A const Map object still gives writable storage (constness of a view is shallow).
    const map_f& cview = view;
    CHECK(swarmsgd::tensor_traits<map_f>::data(cview) == buffer.data() + 2);
}

// ------------------------------------------------------------- a list of Maps into one buffer

namespace {

/// Cuts `buffer` into Maps of the given sizes, in order (llm.c style parameter layout).
layered_model cut(std::vector<float>& buffer, const std::vector<Eigen::Index>& sizes) {
    layered_model parts;
    parts.reserve(sizes.size());
    Eigen::Index offset = 0;
    for (const Eigen::Index n : sizes) {
        parts.emplace_back(buffer.data() + offset, n);
        offset += n;
    }
    REQUIRE(static_cast<std::size_t>(offset) == buffer.size());
    return parts;
}

}  // namespace

TEST_CASE("a list of Maps into ONE parameter buffer is a model whose gather is the buffer") {
    std::vector<float> params(2 * 3 + 3 + 3 * 1 + 1);  // two dense layers: W1, b1, W2, b2
    std::iota(params.begin(), params.end(), 1.0f);
    layered_model layers = cut(params, {6, 3, 3, 1});

    CHECK(swarmsgd::model_size(layers) == params.size());
    swarmsgd::for_each_part(layers, [&](std::span<float> part, std::size_t offset) {
        CHECK(part.data() == params.data() + offset);
    });

    std::vector<float> flat(params.size());
    swarmsgd::gather(layers, std::span<float>(flat));
    CHECK(flat == params);

    std::vector<float> next(params.size());
    std::iota(next.begin(), next.end(), -50.0f);
    swarmsgd::scatter(std::span<const float>(next), layers);
    CHECK(params == next);
    CHECK(layers[2][0] == next[9]);

    // Wrong sizes are refused.
    std::vector<float> short_flat(params.size() - 1);
    CHECK_THROWS_AS(swarmsgd::gather(layers, std::span<float>(short_flat)),
                    swarmsgd::size_mismatch_error);
}

TEST_CASE("a list of Eigen::VectorXd parts gathers in order") {
    std::vector<Eigen::VectorXd> parts{Eigen::VectorXd::Constant(2, 1.0),
                                       Eigen::VectorXd::Constant(3, 2.0)};
    std::vector<double> flat(5);
    swarmsgd::gather(parts, std::span<double>(flat));
    CHECK(flat == std::vector<double>{1, 1, 2, 2, 2});
}

// ------------------------------------------------------------------- nodes and the simulator

namespace {

/// Zero gradient for a two-part Map model: pure gossip.
struct zero_gradient_layers {
    double gradient(std::size_t /*node*/, const layered_model& x, std::span<float> g,
                    swarmsgd::rng& /*random*/) {
        CHECK(g.size() == swarmsgd::model_size(x));
        for (auto& v : g) v = 0.0f;
        ++calls;
        return 0.0;
    }
    std::size_t calls = 0;
};

/// Node i minimizes 0.5 ||x - c_i||^2 with c_i[k] = i + k (the swarm optimum is the mean c).
struct quadratic_layers {
    double gradient(std::size_t node, const layered_model& x, std::span<float> g,
                    swarmsgd::rng& /*random*/) const {
        double loss = 0;
        swarmsgd::for_each_part(x, [&](std::span<const float> part, std::size_t offset) {
            for (std::size_t k = 0; k < part.size(); ++k) {
                g[offset + k] = part[k] - static_cast<float>(node + offset + k);
                loss += 0.5 * static_cast<double>(g[offset + k]) * g[offset + k];
            }
        });
        return loss;
    }
};

struct swarm_of_buffers {
    static constexpr std::size_t nodes = 4;
    static constexpr std::size_t size = 7;
    std::vector<std::vector<float>> buffers;
    std::vector<layered_model> models;

    explicit swarm_of_buffers(std::uint64_t seed) : buffers(nodes, std::vector<float>(size)) {
        swarmsgd::rng r(seed);
        for (auto& b : buffers)
            for (auto& v : b) v = static_cast<float>(r.uniform01() * 8 - 4);
        models.reserve(nodes);
        for (auto& b : buffers) models.push_back(cut(b, {3, 4}));
    }

    [[nodiscard]] std::vector<double> buffer_sum() const {
        std::vector<double> s(size, 0.0);
        for (const auto& b : buffers)
            for (std::size_t k = 0; k < size; ++k) s[k] += b[k];
        return s;
    }
};

}  // namespace

TEST_CASE("simulator: gossip over two-part Map models converges and preserves the sum") {
    for (const auto schedule :
         {swarmsgd::simulation_schedule::sequential, swarmsgd::simulation_schedule::asynchronous}) {
        CAPTURE(static_cast<int>(schedule));
        swarm_of_buffers swarm(11);
        const auto sum_before = swarm.buffer_sum();
        const double gamma_before = swarmsgd::consensus_distance(swarm.models);
        REQUIRE(gamma_before > 1.0);

        zero_gradient_layers problem;
        swarmsgd::simulator_options options;
        options.node.sgd.learning_rate = 0.1;
        options.node.seed = 5;
        options.schedule = schedule;
        options.max_delay = schedule == swarmsgd::simulation_schedule::asynchronous ? 3 : 0;
        const auto graph = swarmsgd::topology::ring(swarm_of_buffers::nodes);
        swarmsgd::simulator sim(swarm.models, graph, problem, options);
        sim.run(400);
        sim.drain();

        CHECK(problem.calls > 0);
        CHECK(sim.total_stats().interactions_completed > 0);
        const double gamma_after = sim.consensus_distance();
        CHECK(gamma_after < 1e-8 * gamma_before);

        // The Maps wrote into the buffers: their sum is what it was (up to float rounding),
        // and every buffer is the mean.
        const auto sum_after = swarm.buffer_sum();
        for (std::size_t k = 0; k < swarm_of_buffers::size; ++k) {
            CHECK(sum_after[k] == doctest::Approx(sum_before[k]).epsilon(1e-5).scale(1.0));
            for (const auto& b : swarm.buffers)
                CHECK(b[k] == doctest::Approx(sum_before[k] / swarm_of_buffers::nodes)
                                  .epsilon(1e-4)
                                  .scale(1.0));
        }
    }
}

TEST_CASE("simulator: a quadratic over two-part Map models reaches the mean optimum") {
    swarm_of_buffers swarm(12);
    quadratic_layers problem;
    swarmsgd::simulator_options options;
    options.node.sgd.learning_rate = 0.05;
    options.node.seed = 3;
    const auto graph = swarmsgd::topology::complete(swarm_of_buffers::nodes);
    swarmsgd::simulator sim(swarm.models, graph, problem, options);
    sim.run(3000);
    // Optimum of sum_i 0.5 ||x - c_i||^2: x[k] = mean_i (i + k) = 1.5 + k.
    const auto mu = sim.mean_model();
    for (std::size_t k = 0; k < swarm_of_buffers::size; ++k)
        CHECK(mu[k] == doctest::Approx(1.5 + static_cast<double>(k)).epsilon(0.02).scale(1.0));
}

TEST_CASE("swarm_node: two nodes with Map models average exactly through the buffers") {
    std::vector<float> a_buf{1, 2, 3, 4, 5}, b_buf{5, 4, 3, 2, 9};
    layered_model a = cut(a_buf, {2, 3});
    layered_model b = cut(b_buf, {2, 3});
    swarmsgd::simulated_network net(2, 0, 0, 1);
    auto e0 = net.endpoint_for(0);
    auto e1 = net.endpoint_for(1);
    const auto graph = swarmsgd::topology::complete(2);
    swarmsgd::swarm_node<layered_model, swarmsgd::simulated_network::endpoint> n0(a, e0, graph, {});
    swarmsgd::swarm_node<layered_model, swarmsgd::simulated_network::endpoint> n1(b, e1, graph, {});
    REQUIRE(n0.initiate(1));
    n1.poll();
    n0.poll();
    const std::vector<float> mean{3, 3, 3, 3, 7};
    CHECK(a_buf == mean);
    CHECK(b_buf == mean);
    CHECK(n0.in_flight() == 0);
    CHECK(n0.stats().interactions_completed == 1);
    CHECK(n1.stats().interactions_served == 1);
}

TEST_CASE("swarm_node: VectorXd and MatrixXf models") {
    SUBCASE("VectorXd") {
        Eigen::VectorXd a(3), b(3);
        a << 1, 2, 3;
        b << 3, 6, 11;
        swarmsgd::simulated_network net(2, 0, 0, 1);
        auto e0 = net.endpoint_for(0);
        auto e1 = net.endpoint_for(1);
        const auto graph = swarmsgd::topology::complete(2);
        swarmsgd::swarm_node<Eigen::VectorXd, swarmsgd::simulated_network::endpoint> n0(a, e0,
                                                                                        graph, {});
        swarmsgd::swarm_node<Eigen::VectorXd, swarmsgd::simulated_network::endpoint> n1(b, e1,
                                                                                        graph, {});
        n0.initiate(1);
        n1.poll();
        n0.poll();
        CHECK(a == Eigen::Vector3d(2, 4, 7));
        CHECK(b == Eigen::Vector3d(2, 4, 7));

        // A local step through the node's optimizer updates the Eigen storage.
        const std::vector<double> grad{1, 0, -1};
        n0.apply_gradient(grad);
        CHECK(a[0] == doctest::Approx(2 - 0.01));
        CHECK(a[2] == doctest::Approx(7 + 0.01));
    }
    SUBCASE("MatrixXf") {
        Eigen::MatrixXf a = Eigen::MatrixXf::Constant(2, 3, 1.0f);
        Eigen::MatrixXf b = Eigen::MatrixXf::Constant(2, 3, 5.0f);
        swarmsgd::simulated_network net(2, 0, 0, 1);
        auto e0 = net.endpoint_for(0);
        auto e1 = net.endpoint_for(1);
        const auto graph = swarmsgd::topology::complete(2);
        swarmsgd::swarm_node<Eigen::MatrixXf, swarmsgd::simulated_network::endpoint> n0(a, e0,
                                                                                        graph, {});
        swarmsgd::swarm_node<Eigen::MatrixXf, swarmsgd::simulated_network::endpoint> n1(b, e1,
                                                                                        graph, {});
        n1.initiate(0);
        n0.poll();
        n1.poll();
        CHECK(a.isApproxToConstant(3.0f));
        CHECK(b.isApproxToConstant(3.0f));
        CHECK(n0.size() == 6);
    }
}
