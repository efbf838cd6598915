// libFuzzer target: fp16_quantizer<float/double>::decode (and encode/decode round trips).
// Input layout and checks: see fuzz_common.hpp.
#include <swarmsgd/quantizers/fp16.hpp>

#include "fuzz_cast16.hpp"
#include "fuzz_common.hpp"

namespace {

/// IEEE binary16 -> double, written from the definition.
double half_value(std::uint16_t h) {
    const unsigned sign = h >> 15, exp = (h >> 10) & 31u, mant = h & 1023u;
    double v;
    if (exp == 0)
        v = std::ldexp(double(mant), -24);
    else if (exp == 31)
        v = mant != 0 ? std::numeric_limits<double>::quiet_NaN()
                      : std::numeric_limits<double>::infinity();
    else
        v = std::ldexp(double(1024 + mant), int(exp) - 25);
    return sign != 0 ? -v : v;
}

struct fp16_spec {
    static constexpr const char* name = "fp16";
    static constexpr std::uint16_t id = 2;
    template <class V>
    using quantizer = swarmsgd::fp16_quantizer<V>;
    static double value(std::uint16_t h) { return half_value(h); }
    /// Documented bound of |float(x) - reconstruction|, for a float x within range.
    static double bound(float x) {
        const double a = std::fabs(double(x));
        return a >= 0x1.0p-14 ? a * 0x1.0p-11 : 0x1.0p-25;
    }
    /// Inputs encode must accept: |x| <= 65504 after the conversion to float.
    static bool in_range(float x) { return std::fabs(x) <= 65504.0f; }
};

}  // namespace

SWARMSGD_FUZZ_TARGET(fuzz::cast16_target<fp16_spec>)
