#pragma once
/// \file conv2d.hpp
/// 2-D convolution without bias (batch norm follows every convolution of the ResNet), square or
/// rectangular images, any kernel, stride and zero padding; used with 3x3 pad 1 and 1x1 pad 0,
/// stride 1 or 2. Lowered to GEMMs in one of two ways, per image group:
///   - row lowering (row_lowering.hpp) for kernels k > 1 with output planes of at least
///     scratch::row_lowering_min_plane pixels, one image at a time: only the kernel's columns
///     are unrolled, and ONE gemm() (gemm.hpp) sums the kernel's rows as segments over shifted
///     views (a third of im2col's copying for 3x3); the weight gradient is a gemm() per kernel
///     row against the transposed dy; for stride-1 "same" convolutions the input gradient is
///     the forward of the transposed convolution, otherwise the adjoint of the lowering.
///     Where gemm() has its AVX-512 kernel, stride-1 "same" convolutions are computed
///     "direct" (uses_direct), without unrolling: the forward and input gradient are one
///     gemm() whose segments are the k * k taps over a copy of the image planes, the padding
///     masked out; the weight gradient is a gemm() per tap over a zero-padded copy of the
///     image against the transposed dy;
///   - im2col (im2col.hpp) otherwise, over groups of images whose im2col matrix fits
///     scratch::col_budget (the L2 cache), with Eigen products; a 1x1 stride-1 convolution
///     needs no lowering at all.
///
/// Shapes (CBHW layout, see common.hpp), B = batch:
///   weight  w  : [out_channels][in_channels][kernel][kernel]   (PyTorch's order)
///   input   x  : [in_channels][B][in_h][in_w]
///   output  y  : [out_channels][B][out_h][out_w]

#include "common.hpp"
#include "conv2d_shape.hpp"
#include "im2col.hpp"
#include "row_lowering.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace swarmsgd::examples::resnet::nn {

/// Whether conv2d lowers `s` by rows (row_lowering.hpp) rather than by im2col.
template <class T>
[[nodiscard]] bool uses_row_lowering(const conv2d_shape& s, const scratch<T>& ws) noexcept {
    return s.kernel > 1 && s.out_plane() >= ws.row_lowering_min_plane;
}

/// Whether conv2d computes `s` straight from the image, without lowering it (see
/// conv2d_detail::direct_forward): for a stride-1 "same" convolution that would be row-lowered,
/// where gemm() has its AVX-512 kernel (the masks of its portable path are plain loops).
template <class T>
[[nodiscard]] bool uses_direct(const conv2d_shape& s, const scratch<T>& ws) noexcept {
    return gemm_has_simd && std::is_same_v<T, float> && uses_row_lowering(s, ws) &&
           is_same_stride1(s);
}

namespace conv2d_detail {

/// The taps (kh, kw) of a stride-1 "same" convolution (the same for transposed(s)), into
/// ws.tap_offsets and ws.tap_masks: tap t = kh * k + kw reads input pixel p + offset[t] for
/// output pixel p, where bit p % 16 of mask[t * ceil(out_plane / 16) + p / 16] is set (the
/// input pixel (oh + kh - pad, ow + kw - pad) is inside the image; elsewhere it is padding).
template <class T>
void direct_taps(const conv2d_shape& s, scratch<T>& ws) {
    const int k = s.kernel, w = s.out_w;
    const int pixels = static_cast<int>(s.out_plane()), vectors = (pixels + 15) / 16;
    ws.tap_offsets.resize(static_cast<std::size_t>(k * k));
    ws.tap_masks.assign(static_cast<std::size_t>(k * k * vectors), 0);
    for (int kh = 0; kh < k; ++kh) {
        for (int kw = 0; kw < k; ++kw) {
            const int t = kh * k + kw, dy = kh - s.pad, dx = kw - s.pad;
            ws.tap_offsets[static_cast<std::size_t>(t)] = static_cast<std::ptrdiff_t>(dy) * w + dx;
            std::uint16_t* mask = ws.tap_masks.data() + static_cast<std::size_t>(t) * vectors;
            for (int p = 0; p < pixels; ++p) {
                const int ih = p / w + dy, iw = p % w + dx;
                if (ih >= 0 && ih < s.in_h && iw >= 0 && iw < s.in_w)
                    mask[p / 16] = static_cast<std::uint16_t>(mask[p / 16] | (1u << (p % 16)));
            }
        }
    }
}

/// Elements between the channels of image planes copied by direct_forward: the plane and 16
/// more, so that the channels do not all fall into the same L1 cache sets (in x, the planes
/// of one image are batch * plane apart, a multiple of 4 KiB).
[[nodiscard]] inline std::size_t direct_channel_stride(const conv2d_shape& s) noexcept {
    return s.in_plane() + 16;
}

/// Forward of image b straight from the image (uses_direct(s); taps from direct_taps):
/// y[b] = sum over taps t of w_t * (x[b] shifted by offset[t], masked), one gemm() whose
/// segments are the k * k taps, over a copy of the C_in planes of x[b] into `planes`
/// (C_in * direct_channel_stride(s) elements). Written, or added to y[b] when accumulate.
/// flip: w holds the weights of the convolution transposed(s) was made from, so the weights
/// of s are w'[o][c][t] = w[c][o][k * k - 1 - t] (the input gradient).
///   w: [C_out][C_in][k][k] (flip: [C_in][C_out][k][k]), x: [C_in][batch][h][w],
///   y: [C_out][batch][h][w].
template <class T>
void direct_forward(const conv2d_shape& s, int batch, const T* w, bool flip, const T* x, int b,
                    T* y, bool accumulate, const scratch<T>& ws, T* planes) {
    const auto taps = static_cast<std::ptrdiff_t>(s.kernel) * s.kernel;
    const std::size_t plane = s.in_plane(), stride = direct_channel_stride(s);
    for (int c = 0; c < s.in_channels; ++c) {
        const T* src = x + (static_cast<std::size_t>(c) * batch + b) * plane;
        std::copy(src, src + plane, planes + static_cast<std::size_t>(c) * stride);
    }
    const gemm_lhs<T> a = flip ? gemm_lhs<T>{w + (taps - 1), taps, s.out_channels * taps, -1}
                               : gemm_lhs<T>{w, s.in_channels * taps, taps, 1};
    gemm(s.out_channels, static_cast<int>(plane), s.in_channels, static_cast<int>(taps), a,
         gemm_rhs<T>{planes, idx(stride), ws.tap_offsets.data(), ws.tap_masks.data(),
                     idx((plane + 15) / 16)},
         y + static_cast<std::size_t>(b) * plane, idx(static_cast<std::size_t>(batch) * plane),
         accumulate);
}

/// The zero-padded copy of one image that direct_weight_gradient reads: `gap` zeros, then per
/// channel `pad` zero rows, the plane, `pad` zero rows and `gap` zeros. gap = pad + 16: every
/// tap's read stays inside the copy, on finite values, and the channels do not all fall into
/// the same L1 cache sets.
struct padded_copy {
    std::size_t gap, top, channel_stride, size;
};

[[nodiscard]] inline padded_copy padded_layout(const conv2d_shape& s) noexcept {
    padded_copy l{};
    l.gap = static_cast<std::size_t>(s.pad) + 16;
    l.top = static_cast<std::size_t>(s.pad) * static_cast<std::size_t>(s.in_w);
    l.channel_stride = s.in_plane() + 2 * l.top + l.gap;
    l.size = l.gap + static_cast<std::size_t>(s.in_channels) * l.channel_stride;
    return l;
}

/// Scratch elements of direct_weight_gradient: the padded copy, then k transposed copies of dy.
[[nodiscard]] inline std::size_t direct_weight_gradient_scratch(const conv2d_shape& s) noexcept {
    return padded_layout(s).size + static_cast<std::size_t>(s.kernel) * s.out_plane() *
                                       static_cast<std::size_t>(s.out_channels);
}

/// Weight gradient of image b straight from the image (uses_direct(s), taps from
/// direct_taps): for each tap t = (kh, kw), dwt[t] (C_in x C_out, row-major) += (x[b]
/// shifted by offset[t]) * dy[b]^T, one gemm() per tap. A is the padded copy of x[b] (the
/// rows outside the image read as zeros), broadcast; B is dy[b] transposed (pixels x C_out),
/// one copy per kw with the rows of the pixels whose column ow + kw - pad is outside the image
/// zeroed (there A reads the neighbouring row's pixel).
///   x: [C_in][batch][h][w], dy: [C_out][batch][h][w], dwt: [k][k][C_in][C_out],
///   work: direct_weight_gradient_scratch(s) elements.
template <class T>
void direct_weight_gradient(const conv2d_shape& s, int batch, const T* x, const T* dy, int b,
                            T* dwt, const scratch<T>& ws, T* work) {
    const padded_copy l = padded_layout(s);
    const std::size_t plane = s.in_plane(), cout = static_cast<std::size_t>(s.out_channels);
    std::fill(work, work + l.gap, T(0));
    for (int c = 0; c < s.in_channels; ++c) {
        T* dst = work + l.gap + static_cast<std::size_t>(c) * l.channel_stride;
        const T* src = x + (static_cast<std::size_t>(c) * batch + b) * plane;
        std::fill(dst, dst + l.top, T(0));
        std::copy(src, src + plane, dst + l.top);
        std::fill(dst + l.top + plane, dst + l.channel_stride, T(0));
    }
    T* dyt = work + l.size;  // [kw][pixel][C_out]
    const std::size_t slot = plane * cout;
    T* center = dyt + static_cast<std::size_t>(s.pad) * slot;
    transpose(cout, plane, dy + static_cast<std::size_t>(b) * plane,
              static_cast<std::size_t>(batch) * plane, center);
    for (int kw = 0; kw < s.kernel; ++kw) {
        if (kw == s.pad) continue;
        T* copy = dyt + static_cast<std::size_t>(kw) * slot;
        std::copy(center, center + slot, copy);
        for (int ow = 0; ow < s.out_w; ++ow) {
            const int iw = ow + kw - s.pad;
            if (iw >= 0 && iw < s.in_w) continue;
            for (std::size_t p = static_cast<std::size_t>(ow); p < plane;
                 p += static_cast<std::size_t>(s.out_w))
                std::fill(copy + p * cout, copy + (p + 1) * cout, T(0));
        }
    }
    const auto taps = static_cast<std::size_t>(s.kernel) * static_cast<std::size_t>(s.kernel);
    for (std::size_t t = 0; t < taps; ++t) {
        const std::size_t kw = t % static_cast<std::size_t>(s.kernel);
        gemm(s.in_channels, s.out_channels, static_cast<int>(plane), 1,
             gemm_lhs<T>{work + l.gap + l.top + ws.tap_offsets[t], idx(l.channel_stride), 1, 0},
             gemm_rhs<T>{dyt + kw * slot, idx(cout), nullptr},
             dwt + t * static_cast<std::size_t>(s.in_channels) * cout, idx(cout), true);
    }
}

}  // namespace conv2d_detail

/// Scratch elements per thread that conv2d needs for `s` and a batch of `batch`.
template <class T>
[[nodiscard]] std::size_t conv2d_scratch_size(const conv2d_shape& s, int batch,
                                              const scratch<T>& ws) noexcept {
    if (!uses_row_lowering(s, ws)) return s.col_size(batch, sizeof(T), ws.col_budget);
    if (uses_direct(s, ws)) {  // the image copies of direct_forward, of s and transposed(s)
        const std::size_t planes =
            static_cast<std::size_t>(std::max(s.in_channels, s.out_channels)) *
            conv2d_detail::direct_channel_stride(s);
        return std::max(planes, conv2d_detail::direct_weight_gradient_scratch(s));
    }
    // xr (or the lowered dy of the transposed convolution), then the transposed dy of dw
    return (is_same_stride1(s) ? std::max(row_lowered_size(s), row_lowered_size(transposed(s)))
                               : row_lowered_size(s)) +
           row_lowered_weight_gradient_scratch(s);
}

/// Forward: y = conv(x, w).
///   w: [C_out][C_in][k][k], x: [C_in][B][in_h][in_w], y: [C_out][B][out_h][out_w].
template <class T>
void conv2d_forward(const conv2d_shape& s, int batch, const T* w, const T* x, T* y,
                    scratch<T>& ws) {
    ws.reserve(ws.threads, conv2d_scratch_size(s, batch, ws), 0);
    [[maybe_unused]] const int threads = ws.threads;
    if (uses_direct(s, ws)) {
        conv2d_detail::direct_taps(s, ws);
        SWARMSGD_RESNET_PARALLEL_FOR
        for (int b = 0; b < batch; ++b) {
            T* planes = ws.col[static_cast<std::size_t>(thread_index())].data();
            conv2d_detail::direct_forward(s, batch, w, false, x, b, y, false, ws, planes);
        }
        return;
    }
    if (uses_row_lowering(s, ws)) {
        if (ws.weights.size() < s.weight_count()) ws.weights.resize(s.weight_count());
        rearrange_weights(s, w, ws.weights.data());
        const T* wr = ws.weights.data();
        SWARMSGD_RESNET_PARALLEL_FOR
        for (int b = 0; b < batch; ++b) {
            T* xr = ws.col[static_cast<std::size_t>(thread_index())].data();
            lower_rows(s, batch, x, b, xr);
            row_lowered_forward(s, batch, wr, xr, b, y);
        }
        return;
    }
    const int group = s.group_images(batch, sizeof(T), ws.col_budget);
    const int groups = (batch + group - 1) / group;
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
    ws.reserve(ws.threads, conv2d_scratch_size(s, batch, ws), s.weight_count());
    [[maybe_unused]] const int threads = ws.threads;
    const bool by_rows = uses_row_lowering(s, ws);
    const bool direct = uses_direct(s, ws);  // d(loss)/dx straight from dy
    if (direct) conv2d_detail::direct_taps(s, ws);
    if (by_rows && !direct) {
        if (ws.weights.size() < s.weight_count()) ws.weights.resize(s.weight_count());
        if (is_same_stride1(s)) {  // d(loss)/dx: the forward of the transposed convolution
            rearrange_weights_transposed(s, w, ws.weights.data());
        } else {
            rearrange_weights(s, w, ws.weights.data());
        }
    }
    const int group = by_rows ? 1 : s.group_images(batch, sizeof(T), ws.col_budget);
    const int groups = (batch + group - 1) / group;
    const Eigen::Index k_rows = idx(s.col_rows());
    const Eigen::Index cout = s.out_channels;
    const const_row_map<T> W(w, cout, k_rows, Eigen::OuterStride<>(k_rows));
    const Eigen::OuterStride<> in_stride(idx(static_cast<std::size_t>(batch) * s.in_plane()));
    const Eigen::OuterStride<> out_stride(idx(static_cast<std::size_t>(batch) * s.out_plane()));
    using col_major = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
    // Each weight task sums a fixed range of groups into its own weight-gradient partial;
    // the partials are added in order below. Column-major C_out x K (im2col; Eigen then packs
    // col without transposing it), or k column-major C_out x (C_in k) matrices (row lowering,
    // the order of rearrange_weights).
    const int tasks = std::min(groups, scratch<T>::weight_tasks);
    SWARMSGD_RESNET_PARALLEL_FOR
    for (int task = 0; task < tasks; ++task) {
        const auto tid = static_cast<std::size_t>(thread_index());
        T* partial = ws.wgrad[static_cast<std::size_t>(task)].data();
        vector_map<T>(partial, idx(s.weight_count())).setZero();
        Eigen::Map<col_major> dW(partial, cout, k_rows);
        for (int g = task * groups / tasks; g < (task + 1) * groups / tasks; ++g) {
            const int b0 = g * group;
            const int images = std::min(group, batch - b0);
            if (direct) {
                T* work = ws.col[tid].data();
                conv2d_detail::direct_weight_gradient(s, batch, x, dy, b0, partial, ws, work);
                if (dx != nullptr)
                    conv2d_detail::direct_forward(transposed(s), batch, w, true, dy, b0, dx,
                                                  accumulate, ws, work);
                continue;
            }
            if (by_rows) {
                T* xr = ws.col[tid].data();
                lower_rows(s, batch, x, b0, xr);
                row_lowered_weight_gradient(
                    s, batch, xr, dy, b0, partial,
                    xr + (ws.col[tid].size() - row_lowered_weight_gradient_scratch(s)));
                if (dx == nullptr) continue;
                if (is_same_stride1(s)) {
                    const conv2d_shape t = transposed(s);
                    lower_rows(t, batch, dy, b0, xr);
                    row_lowered_forward(t, batch, ws.weights.data(), xr, b0, dx, accumulate);
                } else {
                    row_lowered_input_gradient(s, batch, ws.weights.data(), dy, b0, xr);
                    raise_rows(s, batch, xr, b0, dx, !accumulate);
                }
                continue;
            }
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
    // dw = the sum of the partials, back in PyTorch's order.
    Eigen::Map<row_matrix<T>> total(dw, cout, k_rows);
    if (!by_rows) {
        total = Eigen::Map<const col_major>(ws.wgrad[0].data(), cout, k_rows);
        for (int t = 1; t < tasks; ++t)
            total += Eigen::Map<const col_major>(ws.wgrad[static_cast<std::size_t>(t)].data(), cout,
                                                 k_rows);
        return;
    }
    for (int t = 1; t < tasks; ++t) {
        vector_map<T>(ws.wgrad[0].data(), idx(s.weight_count())) += const_vector_map<T>(
            ws.wgrad[static_cast<std::size_t>(t)].data(), idx(s.weight_count()));
    }
    // direct: [kh][kw][C_in][C_out]; row lowering: [kh] column-major C_out x (C_in k)
    const T* sum = ws.wgrad[0].data();
    const auto k = static_cast<std::size_t>(s.kernel),
               cin = static_cast<std::size_t>(s.in_channels);
    const auto cout_ = static_cast<std::size_t>(s.out_channels);
    for (std::size_t o = 0; o < cout_; ++o)
        for (std::size_t c = 0; c < cin; ++c)
            for (std::size_t kh = 0; kh < k; ++kh)
                for (std::size_t kw = 0; kw < k; ++kw)
                    dw[((o * cin + c) * k + kh) * k + kw] =
                        direct ? sum[(((kh * k + kw) * cin) + c) * cout_ + o]
                               : sum[(kh * cin * k + c * k + kw) * cout_ + o];
}

}  // namespace swarmsgd::examples::resnet::nn
