#pragma once
/// \file global_avg_pool.hpp
/// Global average pooling: the mean of each channel of each image over its H x W pixels.

#include "common.hpp"

#include <cstddef>

namespace swarmsgd::examples::resnet::nn {

/// Forward: y[c][b] = mean over p of x[c][b][p].  x: [C][B][plane], y: [C][B].
template <class T>
void global_avg_pool_forward(int channels, int batch, std::size_t plane, const T* x, T* y) {
    const Eigen::Index rows = idx(static_cast<std::size_t>(channels) * batch);
    // x viewed as a (C*B) x plane row-major matrix: one row per (channel, image).
    const Eigen::Map<const row_matrix<T>> X(x, rows, idx(plane));
    Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>(y, rows) = X.rowwise().mean();
}

/// Backward: dx[c][b][p] = dy[c][b] / plane.  dy: [C][B], dx: [C][B][plane].
template <class T>
void global_avg_pool_backward(int channels, int batch, std::size_t plane, const T* dy, T* dx) {
    const Eigen::Index rows = idx(static_cast<std::size_t>(channels) * batch);
    Eigen::Map<row_matrix<T>> dX(dx, rows, idx(plane));
    const Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>> dY(dy, rows);
    dX = (dY / static_cast<T>(plane)).replicate(1, idx(plane));
}

}  // namespace swarmsgd::examples::resnet::nn
