#pragma once
/// \file conv2d.hpp
/// 2-D convolution without bias (batch norm follows every convolution of the ResNet), square or
/// rectangular images, any kernel, stride and zero padding; used with 3x3 pad 1 and 1x1 pad 0,
/// stride 1 or 2. Lowered to GEMMs through im2col / col2im over groups of images small enough
/// that the im2col matrix stays in the L2 cache.
///
/// Shapes (CBHW layout, see common.hpp), B = batch, K = in_channels * kernel * kernel:
///   weight  w  : [out_channels][in_channels][kernel][kernel]   (PyTorch's order)
///   input   x  : [in_channels][B][in_h][in_w]
///   output  y  : [out_channels][B][out_h][out_w]
///   im2col  col: [K][images * out_h * out_w]   col[(c, kh, kw)][(b, oh, ow)] =
///                x[c][b][oh * stride + kh - pad][ow * stride + kw - pad]  (0 outside the image)
/// so that, per group of images, y = w * col with w viewed as an out_channels x K matrix.

#include "common.hpp"

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

namespace conv2d_detail {

/// ceil(a / b) for b > 0, any sign of a.
[[nodiscard]] constexpr int ceil_div(int a, int b) noexcept {
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

/// Calls `f(c, kw, b, ih, ow_lo, ow_hi, offset)` for every row segment of the im2col matrix
/// of a group of `images` images: one output row of image b (0-based in the group) for the tap
/// (c, kh, kw) reads input row ih (padding when ih < 0 or ih >= in_h); its columns ow in
/// [ow_lo, ow_hi) read inside the image, the others are padding. `offset`: where the segment
/// (out_w elements) starts in col.
template <class F>
void for_each_segment(const conv2d_shape& s, int images, F&& f) {
    const std::size_t n = static_cast<std::size_t>(images) * s.out_plane();
    std::size_t row = 0;
    for (int c = 0; c < s.in_channels; ++c) {
        for (int kh = 0; kh < s.kernel; ++kh) {
            for (int kw = 0; kw < s.kernel; ++kw, ++row) {
                const int ow_lo = std::clamp(ceil_div(s.pad - kw, s.stride), 0, s.out_w);
                const int ow_hi =
                    std::clamp(ceil_div(s.in_w + s.pad - kw, s.stride), ow_lo, s.out_w);
                std::size_t offset = row * n;
                for (int b = 0; b < images; ++b) {
                    for (int oh = 0; oh < s.out_h;
                         ++oh, offset += static_cast<std::size_t>(s.out_w)) {
                        f(c, kw, b, oh * s.stride + kh - s.pad, ow_lo, ow_hi, offset);
                    }
                }
            }
        }
    }
}

}  // namespace conv2d_detail

namespace conv2d_detail {

/// "Same" convolution with stride 1 (out = in): every im2col row of one image is the image
/// shifted by (kh - pad) rows and (kw - pad) columns, i.e. one contiguous copy of the plane
/// plus zeros where the tap falls into the padding. The fast path of im2col / col2im.
[[nodiscard]] inline bool is_shift(const conv2d_shape& s) noexcept {
    return s.stride == 1 && s.out_h == s.in_h && s.out_w == s.in_w;
}

/// One tap (c, kh, kw) of a shift convolution, for every image: col_plane[j] =
/// x_plane[j + shift] for j in [j0, j1) (the rows [oh_lo, oh_hi) that fall inside the image,
/// clipped to the plane), except the columns outside [ow_lo, ow_hi), which are padding, as are
/// the rows outside [oh_lo, oh_hi). `row` is the tap's row of the im2col matrix.
struct shift_tap {
    int c;
    std::size_t row;
    std::ptrdiff_t shift, j0, j1;
    int oh_lo, oh_hi, ow_lo, ow_hi;
    bool center;  ///< shift 0: reads the whole plane, no padding
};

/// Calls f(tap) for every tap of a shift convolution, channel by channel.
template <class F>
void for_each_shift(const conv2d_shape& s, F&& f) {
    const int h = s.in_h, w = s.in_w;
    const auto plane = static_cast<std::ptrdiff_t>(s.in_plane());
    std::size_t row = 0;
    for (int c = 0; c < s.in_channels; ++c) {
        for (int kh = 0; kh < s.kernel; ++kh) {
            for (int kw = 0; kw < s.kernel; ++kw, ++row) {
                shift_tap t{};
                t.c = c;
                t.row = row;
                const int dy = kh - s.pad, dx = kw - s.pad;
                t.oh_lo = std::clamp(-dy, 0, h);
                t.oh_hi = std::clamp(h - dy, t.oh_lo, h);
                t.ow_lo = std::clamp(-dx, 0, w);
                t.ow_hi = std::clamp(w - dx, t.ow_lo, w);
                t.shift = static_cast<std::ptrdiff_t>(dy) * w + dx;
                t.j0 = std::clamp<std::ptrdiff_t>(
                    std::max<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(t.oh_lo) * w, -t.shift), 0,
                    plane);
                t.j1 = std::clamp<std::ptrdiff_t>(
                    std::min<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(t.oh_hi) * w,
                                             plane - t.shift),
                    t.j0, plane);
                t.center = dy == 0 && dx == 0;
                f(t);
            }
        }
    }
}

/// Zeroes the padding columns of the valid rows of one plane of a shift tap (strided stores:
/// a handful per row, cheaper than a memset call each).
template <class T>
void zero_padding_columns(const shift_tap& t, std::ptrdiff_t w, T* plane) {
    for (std::ptrdiff_t k = 0; k < t.ow_lo; ++k)
        for (std::ptrdiff_t r = t.oh_lo; r < t.oh_hi; ++r) plane[r * w + k] = T(0);
    for (std::ptrdiff_t k = t.ow_hi; k < w; ++k)
        for (std::ptrdiff_t r = t.oh_lo; r < t.oh_hi; ++r) plane[r * w + k] = T(0);
}

}  // namespace conv2d_detail

/// im2col of images [b0, b0 + images) of a batch of `batch`: x [C_in][batch][in_h][in_w] ->
/// col [K][images * out_h * out_w].
template <class T>
void im2col(const conv2d_shape& s, int batch, const T* x, int b0, int images, T* col) {
    if (conv2d_detail::is_shift(s)) {
        const std::ptrdiff_t w = s.in_w, plane = static_cast<std::ptrdiff_t>(s.in_plane());
        const std::size_t n = static_cast<std::size_t>(images) * s.out_plane();
        conv2d_detail::for_each_shift(s, [&](const conv2d_detail::shift_tap& t) {
            for (int b = 0; b < images; ++b) {
                T* dst = col + t.row * n + static_cast<std::size_t>(b) * s.out_plane();
                const T* src = x + (static_cast<std::size_t>(t.c) * batch + b0 + b) * s.in_plane();
                std::fill(dst, dst + t.j0, T(0));
                if (t.j1 > t.j0)
                    std::copy(src + (t.j0 + t.shift), src + (t.j1 + t.shift), dst + t.j0);
                std::fill(dst + t.j1, dst + plane, T(0));
                conv2d_detail::zero_padding_columns(t, w, dst);
            }
        });
        return;
    }
    conv2d_detail::for_each_segment(
        s, images, [&](int c, int kw, int b, int ih, int ow_lo, int ow_hi, std::size_t offset) {
            T* dst = col + offset;
            if (ih < 0 || ih >= s.in_h) {
                std::fill(dst, dst + s.out_w, T(0));
                return;
            }
            const T* src = x + (static_cast<std::size_t>(c) * batch + b0 + b) * s.in_plane() +
                           static_cast<std::size_t>(ih) * s.in_w;
            for (int ow = 0; ow < ow_lo; ++ow) dst[ow] = T(0);
            for (int ow = ow_lo; ow < ow_hi; ++ow) dst[ow] = src[ow * s.stride + kw - s.pad];
            for (int ow = ow_hi; ow < s.out_w; ++ow) dst[ow] = T(0);
        });
}

/// col2im, the adjoint of im2col: adds col [K][images * out_h * out_w] into the images
/// [b0, b0 + images) of dx [C_in][batch][in_h][in_w], or writes them (overwrite = true: dx's
/// old values are ignored). col is scratch: entries that im2col reads from the padding may
/// be zeroed.
template <class T>
void col2im(const conv2d_shape& s, int batch, T* col, int b0, int images, T* dx,
            bool overwrite = false) {
    const auto dx_plane = [&](int c, int b) {
        return dx + (static_cast<std::size_t>(c) * batch + b0 + b) * s.in_plane();
    };
    if (conv2d_detail::is_shift(s)) {
        const std::ptrdiff_t w = s.in_w;
        const std::size_t n = static_cast<std::size_t>(images) * s.out_plane();
        const auto col_plane = [&](const conv2d_detail::shift_tap& t, int b) {
            return col + t.row * n + static_cast<std::size_t>(b) * s.out_plane();
        };
        if (overwrite) {  // the center tap covers every pixel: it writes, the others add
            conv2d_detail::for_each_shift(s, [&](const conv2d_detail::shift_tap& t) {
                if (!t.center) return;
                for (int b = 0; b < images; ++b)
                    std::copy(col_plane(t, b), col_plane(t, b) + s.in_plane(), dx_plane(t.c, b));
            });
        }
        conv2d_detail::for_each_shift(s, [&](const conv2d_detail::shift_tap& t) {
            if (overwrite && t.center) return;
            for (int b = 0; b < images; ++b) {
                T* src = col_plane(t, b);
                conv2d_detail::zero_padding_columns(t, w, src);  // dropped, not wrapped around
                if (t.j1 > t.j0) {
                    vector_map<T>(dx_plane(t.c, b) + t.j0 + t.shift, t.j1 - t.j0) +=
                        const_vector_map<T>(src + t.j0, t.j1 - t.j0);
                }
            }
        });
        return;
    }
    if (overwrite) {
        for (int c = 0; c < s.in_channels; ++c)
            std::fill(dx_plane(c, 0),
                      dx_plane(c, 0) + static_cast<std::size_t>(images) * s.in_plane(), T(0));
    }
    conv2d_detail::for_each_segment(
        s, images, [&](int c, int kw, int b, int ih, int ow_lo, int ow_hi, std::size_t offset) {
            if (ih < 0 || ih >= s.in_h) return;
            const T* src = col + offset;
            T* dst = dx_plane(c, b) + static_cast<std::size_t>(ih) * s.in_w;
            for (int ow = ow_lo; ow < ow_hi; ++ow) dst[ow * s.stride + kw - s.pad] += src[ow];
        });
}

/// Forward: y = conv(x, w).
///   w: [C_out][C_in][k][k], x: [C_in][B][in_h][in_w], y: [C_out][B][out_h][out_w].
template <class T>
void conv2d_forward(const conv2d_shape& s, int batch, const T* w, const T* x, T* y,
                    scratch<T>& ws) {
    const int group = s.group_images(batch, sizeof(T), ws.col_budget);
    const int groups = (batch + group - 1) / group;
    ws.reserve(ws.threads, s.col_size(batch, sizeof(T), ws.col_budget), 0);
    const int threads = ws.threads;
    const Eigen::Index k_rows = idx(s.col_rows());
    const const_row_map<T> W(w, s.out_channels, k_rows, Eigen::OuterStride<>(k_rows));
    SWARMSGD_RESNET_PARALLEL_FOR
    for (int g = 0; g < groups; ++g) {
        const int b0 = g * group;
        const int images = std::min(group, batch - b0);
        const Eigen::Index n = idx(static_cast<std::size_t>(images) * s.out_plane());
        row_map<T> Y(y + static_cast<std::size_t>(b0) * s.out_plane(), s.out_channels, n,
                     Eigen::OuterStride<>(idx(static_cast<std::size_t>(batch) * s.out_plane())));
        if (s.pointwise()) {
            const const_row_map<T> X(
                x + static_cast<std::size_t>(b0) * s.in_plane(), s.in_channels, n,
                Eigen::OuterStride<>(idx(static_cast<std::size_t>(batch) * s.in_plane())));
            Y.noalias() = W * X;
        } else {
            T* col = ws.col[static_cast<std::size_t>(thread_index())].data();
            im2col(s, batch, x, b0, images, col);
            Y.noalias() = W * const_row_map<T>(col, k_rows, n, Eigen::OuterStride<>(n));
        }
    }
}

/// Backward: dw = d(loss)/dw (overwritten, summed over the batch) and, when dx is not null,
/// d(loss)/dx written into dx (accumulate = false) or added to it (accumulate = true, for a
/// tensor that also feeds a shortcut).
///   x: [C_in][B][in_h][in_w] (the forward input), dy: [C_out][B][out_h][out_w],
///   dw: [C_out][C_in][k][k], dx: [C_in][B][in_h][in_w].
template <class T>
void conv2d_backward(const conv2d_shape& s, int batch, const T* w, const T* x, const T* dy, T* dw,
                     T* dx, bool accumulate, scratch<T>& ws) {
    const int group = s.group_images(batch, sizeof(T), ws.col_budget);
    const int groups = (batch + group - 1) / group;
    ws.reserve(ws.threads, s.col_size(batch, sizeof(T), ws.col_budget), s.weight_count());
    const int threads = ws.threads;
    const Eigen::Index k_rows = idx(s.col_rows());
    const Eigen::Index cout = s.out_channels;
    const const_row_map<T> W(w, cout, k_rows, Eigen::OuterStride<>(k_rows));
    const Eigen::OuterStride<> in_stride(idx(static_cast<std::size_t>(batch) * s.in_plane()));
    const Eigen::OuterStride<> out_stride(idx(static_cast<std::size_t>(batch) * s.out_plane()));
    using col_major = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
    SWARMSGD_RESNET_PARALLEL {
        // Each thread sums its groups into its own C_out x K partial, summed below. Column-major
        // on purpose: Eigen then packs the im2col matrix without transposing it (faster).
        const auto tid = static_cast<std::size_t>(thread_index());
        Eigen::Map<col_major> dW(ws.wgrad[tid].data(), cout, k_rows);
        dW.setZero();
        SWARMSGD_RESNET_FOR
        for (int g = 0; g < groups; ++g) {
            const int b0 = g * group;
            const int images = std::min(group, batch - b0);
            const Eigen::Index n = idx(static_cast<std::size_t>(images) * s.out_plane());
            const const_row_map<T> dY(dy + static_cast<std::size_t>(b0) * s.out_plane(), cout, n,
                                      out_stride);
            T* dx_group =
                dx == nullptr ? nullptr : dx + static_cast<std::size_t>(b0) * s.in_plane();
            if (s.pointwise()) {
                dW.noalias() +=
                    dY * const_row_map<T>(x + static_cast<std::size_t>(b0) * s.in_plane(),
                                          s.in_channels, n, in_stride)
                             .transpose();
                if (dx_group != nullptr) {
                    row_map<T> dX(dx_group, s.in_channels, n, in_stride);
                    if (accumulate) {
                        dX.noalias() += W.transpose() * dY;
                    } else {
                        dX.noalias() = W.transpose() * dY;
                    }
                }
                continue;
            }
            T* col = ws.col[tid].data();
            row_map<T> C(col, k_rows, n, Eigen::OuterStride<>(n));
            im2col(s, batch, x, b0, images, col);
            dW.noalias() += dY * C.transpose();
            if (dx_group != nullptr) {
                C.noalias() = W.transpose() * dY;  // d(col), then scattered back to the images
                col2im(s, batch, col, b0, images, dx, !accumulate);
            }
        }
    }
    Eigen::Map<row_matrix<T>> total(dw, cout, k_rows);
    total = Eigen::Map<const col_major>(ws.wgrad[0].data(), cout, k_rows);
    for (int t = 1; t < threads; ++t)
        total +=
            Eigen::Map<const col_major>(ws.wgrad[static_cast<std::size_t>(t)].data(), cout, k_rows);
}

}  // namespace swarmsgd::examples::resnet::nn
