// expect: neither a tensor nor a list of tensors
// As node_bad_model.cpp, but with the default quantizer, the way users write it. The default
// template argument must not be evaluated before swarm_node's readable static_assert runs.
// Compile with -DSWARMSGD_FAILTEST_CORRECTED to check std::vector<double> compiles.
#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/swarm_node.hpp>
#include <vector>

int main() {
#ifdef SWARMSGD_FAILTEST_CORRECTED
    using model_type = std::vector<double>;
#else
    using model_type = std::vector<int>;
#endif
    model_type model(3);
    swarmsgd::simulated_network net(1, 0, 0, 1);
    auto endpoint = net.endpoint_for(0);
    const auto graph = swarmsgd::topology::complete(1);
    swarmsgd::swarm_node<model_type, swarmsgd::simulated_network::endpoint> node(model, endpoint,
                                                                                 graph, {});
    return static_cast<int>(node.size()) - 3;
}
