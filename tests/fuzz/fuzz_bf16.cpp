// libFuzzer target: bf16_quantizer<float/double>::decode (and encode/decode round trips).
// Input layout and checks: see fuzz_common.hpp.
#include <swarmsgd/quantizers/bf16.hpp>

#include "fuzz_cast16.hpp"
#include "fuzz_common.hpp"

namespace {

/// bfloat16 -> double, written from the definition (sign, 8-bit exponent, 7-bit mantissa).
double bf16_value(std::uint16_t h) {
    const unsigned sign = h >> 15, exp = (h >> 7) & 255u, mant = h & 127u;
    double v;
    if (exp == 0)
        v = std::ldexp(double(mant), -133);
    else if (exp == 255)
        v = mant != 0 ? std::numeric_limits<double>::quiet_NaN()
                      : std::numeric_limits<double>::infinity();
    else
        v = std::ldexp(double(128 + mant), int(exp) - 134);
    return sign != 0 ? -v : v;
}

struct bf16_spec {
    static constexpr const char* name = "bf16";
    static constexpr std::uint16_t id = 3;
    template <class V>
    using quantizer = swarmsgd::bf16_quantizer<V>;
    static double value(std::uint16_t h) { return bf16_value(h); }
    static double bound(float x) {
        const double a = std::fabs(double(x));
        return a >= double(FLT_MIN) ? a * 0x1.0p-8 : 0x1.0p-134;
    }
    /// Finite values that do not round to infinity: |x| < 0x1.FFp127.
    static bool in_range(float x) { return std::fabs(double(x)) < 0x1.FFp127; }
};

}  // namespace

SWARMSGD_FUZZ_TARGET(fuzz::cast16_target<bf16_spec>)
