#pragma once
/// \file relu.hpp
/// Rectified linear unit, elementwise on any tensor of n values (the network fuses the ReLUs
/// that follow a batch norm into batch_norm.hpp; this one serves the block outputs' backward).

#include "common.hpp"

#include <algorithm>
#include <cstddef>

namespace swarmsgd::examples::resnet::nn {

/// Forward: y = max(0, x). x, y: [n]; y may alias x.
template <class T>
void relu_forward(std::size_t n, const T* x, T* y) {
    vector_map<T>(y, idx(n)) = const_vector_map<T>(x, idx(n)).max(T(0));
}

/// Backward from the forward output: dx = dy where y > 0, else 0 (PyTorch's choice at 0).
/// y, dy, dx: [n]; dx may alias dy. Split over `threads` threads (see common.hpp).
template <class T>
void relu_backward(std::size_t n, const T* y, const T* dy, T* dx,
                   [[maybe_unused]] int threads = 1) {
    const std::size_t block = 64 * 1024;  // elements per task
    const auto blocks = static_cast<std::ptrdiff_t>((n + block - 1) / block);
    SWARMSGD_RESNET_PARALLEL_FOR
    for (std::ptrdiff_t i = 0; i < blocks; ++i) {
        const std::size_t at = static_cast<std::size_t>(i) * block;
        const Eigen::Index len = idx(std::min(block, n - at));
        vector_map<T>(dx + at, len) = (const_vector_map<T>(y + at, len) > T(0))
                                          .select(const_vector_map<T>(dy + at, len), T(0));
    }
}

}  // namespace swarmsgd::examples::resnet::nn
