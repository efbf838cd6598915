// Every quantizer in a Thrust system (swarmsgd/thrust/quantizers/): the system codec must write
// BYTE-IDENTICAL payloads to the CPU quantizer for the same values and rng state, leave the
// same reconstruction, draw the same random numbers, decode the same values and report the same
// failed lattice buckets; malformed payloads and bad values must throw the CPU's exception with
// the CPU's message, leaving the destination untouched. Built for the OMP device system (and
// CUDA when nvcc is found); each test also runs in the CPP system and in a CPU system with the
// GPU's loop shape.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <swarmsgd/quantizers/bf16.hpp>
#include <swarmsgd/quantizers/error_feedback.hpp>
#include <swarmsgd/quantizers/fp16.hpp>
#include <swarmsgd/quantizers/identity.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/quantizers/min_max.hpp>
#include <swarmsgd/quantizers/qsgd.hpp>
#include <swarmsgd/thrust.hpp>
#include <vector>

#include "thrust_support.hpp"

using namespace swarmsgd;

/// A Thrust system of its own that runs Thrust's CPP algorithms (a custom back end derived
/// from the CPP execution policy), with the GPU's inner chunk of 8 codes.
struct gpu_shaped_tag : thrust::system::cpp::detail::execution_policy<gpu_shaped_tag> {};
template <>
inline constexpr std::size_t swarmsgd::detail::inner_chunk<gpu_shaped_tag> = 8;
static_assert(host_accessible_system_v<gpu_shaped_tag>);

namespace {

template <class V>
bool same_bits(const std::vector<V>& a, const std::vector<V>& b) {
    return a.size() == b.size() &&
           (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(V)) == 0);
}

/// Values around `center` with spread `spread`, a few exact zeros and repeated values.
template <class V>
std::vector<V> values(std::size_t n, std::uint64_t seed, double center = 0, double spread = 1) {
    rng r(seed, 5);
    std::vector<V> v(n);
    for (auto& x : v) x = static_cast<V>(center + spread * (2 * r.uniform01() - 1));
    if (n > 10) {
        v[3] = V(0);
        v[4] = v[5];
    }
    return v;
}

/// What an exception says (type and text), or "" when none was thrown.
struct outcome {
    std::string type, text;
    friend bool operator==(const outcome&, const outcome&) = default;
};
template <class F>
outcome outcome_of(F&& f) {
    try {
        f();
    } catch (const size_mismatch_error& e) {
        return {"size_mismatch_error", e.what()};
    } catch (const message_error& e) {
        return {"message_error", e.what()};
    } catch (const non_finite_error& e) {
        return {"non_finite_error", e.what()};
    } catch (const invalid_argument_error& e) {
        return {"invalid_argument_error", e.what()};
    } catch (const error& e) {
        return {"error", e.what()};
    }
    return {};
}

/// The CPU quantizer and system S's codec side by side.
template <class Q, class S>
struct pair_under_test {
    using V = typename Q::value_type;
    Q cpu;
    Q dev;  // a copy: adaptive state evolves the same way
    system_codec<Q, S> codec;

    explicit pair_under_test(const Q& q) : cpu(q), dev(q) {}

    /// Encodes x on both sides with rng(seed); checks payload, reconstruction and rng state.
    /// Returns the payload (CPU) and the reconstruction in `recon`.
    std::vector<std::byte> encode(const std::vector<V>& x, std::uint64_t seed,
                                  std::vector<V>& recon) {
        const std::size_t n = x.size();
        recon = x;
        std::vector<std::byte> payload(cpu.max_encoded_size(n));
        rng r_cpu(seed), r_dev(seed);
        const std::size_t bytes =
            cpu.encode(std::span<V>(recon), std::span<std::byte>(payload), r_cpu);
        payload.resize(bytes);

        system_buffer<V, S> xs(n);
        copy_to_system<V, S>(std::span<const V>(x), xs.span());
        system_buffer<std::byte, S> out(dev.max_encoded_size(n) + 3);  // a larger buffer is fine
        const std::size_t dev_bytes = codec.encode(dev, xs.span(), out.span(), r_dev);
        CHECK(dev_bytes == bytes);
        std::vector<std::byte> dev_payload(dev_bytes);
        copy_to_host<std::byte, S>(system_span<const std::byte, S>(out.data(), dev_bytes),
                                   std::span<std::byte>(dev_payload));
        CHECK(dev_payload == payload);  // byte-identical
        std::vector<V> dev_recon(n);
        copy_to_host<V, S>(std::as_const(xs).span(), std::span<V>(dev_recon));
        CHECK(same_bits(dev_recon, recon));
        CHECK(r_cpu() == r_dev());  // the same draws
        return payload;
    }

    /// Decodes the payload against `reference` on both sides (in place too where `in_place`);
    /// checks the values and failed ranges. Returns the CPU result.
    decode_result decode(std::span<const std::byte> payload, const std::vector<V>& reference,
                         bool in_place = false) {
        const std::size_t n = reference.size();
        std::vector<V> out_cpu(n, V(-7));
        decode_result r_cpu;
        const auto e_cpu = outcome_of([&] {
            if (in_place) {
                out_cpu = reference;
                r_cpu = cpu.decode(payload, std::span<const V>(out_cpu), std::span<V>(out_cpu));
            } else {
                r_cpu = cpu.decode(payload, std::span<const V>(reference), std::span<V>(out_cpu));
            }
        });
        system_buffer<V, S> ref(n), out(n);
        copy_to_system<V, S>(std::span<const V>(reference), ref.span());
        const std::vector<V> sentinel(n, V(-7));
        copy_to_system<V, S>(std::span<const V>(sentinel), out.span());
        if (in_place) copy_to_system<V, S>(std::span<const V>(reference), out.span());
        decode_result r_dev;
        const auto e_dev = outcome_of([&] {
            r_dev = in_place ? codec.decode(dev, payload, std::as_const(out).span(), out.span())
                             : codec.decode(dev, payload, std::as_const(ref).span(), out.span());
        });
        CHECK(e_dev == e_cpu);
        std::vector<V> out_dev(n);
        copy_to_host<V, S>(std::as_const(out).span(), std::span<V>(out_dev));
        if (e_cpu.type.empty()) {
            CHECK(r_dev.failed == r_cpu.failed);
            CHECK(same_bits(out_dev, out_cpu));
        } else {
            CHECK(same_bits(out_dev, in_place ? reference : sentinel));  // untouched
        }
        // The same payload already in the system (payload_in_system): the same outcome.
        system_buffer<std::byte, S> in_system(payload.size());
        copy_to_system<std::byte, S>(payload, in_system.span());
        system_buffer<V, S> out2(n);
        copy_to_system<V, S>(std::span<const V>(in_place ? reference : sentinel), out2.span());
        decode_result r_sys;
        const auto e_sys = outcome_of([&] {
            r_sys = in_place ? codec.decode(dev, payload, std::as_const(out2).span(), out2.span(),
                                            in_system.data())
                             : codec.decode(dev, payload, std::as_const(ref).span(), out2.span(),
                                            in_system.data());
        });
        CHECK(e_sys == e_cpu);
        std::vector<V> out_sys(n);
        copy_to_host<V, S>(std::as_const(out2).span(), std::span<V>(out_sys));
        if (e_cpu.type.empty()) {
            CHECK(r_sys.failed == r_cpu.failed);
            CHECK(same_bits(out_sys, out_cpu));
        } else {
            CHECK(same_bits(out_sys, in_place ? reference : sentinel));
        }
        return r_cpu;
    }

    /// Both sides' encode of x throws the same exception (type and text).
    void encode_error(const std::vector<V>& x, const std::string& expected_type) {
        const std::size_t n = x.size();
        std::vector<V> y = x;
        std::vector<std::byte> payload(cpu.max_encoded_size(n));
        rng r1(3), r2(3);
        const auto e_cpu =
            outcome_of([&] { cpu.encode(std::span<V>(y), std::span<std::byte>(payload), r1); });
        system_buffer<V, S> xs(n);
        copy_to_system<V, S>(std::span<const V>(x), xs.span());
        system_buffer<std::byte, S> out(dev.max_encoded_size(n));
        const auto e_dev = outcome_of([&] { codec.encode(dev, xs.span(), out.span(), r2); });
        CHECK(e_cpu.type == expected_type);
        CHECK(e_dev == e_cpu);
        system_buffer<std::byte, S> small(dev.max_encoded_size(n) - 1);
        std::vector<std::byte> small_cpu(cpu.max_encoded_size(n) - 1);
        CHECK(
            outcome_of([&] { codec.encode(dev, xs.span(), small.span(), r2); }) ==
            outcome_of([&] { cpu.encode(std::span<V>(y), std::span<std::byte>(small_cpu), r1); }));
    }

    /// Corruptions of a valid payload: every one must give the CPU's exception on both sides,
    /// destination untouched.
    void malformed(const std::vector<std::byte>& payload, const std::vector<V>& reference) {
        std::vector<std::vector<std::byte>> bad;
        bad.push_back({});                                       // empty
        bad.emplace_back(payload.begin(), payload.begin() + 8);  // truncated header
        bad.emplace_back(payload.begin(), payload.end() - 1);    // truncated
        bad.push_back(payload);
        bad.back().push_back(std::byte{0});  // oversized
        for (std::size_t at : {0u, 2u, 8u, 16u, 17u, 18u, 20u, 24u, 25u, 26u, 28u, 31u}) {
            if (at >= payload.size()) continue;
            for (unsigned flip : {0x01u, 0x80u, 0xFFu}) {
                bad.push_back(payload);
                bad.back()[at] ^= std::byte(flip);
            }
        }
        bad.push_back(payload);
        bad.back().back() = std::byte{0xFF};  // last byte: padding bits or checksum
        for (const auto& b : bad) {
            CAPTURE(b.size());
            decode(std::span<const std::byte>(b), reference);
        }
        std::vector<V> wrong_size(reference.size() + 1, V(0));
        decode(std::span<const std::byte>(payload), wrong_size);
    }
};

/// Encode (several seeds), decode against the sender's own reconstruction and against a
/// nearby reference, in place, and the malformed payloads.
template <class S, class Q>
void check_quantizer(const Q& q, std::size_t n, double center = 0, double spread = 1,
                     bool malformed = false) {
    using V = typename Q::value_type;
    CAPTURE(n);
    pair_under_test<Q, S> p(q);
    for (std::uint64_t seed : {1u, 2u}) {
        const auto x = values<V>(n, seed + n, center, spread);
        std::vector<V> recon;
        const auto payload = p.encode(x, seed, recon);
        const auto result = p.decode(payload, recon);
        CHECK(result.ok());
        p.decode(payload, x);
        p.decode(payload, x, true);
        if (malformed && seed == 1) p.malformed(payload, recon);
    }
}

// The systems each test runs in: this build's device system (OMP in CI, CUDA with nvcc), the
// CPP system, and a CPP system with the GPU's loop structure (groups of 8 codes per step, see
// detail::inner_chunk), so that the GPU's loops are checked on any machine.
struct device_system {
    using tag = thrust::device_system_tag;
};
struct cpp_system {
    using tag = thrust::cpp::tag;
};
struct gpu_shaped_system {
    using tag = gpu_shaped_tag;
    static_assert(detail::inner_chunk<tag> == 8);
};
#define SWARMSGD_TEST_SYSTEMS device_system, cpp_system, gpu_shaped_system

const std::size_t sizes[] = {0, 1, 7, 8, 9, 255, 1000, 4099};

}  // namespace

TEST_CASE("thrust codecs: a device model's quantizer needs a codec") {
    using S = thrust::device_system_tag;
    static_assert(system_quantizer_for<identity_quantizer<float>, float, S>);
    static_assert(system_quantizer_for<fp16_quantizer<double>, double, S>);
    static_assert(system_quantizer_for<bf16_quantizer<float>, float, S>);
    static_assert(system_quantizer_for<min_max_quantizer<float>, float, S>);
    static_assert(system_quantizer_for<qsgd_quantizer<double>, double, S>);
    static_assert(system_quantizer_for<lattice_quantizer<float>, float, S>);
    static_assert(system_quantizer_for<error_feedback<min_max_quantizer<float>>, float, S>);
    static_assert(!system_quantizer_for<lattice_quantizer<float>, double, S>);
}

TEST_CASE_TEMPLATE("thrust codecs: identity, fp16, bf16 byte-identical", Sys,
                   SWARMSGD_TEST_SYSTEMS) {
    using S = typename Sys::tag;
    for (std::size_t n : sizes) {
        check_quantizer<S>(identity_quantizer<float>{}, n, 0, 1, n == 1000);
        check_quantizer<S>(identity_quantizer<double>{}, n);
        check_quantizer<S>(fp16_quantizer<float>{}, n, 0, 1, n == 1000);
        check_quantizer<S>(fp16_quantizer<double>{}, n, 3, 1000);
        check_quantizer<S>(bf16_quantizer<float>{}, n, 0, 1e30, n == 1000);
        check_quantizer<S>(bf16_quantizer<double>{}, n, -1, 1e-30);
    }
    // subnormals, ties and the range limits
    pair_under_test<fp16_quantizer<float>, S> h(fp16_quantizer<float>{});
    std::vector<float> edge = {65504.f, -65504.f, 6e-8f,         -3e-8f, 1e-45f,
                               0.f,     -0.f,     1.0009765625f, 2049.f, 65519.f * 0 + 65504.f};
    std::vector<float> recon;
    h.encode(edge, 1, recon);
    h.encode_error({1.f, 65505.f, 2.f, 1e6f}, "invalid_argument_error");
    h.encode_error({1.f, std::numeric_limits<float>::quiet_NaN()}, "non_finite_error");
    pair_under_test<bf16_quantizer<double>, S> b(bf16_quantizer<double>{});
    b.encode_error({1.0, 1e300}, "invalid_argument_error");
    b.encode_error({-std::numeric_limits<double>::infinity()}, "non_finite_error");
}

TEST_CASE_TEMPLATE("thrust codecs: min-max byte-identical, every width", Sys,
                   SWARMSGD_TEST_SYSTEMS) {
    using S = typename Sys::tag;
    for (unsigned bits = 1; bits <= 8; ++bits)
        for (std::size_t bucket : {8u, 64u, 512u})
            for (bool stochastic : {false, true}) {
                CAPTURE(bits);
                CAPTURE(bucket);
                CAPTURE(stochastic);
                const min_max_quantizer<float> q({bits, bucket, stochastic});
                for (std::size_t n : {1u, 9u, 1000u, 4099u})
                    check_quantizer<S>(q, n, 0.5, 2, n == 1000 && bucket == 64);
                check_quantizer<S>(min_max_quantizer<double>({bits, bucket, stochastic}), 1000, -3,
                                   1e-3);
            }
    // constant buckets, tiny ranges, errors
    pair_under_test<min_max_quantizer<float>, S> p(min_max_quantizer<float>{{8, 16, false}});
    std::vector<float> recon;
    std::vector<float> x(40, 2.5f);
    x[20] = 2.5f + 1e-38f;
    p.encode(x, 1, recon);
    x[30] = std::numeric_limits<float>::infinity();
    p.encode_error(x, "non_finite_error");
    pair_under_test<min_max_quantizer<double>, S> d(min_max_quantizer<double>{{4, 8, true}});
    d.encode_error({1, 2, 3, 4, 5, 6, 7, 8, -1e300, 1e300}, "invalid_argument_error");
}

TEST_CASE_TEMPLATE("thrust codecs: QSGD byte-identical, every code width", Sys,
                   SWARMSGD_TEST_SYSTEMS) {
    using S = typename Sys::tag;
    for (unsigned levels : {1u, 2u, 3u, 7u, 100u, 127u, 255u, 1000u, 32767u})
        for (std::size_t bucket : {8u, 512u}) {
            CAPTURE(levels);
            CAPTURE(bucket);
            const qsgd_quantizer<float> q({levels, bucket});
            for (std::size_t n : {1u, 9u, 1000u, 4099u})
                check_quantizer<S>(q, n, 0.1, 1, n == 1000 && levels % 2 == 0);
            check_quantizer<S>(qsgd_quantizer<double>({levels, bucket}), 1000, 0, 1e20);
        }
    pair_under_test<qsgd_quantizer<float>, S> p(qsgd_quantizer<float>{{100, 8}});
    std::vector<float> x(20, 1.f);
    x[17] = std::numeric_limits<float>::quiet_NaN();
    p.encode_error(x, "non_finite_error");
    x[17] = 3e38f;
    x[16] = 3e38f;
    p.encode_error(x, "invalid_argument_error");
    // a level above s (levels + 1 not a power of two): encode valid codes, then raise one
    std::vector<float> recon;
    auto payload = p.encode(values<float>(64, 9), 1, recon);
    payload[payload.size() - 1] |= std::byte{0xFE};  // the last code's level bits
    p.decode(payload, recon);
}

TEST_CASE_TEMPLATE("thrust codecs: lattice byte-identical, same failed buckets", Sys,
                   SWARMSGD_TEST_SYSTEMS) {
    using S = typename Sys::tag;
    for (unsigned bits = 2; bits <= 16; ++bits)
        for (std::size_t bucket : {8u, 256u, 3000u, 4096u})
            for (bool stochastic : {false, true}) {
                CAPTURE(bits);
                CAPTURE(bucket);
                CAPTURE(stochastic);
                lattice_options o;
                o.bits = bits;
                o.bucket = bucket;
                o.stochastic = stochastic;
                o.initial_distance = 0.05;
                const lattice_quantizer<float> q(o);
                for (std::size_t n : {1u, 1000u, 9001u}) {
                    pair_under_test<lattice_quantizer<float>, S> p(q);
                    const auto x = values<float>(n, n + bits, 0.3, 1);
                    std::vector<float> recon;
                    const auto payload = p.encode(x, 7, recon);
                    // references at growing distances: exact, some buckets failing, most failing
                    for (double d : {0.0, 0.02, 0.2, 5.0}) {
                        auto y = recon;
                        rng r(n, 99);
                        for (std::size_t k = 0; k < n; ++k)
                            if (r.uniform01() < 0.05) y[k] += float(d * (2 * r.uniform01() - 1));
                        p.decode(payload, y);
                        p.decode(payload, y, true);
                    }
                    if (n == 1000 && bucket == 256 && !stochastic) p.malformed(payload, recon);
                }
                lattice_options od = o;
                od.initial_distance = 1e-3;
                od.min_distance = 1e-9;
                check_quantizer<S>(lattice_quantizer<double>(od), 1000, 1e3, 1);
            }
    // The double path of float models: values far beyond 2^21 steps, in some segments only.
    lattice_options o;
    o.initial_distance = 1e-4;
    pair_under_test<lattice_quantizer<float>, S> p{lattice_quantizer<float>(o)};
    auto x = values<float>(6000, 4, 0, 1);
    for (std::size_t k = 2048; k < 2100; ++k) x[k] = 900.f + float(k);  // segment 1 only
    std::vector<float> recon;
    const auto payload = p.encode(x, 1, recon);
    auto y = recon;
    y[2050] = 5e4f;  // a reference far out: the float decode path falls back to double
    y[10] = 1e30f;   // beyond the index range: clamped, its bucket fails
    CHECK_FALSE(p.decode(payload, y).ok());
    p.decode(payload, y, true);
    // Encode errors: NaN, and |x| / eps beyond 2^50
    x[3000] = std::numeric_limits<float>::quiet_NaN();
    p.encode_error(x, "non_finite_error");
    x[3000] = 1e30f;
    p.encode_error(x, "invalid_argument_error");
    // Overlapping output and reference
    system_buffer<float, S> both(100);
    system_codec<lattice_quantizer<float>, S> codec;
    std::vector<float> small(50, 0.f);
    std::vector<float> r50;
    pair_under_test<lattice_quantizer<float>, S> p50{lattice_quantizer<float>(o)};
    const auto pl = p50.encode(small, 1, r50);
    CHECK_THROWS_AS(codec.decode(p50.dev, pl, system_span<const float, S>(both.data(), 50),
                                 system_span<float, S>(both.data() + 1, 50)),
                    invalid_argument_error);
}

TEST_CASE_TEMPLATE("thrust codecs: error feedback keeps the CPU residual", Sys,
                   SWARMSGD_TEST_SYSTEMS) {
    using S = typename Sys::tag;
    using Q = error_feedback<min_max_quantizer<float>>;
    Q cpu(min_max_quantizer<float>({3, 64, true}));
    Q dev = cpu;
    system_codec<Q, S> codec;
    const std::size_t n = 1000;
    system_buffer<float, S> xs(n);
    system_buffer<std::byte, S> out(cpu.max_encoded_size(n));
    rng r1(5), r2(5);
    for (int round = 0; round < 4; ++round) {
        auto x = values<float>(n, 100 + round);
        copy_to_system<float, S>(std::span<const float>(x), xs.span());
        std::vector<std::byte> payload(cpu.max_encoded_size(n));
        cpu.encode(std::span<float>(x), std::span<std::byte>(payload), r1);
        const std::size_t bytes = codec.encode(dev, xs.span(), out.span(), r2);
        std::vector<std::byte> dev_payload(bytes);
        copy_to_host<std::byte, S>(system_span<const std::byte, S>(out.data(), bytes),
                                   std::span<std::byte>(dev_payload));
        CHECK(dev_payload == payload);
        std::vector<float> residual(n);
        copy_to_host<float, S>(codec.residual(), std::span<float>(residual));
        const auto cr = cpu.residual();
        CHECK(same_bits(residual, std::vector<float>(cr.begin(), cr.end())));
        std::vector<float> decoded(n);
        system_buffer<float, S> d(n);
        codec.decode(dev, payload, std::as_const(d).span(), d.span());
        copy_to_host<float, S>(std::as_const(d).span(), std::span<float>(decoded));
        CHECK(same_bits(decoded, x));
    }
    using L = error_feedback<lattice_quantizer<double>>;
    pair_under_test<L, S> p{L(lattice_quantizer<double>{})};
    std::vector<double> recon;
    p.encode(values<double>(777, 1), 1, recon);
}
