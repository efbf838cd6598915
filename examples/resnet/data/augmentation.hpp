#pragma once
/// \file augmentation.hpp
/// CIFAR-style data augmentation, as torchvision's RandomCrop(size, padding=4) followed by
/// RandomHorizontalFlip(): the image is padded with `pad` zero bytes on every side (black,
/// before normalization, as torchvision pads the raw image), a window of the original size is
/// cropped at a uniformly random offset, and the result is mirrored left-right with
/// probability 1/2. The draws come from the caller's swarmsgd::rng, so a seed fixes them.

#include <swarmsgd/random.hpp>

#include <cstddef>
#include <cstdint>

namespace swarmsgd::examples::resnet {

/// One drawn transformation (the exact rule is in apply_crop_flip()).
struct crop_flip {
    int dy = 0;         ///< vertical shift in [-pad, pad]
    int dx = 0;         ///< horizontal shift in [-pad, pad]
    bool flip = false;  ///< mirror left-right after the crop
};

/// Draws a crop offset in [-pad, pad]^2 (uniform, 2 pad + 1 values each) and, when `flip`
/// is allowed, a fair coin for the mirror. pad = 0 gives no shift.
[[nodiscard]] inline crop_flip draw_crop_flip(rng& random, int pad, bool flip) {
    crop_flip t;
    const auto span = static_cast<std::uint64_t>(2 * pad + 1);
    t.dy = static_cast<int>(random.uniform(span)) - pad;
    t.dx = static_cast<int>(random.uniform(span)) - pad;
    t.flip = flip && (random() >> 63) != 0;
    return t;
}

/// Applies `t` to a CHW image of `channels` x `height` x `width` bytes: with
///   xs = flip ? width - 1 - x : x,
///   out(c, y, x) = in(c, y + dy, xs + dx)   if that pixel is inside the image, else 0,
/// i.e. a crop at offset (pad + dy, pad + dx) of the zero-padded image, then the mirror.
/// `out` must not overlap `in`.
inline void apply_crop_flip(const std::uint8_t* in, int channels, int height, int width,
                            const crop_flip& t, std::uint8_t* out) {
    for (int c = 0; c < channels; ++c) {
        const std::uint8_t* src = in + static_cast<std::ptrdiff_t>(c) * height * width;
        std::uint8_t* dst = out + static_cast<std::ptrdiff_t>(c) * height * width;
        for (int y = 0; y < height; ++y) {
            const int sy = y + t.dy;
            std::uint8_t* row = dst + static_cast<std::ptrdiff_t>(y) * width;
            if (sy < 0 || sy >= height) {
                for (int x = 0; x < width; ++x) row[x] = 0;
                continue;
            }
            const std::uint8_t* src_row = src + static_cast<std::ptrdiff_t>(sy) * width;
            for (int x = 0; x < width; ++x) {
                const int sx = (t.flip ? width - 1 - x : x) + t.dx;
                row[x] = (sx >= 0 && sx < width) ? src_row[sx] : std::uint8_t{0};
            }
        }
    }
}

}  // namespace swarmsgd::examples::resnet
