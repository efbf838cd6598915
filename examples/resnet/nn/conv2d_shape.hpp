#pragma once
/// \file conv2d_shape.hpp
/// Geometry of a 2-D convolution (see conv2d.hpp), shared by the lowerings (im2col.hpp,
/// row_lowering.hpp) and the layer.

#include <algorithm>
#include <cstddef>

namespace swarmsgd::examples::resnet::nn {

/// Geometry of one convolution layer.
struct conv2d_shape {
    int in_channels = 0;   ///< C_in
    int out_channels = 0;  ///< C_out
    int kernel = 1;        ///< kernel height = width
    int stride = 1;        ///< stride in both directions
    int pad = 0;           ///< zero padding on every side
    int in_h = 0;          ///< input height
    int in_w = 0;          ///< input width
    int out_h = 0;         ///< (in_h + 2 pad - kernel) / stride + 1
    int out_w = 0;         ///< (in_w + 2 pad - kernel) / stride + 1

    /// A convolution with padding kernel / 2 ("same" for stride 1, like ResNet's).
    [[nodiscard]] static conv2d_shape make(int in_channels, int out_channels, int kernel,
                                           int stride, int in_h, int in_w) noexcept {
        conv2d_shape s;
        s.in_channels = in_channels;
        s.out_channels = out_channels;
        s.kernel = kernel;
        s.stride = stride;
        s.pad = kernel / 2;
        s.in_h = in_h;
        s.in_w = in_w;
        s.out_h = (in_h + 2 * s.pad - kernel) / stride + 1;
        s.out_w = (in_w + 2 * s.pad - kernel) / stride + 1;
        return s;
    }

    /// Elements of the weight tensor.
    [[nodiscard]] std::size_t weight_count() const noexcept {
        return static_cast<std::size_t>(out_channels) * col_rows();
    }
    /// K = in_channels * kernel * kernel: rows of the im2col matrix, columns of w.
    [[nodiscard]] std::size_t col_rows() const noexcept {
        return static_cast<std::size_t>(in_channels) * static_cast<std::size_t>(kernel * kernel);
    }
    /// Pixels of one input channel of one image.
    [[nodiscard]] std::size_t in_plane() const noexcept {
        return static_cast<std::size_t>(in_h) * static_cast<std::size_t>(in_w);
    }
    /// Pixels of one output channel of one image.
    [[nodiscard]] std::size_t out_plane() const noexcept {
        return static_cast<std::size_t>(out_h) * static_cast<std::size_t>(out_w);
    }
    /// 1x1, stride 1, no padding: the input is its own im2col matrix.
    [[nodiscard]] bool pointwise() const noexcept { return kernel == 1 && stride == 1 && pad == 0; }
    /// Images per im2col group: as many as keep the im2col matrix within `budget_bytes`
    /// (at least 1, at most `batch`).
    [[nodiscard]] int group_images(int batch, std::size_t element_bytes,
                                   std::size_t budget_bytes) const noexcept {
        const std::size_t per_image = col_rows() * out_plane() * element_bytes;
        const std::size_t fit = per_image == 0 ? 1 : budget_bytes / per_image;
        return static_cast<int>(std::clamp<std::size_t>(fit, 1, static_cast<std::size_t>(batch)));
    }
    /// Elements of the im2col matrix of one group (see group_images).
    [[nodiscard]] std::size_t col_size(int batch, std::size_t element_bytes,
                                       std::size_t budget_bytes) const noexcept {
        return pointwise()
                   ? 0
                   : col_rows() * out_plane() *
                         static_cast<std::size_t>(group_images(batch, element_bytes, budget_bytes));
    }
};

}  // namespace swarmsgd::examples::resnet::nn
