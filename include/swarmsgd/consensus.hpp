#pragma once
/// \file consensus.hpp
/// Mean model and consensus distance Gamma = sum_i ||X_i - mu||^2, the health metric of a
/// swarm (it stays bounded in the paper's analysis; it grows when averaging cannot keep up).

#include <cstddef>
#include <span>
#include <vector>

#include "errors.hpp"
#include "model.hpp"

namespace swarmsgd {

namespace detail {
/// Calls f(part, offset) with host views of a model's parts; a system model (device memory)
/// is copied to the host first, as one part.
template <class Model, class F>
void for_each_host_part(const Model& m, F&& f) {
    if constexpr (system_model<Model>) {
        std::vector<model_value_t<Model>> host(model_size(m));
        to_host(m, std::span<model_value_t<Model>>(host));
        f(std::span<const model_value_t<Model>>(host), std::size_t{0});
    } else {
        for_each_part(m, f);
    }
}
}  // namespace detail

/// Element-wise mean of the models (accumulated in double), as a flat vector. System models
/// (device memory) are read through a host copy.
template <class Model>
    requires any_model<Model>
[[nodiscard]] std::vector<double> mean_model(const std::vector<Model>& models) {
    detail::require<invalid_argument_error>(!models.empty(), "mean_model: no models (n = 0)");
    const std::size_t n = model_size(models[0]);
    std::vector<double> sum(n, 0.0);
    for (std::size_t i = 0; i < models.size(); ++i) {
        detail::require<size_mismatch_error>(model_size(models[i]) == n, "mean_model: node ", i,
                                             " has ", model_size(models[i]),
                                             " elements, node 0 has ", n);
        detail::for_each_host_part(models[i], [&](auto part, std::size_t offset) {
            for (std::size_t k = 0; k < part.size(); ++k) sum[offset + k] += part[k];
        });
    }
    for (double& s : sum) s /= static_cast<double>(models.size());
    return sum;
}

/// Sum of the models (in double), as a flat vector.
template <class Model>
    requires any_model<Model>
[[nodiscard]] std::vector<double> sum_model(const std::vector<Model>& models) {
    auto s = mean_model(models);
    for (double& v : s) v *= static_cast<double>(models.size());
    return s;
}

/// Gamma = sum_i ||X_i - mu||^2 with mu the mean model.
template <class Model>
    requires any_model<Model>
[[nodiscard]] double consensus_distance(const std::vector<Model>& models) {
    const auto mu = mean_model(models);
    double gamma = 0;
    for (const auto& m : models)
        detail::for_each_host_part(m, [&](auto part, std::size_t offset) {
            for (std::size_t k = 0; k < part.size(); ++k) {
                const double d = static_cast<double>(part[k]) - mu[offset + k];
                gamma += d * d;
            }
        });
    return gamma;
}

}  // namespace swarmsgd
