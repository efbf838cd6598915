#pragma once
/// \file batch_norm.hpp
/// Batch normalization over the channels of a CBHW tensor (PyTorch's BatchNorm2d: eps 1e-5,
/// momentum 0.1, biased variance to normalize, unbiased variance in the running estimate),
/// optionally fused with a residual add and a ReLU that follow it:
///     y = [relu]( gamma * (x - mean) / sqrt(var + eps) + beta [+ residual] )
/// Each channel is one contiguous row of n = B * H * W values (see common.hpp).
///
/// Shapes: x, y, residual, dy, dx: [C][n]; gamma, beta, mean, var, invstd, running_*: [C].

#include "common.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace swarmsgd::examples::resnet::nn {

/// What follows the normalization in a fused batch_norm_forward_* call.
template <class T>
struct batch_norm_epilogue {
    const T* residual = nullptr;  ///< [C][n] added after the affine map, or null
    bool relu = false;            ///< apply max(0, .) last
};

namespace batch_norm_detail {

/// y = epilogue(a * x + b) on one channel row.
template <class T>
void affine_row(const T* x, T a, T b, const T* residual, bool relu, T* y, Eigen::Index n) {
    const const_vector_map<T> xr(x, n);
    vector_map<T> yr(y, n);
    if (residual != nullptr) {
        const const_vector_map<T> rr(residual, n);
        if (relu) {
            yr = (xr * a + b + rr).max(T(0));
        } else {
            yr = xr * a + b + rr;
        }
    } else if (relu) {
        yr = (xr * a + b).max(T(0));
    } else {
        yr = xr * a + b;
    }
}

}  // namespace batch_norm_detail

/// Values per chunk in the one-pass loops below: a chunk stays in the L1 cache between the
/// expressions that read it, so a channel row is read once from memory per pass.
inline constexpr Eigen::Index batch_norm_chunk = 2048;

/// Training-mode forward: normalizes with the batch statistics. Writes y (may alias x) and per
/// channel the batch mean, the biased variance and invstd = 1 / sqrt(var + eps); backward reads
/// x again (the normalized values are recomputed, not stored).
template <class T>
void batch_norm_forward_train(int channels, std::size_t n, const T* x, const T* gamma,
                              const T* beta, T eps, batch_norm_epilogue<T> epilogue, T* y, T* mean,
                              T* var, T* invstd, [[maybe_unused]] int threads) {
    const Eigen::Index len = idx(n);
    SWARMSGD_RESNET_PARALLEL_FOR
    for (int c = 0; c < channels; ++c) {
        const std::size_t at = static_cast<std::size_t>(c) * n;
        // Mean and variance in one pass: exact two-pass statistics per chunk, merged with Chan
        // et al.'s formula (no E[x^2] - E[x]^2 cancellation).
        T m = 0, m2 = 0;
        Eigen::Index count = 0;
        for (Eigen::Index i = 0; i < len; i += batch_norm_chunk) {
            const Eigen::Index k = std::min(batch_norm_chunk, len - i);
            const const_vector_map<T> chunk(x + at + i, k);
            const T chunk_mean = chunk.sum() / static_cast<T>(k);
            const T chunk_m2 = (chunk - chunk_mean).square().sum();
            const T delta = chunk_mean - m;
            const Eigen::Index total = count + k;
            m += delta * static_cast<T>(k) / static_cast<T>(total);
            m2 += chunk_m2 +
                  delta * delta * static_cast<T>(count) * static_cast<T>(k) / static_cast<T>(total);
            count = total;
        }
        const T v = m2 / static_cast<T>(n);
        const T is = T(1) / std::sqrt(v + eps);
        const T a = gamma[c] * is;
        batch_norm_detail::affine_row(
            x + at, a, beta[c] - a * m,
            epilogue.residual == nullptr ? nullptr : epilogue.residual + at, epilogue.relu, y + at,
            len);
        mean[c] = m;
        var[c] = v;
        invstd[c] = is;
    }
}

/// Running estimates after a training step (PyTorch): r = (1 - momentum) r + momentum s, with
/// the unbiased variance var * n / (n - 1) (n > 1).
template <class T>
void batch_norm_update_running(int channels, std::size_t n, const T* mean, const T* var, T momentum,
                               T* running_mean, T* running_var) {
    const T unbias = static_cast<T>(n) / static_cast<T>(n - 1);
    for (int c = 0; c < channels; ++c) {
        running_mean[c] = (T(1) - momentum) * running_mean[c] + momentum * mean[c];
        running_var[c] = (T(1) - momentum) * running_var[c] + momentum * var[c] * unbias;
    }
}

/// Inference forward: normalizes with the running estimates. y may alias x. A running
/// variance below 0 counts as 0: averaging through a lossy quantizer (lattice, min-max) adds a
/// bounded error to every element, which can push a variance near 0 below it, and
/// 1 / sqrt(negative + eps) would turn the whole channel into NaN (docs/decisions.md #32).
template <class T>
void batch_norm_forward_eval(int channels, std::size_t n, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, T eps,
                             batch_norm_epilogue<T> epilogue, T* y, [[maybe_unused]] int threads) {
    SWARMSGD_RESNET_PARALLEL_FOR
    for (int c = 0; c < channels; ++c) {
        const std::size_t at = static_cast<std::size_t>(c) * n;
        const T a = gamma[c] / std::sqrt(std::max(running_var[c], T(0)) + eps);
        batch_norm_detail::affine_row(
            x + at, a, beta[c] - a * running_mean[c],
            epilogue.residual == nullptr ? nullptr : epilogue.residual + at, epilogue.relu, y + at,
            idx(n));
    }
}

/// Backward of the training-mode forward, from its input x and statistics. `dy` is
/// d(loss)/d(output of the affine map): when the forward fused a ReLU pass `relu_out` (its y)
/// and dy = d(loss)/dy, the mask is applied here; with a residual, its gradient is dy (after
/// the ReLU mask) and is the caller's. Writes dx (may alias dy), dgamma and dbeta (overwritten).
///   dx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy [* (relu_out > 0)],
///   xhat = (x - mean) * invstd
template <class T>
void batch_norm_backward(int channels, std::size_t n, const T* x, const T* gamma, const T* mean,
                         const T* invstd, const T* relu_out, const T* dy, T* dx, T* dgamma,
                         T* dbeta, [[maybe_unused]] int threads) {
    const Eigen::Index len = idx(n);
    SWARMSGD_RESNET_PARALLEL_FOR
    for (int c = 0; c < channels; ++c) {
        const std::size_t at = static_cast<std::size_t>(c) * n;
        const T m = mean[c], is = invstd[c];
        T db = 0, dg = 0;  // sums of g and g * xhat, in one pass that also writes g into dx
        for (Eigen::Index i = 0; i < len; i += batch_norm_chunk) {
            const Eigen::Index k = std::min(batch_norm_chunk, len - i);
            vector_map<T> g(dx + at + i, k);
            if (relu_out != nullptr) {
                g = (const_vector_map<T>(relu_out + at + i, k) > T(0))
                        .select(const_vector_map<T>(dy + at + i, k), T(0));
            } else if (dx != dy) {
                g = const_vector_map<T>(dy + at + i, k);
            }
            db += g.sum();
            dg += (g * (const_vector_map<T>(x + at + i, k) - m)).sum() * is;
        }
        const T inv_n = T(1) / static_cast<T>(n);
        const T scale = gamma[c] * is;
        vector_map<T> dxr(dx + at, len);
        dxr =
            (dxr - db * inv_n - (const_vector_map<T>(x + at, len) - m) * (is * dg * inv_n)) * scale;
        dgamma[c] = dg;
        dbeta[c] = db;
    }
}

}  // namespace swarmsgd::examples::resnet::nn
