// expect: this quantizer has no back end in the model's memory system
// A quantizer with only host encode/decode (no swarmsgd::system_codec for it) cannot encode a
// device model: swarm_node over a thrust::device_vector must refuse it at compile time, in
// words, instead of running host loops over device memory. Compile with
// -DSWARMSGD_FAILTEST_CORRECTED to check that a library quantizer (which has a codec) compiles.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/quantizers/min_max.hpp>
#include <swarmsgd/swarm_node.hpp>
#include <swarmsgd/thrust.hpp>

/// A complete quantizer for float models, host memory only.
struct host_only_quantizer {
    std::uint16_t id() const { return 99; }
    std::string_view name() const { return "host_only"; }
    std::size_t max_encoded_size(std::size_t n) const { return 16 + 4 * n; }
    std::size_t encode(std::span<float> v, std::span<std::byte>, swarmsgd::rng&) const {
        return 16 + 4 * v.size();
    }
    swarmsgd::decode_result decode(std::span<const std::byte>, std::span<const float>,
                                   std::span<float>) const {
        return {};
    }
};
static_assert(swarmsgd::quantizer_for<host_only_quantizer, float>);

int main() {
    thrust::device_vector<float> model(16, 0.f);
    swarmsgd::simulated_network net(2, 0, 0, 1);
    auto endpoint = net.endpoint_for(0);
    const auto graph = swarmsgd::topology::complete(2);
#if defined(SWARMSGD_FAILTEST_CORRECTED)
    swarmsgd::swarm_node node(model, endpoint, graph, swarmsgd::swarm_options{},
                              swarmsgd::min_max_quantizer<float>{});
#else
    swarmsgd::swarm_node node(model, endpoint, graph, swarmsgd::swarm_options{},
                              host_only_quantizer{});
#endif
    node.after_local_step();
}
