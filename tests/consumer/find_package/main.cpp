// Consumer test program, built against swarmsgd as a user would: find_package of the installed
// package or of the build tree, and add_subdirectory (that consumer compiles this same file).
// Trains 4 Eigen::VectorXf models, started far apart, with 4 threads (run_in_process) on a
// noisy quadratic whose optimum is known, and fails unless the mean model reaches it.
#include <swarmsgd/eigen.hpp>
#include <swarmsgd/swarmsgd.hpp>

#include <Eigen/Core>
#include <cmath>
#include <cstdio>
#include <exception>
#include <span>
#include <vector>

namespace {

// Every node samples 0.5 * ||x - (c + noise)||^2 with c[k] = 1 + k and uniform noise in
// [-0.5, 0.5) drawn from the node's own stream: the optimum is c. Const and stateless, so
// safe to call from every node's thread.
struct noisy_quadratic {
    double gradient(std::size_t /*node*/, const Eigen::VectorXf& x, std::span<float> grad,
                    swarmsgd::rng& random) const {
        double loss = 0;
        for (Eigen::Index k = 0; k < x.size(); ++k) {
            const double noise = random.uniform01() - 0.5;
            const auto g = static_cast<float>(x[k] - (1.0 + static_cast<double>(k) + noise));
            grad[static_cast<std::size_t>(k)] = g;
            loss += 0.5 * g * g;
        }
        return loss;
    }
};

}  // namespace

int main() try {
    constexpr std::size_t n = 4;
    constexpr Eigen::Index dim = 8;
    std::vector<Eigen::VectorXf> models;
    for (std::size_t i = 0; i < n; ++i)
        models.push_back(Eigen::VectorXf::Constant(dim, 10.0f * static_cast<float>(i)));
    const auto graph = swarmsgd::topology::ring(n);
    swarmsgd::swarm_options options;
    options.sgd.learning_rate = 0.05;
    options.sgd.schedule = [](std::size_t t, double base) { return base / (1 + t / 200.0); };
    options.steps = swarmsgd::local_steps::fixed(2);
    // This gradient costs nanoseconds, so a thread can run thousands of steps in one time
    // slice. Blocking averaging waits for the partner's reply (taking no local step meanwhile),
    // so no snapshot is stale however the threads are scheduled.
    options.mode = swarmsgd::averaging_mode::blocking;
    noisy_quadratic problem;
    const auto report = swarmsgd::run_in_process(models, graph, problem, 3000, options);

    const auto mean = swarmsgd::mean_model(models);
    double error = 0;
    for (std::size_t k = 0; k < mean.size(); ++k)
        error = std::fmax(error, std::fabs(mean[k] - (1.0 + static_cast<double>(k))));
    std::printf(
        "swarmsgd %d.%d.%d consumer: 4 nodes x 3000 steps, %llu interactions, mean model "
        "error %.2g, Gamma %.2g\n",
        swarmsgd::version_major, swarmsgd::version_minor, swarmsgd::version_patch,
        static_cast<unsigned long long>(report.total().interactions_completed), error,
        report.consensus_distance);
    return error < 0.05 && report.consensus_distance < 0.01 ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "swarmsgd consumer: %s\n", e.what());
    return 1;
}
