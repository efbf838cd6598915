#pragma once
/// \file image_dataset.hpp
/// A labelled image data set kept as raw bytes (CHW per image), the form the CIFAR and
/// Fashion-MNIST files have: 8x smaller than floats (CIFAR-10's 50000 training images take
/// 154 MB instead of 614 MB), converted to normalized floats one mini-batch at a time.

#include <swarmsgd/errors.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../../common/checks.hpp"
#include "../../fashion_mnist/idx_reader.hpp"

namespace swarmsgd::examples::resnet {

/// Images of `channels` x `height` x `width` bytes (0..255) with one class label each.
struct image_dataset {
    std::string name;                  ///< "CIFAR-10 train", ... (for messages)
    int channels = 0;                  ///< 3 (CIFAR) or 1 (Fashion-MNIST)
    int height = 0;                    ///< rows per image
    int width = 0;                     ///< columns per image
    int classes = 0;                   ///< labels are in [0, classes)
    std::vector<std::uint8_t> pixels;  ///< count() images, each channels x height x width
    std::vector<std::int32_t> labels;  ///< count() labels

    /// Number of images.
    [[nodiscard]] std::size_t count() const noexcept { return labels.size(); }
    /// Bytes (= pixels over all channels) per image.
    [[nodiscard]] std::size_t image_bytes() const noexcept {
        return static_cast<std::size_t>(channels) * static_cast<std::size_t>(height) *
               static_cast<std::size_t>(width);
    }
    /// The image_bytes() bytes of image i, channel-major (CHW).
    [[nodiscard]] const std::uint8_t* image(std::size_t i) const noexcept {
        return pixels.data() + i * image_bytes();
    }
    /// Appends image `i` of `other` (same shape).
    void push_back_from(const image_dataset& other, std::size_t i) {
        pixels.insert(pixels.end(), other.image(i), other.image(i) + other.image_bytes());
        labels.push_back(other.labels[i]);
    }
};

/// The images `indices` of `set`, in that order, as a new set (same name, shape and classes).
/// Throws invalid_argument_error naming an index that is out of range.
[[nodiscard]] inline image_dataset select(const image_dataset& set,
                                          const std::vector<std::size_t>& indices) {
    image_dataset out;
    out.name = set.name;
    out.channels = set.channels;
    out.height = set.height;
    out.width = set.width;
    out.classes = set.classes;
    out.pixels.reserve(indices.size() * set.image_bytes());
    out.labels.reserve(indices.size());
    for (std::size_t i : indices) {
        swarmsgd::examples::require<invalid_argument_error>(i < set.count(), "select: index ", i,
                                                            " is out of range for ", set.name, " (",
                                                            set.count(), " images)");
        out.push_back_from(set, i);
    }
    return out;
}

/// `limit` images of `set` drawn at random (a permutation fixed by `seed`), or the whole set
/// when limit is 0 or >= its size. The choice does not depend on anything but (count, seed),
/// so runs with the same seed train on the same subset.
[[nodiscard]] inline image_dataset random_subset(const image_dataset& set, std::size_t limit,
                                                 std::uint64_t seed) {
    if (limit == 0 || limit >= set.count()) return set;
    std::vector<std::size_t> order = shard_indices(set.count(), 0, 1, seed);
    order.resize(limit);
    return select(set, order);
}

/// The first `limit` images of `set` (all when limit is 0 or >= its size).
[[nodiscard]] inline image_dataset first_images(const image_dataset& set, std::size_t limit) {
    if (limit == 0 || limit >= set.count()) return set;
    std::vector<std::size_t> order(limit);
    for (std::size_t i = 0; i < limit; ++i) order[i] = i;
    return select(set, order);
}

/// Node `node`'s shard of `set` split among `n` nodes: disjoint, together the whole set, sizes
/// differing by at most one (the permutation of shard_indices() in idx_reader.hpp, fixed by
/// `seed`). Throws invalid_argument_error unless 0 < n <= set.count() and node < n.
[[nodiscard]] inline image_dataset node_shard(const image_dataset& set, std::size_t node,
                                              std::size_t n, std::uint64_t seed) {
    return select(set, shard_indices(set.count(), node, n, seed));
}

}  // namespace swarmsgd::examples::resnet
