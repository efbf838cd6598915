#pragma once
/// \file local_steps.hpp
/// How many local SGD steps a node takes between two interactions: a fixed H (what practice
/// uses) or a geometric random variable of mean H (what the paper's analysis assumes).

#include <cmath>
#include <cstddef>
#include <string>

#include "errors.hpp"
#include "random.hpp"

namespace swarmsgd {

/// Local-step policy. Build it with `local_steps::fixed(H)` or `local_steps::geometric(H)`.
class local_steps {
public:
    /// Exactly H local steps between interactions (H >= 1).
    [[nodiscard]] static local_steps fixed(std::size_t h) {
        detail::require<invalid_argument_error>(h >= 1, "local_steps::fixed: H = ", h,
                                                "; a node needs at least 1 local step");
        return local_steps(false, static_cast<double>(h));
    }

    /// Geometric number of local steps on {1, 2, ...} with mean H (H >= 1, finite):
    /// P(k) = (1 - p)^(k-1) p with p = 1/H.
    [[nodiscard]] static local_steps geometric(double mean_h) {
        detail::require<invalid_argument_error>(std::isfinite(mean_h) && mean_h >= 1.0,
                                                "local_steps::geometric: mean H = ", mean_h,
                                                "; it must be finite and >= 1");
        return local_steps(true, mean_h);
    }

    /// Mean number of local steps.
    [[nodiscard]] double mean() const noexcept { return mean_; }
    /// Whether the count is random.
    [[nodiscard]] bool is_geometric() const noexcept { return geometric_; }
    /// "fixed(2)" or "geometric(2.5)".
    [[nodiscard]] std::string describe() const {
        return detail::concat(geometric_ ? "geometric(" : "fixed(", mean_, ")");
    }

    /// Draws the number of local steps before the next interaction.
    [[nodiscard]] std::size_t draw(rng& r) const noexcept {
        if (!geometric_ || mean_ <= 1.0) return static_cast<std::size_t>(mean_);
        const double u = 1.0 - r.uniform01();  // (0, 1]
        const double k = std::floor(std::log(u) / std::log1p(-1.0 / mean_));
        return 1 + static_cast<std::size_t>(k);
    }

private:
    local_steps(bool geometric, double mean) : geometric_(geometric), mean_(mean) {}
    bool geometric_;
    double mean_;
};

}  // namespace swarmsgd
