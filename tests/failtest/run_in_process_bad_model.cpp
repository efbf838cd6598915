// expect: neither a tensor nor a list of tensors
// run_in_process with deduced template arguments and a Model that is not one (integer values):
// the call must resolve and reach the readable static_assert, not fail overload resolution on
// the default quantizer. The corrected variant (std::vector<float>) is compiled by
// failtest_*_corrected.
#include <cstddef>
#include <span>
#include <swarmsgd/in_process_swarm.hpp>
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
    using model_type = std::vector<float>;
#else
    using model_type = std::vector<int>;
#endif
    std::vector<model_type> models(2, model_type(3));
    const auto graph = swarmsgd::topology::complete(2);
    zero_gradient problem;
    const auto report = swarmsgd::run_in_process(models, graph, problem, 4, {});
    return static_cast<int>(report.consensus_distance);
}
