// A user of the Thrust component: two device models averaged by the simulator through the
// 8-bit min-max quantizer; the sum of the models is kept.
#include <cstdio>
#include <span>
#include <swarmsgd/quantizers/min_max.hpp>
#include <swarmsgd/swarmsgd.hpp>
#include <swarmsgd/thrust.hpp>
#include <vector>

namespace {
struct zero_gradient {
    double gradient(std::size_t, const thrust::device_vector<float>&, std::span<float> g,
                    swarmsgd::rng&) const {
        for (auto& v : g) v = 0;
        return 0;
    }
};
}  // namespace

int main() {
    std::vector<thrust::device_vector<float>> models{thrust::device_vector<float>(1000, 1.f),
                                                     thrust::device_vector<float>(1000, 3.f)};
    const auto graph = swarmsgd::topology::complete(2);
    zero_gradient problem;
    swarmsgd::simulator sim(models, graph, problem, swarmsgd::simulator_options{},
                            swarmsgd::min_max_quantizer<float>{});
    sim.run(10);
    const auto sum = swarmsgd::sum_model(models);
    const bool ok = swarmsgd::all_finite(models[0]) && sum[0] > 3.999 && sum[0] < 4.001;
    std::printf("consumer_thrust: sum %g, Gamma %g: %s\n", sum[0],
                swarmsgd::consensus_distance(models), ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
