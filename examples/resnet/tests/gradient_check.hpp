#pragma once
/// \file gradient_check.hpp
/// Helpers of the ResNet tests: deterministic random tensors and a central finite-difference
/// check of an analytic gradient.

#include <doctest/doctest.h>
#include <swarmsgd/random.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace resnet_test {

/// `n` values uniform in [lo, hi), deterministic for `seed`.
template <class T = double>
std::vector<T> random_vector(std::size_t n, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
    swarmsgd::rng gen(seed, 7);
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(lo + (hi - lo) * gen.uniform01());
    return v;
}

/// sum_i a[i] * b[i] in double.
template <class A, class B>
double dot(const A& a, const B& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
    return s;
}

/// Checks analytic[i] = d f / d x[i] for every i by central differences with step eps:
/// |numeric - analytic| <= tol * max(1, |numeric|). f reads x (which this perturbs and
/// restores). `what` names the tensor in failure messages. Returns the largest error seen.
template <class F>
double check_gradient(const char* what, std::vector<double>& x, const std::vector<double>& analytic,
                      F&& f, double eps = 1e-6, double tol = 1e-6) {
    REQUIRE(x.size() == analytic.size());
    double worst = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double saved = x[i];
        x[i] = saved + eps;
        const double plus = f();
        x[i] = saved - eps;
        const double minus = f();
        x[i] = saved;
        const double numeric = (plus - minus) / (2 * eps);
        const double err = std::abs(numeric - analytic[i]) / std::max(1.0, std::abs(numeric));
        worst = std::max(worst, err);
        if (err > tol) {
            INFO(std::string(what), "[", i, "]: numeric ", numeric, " analytic ", analytic[i]);
            CHECK(err <= tol);
        }
    }
    return worst;
}

}  // namespace resnet_test
