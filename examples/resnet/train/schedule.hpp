#pragma once
/// \file schedule.hpp
/// Learning-rate schedules for sgd_options::schedule, in local steps of one node:
/// - a linear warm-up over the first `warmup` steps: base * (t + 1) / warmup;
/// - then "cosine": base * (1 + cos(pi * p)) / 2 with p the progress from the end of the
///   warm-up to the last step (0 -> 1), or "step": base, x0.1 from 50% and x0.01 from 75% of
///   the run (the CIFAR ResNet recipe's epochs 81 and 122 of 164, rescaled to the run).

#include <swarmsgd/errors.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <string>

#include "../../common/checks.hpp"

namespace swarmsgd::examples::resnet {

/// The schedule `kind` ("cosine" or "step") over `total` local steps with `warmup` warm-up
/// steps (warmup < total, or 0). Throws invalid_argument_error naming a bad kind or count.
[[nodiscard]] inline std::function<double(std::size_t, double)> make_schedule(
    const std::string& kind, std::size_t total, std::size_t warmup) {
    swarmsgd::examples::require<invalid_argument_error>(kind == "cosine" || kind == "step",
                                                        "make_schedule: unknown schedule '", kind,
                                                        "' (expected cosine or step)");
    swarmsgd::examples::require<invalid_argument_error>(
        total > 0 && (warmup == 0 || warmup < total), "make_schedule: ", warmup,
        " warm-up steps do not fit in a run of ", total, " steps");
    const bool cosine = kind == "cosine";
    return [cosine, total, warmup](std::size_t t, double base) {
        if (t < warmup) return base * static_cast<double>(t + 1) / static_cast<double>(warmup);
        const double span = static_cast<double>(std::max<std::size_t>(total - warmup, 1));
        const double p = std::min(static_cast<double>(t - warmup) / span, 1.0);
        if (cosine) return base * 0.5 * (1.0 + std::cos(3.141592653589793 * p));
        return p < 0.5 ? base : (p < 0.75 ? base * 0.1 : base * 0.01);
    };
}

}  // namespace swarmsgd::examples::resnet
