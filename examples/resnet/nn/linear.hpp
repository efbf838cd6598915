#pragma once
/// \file linear.hpp
/// Fully connected layer with bias (PyTorch's nn.Linear), reading the pooled features in the
/// CBHW layout ([in][B]) and writing row-major logits ([B][out], one image per row).

#include "common.hpp"

namespace swarmsgd::examples::resnet::nn {

/// Forward: y = x^T w^T + bias.  w: [out][in], bias: [out], x: [in][B], y: [B][out].
template <class T>
void linear_forward(int in, int out, int batch, const T* w, const T* bias, const T* x, T* y) {
    const Eigen::Map<const row_matrix<T>> W(w, out, in);
    const Eigen::Map<const row_matrix<T>> X(x, in, batch);
    Eigen::Map<row_matrix<T>> Y(y, batch, out);
    Y.noalias() = X.transpose() * W.transpose();
    Y.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(bias, out);
}

/// Backward: dw = dy^T x^T, dbias = sum over the batch of dy (both overwritten) and
/// dx = w^T dy^T.  dy: [B][out], dw: [out][in], dbias: [out], dx: [in][B].
template <class T>
void linear_backward(int in, int out, int batch, const T* w, const T* x, const T* dy, T* dw,
                     T* dbias, T* dx) {
    const Eigen::Map<const row_matrix<T>> W(w, out, in);
    const Eigen::Map<const row_matrix<T>> X(x, in, batch);
    const Eigen::Map<const row_matrix<T>> dY(dy, batch, out);
    Eigen::Map<row_matrix<T>>(dw, out, in).noalias() = dY.transpose() * X.transpose();
    Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(dbias, out) = dY.colwise().sum();
    Eigen::Map<row_matrix<T>>(dx, in, batch).noalias() = W.transpose() * dY.transpose();
}

}  // namespace swarmsgd::examples::resnet::nn
