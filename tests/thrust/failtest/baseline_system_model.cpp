// expect: the baseline algorithms \(baselines/\) train host models only
// The baselines run on host models; a system model (Thrust device vectors) is refused at
// compile time, in words, instead of running host loops over device memory. Compile with
// -DSWARMSGD_FAILTEST_CORRECTED to check that a host model compiles.
#include <swarmsgd/baselines/dpsgd.hpp>
#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/thrust.hpp>
#include <vector>

int main() {
#if defined(SWARMSGD_FAILTEST_CORRECTED)
    using model_type = std::vector<float>;
#else
    using model_type = thrust::device_vector<float>;
#endif
    model_type model(16, 0.f);
    swarmsgd::simulated_network net(1, 0, 0, 1);
    auto endpoint = net.endpoint_for(0);
    const auto graph = swarmsgd::topology::complete(1);
    swarmsgd::dpsgd_node<model_type, swarmsgd::simulated_network::endpoint> node(model, endpoint,
                                                                                 graph, {});
    return static_cast<int>(node.size()) - 16;
}
