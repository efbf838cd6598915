#pragma once
/// \file fashion_mnist.hpp
/// Fashion-MNIST as an image_dataset (1 x 28 x 28, 10 classes), read by the Fashion-MNIST
/// demo's IDX reader (examples/fashion_mnist/idx_reader.hpp, gzip or plain files; Debian's
/// dataset-fashion-mnist package installs them in /usr/share/datasets/fashion-mnist).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>

#include "../../fashion_mnist/idx_reader.hpp"
#include "image_dataset.hpp"

namespace swarmsgd::examples::resnet {

/// Loads the Fashion-MNIST training set (`train`, 60000 images) or test set (10000) from
/// `dir`. Throws data_error / size_mismatch_error naming the file, as load_fashion_mnist does.
[[nodiscard]] inline image_dataset load_fashion_mnist_dataset(const std::filesystem::path& dir,
                                                              bool train) {
    const image_set raw = load_fashion_mnist(dir, train);
    image_dataset set;
    set.name = train ? "Fashion-MNIST train" : "Fashion-MNIST test";
    set.channels = 1;
    set.height = static_cast<int>(raw.rows);
    set.width = static_cast<int>(raw.cols);
    set.classes = 10;
    // The reader scaled the bytes to [0, 1] (k / 255); scaling back recovers them exactly.
    set.pixels.resize(raw.pixels.size());
    for (std::size_t k = 0; k < raw.pixels.size(); ++k)
        set.pixels[k] = static_cast<std::uint8_t>(std::lround(raw.pixels[k] * 255.0F));
    set.labels.assign(raw.labels.begin(), raw.labels.end());
    return set;
}

}  // namespace swarmsgd::examples::resnet
