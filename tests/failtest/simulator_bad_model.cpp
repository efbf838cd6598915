// expect: neither a tensor nor a list of tensors
// swarmsgd::simulator with class template argument deduction and a Model that is not one: the
// readable static_assert, not a constraint failure in the default quantizer. The corrected
// variant (std::vector<double>) is compiled by failtest_*_corrected.
#include <cstddef>
#include <span>
#include <swarmsgd/simulator.hpp>
#include <vector>

struct zero_gradient {
    template <class Model, class V>
    double gradient(std::size_t, const Model&, std::span<V> grad, swarmsgd::rng&) const {
        for (auto& g : grad) g = V(0);
        return 0.0;
    }
};

int main() {
#ifdef SWARMSGD_FAILTEST_CORRECTED
    using model_type = std::vector<double>;
#else
    using model_type = std::vector<int>;
#endif
    std::vector<model_type> models(2, model_type(3));
    const auto graph = swarmsgd::topology::complete(2);
    zero_gradient problem;
    swarmsgd::simulator sim(models, graph, problem, swarmsgd::simulator_options{});
    sim.run(4);
    return 0;
}
