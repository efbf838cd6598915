// expect: is not a quantizer
// A quantizer without decode(): swarm_node must say the Quant type is not a quantizer.
// Compile with -DSWARMSGD_FAILTEST_CORRECTED to check the complete quantizer compiles.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/swarm_node.hpp>
#include <vector>

struct encode_only {
    [[nodiscard]] std::uint16_t id() const { return 77; }
    [[nodiscard]] std::string_view name() const { return "encode_only"; }
    [[nodiscard]] std::size_t max_encoded_size(std::size_t n) const { return n * sizeof(float); }
    std::size_t encode(std::span<float>, std::span<std::byte>, swarmsgd::rng&) const { return 0; }
#ifdef SWARMSGD_FAILTEST_CORRECTED
    swarmsgd::decode_result decode(std::span<const std::byte>, std::span<const float>,
                                   std::span<float>) const {
        return {};
    }
#endif
};

int main() {
    std::vector<float> model(3);
    swarmsgd::simulated_network net(1, 0, 0, 1);
    auto endpoint = net.endpoint_for(0);
    const auto graph = swarmsgd::topology::complete(1);
    swarmsgd::swarm_node<std::vector<float>, swarmsgd::simulated_network::endpoint, encode_only>
        node(model, endpoint, graph, {});
    return static_cast<int>(node.size()) - 3;
}
