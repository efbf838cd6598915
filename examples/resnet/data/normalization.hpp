#pragma once
/// \file normalization.hpp
/// Per-channel normalization: pixel bytes b become (b / 255 - mean_c) / std_c, with the mean
/// and standard deviation of each channel measured on the training set (what
/// torchvision.transforms.Normalize does with the usual CIFAR constants, computed instead of
/// hard-coded so that every data set gets its own).

#include <swarmsgd/errors.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../common/checks.hpp"
#include "image_dataset.hpp"

namespace swarmsgd::examples::resnet {

/// Mean and standard deviation of every channel (on the [0, 1] scale).
struct channel_normalization {
    std::vector<float> mean;  ///< per channel
    std::vector<float> std;   ///< per channel, > 0

    /// Normalized value of byte `b` of channel `c`.
    [[nodiscard]] float apply(int c, std::uint8_t b) const noexcept {
        const auto k = static_cast<std::size_t>(c);
        return (static_cast<float>(b) * (1.0F / 255.0F) - mean[k]) / std[k];
    }
};

/// Measures the per-channel mean and standard deviation of `set` (in double). A constant
/// channel gets std 1. Throws invalid_argument_error for an empty set.
[[nodiscard]] inline channel_normalization measure_normalization(const image_dataset& set) {
    swarmsgd::examples::require<invalid_argument_error>(
        set.count() > 0 && set.channels > 0, "measure_normalization: ", set.name, " is empty");
    const auto channels = static_cast<std::size_t>(set.channels);
    const std::size_t plane = set.image_bytes() / channels;
    std::vector<double> sum(channels, 0.0), sum_sq(channels, 0.0);
    for (std::size_t i = 0; i < set.count(); ++i) {
        const std::uint8_t* img = set.image(i);
        for (std::size_t c = 0; c < channels; ++c) {
            std::uint64_t s = 0, sq = 0;  // exact integer sums per image
            for (std::size_t p = 0; p < plane; ++p) {
                const std::uint64_t b = img[c * plane + p];
                s += b;
                sq += b * b;
            }
            sum[c] += static_cast<double>(s);
            sum_sq[c] += static_cast<double>(sq);
        }
    }
    channel_normalization out;
    const double n = static_cast<double>(set.count() * plane);
    for (std::size_t c = 0; c < channels; ++c) {
        const double mean = sum[c] / n / 255.0;
        const double var = std::max(sum_sq[c] / n / (255.0 * 255.0) - mean * mean, 0.0);
        out.mean.push_back(static_cast<float>(mean));
        out.std.push_back(var > 1e-12 ? static_cast<float>(std::sqrt(var)) : 1.0F);
    }
    return out;
}

}  // namespace swarmsgd::examples::resnet
