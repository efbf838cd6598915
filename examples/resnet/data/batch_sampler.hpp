#pragma once
/// \file batch_sampler.hpp
/// Mini-batches of one node's shard as the network wants them: float NCHW, normalized per
/// channel, optionally augmented (random crop with zero padding + horizontal flip).

#include <swarmsgd/errors.hpp>
#include <swarmsgd/random.hpp>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "../../common/checks.hpp"
#include "../../common/shuffled_passes.hpp"
#include "augmentation.hpp"
#include "image_dataset.hpp"
#include "normalization.hpp"

namespace swarmsgd::examples::resnet {

/// Writes image `i` of `set`, normalized with `norm`, as channels x height x width floats.
inline void normalize_image(const image_dataset& set, const std::uint8_t* image,
                            const channel_normalization& norm, float* out) {
    const std::size_t plane =
        static_cast<std::size_t>(set.height) * static_cast<std::size_t>(set.width);
    for (int c = 0; c < set.channels; ++c) {
        const float scale = 1.0F / (255.0F * norm.std[static_cast<std::size_t>(c)]);
        const float shift =
            norm.mean[static_cast<std::size_t>(c)] / norm.std[static_cast<std::size_t>(c)];
        const std::uint8_t* src = image + static_cast<std::size_t>(c) * plane;
        float* dst = out + static_cast<std::size_t>(c) * plane;
        for (std::size_t p = 0; p < plane; ++p) dst[p] = static_cast<float>(src[p]) * scale - shift;
    }
}

/// Draws mini-batches from one node's shard: each pass visits the shard in a fresh random
/// order (sampling without replacement within a pass, as a shuffling data loader does), a
/// batch that reaches the end of a pass continues with the next pass. The random order and
/// the augmentation come from the rng the caller passes (the node's data stream), so a seed
/// fixes every batch.
class batch_sampler {
public:
    /// Samples from `shard` (not empty), normalizing with `norm`; with `augment`, every image
    /// gets a random crop_flip with padding `pad`. Throws invalid_argument_error for an empty
    /// shard or a normalization with the wrong number of channels.
    batch_sampler(image_dataset shard, channel_normalization norm, bool augment, int pad = 4)
        : shard_(std::move(shard)),
          norm_(std::move(norm)),
          augment_(augment),
          pad_(pad),
          order_(shard_.count()),
          scratch_(shard_.image_bytes()) {
        swarmsgd::examples::require<invalid_argument_error>(
            shard_.count() > 0, "batch_sampler: ", shard_.name, " shard is empty");
        swarmsgd::examples::require<invalid_argument_error>(
            norm_.mean.size() == static_cast<std::size_t>(shard_.channels) &&
                norm_.std.size() == norm_.mean.size(),
            "batch_sampler: normalization for ", norm_.mean.size(), " channels, images have ",
            shard_.channels);
    }

    /// Fills `images` (batch x channels x height x width floats) and `labels` (batch).
    void next(rng& random, int batch, float* images, std::int32_t* labels) {
        const std::size_t stride = shard_.image_bytes();
        for (int b = 0; b < batch; ++b) {
            const std::size_t i = next_index(random);
            const std::uint8_t* image = shard_.image(i);
            if (augment_) {
                apply_crop_flip(image, shard_.channels, shard_.height, shard_.width,
                                draw_crop_flip(random, pad_, true), scratch_.data());
                image = scratch_.data();
            }
            normalize_image(shard_, image, norm_, images + static_cast<std::size_t>(b) * stride);
            labels[b] = shard_.labels[i];
        }
    }

    /// The shard index of the next image next() would use, drawn the same way (a fresh random
    /// order at the start of every pass). Without augmentation, a copy of the sampler that
    /// only draws indices with the same rng stream reproduces next()'s order exactly.
    std::size_t next_index(rng& random) { return order_.next(random); }

    /// The shard.
    [[nodiscard]] const image_dataset& data() const noexcept { return shard_; }

private:
    image_dataset shard_;
    channel_normalization norm_;
    bool augment_;
    int pad_;
    shuffled_passes order_;
    std::vector<std::uint8_t> scratch_;
};

}  // namespace swarmsgd::examples::resnet
