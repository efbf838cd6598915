// Plugging in your own quantizer: a type satisfying swarmsgd::quantizer_for<Q, float>. This one
// sends bfloat16 (the top 16 bits of each float, truncated) and follows the contract that keeps
// the mean exact under quantization: encode leaves in `values` exactly what decode will return
// (the receiver's reconstruction D), so both partners apply X += (D(m_j) - D(m_i)) / 2 and the
// two updates cancel in the sum. See docs/architecture.md, "Your own quantizer".
#include <swarmsgd/swarmsgd.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

struct bf16_truncating_quantizer {
    static constexpr std::uint16_t format_id = 0x8001;  // distinct from the library's ids
    std::uint16_t id() const { return format_id; }
    std::string_view name() const { return "bf16-truncating"; }
    std::size_t max_encoded_size(std::size_t n) const {
        return swarmsgd::payload_header_size + 2 * n;  // header + 2 bytes per element
    }

    std::size_t encode(std::span<float> values, std::span<std::byte> out, swarmsgd::rng&) const {
        swarmsgd::write_payload_header(out, {format_id, sizeof(float), values.size()});
        std::byte* p = out.data() + swarmsgd::payload_header_size;
        for (float& v : values) {
            const auto top = static_cast<std::uint16_t>(std::bit_cast<std::uint32_t>(v) >> 16);
            std::memcpy(p, &top, 2);  // little-endian, as the rest of the wire format
            p += 2;
            v = widen(top);  // the reconstruction: exactly what decode will produce
        }
        return max_encoded_size(values.size());
    }

    swarmsgd::decode_result decode(std::span<const std::byte> payload,
                                   std::span<const float> /*reference: not needed*/,
                                   std::span<float> out) const {
        // Checks quantizer id, value width and element count (throws message_error or
        // size_mismatch_error naming both sides), then the length, before writing `out`.
        (void)swarmsgd::read_payload_header(payload, format_id, "bf16-truncating", sizeof(float),
                                            out.size());
        if (payload.size() != max_encoded_size(out.size()))
            throw swarmsgd::message_error("bf16 payload has the wrong length");
        const std::byte* p = payload.data() + swarmsgd::payload_header_size;
        for (float& v : out) {
            std::uint16_t top;
            std::memcpy(&top, p, 2);
            p += 2;
            v = widen(top);
        }
        return {};  // every element decoded
    }

private:
    static float widen(std::uint16_t top) { return std::bit_cast<float>(std::uint32_t{top} << 16); }
};
static_assert(swarmsgd::quantizer_for<bf16_truncating_quantizer, float>);

struct no_gradient {  // pure gossip: only averaging changes the models
    double gradient(std::size_t, const std::vector<float>&, std::span<float> g, swarmsgd::rng&) {
        for (float& v : g) v = 0;
        return 0;
    }
};

int main() {
    constexpr std::size_t n = 16, dim = 32;
    swarmsgd::rng random(3);
    std::vector<std::vector<float>> models(n, std::vector<float>(dim));
    for (auto& m : models)
        for (float& v : m) v = static_cast<float>(random.uniform01() * 20 - 10);
    // The contract: after encode, `values` holds exactly what decode returns.
    bf16_truncating_quantizer q;
    std::vector<float> values = models[0], decoded(dim);
    std::vector<std::byte> payload(q.max_encoded_size(dim));
    payload.resize(q.encode(std::span<float>(values), std::span<std::byte>(payload), random));
    (void)q.decode(payload, std::span<const float>(models[1]), std::span<float>(decoded));
    if (values != decoded) {
        std::printf("custom_quantizer: encode's reconstruction differs from decode\n");
        return 1;
    }

    const auto sum0 = swarmsgd::sum_model(models);
    const double gamma0 = swarmsgd::consensus_distance(models);

    swarmsgd::simulator_options options;
    options.node.sgd.learning_rate = 0;
    const auto graph = swarmsgd::topology::torus(4, 4);
    no_gradient problem;
    swarmsgd::simulator sim(models, graph, problem, options, q);
    sim.run(3000);

    // Truncating to bf16 moves a value in [8, 16) by up to 2^-4; the sum of the models moves
    // only by the float rounding of the updates, orders of magnitude less.
    double drift = 0;
    const auto sum1 = swarmsgd::sum_model(models);
    for (std::size_t k = 0; k < dim; ++k) drift = std::fmax(drift, std::fabs(sum1[k] - sum0[k]));
    const double gamma = sim.consensus_distance();
    std::printf("custom_quantizer: %.*s, sum drift %.3g, Gamma %.3g -> %.3g, %llu bytes sent\n",
                static_cast<int>(q.name().size()), q.name().data(), drift, gamma0, gamma,
                static_cast<unsigned long long>(sim.total_stats().bytes_sent));
    return drift < 1e-3 && gamma < 1e-2 * gamma0 ? 0 : 1;
}
