#pragma once
/// \file row_lowering.hpp
/// Row lowering of a convolution with kernel k > 1: only the kernel's COLUMNS are unrolled,
/// one image at a time, and the kernel's rows become k GEMMs over shifted views.
///
///   xr [(c, kw)][(p, q, ow)],  p in [0, stride), q in [0, Q),  Q = (k - 1) / stride + out_h:
///       xr = x[c][b][stride * q + p - pad][stride * ow + kw - pad]   (0 outside the image)
///   a (C_in k) x (stride * Q * out_w) row-major matrix: for each input row phase p, the rows
///   stride * q + p - pad of the image, column-subsampled for kw. The output row oh of kernel
///   row kh reads input row stride * oh + kh - pad = stride * (oh + kh / stride) + kh % stride
///   - pad, so for each kh the taps of all the outputs are one plain strided view of xr:
///       y[b] = sum over kh of w_kh * xr[:, view(kh) : view(kh) + out_h * out_w],
///       view(kh) = (kh % stride * Q + kh / stride) * out_w,
///       w_kh [C_out][(c, kw)] = w[o][c][kh][kw]   (rearrange_weights).
/// With stride 1 and "same" padding, xr is the image with zero rows above and below, shifted
/// by kw columns (one contiguous copy per row of xr). For 3x3 kernels this copies a third of
/// what im2col copies, for GEMMs of the same total size.

#include "common.hpp"
#include "conv2d_shape.hpp"
#include "gemm.hpp"

#include <algorithm>
#include <array>
#include <cstddef>

namespace swarmsgd::examples::resnet::nn {

/// Q: rows of xr per input-row phase.
[[nodiscard]] inline std::size_t row_lowered_phase_rows(const conv2d_shape& s) noexcept {
    return static_cast<std::size_t>((s.kernel - 1) / s.stride + s.out_h);
}

/// Columns of xr: stride * Q * out_w.
[[nodiscard]] inline std::size_t row_lowered_cols(const conv2d_shape& s) noexcept {
    return static_cast<std::size_t>(s.stride) * row_lowered_phase_rows(s) *
           static_cast<std::size_t>(s.out_w);
}

/// Elements of xr for one image: k * C_in * row_lowered_cols.
[[nodiscard]] inline std::size_t row_lowered_size(const conv2d_shape& s) noexcept {
    return static_cast<std::size_t>(s.kernel) * static_cast<std::size_t>(s.in_channels) *
           row_lowered_cols(s);
}

/// Where the view of kernel row kh starts in each row of xr.
[[nodiscard]] inline std::size_t row_view(const conv2d_shape& s, int kh) noexcept {
    return (static_cast<std::size_t>(kh % s.stride) * row_lowered_phase_rows(s) +
            static_cast<std::size_t>(kh / s.stride)) *
           static_cast<std::size_t>(s.out_w);
}

/// Stride 1, "same" padding: the input gradient is the forward of transposed(s), and xr rows
/// are plain shifted copies of the image.
[[nodiscard]] inline bool is_same_stride1(const conv2d_shape& s) noexcept {
    return s.stride == 1 && s.out_h == s.in_h && s.out_w == s.in_w;
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

/// The convolution whose forward is the input gradient of a stride-1 "same" `s`:
/// d(loss)/dx = conv(dy, w') with C_in and C_out swapped and the kernel flipped,
/// w'[c][o][kh][kw] = w[o][c][k-1-kh][k-1-kw].
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

/// Kernel column kw: the output columns [ow_lo, ow_hi) read inside the image, at input column
/// stride * ow + dx; the others are padding.
struct column_tap {
    int dx, ow_lo, ow_hi;
};

[[nodiscard]] inline column_tap tap(const conv2d_shape& s, int kw) noexcept {
    const auto ceil_div = [](int a, int b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); };
    column_tap t{};
    t.dx = kw - s.pad;
    t.ow_lo = std::clamp(ceil_div(-t.dx, s.stride), 0, s.out_w);
    t.ow_hi = std::clamp(ceil_div(s.in_w - t.dx, s.stride), t.ow_lo, s.out_w);
    return t;
}

/// Calls f(row of xr, tap, q-row start in that row, input row ih or -1) for every out_w-long
/// segment of xr (general strides; the stride-1 "same" case has a faster path).
template <class F>
void for_each_row_segment(const conv2d_shape& s, F&& f) {
    const std::size_t q_rows = row_lowered_phase_rows(s);
    for (int c = 0; c < s.in_channels; ++c) {
        for (int kw = 0; kw < s.kernel; ++kw) {
            const auto t = tap(s, kw);
            const std::size_t row = static_cast<std::size_t>(c) * s.kernel + kw;
            for (int p = 0; p < s.stride; ++p) {
                for (std::size_t q = 0; q < q_rows; ++q) {
                    const int ih = s.stride * static_cast<int>(q) + p - s.pad;
                    f(c, row, t, (static_cast<std::size_t>(p) * q_rows + q) * s.out_w,
                      ih >= 0 && ih < s.in_h ? ih : -1);
                }
            }
        }
    }
}

}  // namespace row_lowering_detail

/// xr of image b of x [C_in][batch][in_h][in_w].
template <class T>
void lower_rows(const conv2d_shape& s, int batch, const T* x, int b, T* xr) {
    const std::size_t cols = row_lowered_cols(s), plane = s.in_plane();
    if (is_same_stride1(s)) {  // xr row (c, kw) = zero rows, the plane shifted by dx, zero rows
        const std::size_t top = static_cast<std::size_t>(s.pad) * static_cast<std::size_t>(s.in_w);
        const auto whole = static_cast<std::ptrdiff_t>(plane);
        for (int c = 0; c < s.in_channels; ++c) {
            const T* src = x + (static_cast<std::size_t>(c) * batch + b) * plane;
            for (int kw = 0; kw < s.kernel; ++kw) {
                const auto t = row_lowering_detail::tap(s, kw);
                // dst[j] = src[j + dx] for j in [j0, j1): the whole plane but its ends
                const std::ptrdiff_t j0 = std::clamp<std::ptrdiff_t>(-t.dx, 0, whole);
                const std::ptrdiff_t j1 = std::clamp<std::ptrdiff_t>(whole - t.dx, j0, whole);
                T* dst = xr + (static_cast<std::size_t>(c) * s.kernel + kw) * cols;
                vector_map<T>(dst, idx(top) + j0).setZero();
                vector_map<T>(dst + top + j0, j1 - j0) =
                    const_vector_map<T>(src + j0 + t.dx, j1 - j0);
                vector_map<T>(dst + top + j1, idx(cols - top) - j1).setZero();
                // the padding columns, which the flat copy filled from the neighbouring rows
                for (int k = 0; k < t.ow_lo; ++k)
                    for (int r = 0; r < s.in_h; ++r) dst[top + r * s.in_w + k] = T(0);
                for (int k = t.ow_hi; k < s.in_w; ++k)
                    for (int r = 0; r < s.in_h; ++r) dst[top + r * s.in_w + k] = T(0);
            }
        }
        return;
    }
    row_lowering_detail::for_each_row_segment(
        s, [&](int c, std::size_t row, const row_lowering_detail::column_tap& t, std::size_t offset,
               int ih) {
            T* dst = xr + row * cols + offset;
            if (ih < 0) {
                std::fill(dst, dst + s.out_w, T(0));
                return;
            }
            const T* src = x + (static_cast<std::size_t>(c) * batch + b) * plane +
                           static_cast<std::size_t>(ih) * s.in_w;
            for (int ow = 0; ow < t.ow_lo; ++ow) dst[ow] = T(0);
            for (int ow = t.ow_lo; ow < t.ow_hi; ++ow) dst[ow] = src[s.stride * ow + t.dx];
            for (int ow = t.ow_hi; ow < s.out_w; ++ow) dst[ow] = T(0);
        });
}

/// The adjoint of lower_rows (general path): adds dxr (shaped like xr) into image b of dx, or
/// writes it (overwrite: dx's old values of image b are ignored).
template <class T>
void raise_rows(const conv2d_shape& s, int batch, const T* dxr, int b, T* dx, bool overwrite) {
    const std::size_t cols = row_lowered_cols(s), plane = s.in_plane();
    if (overwrite) {
        for (int c = 0; c < s.in_channels; ++c)
            vector_map<T>(dx + (static_cast<std::size_t>(c) * batch + b) * plane, idx(plane))
                .setZero();
    }
    row_lowering_detail::for_each_row_segment(
        s, [&](int c, std::size_t row, const row_lowering_detail::column_tap& t, std::size_t offset,
               int ih) {
            if (ih < 0) return;
            const T* src = dxr + row * cols + offset;
            T* dst = dx + (static_cast<std::size_t>(c) * batch + b) * plane +
                     static_cast<std::size_t>(ih) * s.in_w;
            for (int ow = t.ow_lo; ow < t.ow_hi; ++ow) dst[s.stride * ow + t.dx] += src[ow];
        });
}

/// Forward of image b: y[b] = sum over kh of wr[kh] * view(kh) of xr, written, or added to
/// y[b] when accumulate: one gemm() whose segments are the kernel rows (16 at a time).
/// wr from rearrange_weights, xr from lower_rows, y: [C_out][batch][out_h][out_w].
template <class T>
void row_lowered_forward(const conv2d_shape& s, int batch, const T* wr, const T* xr, int b, T* y,
                         bool accumulate = false) {
    const auto ck = static_cast<std::ptrdiff_t>(s.in_channels) * s.kernel;
    const auto n = static_cast<int>(s.out_plane());
    const std::ptrdiff_t cols = idx(row_lowered_cols(s));
    constexpr int max_segments = 16;
    std::array<std::ptrdiff_t, max_segments> views{};
    for (int kh0 = 0; kh0 < s.kernel; kh0 += max_segments) {
        const int segments = std::min(max_segments, s.kernel - kh0);
        for (int i = 0; i < segments; ++i)
            views[static_cast<std::size_t>(i)] = idx(row_view(s, kh0 + i));
        gemm(s.out_channels, n, static_cast<int>(ck), segments,
             gemm_lhs<T>{wr + kh0 * s.out_channels * ck, ck, 1, s.out_channels * ck},
             gemm_rhs<T>{xr, cols, views.data()}, y + static_cast<std::size_t>(b) * s.out_plane(),
             idx(static_cast<std::size_t>(batch) * s.out_plane()), accumulate || kh0 > 0);
    }
}

/// Scratch elements row_lowered_weight_gradient needs: dy of one image transposed.
[[nodiscard]] inline std::size_t row_lowered_weight_gradient_scratch(
    const conv2d_shape& s) noexcept {
    return s.out_plane() * static_cast<std::size_t>(s.out_channels);
}

/// Weight gradient of image b: adds d(loss)/d(wr) into dwr ([k] column-major C_out x (C_in k)
/// matrices, the order of rearrange_weights).  xr: lower_rows of image b of the forward input,
/// dy: [C_out][batch][out_h][out_w], dyt: row_lowered_weight_gradient_scratch(s) elements.
/// Per kernel row, dwr[kh] (as (C_in k) x C_out, row-major) += view(kh) of xr * dy[b]^T: the
/// transposed dy (pixels x C_out) is the operand read by rows, the lowered image is broadcast.
template <class T>
void row_lowered_weight_gradient(const conv2d_shape& s, int batch, const T* xr, const T* dy, int b,
                                 T* dwr, T* dyt) {
    const auto ck = static_cast<std::ptrdiff_t>(s.in_channels) * s.kernel;
    const std::size_t n = s.out_plane();
    const std::ptrdiff_t cols = idx(row_lowered_cols(s));
    transpose(static_cast<std::size_t>(s.out_channels), n, dy + static_cast<std::size_t>(b) * n,
              static_cast<std::size_t>(batch) * n, dyt);
    for (int kh = 0; kh < s.kernel; ++kh) {
        gemm(static_cast<int>(ck), s.out_channels, static_cast<int>(n), 1,
             gemm_lhs<T>{xr + row_view(s, kh), cols, 1, 0},
             gemm_rhs<T>{dyt, s.out_channels, nullptr}, dwr + kh * ck * s.out_channels,
             s.out_channels, true);
    }
}

/// d(loss)/d(xr) of image b (general path; then raise_rows): the views of the kernel rows
/// overlap, so dxr is zeroed and every kh adds.  wr from rearrange_weights.
template <class T>
void row_lowered_input_gradient(const conv2d_shape& s, int batch, const T* wr, const T* dy, int b,
                                T* dxr) {
    const auto ck = static_cast<std::ptrdiff_t>(s.in_channels) * s.kernel;
    const std::ptrdiff_t cols = idx(row_lowered_cols(s));
    vector_map<T>(dxr, idx(row_lowered_size(s))).setZero();
    for (int kh = 0; kh < s.kernel; ++kh) {
        // dxr view (ck x pixels) += wr[kh]^T (ck x C_out) * dy[b] (C_out x pixels)
        gemm(static_cast<int>(ck), static_cast<int>(s.out_plane()), s.out_channels, 1,
             gemm_lhs<T>{wr + kh * s.out_channels * ck, 1, ck, 0},
             gemm_rhs<T>{dy + static_cast<std::size_t>(b) * s.out_plane(),
                         idx(static_cast<std::size_t>(batch) * s.out_plane()), nullptr},
             dxr + row_view(s, kh), cols, true);
    }
}

}  // namespace swarmsgd::examples::resnet::nn
