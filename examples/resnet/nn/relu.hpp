#pragma once
/// \file relu.hpp
/// Rectified linear unit, elementwise on any tensor of n values (the network fuses the ReLUs
/// that follow a batch norm into batch_norm.hpp; this one serves the block outputs' backward).

#include "common.hpp"

#include <cstddef>

namespace swarmsgd::examples::resnet::nn {

/// Forward: y = max(0, x). x, y: [n]; y may alias x.
template <class T>
void relu_forward(std::size_t n, const T* x, T* y) {
    vector_map<T>(y, idx(n)) = const_vector_map<T>(x, idx(n)).max(T(0));
}

/// Backward from the forward output: dx = dy where y > 0, else 0 (PyTorch's choice at 0).
/// y, dy, dx: [n]; dx may alias dy.
template <class T>
void relu_backward(std::size_t n, const T* y, const T* dy, T* dx) {
    vector_map<T>(dx, idx(n)) =
        (const_vector_map<T>(y, idx(n)) > T(0)).select(const_vector_map<T>(dy, idx(n)), T(0));
}

}  // namespace swarmsgd::examples::resnet::nn
