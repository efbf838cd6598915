// expect: data\(T&\) must return value_type\*
// The same mistake in the parts of a list model: the error names the parts' traits. The
// corrected variant adds the non-const overload.
#include <cstddef>
#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/swarm_node.hpp>
#include <vector>

struct my_layer {
    std::vector<double> values;
};

template <>
struct swarmsgd::tensor_traits<my_layer> {
    using value_type = double;
    static std::size_t size(const my_layer& t) { return t.values.size(); }
    static const double* data(const my_layer& t) { return t.values.data(); }
#ifdef SWARMSGD_FAILTEST_CORRECTED
    static double* data(my_layer& t) { return t.values.data(); }
#endif
};

int main() {
    std::vector<my_layer> model{my_layer{std::vector<double>(3)}, my_layer{std::vector<double>(2)}};
    swarmsgd::simulated_network net(1, 0, 0, 1);
    auto endpoint = net.endpoint_for(0);
    const auto graph = swarmsgd::topology::complete(1);
    swarmsgd::swarm_node node(model, endpoint, graph, {});
    return static_cast<int>(node.size()) - 5;
}
