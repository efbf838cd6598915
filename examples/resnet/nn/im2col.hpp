#pragma once
/// \file im2col.hpp
/// im2col and its adjoint col2im: the lowering of a convolution to one GEMM per group of images.
///   col [K][images * out_h * out_w],  K = in_channels * kernel * kernel:
///   col[(c, kh, kw)][(b, oh, ow)] = x[c][b0 + b][oh * stride + kh - pad][ow * stride + kw - pad]
///   (0 outside the image), so that y = w * col with w viewed as an out_channels x K matrix.
/// Stride-1 "same" convolutions take a fast path: each row of col is the image shifted.

#include "common.hpp"
#include "conv2d_shape.hpp"

#include <algorithm>
#include <cstddef>

namespace swarmsgd::examples::resnet::nn {

namespace im2col_detail {

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

}  // namespace im2col_detail

/// im2col of images [b0, b0 + images) of a batch of `batch`: x [C_in][batch][in_h][in_w] ->
/// col [K][images * out_h * out_w].
template <class T>
void im2col(const conv2d_shape& s, int batch, const T* x, int b0, int images, T* col) {
    if (im2col_detail::is_shift(s)) {
        const std::ptrdiff_t w = s.in_w, plane = static_cast<std::ptrdiff_t>(s.in_plane());
        const std::size_t n = static_cast<std::size_t>(images) * s.out_plane();
        im2col_detail::for_each_shift(s, [&](const im2col_detail::shift_tap& t) {
            for (int b = 0; b < images; ++b) {
                T* dst = col + t.row * n + static_cast<std::size_t>(b) * s.out_plane();
                const T* src = x + (static_cast<std::size_t>(t.c) * batch + b0 + b) * s.in_plane();
                std::fill(dst, dst + t.j0, T(0));
                if (t.j1 > t.j0)
                    std::copy(src + (t.j0 + t.shift), src + (t.j1 + t.shift), dst + t.j0);
                std::fill(dst + t.j1, dst + plane, T(0));
                im2col_detail::zero_padding_columns(t, w, dst);
            }
        });
        return;
    }
    im2col_detail::for_each_segment(
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
    if (im2col_detail::is_shift(s)) {
        const std::ptrdiff_t w = s.in_w;
        const std::size_t n = static_cast<std::size_t>(images) * s.out_plane();
        const auto col_plane = [&](const im2col_detail::shift_tap& t, int b) {
            return col + t.row * n + static_cast<std::size_t>(b) * s.out_plane();
        };
        if (overwrite) {  // the center tap covers every pixel: it writes, the others add
            im2col_detail::for_each_shift(s, [&](const im2col_detail::shift_tap& t) {
                if (!t.center) return;
                for (int b = 0; b < images; ++b)
                    std::copy(col_plane(t, b), col_plane(t, b) + s.in_plane(), dx_plane(t.c, b));
            });
        }
        im2col_detail::for_each_shift(s, [&](const im2col_detail::shift_tap& t) {
            if (overwrite && t.center) return;
            for (int b = 0; b < images; ++b) {
                T* src = col_plane(t, b);
                im2col_detail::zero_padding_columns(t, w, src);  // dropped, not wrapped around
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
    im2col_detail::for_each_segment(
        s, images, [&](int c, int kw, int b, int ih, int ow_lo, int ow_hi, std::size_t offset) {
            if (ih < 0 || ih >= s.in_h) return;
            const T* src = col + offset;
            T* dst = dx_plane(c, b) + static_cast<std::size_t>(ih) * s.in_w;
            for (int ow = ow_lo; ow < ow_hi; ++ow) dst[ow * s.stride + kw - s.pad] += src[ow];
        });
}

}  // namespace swarmsgd::examples::resnet::nn
