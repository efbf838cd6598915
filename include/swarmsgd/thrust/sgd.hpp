#pragma once
/// \file thrust/sgd.hpp
/// `system_sgd<V, S>`: the local optimizer of a swarm_node over a system model, the rule of
/// sgd.hpp (PyTorch's SGD: momentum, Nesterov, coupled weight decay, schedule) applied in the
/// model's memory system, with the velocity kept there.

#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include "../errors.hpp"
#include "../model.hpp"
#include "../sgd.hpp"
#include "model_ops.hpp"
#include "system_buffer.hpp"

namespace swarmsgd {

namespace detail {
/// One element of sgd<V>'s update (the same expressions, so the same bits without FMA
/// contraction): v = mu v + g + wd x (Nesterov: g' = g + wd x, v = mu v + g',
/// d = g' + mu v), x -= lr d.
template <class V, int Kind>  // 0: no momentum, 1: momentum, 2: Nesterov
struct sgd_op {
    V* x;
    const V* g;
    V* v;
    V lr, wd, mu;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t k) const {
        if constexpr (Kind == 0) {
            x[k] -= lr * (g[k] + wd * x[k]);
        } else if constexpr (Kind == 2) {
            const V gk = g[k] + wd * x[k];
            v[k] = mu * v[k] + gk;
            x[k] -= lr * (gk + mu * v[k]);
        } else {
            v[k] = mu * v[k] + g[k] + wd * x[k];
            x[k] -= lr * v[k];
        }
    }
};
}  // namespace detail

/// SGD state of one node whose model lives in system S (see sgd<V>).
template <tensor_value V, class S>
class system_sgd {
public:
    /// Validates the options; allocates (zeroed) velocity in S when momentum > 0.
    system_sgd(const sgd_options& options, std::size_t size) : options_(options) {
        options_.validate();
        if (options_.momentum > 0) {
            velocity_.resize(size);
            detail::device_call("swarmsgd: sgd velocity", [&] {
                detail::system_for_each<S>(size, detail::fill_value<V>{velocity_.data(), V(0)});
            });
        }
    }

    /// One step with the flat gradient `grad` (model_size elements in S) on the system model
    /// `m`. The caller has checked sizes and finiteness.
    template <class M>
    void step(M& m, const V* grad) {
        const double rate = detail::scheduled_rate(options_, steps_);
        last_rate_ = rate;
        ++steps_;
        const V lr = static_cast<V>(rate);
        const V wd = static_cast<V>(options_.weight_decay);
        const V mu = static_cast<V>(options_.momentum);
        detail::device_call("swarmsgd: sgd step", [&] {
            for_each_system_part(m, [&](V* x, std::size_t n, std::size_t offset) {
                const V* g = grad + offset;
                V* v = velocity_.empty() ? nullptr : velocity_.data() + offset;
                if (v == nullptr)
                    detail::system_for_each<S>(n, detail::sgd_op<V, 0>{x, g, v, lr, wd, mu});
                else if (options_.nesterov)
                    detail::system_for_each<S>(n, detail::sgd_op<V, 2>{x, g, v, lr, wd, mu});
                else
                    detail::system_for_each<S>(n, detail::sgd_op<V, 1>{x, g, v, lr, wd, mu});
            });
        });
    }

    /// The momentum buffer, copied to the host (checkpoints); empty without momentum.
    [[nodiscard]] std::vector<V> velocity() const {
        std::vector<V> out(velocity_.size());
        if (!out.empty())
            detail::device_call("swarmsgd: sgd velocity to host", [&] {
                detail::system_ops<S>::to_host(velocity_.data(), out.size(), out.data());
            });
        return out;
    }

    /// Restores the state of a checkpoint: the step count, the last rate and the momentum
    /// buffer (host values, as many as velocity() has). invalid_argument_error for another size.
    void restore(std::size_t steps, double last_rate, std::span<const V> velocity) {
        detail::require<invalid_argument_error>(
            velocity.size() == velocity_.size(), "system_sgd::restore: momentum buffer of ",
            velocity.size(), " elements, this optimizer has ", velocity_.size());
        if (!velocity.empty())
            detail::device_call("swarmsgd: sgd velocity from host", [&] {
                detail::system_ops<S>::to_system(velocity.data(), velocity.size(),
                                                 velocity_.data());
            });
        steps_ = steps;
        last_rate_ = last_rate;
    }

    /// Local steps taken so far.
    [[nodiscard]] std::size_t steps() const noexcept { return steps_; }
    /// Learning rate used by the last step.
    [[nodiscard]] double last_rate() const noexcept { return last_rate_; }
    /// The options in force.
    [[nodiscard]] const sgd_options& options() const noexcept { return options_; }

private:
    sgd_options options_;
    system_buffer<V, S> velocity_;
    std::size_t steps_ = 0;
    double last_rate_ = 0;
};

}  // namespace swarmsgd
