#pragma once
/// \file row_lowering.hpp
/// Row lowering of a stride-1 "same" convolution (out = in, kernel k = 2 pad + 1): only the
/// kernel's columns are unrolled, one image at a time,
///   xr [(c, kw)][(r, col)],  r in [0, in_h + 2 pad):  xr = x[c][b][r - pad][col + kw - pad]
///   (0 outside the image), a (k * C_in) x ((in_h + 2 pad) * in_w) row-major matrix,
/// and the kernel's rows become k GEMMs over views of xr shifted down by kh image rows:
///   y[b] = sum over kh of w_kh * xr[:, kh * in_w : kh * in_w + in_h * in_w],
///   w_kh [C_out][(c, kw)] = w[o][c][kh][kw]   (rearranged_weights)
/// The view of each kh is a plain strided matrix because xr has explicit zero rows above and
/// below the image and explicit zero columns at its left and right edges. For 3x3 kernels this
/// copies a third of what im2col copies, for GEMMs of the same total size.

#include "common.hpp"
#include "conv2d_shape.hpp"

#include <algorithm>
#include <cstddef>

namespace swarmsgd::examples::resnet::nn {

/// Columns of xr: (in_h + 2 pad) * in_w.
[[nodiscard]] inline std::size_t row_lowered_cols(const conv2d_shape& s) noexcept {
    return static_cast<std::size_t>(s.in_h + 2 * s.pad) * static_cast<std::size_t>(s.in_w);
}

/// Elements of xr for one image: k * C_in * row_lowered_cols.
[[nodiscard]] inline std::size_t row_lowered_size(const conv2d_shape& s) noexcept {
    return static_cast<std::size_t>(s.kernel) * static_cast<std::size_t>(s.in_channels) *
           row_lowered_cols(s);
}

/// w [C_out][C_in][k][k] -> wr [k][C_out][C_in * k] with wr[kh][o][c * k + kw] = w[o][c][kh][kw].
template <class T>
void rearrange_weights(const conv2d_shape& s, const T* w, T* wr) {
    const int k = s.kernel;
    for (int o = 0; o < s.out_channels; ++o)
        for (int c = 0; c < s.in_channels; ++c)
            for (int kh = 0; kh < k; ++kh)
                for (int kw = 0; kw < k; ++kw)
                    wr[((static_cast<std::size_t>(kh) * s.out_channels + o) * s.in_channels + c) *
                           k +
                       kw] =
                        w[((static_cast<std::size_t>(o) * s.in_channels + c) * k + kh) * k + kw];
}

/// The convolution whose forward is the input gradient of `s`: d(loss)/dx = conv(dy, w') with
/// C_in and C_out swapped and the kernel flipped, w'[c][o][kh][kw] = w[o][c][k-1-kh][k-1-kw]
/// (a stride-1 "same" convolution is its own shape's transpose up to the channel swap).
[[nodiscard]] inline conv2d_shape transposed(const conv2d_shape& s) noexcept {
    conv2d_shape t = s;
    t.in_channels = s.out_channels;
    t.out_channels = s.in_channels;
    return t;
}

/// w [C_out][C_in][k][k] -> wr of transposed(s): wr[kh][c][o * k + kw] = w[o][c][k-1-kh][k-1-kw].
template <class T>
void rearrange_weights_transposed(const conv2d_shape& s, const T* w, T* wr) {
    const int k = s.kernel;
    for (int o = 0; o < s.out_channels; ++o)
        for (int c = 0; c < s.in_channels; ++c)
            for (int kh = 0; kh < k; ++kh)
                for (int kw = 0; kw < k; ++kw)
                    wr[((static_cast<std::size_t>(k - 1 - kh) * s.in_channels + c) *
                            s.out_channels +
                        o) *
                           k +
                       (k - 1 - kw)] =
                        w[((static_cast<std::size_t>(o) * s.in_channels + c) * k + kh) * k + kw];
}

namespace row_lowering_detail {

/// One kernel column kw: xr row (c, kw) holds the plane shifted left by dx = kw - pad; its
/// columns outside [ow_lo, ow_hi) are padding.
struct column_tap {
    std::ptrdiff_t dx, j0, j1;  ///< xr_plane[j] = x_plane[j + dx] for j in [j0, j1)
    std::ptrdiff_t ow_lo, ow_hi;
};

[[nodiscard]] inline column_tap tap(const conv2d_shape& s, int kw) noexcept {
    const std::ptrdiff_t w = s.in_w, plane = static_cast<std::ptrdiff_t>(s.in_plane());
    column_tap t{};
    t.dx = kw - s.pad;
    t.j0 = std::clamp<std::ptrdiff_t>(-t.dx, 0, plane);
    t.j1 = std::clamp<std::ptrdiff_t>(plane - t.dx, t.j0, plane);
    t.ow_lo = std::clamp<std::ptrdiff_t>(-t.dx, 0, w);
    t.ow_hi = std::clamp<std::ptrdiff_t>(w - t.dx, t.ow_lo, w);
    return t;
}

/// Zeroes the padding columns of an image-sized plane (strided stores, a few per row).
template <class T>
void zero_padding_columns(const conv2d_shape& s, const column_tap& t, T* plane) {
    const std::ptrdiff_t w = s.in_w;
    for (std::ptrdiff_t k = 0; k < t.ow_lo; ++k)
        for (std::ptrdiff_t r = 0; r < s.in_h; ++r) plane[r * w + k] = T(0);
    for (std::ptrdiff_t k = t.ow_hi; k < w; ++k)
        for (std::ptrdiff_t r = 0; r < s.in_h; ++r) plane[r * w + k] = T(0);
}

}  // namespace row_lowering_detail

/// xr of image b of x [C_in][batch][in_h][in_w].
template <class T>
void lower_rows(const conv2d_shape& s, int batch, const T* x, int b, T* xr) {
    const std::size_t cols = row_lowered_cols(s), plane = s.in_plane();
    const std::size_t top = static_cast<std::size_t>(s.pad) * static_cast<std::size_t>(s.in_w);
    for (int c = 0; c < s.in_channels; ++c) {
        const T* src = x + (static_cast<std::size_t>(c) * batch + b) * plane;
        for (int kw = 0; kw < s.kernel; ++kw) {
            const auto t = row_lowering_detail::tap(s, kw);
            T* dst = xr + (static_cast<std::size_t>(c) * s.kernel + kw) * cols;
            vector_map<T>(dst, idx(top + t.j0)).setZero();  // zero rows above, first padding
            vector_map<T>(dst + top + t.j0, t.j1 - t.j0) =
                const_vector_map<T>(src + t.j0 + t.dx, t.j1 - t.j0);
            vector_map<T>(dst + top + t.j1, idx(cols - top - static_cast<std::size_t>(t.j1)))
                .setZero();  // last padding, zero rows below
            row_lowering_detail::zero_padding_columns(s, t, dst + top);
        }
    }
}

/// Forward of image b: y[b] = sum over kh of wr[kh] * (xr shifted by kh rows), written, or
/// added to y[b] when accumulate.
///   wr from rearrange_weights, xr from lower_rows, y: [C_out][batch][in_h][in_w].
template <class T>
void row_lowered_forward(const conv2d_shape& s, int batch, const T* wr, const T* xr, int b, T* y,
                         bool accumulate = false) {
    const Eigen::Index ck = idx(static_cast<std::size_t>(s.in_channels) * s.kernel);
    const Eigen::Index n = idx(s.out_plane());
    const Eigen::Index cols = idx(row_lowered_cols(s));
    row_map<T> Y(y + static_cast<std::size_t>(b) * s.out_plane(), s.out_channels, n,
                 Eigen::OuterStride<>(idx(static_cast<std::size_t>(batch) * s.out_plane())));
    for (int kh = 0; kh < s.kernel; ++kh) {
        const const_row_map<T> Wk(wr + static_cast<std::size_t>(kh) * s.out_channels * ck,
                                  s.out_channels, ck, Eigen::OuterStride<>(ck));
        const const_row_map<T> X(xr + static_cast<std::size_t>(kh) * s.in_w, ck, n,
                                 Eigen::OuterStride<>(cols));
        if (kh == 0 && !accumulate) {
            Y.noalias() = Wk * X;
        } else {
            Y.noalias() += Wk * X;
        }
    }
}

/// Weight gradient of image b: adds d(loss)/d(wr) into dwr ([k] column-major C_out x (C_in k)
/// matrices, the order of rearrange_weights).  xr: lower_rows of image b of the forward input,
/// dy: [C_out][batch][in_h][in_w].
template <class T>
void row_lowered_weight_gradient(const conv2d_shape& s, int batch, const T* xr, const T* dy, int b,
                                 T* dwr) {
    using col_major = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
    const Eigen::Index ck = idx(static_cast<std::size_t>(s.in_channels) * s.kernel);
    const Eigen::Index n = idx(s.out_plane());
    const Eigen::Index cols = idx(row_lowered_cols(s));
    const std::size_t wk_size = static_cast<std::size_t>(s.out_channels) * ck;
    const const_row_map<T> dY(
        dy + static_cast<std::size_t>(b) * s.out_plane(), s.out_channels, n,
        Eigen::OuterStride<>(idx(static_cast<std::size_t>(batch) * s.out_plane())));
    for (int kh = 0; kh < s.kernel; ++kh) {
        Eigen::Map<col_major>(dwr + kh * wk_size, s.out_channels, ck).noalias() +=
            dY * const_row_map<T>(xr + static_cast<std::size_t>(kh) * s.in_w, ck, n,
                                  Eigen::OuterStride<>(cols))
                     .transpose();
    }
}

}  // namespace swarmsgd::examples::resnet::nn
