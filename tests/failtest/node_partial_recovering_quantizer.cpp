// expect: some of the members of the recovering capability
// A quantizer with observe() and on_failure() but no observe_distance() has only part of the
// recovering capability (recovering_quantizer_for, quantizer.hpp): swarm_node refuses it in
// words instead of silently not recovering (or failing deep inside the device back end).
// Compile with -DSWARMSGD_FAILTEST_CORRECTED to check that the full capability compiles.
#include <span>
#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/quantizers/identity.hpp>
#include <swarmsgd/swarm_node.hpp>
#include <vector>

struct adaptive_identity : swarmsgd::identity_quantizer<float> {
    void observe(std::span<const float>, std::span<const float>) {}
    void on_failure(double) {}
#ifdef SWARMSGD_FAILTEST_CORRECTED
    void observe_distance(double) {}
#endif
};

int main() {
    std::vector<float> model(3);
    swarmsgd::simulated_network net(1, 0, 0, 1);
    auto endpoint = net.endpoint_for(0);
    const auto graph = swarmsgd::topology::complete(1);
    swarmsgd::swarm_node<std::vector<float>, swarmsgd::simulated_network::endpoint,
                         adaptive_identity>
        node(model, endpoint, graph, {});
    return static_cast<int>(node.size()) - 3;
}
