#pragma once
/// \file softmax_cross_entropy.hpp
/// Softmax cross-entropy averaged over the batch (PyTorch's F.cross_entropy, mean reduction).
/// Labels must be in [0, classes): the network checks them before calling.

#include "common.hpp"

#include <cmath>
#include <cstdint>

namespace swarmsgd::examples::resnet::nn {

/// Forward: probs = softmax(logits) row by row, returns mean over b of -log probs[b][label[b]].
///   logits, probs: [B][classes] (may alias), labels: [B].
template <class T>
T softmax_cross_entropy_forward(int batch, int classes, const T* logits, const std::int32_t* labels,
                                T* probs) {
    double loss = 0;
    for (int b = 0; b < batch; ++b) {
        const auto at = static_cast<std::size_t>(b) * static_cast<std::size_t>(classes);
        const const_vector_map<T> z(logits + at, classes);
        vector_map<T> p(probs + at, classes);
        const T top = z.maxCoeff();     // shift: exp never overflows
        const T picked = z[labels[b]];  // read before probs overwrites logits (may alias)
        p = (z - top).exp();
        const T sum = p.sum();
        p /= sum;
        loss += static_cast<double>(std::log(sum) + top - picked);
    }
    return static_cast<T>(loss / batch);
}

/// Backward of the mean loss: dlogits = (probs - onehot(labels)) / B.
///   probs, dlogits: [B][classes] (may alias), labels: [B].
template <class T>
void softmax_cross_entropy_backward(int batch, int classes, const T* probs,
                                    const std::int32_t* labels, T* dlogits) {
    const T scale = T(1) / static_cast<T>(batch);
    for (int b = 0; b < batch; ++b) {
        const auto at = static_cast<std::size_t>(b) * static_cast<std::size_t>(classes);
        vector_map<T>(dlogits + at, classes) = const_vector_map<T>(probs + at, classes) * scale;
        dlogits[at + static_cast<std::size_t>(labels[b])] -= scale;
    }
}

}  // namespace swarmsgd::examples::resnet::nn
