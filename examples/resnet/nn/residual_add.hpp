#pragma once
/// \file residual_add.hpp
/// The residual connection of a basic block: y = a + b, elementwise over n values. The network
/// fuses it into the batch norm of the block's second convolution (batch_norm.hpp); this is the
/// reference the fused path is tested against.

#include "common.hpp"

#include <cstddef>

namespace swarmsgd::examples::resnet::nn {

/// Forward: y = a + b. a, b, y: [n]; y may alias a or b.
template <class T>
void residual_add_forward(std::size_t n, const T* a, const T* b, T* y) {
    vector_map<T>(y, idx(n)) = const_vector_map<T>(a, idx(n)) + const_vector_map<T>(b, idx(n));
}

/// Backward: both inputs receive dy unchanged (da = db = dy). dy, da, db: [n].
template <class T>
void residual_add_backward(std::size_t n, const T* dy, T* da, T* db) {
    vector_map<T>(da, idx(n)) = const_vector_map<T>(dy, idx(n));
    vector_map<T>(db, idx(n)) = const_vector_map<T>(dy, idx(n));
}

}  // namespace swarmsgd::examples::resnet::nn
