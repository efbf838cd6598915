#pragma once
// Shared target of the 16-bit cast quantizers (fuzz_fp16.cpp, fuzz_bf16.cpp). S provides
// name, id, quantizer<V>, value(code) -> double (an independent conversion), bound(float)
// (the documented error bound) and in_range(float) (what encode must accept).

#include <array>

#include "fuzz_common.hpp"

namespace fuzz {

template <class S>
struct cast16_target : target_defaults {
    static constexpr const char* name = S::name;

    template <class V>
    static typename S::template quantizer<V> make(const std::uint8_t* /*cfg*/) {
        return {};
    }

    static std::vector<std::array<std::uint8_t, 3>> seed_configs() { return {{0, 0, 0}}; }

    /// header + exactly n 16-bit codes.
    template <class V>
    static expectation<V> oracle(std::span<const std::byte> p, std::span<const V> /*ref*/,
                                 std::size_t n, bool /*overlap*/) {
        expectation<V> e;
        e.valid = check_header<V>(p, S::id, n).ok && p.size() == 16 + 2 * n;
        if (!e.valid) return e;
        e.values.resize(n);
        for (std::size_t k = 0; k < n; ++k)
            e.values[k] = static_cast<V>(
                static_cast<float>(S::value(load<std::uint16_t>(p.data() + 16 + 2 * k))));
        return e;
    }

    template <class V>
    static void roundtrip(const prefix& p, std::vector<V> x) {
        auto q = make<V>(p.cfg);
        const std::vector<V> original = x;
        std::vector<std::byte> payload;
        bool all_in_range = true;
        for (const V v : x) all_in_range &= S::in_range(detail_to_float(v));
        if (!checked_encode(q, x, payload, p.b5, name)) {
            FUZZ_CHECK(!all_in_range, "%s encode threw for values that are all in range", name);
            return;
        }
        FUZZ_CHECK(all_in_range, "%s encode accepted a value outside its range", name);
        const auto want = oracle<V>(payload, {}, x.size(), false);
        std::vector<V> out(x.size());
        const auto r = must_decode<decltype(q), V>(q, payload, {}, out, name);
        check_success<V>(want, out, r, name);
        FUZZ_CHECK(all_bits_equal<V>(out, x),
                   "%s: decode differs from the sender's "
                   "reconstruction",
                   name);
        for (std::size_t k = 0; k < x.size(); ++k) {
            const float f = detail_to_float(original[k]);
            const double err = std::fabs(double(f) - double(x[k]));
            FUZZ_CHECK(err <= S::bound(f),
                       "%s: element %zu = %.9g reconstructed as %.9g, "
                       "error %.3g above the bound %.3g",
                       name, k, double(f), double(x[k]), err, S::bound(f));
        }
    }

    /// V -> float as the quantizers document it (double: clamp to the float range, round).
    template <class V>
    static float detail_to_float(V v) {
        if constexpr (sizeof(V) == 4) {
            return v;
        } else {
            if (std::isnan(v)) return std::numeric_limits<float>::quiet_NaN();
            const double c = std::fmin(std::fmax(v, -double(FLT_MAX)), double(FLT_MAX));
            return static_cast<float>(c);
        }
    }
};

}  // namespace fuzz
