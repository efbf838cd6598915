#pragma once
/// \file sgd.hpp
/// The local optimizer of a node: SGD with a learning-rate schedule hook, momentum,
/// Nesterov momentum and (coupled, L2) weight decay, with PyTorch's update rule:
///   g' = g + wd * x;  v = mu * v + g';  d = nesterov ? g' + mu * v : v;  x -= lr(t) * d.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <span>
#include <vector>

#include "detail/config.hpp"
#include "errors.hpp"
#include "model.hpp"

namespace swarmsgd {

/// Hyper-parameters of the local SGD optimizer.
struct sgd_options {
    double learning_rate = 0.01;  ///< base learning rate (>= 0)
    double momentum = 0.0;        ///< in [0, 1)
    bool nesterov = false;        ///< Nesterov momentum (needs momentum > 0)
    double weight_decay = 0.0;    ///< L2 coefficient (>= 0)
    /// Optional schedule: learning rate used at local step t (0-based) given the base rate.
    /// Called once per step; its result must be finite and >= 0.
    std::function<double(std::size_t step, double base_rate)> schedule;

    /// Throws invalid_argument_error naming the offending value.
    void validate() const {
        using detail::require;
        require<invalid_argument_error>(std::isfinite(learning_rate) && learning_rate >= 0,
                                        "sgd_options: learning_rate = ", learning_rate,
                                        "; it must be finite and >= 0");
        require<invalid_argument_error>(std::isfinite(momentum) && momentum >= 0 && momentum < 1,
                                        "sgd_options: momentum = ", momentum,
                                        "; it must be in [0, 1)");
        require<invalid_argument_error>(!nesterov || momentum > 0,
                                        "sgd_options: nesterov needs momentum > 0, got ", momentum);
        require<invalid_argument_error>(std::isfinite(weight_decay) && weight_decay >= 0,
                                        "sgd_options: weight_decay = ", weight_decay,
                                        "; it must be finite and >= 0");
    }
};

/// A step-decay schedule: multiplies the base rate by `factor` at each step in `milestones`.
[[nodiscard]] inline std::function<double(std::size_t, double)> step_decay(
    std::vector<std::size_t> milestones, double factor) {
    return [milestones = std::move(milestones), factor](std::size_t t, double base) {
        double rate = base;
        for (std::size_t m : milestones)
            if (t >= m) rate *= factor;
        return rate;
    };
}

namespace detail {
/// The learning rate of local step `step` (0-based): the schedule's, checked, or the base rate.
/// Shared by every back end of the optimizer. Throws invalid_argument_error naming the rate.
[[nodiscard]] inline double scheduled_rate(const sgd_options& options, std::size_t step) {
    if (!options.schedule) return options.learning_rate;
    const double rate = options.schedule(step, options.learning_rate);
    require<invalid_argument_error>(std::isfinite(rate) && rate >= 0,
                                    "sgd schedule returned learning rate ", rate, " at step ",
                                    step);
    return rate;
}
}  // namespace detail

/// SGD state of one node: its velocity buffer (flat, in the model's concatenated order).
template <tensor_value V>
class sgd {
public:
    /// Validates the options and allocates a velocity of `size` elements when momentum > 0.
    sgd(const sgd_options& options, std::size_t size) : options_(options) {
        options_.validate();
        if (options_.momentum > 0) velocity_.assign(size, V(0));
    }

    /// Applies one step with gradient `grad` (flat, model-ordered) to model `m`.
    /// The caller has checked sizes and finiteness.
    template <class M>
    void step(M& m, std::span<const V> grad) {
        const double rate = detail::scheduled_rate(options_, steps_);
        last_rate_ = rate;
        ++steps_;
        const V lr = static_cast<V>(rate);
        const V wd = static_cast<V>(options_.weight_decay);
        const V mu = static_cast<V>(options_.momentum);
        for_each_part(m, [&](std::span<V> x, std::size_t offset) {
            apply(x.data(), grad.data() + offset,
                  velocity_.empty() ? nullptr : velocity_.data() + offset, x.size(), lr, wd, mu);
        });
    }

    /// Local steps taken so far.
    [[nodiscard]] std::size_t steps() const noexcept { return steps_; }
    /// The momentum buffer (empty without momentum), for checkpoints.
    [[nodiscard]] std::span<const V> velocity() const noexcept { return velocity_; }
    /// Restores the state of a checkpoint: steps taken, last rate and momentum buffer (of the
    /// size velocity() has). Throws invalid_argument_error for a buffer of another size.
    void restore(std::size_t steps, double last_rate, std::span<const V> velocity) {
        detail::require<invalid_argument_error>(
            velocity.size() == velocity_.size(), "sgd::restore: momentum buffer of ",
            velocity.size(), " elements, this optimizer has ", velocity_.size());
        steps_ = steps;
        last_rate_ = last_rate;
        std::copy(velocity.begin(), velocity.end(), velocity_.begin());
    }
    /// Learning rate used by the last step.
    [[nodiscard]] double last_rate() const noexcept { return last_rate_; }
    /// The options in force.
    [[nodiscard]] const sgd_options& options() const noexcept { return options_; }

private:
    void apply(V* SWARMSGD_RESTRICT x, const V* SWARMSGD_RESTRICT g, V* SWARMSGD_RESTRICT v,
               std::size_t n, V lr, V wd, V mu) const noexcept {
        if (v == nullptr) {
            for (std::size_t k = 0; k < n; ++k) x[k] -= lr * (g[k] + wd * x[k]);
        } else if (options_.nesterov) {
            for (std::size_t k = 0; k < n; ++k) {
                const V gk = g[k] + wd * x[k];
                v[k] = mu * v[k] + gk;
                x[k] -= lr * (gk + mu * v[k]);
            }
        } else {
            for (std::size_t k = 0; k < n; ++k) {
                v[k] = mu * v[k] + g[k] + wd * x[k];
                x[k] -= lr * v[k];
            }
        }
    }

    sgd_options options_;
    std::vector<V> velocity_;
    std::size_t steps_ = 0;
    double last_rate_ = 0;
};

}  // namespace swarmsgd
