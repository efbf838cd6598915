// expect: cannot be a model tensor
// An Eigen expression (v + v) has no storage: it cannot be a model. Using it as a node's model
// must stop with eigen.hpp's readable static_assert. Compile with -DSWARMSGD_FAILTEST_CORRECTED
// to check the corrected code (evaluating into a VectorXf) compiles.
#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/eigen.hpp>
#include <swarmsgd/swarm_node.hpp>

int main() {
    Eigen::VectorXf v = Eigen::VectorXf::Ones(4);
    swarmsgd::simulated_network net(1, 0, 0, 1);
    auto endpoint = net.endpoint_for(0);
    const auto graph = swarmsgd::topology::complete(1);
#ifdef SWARMSGD_FAILTEST_CORRECTED
    Eigen::VectorXf model = v + v;  // evaluated: a plain object
#else
    auto model = v + v;  // CwiseBinaryOp expression: rejected
#endif
    swarmsgd::swarm_node<decltype(model), swarmsgd::simulated_network::endpoint> node(
        model, endpoint, graph, {});
    return static_cast<int>(node.size()) - 4;
}
