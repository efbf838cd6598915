// expect: data\(T&\) must return value_type\*
// A user's tensor whose tensor_traits give only a const data(): the traits were specialized, so
// the error must name the requirement that failed (writable data), not say "specialize
// tensor_traits". The corrected variant adds the non-const overload.
#include <cstddef>
#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/swarm_node.hpp>
#include <vector>

struct my_tensor {
    std::vector<float> values;
};

template <>
struct swarmsgd::tensor_traits<my_tensor> {
    using value_type = float;
    static std::size_t size(const my_tensor& t) { return t.values.size(); }
    static const float* data(const my_tensor& t) { return t.values.data(); }
#ifdef SWARMSGD_FAILTEST_CORRECTED
    static float* data(my_tensor& t) { return t.values.data(); }
#endif
};

int main() {
    my_tensor model{std::vector<float>(3)};
    swarmsgd::simulated_network net(1, 0, 0, 1);
    auto endpoint = net.endpoint_for(0);
    const auto graph = swarmsgd::topology::complete(1);
    swarmsgd::swarm_node node(model, endpoint, graph, {});
    return static_cast<int>(node.size()) - 3;
}
