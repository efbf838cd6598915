// expect: neither a tensor nor a list of tensors
// As node_bad_model.cpp, but written the way the docs write it: class template argument
// deduction and the default quantizer. Deduction must succeed (the default quantizer is not
// evaluated from a Model that is not one) so that swarm_node's readable static_assert runs.
// The corrected variant (std::vector<double>) is compiled by failtest_*_corrected.
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
    swarmsgd::swarm_node node(model, endpoint, graph, {});
    return static_cast<int>(node.size()) - 3;
}
