// expect: neither a tensor nor a list of tensors
// std::vector<int> is not a tensor (integer values) nor a list of tensors: swarm_node must say so
// in words. The quantizer is given explicitly; node_bad_model_default_quantizer.cpp covers the
// default one. Compile with -DSWARMSGD_FAILTEST_CORRECTED to check std::vector<float> compiles.
#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/swarm_node.hpp>
#include <vector>

int main() {
#ifdef SWARMSGD_FAILTEST_CORRECTED
    using model_type = std::vector<float>;
#else
    using model_type = std::vector<int>;
#endif
    model_type model(3);
    swarmsgd::simulated_network net(1, 0, 0, 1);
    auto endpoint = net.endpoint_for(0);
    const auto graph = swarmsgd::topology::complete(1);
    swarmsgd::swarm_node<model_type, swarmsgd::simulated_network::endpoint,
                         swarmsgd::identity_quantizer<float>>
        node(model, endpoint, graph, {});
    return static_cast<int>(node.size()) - 3;
}
