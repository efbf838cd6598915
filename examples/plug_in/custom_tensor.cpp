// Plugging in your own tensor type: specialize swarmsgd::tensor_traits for it, and it can be a
// model (or a part of one) everywhere in the library. Here a user's `param_block` (a named float
// buffer) is trained with the deterministic simulator on a tiny quadratic problem.
// See docs/architecture.md, "Your own tensor".
#include <swarmsgd/swarmsgd.hpp>

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

// The user's type: owns a float buffer. The library never constructs or resizes it; it only
// reads and writes the elements in place through the traits below.
struct param_block {
    std::string name;
    std::unique_ptr<float[]> values;
    std::size_t count = 0;

    param_block(std::string n, std::size_t size)
        : name(std::move(n)), values(std::make_unique<float[]>(size)), count(size) {}
};

// The whole adapter: element type, size and contiguous storage (mutable and read-only).
template <>
struct swarmsgd::tensor_traits<param_block> {
    using value_type = float;
    static std::size_t size(const param_block& t) noexcept { return t.count; }
    static float* data(param_block& t) noexcept { return t.values.get(); }
    static const float* data(const param_block& t) noexcept { return t.values.get(); }
};
static_assert(swarmsgd::tensor<param_block>);
static_assert(swarmsgd::model<param_block>);  // one tensor is a model

// Node i minimizes 0.5 * ||x - c_i||^2 with c_i[k] = i + k: the swarm's optimum is the mean of
// the c_i, (n - 1) / 2 + k. The gradient is written flat, in the model's element order.
struct quadratic {
    double gradient(std::size_t node, const param_block& x, std::span<float> grad,
                    swarmsgd::rng& /*node's data stream, unused*/) const {
        const auto v = swarmsgd::as_span(x);  // read-only view through the traits
        double loss = 0;
        for (std::size_t k = 0; k < v.size(); ++k) {
            grad[k] = v[k] - static_cast<float>(node + k);
            loss += 0.5 * grad[k] * grad[k];
        }
        return loss;
    }
};

int main() {
    constexpr std::size_t n = 8, dim = 5;
    std::vector<param_block> models;
    for (std::size_t i = 0; i < n; ++i) models.emplace_back("node" + std::to_string(i), dim);

    swarmsgd::simulator_options options;  // sequential schedule: the paper's Algorithm 1
    options.node.sgd.learning_rate = 0.05;
    // Decaying rate: the nodes' optima differ, and a smaller step lets the averaging win.
    options.node.sgd.schedule = [](std::size_t t, double base) { return base / (1 + t / 100.0); };
    options.node.steps = swarmsgd::local_steps::fixed(2);
    options.node.seed = 1;
    const auto graph = swarmsgd::topology::ring(n);
    quadratic problem;
    swarmsgd::simulator sim(models, graph, problem, options);
    sim.run(20000);  // 20000 interactions, each of a random edge

    // The mean model must be at the optimum (n - 1) / 2 + k, and every node near it.
    const auto mean = sim.mean_model();
    double mean_error = 0, worst = 0;
    for (std::size_t k = 0; k < dim; ++k) {
        const double optimum = (n - 1) / 2.0 + static_cast<double>(k);
        mean_error = std::fmax(mean_error, std::fabs(mean[k] - optimum));
        for (const auto& m : models) worst = std::fmax(worst, std::fabs(m.values[k] - optimum));
    }
    std::printf(
        "custom_tensor: %zu param_block models, mean model error %.3g, worst node %.3g, "
        "Gamma %.3g\n",
        n, mean_error, worst, sim.consensus_distance());
    return mean_error < 0.02 && worst < 0.1 ? 0 : 1;
}
