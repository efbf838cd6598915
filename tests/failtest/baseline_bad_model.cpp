// expect: neither a tensor nor a list of tensors
// The baselines (baselines/) check their template arguments with swarm_node's readable
// static_asserts, before anything else is instantiated: std::vector<int> is not a model
// (written with class template argument deduction, as users write it).
// The corrected variant (std::vector<double>) is compiled by failtest_*_corrected.
#include <swarmsgd/baselines/allreduce_sgd.hpp>
#include <swarmsgd/communicators/simulated.hpp>
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
    swarmsgd::allreduce_sgd_node node(model, endpoint, graph, {});
    return static_cast<int>(node.size()) - 3;
}
