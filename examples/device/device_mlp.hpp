#pragma once
/// \file device_mlp.hpp
/// A small image classifier whose parameters, data, activations and gradients all live in a
/// Thrust system: on the GPU when compiled by nvcc, in Thrust's OMP or CPP system otherwise.
/// The layout is examples/fashion_mnist/mlp.hpp's: one flat float buffer
/// [W1 (hidden x inputs, row-major) | b1 | W2 (classes x hidden) | b2], so Swarm SGD averages,
/// quantizes and sends a model as one array.
///
///     h      = relu(W1 x + b1)
///     logits = W2 h + b2
///     loss   = -log softmax(logits)[y], averaged over the batch
///
/// Every operation is a thrust::for_each_n over its outputs with a functor that computes one
/// output (a dot product, a softmax row, one gradient entry), so each output is written by one
/// work item and the results are the same whatever the system's thread count. These are plain
/// loops, not cuBLAS: the example shows where the averaging stands against a step, and a
/// faster step (cuBLAS, fused kernels) would make that share larger, as the docs say.

#include <thrust/device_vector.h>
#include <thrust/execution_policy.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/reduce.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <swarmsgd/detail/config.hpp>
#include <swarmsgd/detail/counter_rng.hpp>
#include <swarmsgd/errors.hpp>
#include <vector>

namespace swarmsgd::examples::device {

/// Sizes and offsets of the parameters in the flat buffer.
struct mlp_shape {
    std::size_t inputs = 0, hidden = 0, classes = 0;

    [[nodiscard]] SWARMSGD_HOST_DEVICE std::size_t w1() const { return 0; }
    [[nodiscard]] SWARMSGD_HOST_DEVICE std::size_t b1() const { return hidden * inputs; }
    [[nodiscard]] SWARMSGD_HOST_DEVICE std::size_t w2() const { return b1() + hidden; }
    [[nodiscard]] SWARMSGD_HOST_DEVICE std::size_t b2() const { return w2() + classes * hidden; }
    /// Number of parameters.
    [[nodiscard]] SWARMSGD_HOST_DEVICE std::size_t size() const { return b2() + classes; }
};

/// Glorot-uniform weights from a counter-based generator (the same on every system for the same
/// key), zero biases.
struct init_op {
    mlp_shape s;
    std::uint64_t key;
    float* p;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t k) const {
        float limit = 0;
        if (k < s.b1())
            limit = sqrtf(6.f / float(s.inputs + s.hidden));
        else if (k >= s.w2() && k < s.b2())
            limit = sqrtf(6.f / float(s.hidden + s.classes));
        p[k] = limit * (2.f * swarmsgd::detail::uniform01_at(key, k) - 1.f);
    }
};

/// z1[b, j] = b1[j] + W1[j, :] . x_b, for item b * hidden + j (pre-activation, kept for the
/// backward pass).
struct hidden_forward_op {
    mlp_shape s;
    const float* p;
    const float* pixels;  // the whole image set, inputs floats per image
    const int* index;     // the batch's image numbers
    float* z1;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t item) const {
        const std::size_t b = item / s.hidden, j = item % s.hidden;
        const float* x = pixels + std::size_t(index[b]) * s.inputs;
        const float* w = p + s.w1() + j * s.inputs;
        float acc = p[s.b1() + j];
        for (std::size_t i = 0; i < s.inputs; ++i) acc += w[i] * x[i];
        z1[item] = acc;
    }
};

/// logits[b, c] = b2[c] + W2[c, :] . relu(z1[b, :]), for item b * classes + c.
struct output_forward_op {
    mlp_shape s;
    const float* p;
    const float* z1;
    float* logits;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t item) const {
        const std::size_t b = item / s.classes, c = item % s.classes;
        const float* w = p + s.w2() + c * s.hidden;
        const float* z = z1 + b * s.hidden;
        float acc = p[s.b2() + c];
        for (std::size_t j = 0; j < s.hidden; ++j) acc += w[j] * (z[j] > 0.f ? z[j] : 0.f);
        logits[item] = acc;
    }
};

/// Row b: softmax of the logits, the example's loss and whether the arg max is its label; the
/// logits are replaced by d loss / d logits = (softmax - onehot) * scale (scale = 1 / batch).
struct softmax_loss_op {
    mlp_shape s;
    const int* index;
    const std::uint8_t* labels;
    float* logits;
    float* loss;
    int* correct;
    float scale;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t b) const {
        float* z = logits + b * s.classes;
        const std::size_t y = labels[index[b]];
        std::size_t best = 0;
        float top = z[0];
        for (std::size_t c = 1; c < s.classes; ++c) {
            if (z[c] > top) {
                top = z[c];
                best = c;
            }
        }
        float sum = 0;
        for (std::size_t c = 0; c < s.classes; ++c) sum += expf(z[c] - top);
        loss[b] = logf(sum) - (z[y] - top);
        correct[b] = best == y ? 1 : 0;
        for (std::size_t c = 0; c < s.classes; ++c)
            z[c] = (expf(z[c] - top) / sum - (c == y ? 1.f : 0.f)) * scale;
    }
};

/// Gradient of W2 and b2: item c * hidden + j gets sum_b dlogits[b, c] relu(z1[b, j]); items
/// classes * hidden + c get sum_b dlogits[b, c].
struct output_gradient_op {
    mlp_shape s;
    std::size_t batch;
    const float* z1;
    const float* dlogits;
    float* g;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t item) const {
        float acc = 0;
        if (item < s.classes * s.hidden) {
            const std::size_t c = item / s.hidden, j = item % s.hidden;
            for (std::size_t b = 0; b < batch; ++b) {
                const float z = z1[b * s.hidden + j];
                acc += dlogits[b * s.classes + c] * (z > 0.f ? z : 0.f);
            }
            g[s.w2() + item] = acc;
        } else {
            const std::size_t c = item - s.classes * s.hidden;
            for (std::size_t b = 0; b < batch; ++b) acc += dlogits[b * s.classes + c];
            g[s.b2() + c] = acc;
        }
    }
};

/// dz1[b, j] = [z1[b, j] > 0] W2[:, j] . dlogits[b, :], for item b * hidden + j.
struct hidden_backward_op {
    mlp_shape s;
    const float* p;
    const float* z1;
    const float* dlogits;
    float* dz1;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t item) const {
        const std::size_t b = item / s.hidden, j = item % s.hidden;
        float acc = 0;
        if (z1[item] > 0.f)
            for (std::size_t c = 0; c < s.classes; ++c)
                acc += p[s.w2() + c * s.hidden + j] * dlogits[b * s.classes + c];
        dz1[item] = acc;
    }
};

/// Gradient of W1 and b1: item j * inputs + i gets sum_b dz1[b, j] x_b[i]; items
/// hidden * inputs + j get sum_b dz1[b, j].
struct hidden_gradient_op {
    mlp_shape s;
    std::size_t batch;
    const float* pixels;
    const int* index;
    const float* dz1;
    float* g;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t item) const {
        float acc = 0;
        if (item < s.hidden * s.inputs) {
            const std::size_t j = item / s.inputs, i = item % s.inputs;
            for (std::size_t b = 0; b < batch; ++b)
                acc += dz1[b * s.hidden + j] * pixels[std::size_t(index[b]) * s.inputs + i];
            g[s.w1() + item] = acc;
        } else {
            const std::size_t j = item - s.hidden * s.inputs;
            for (std::size_t b = 0; b < batch; ++b) acc += dz1[b * s.hidden + j];
            g[s.b1() + j] = acc;
        }
    }
};

/// What one pass over a batch gives: the summed loss and the number of correct predictions.
struct batch_result {
    double loss_sum = 0;
    std::size_t correct = 0;
};

/// The activations of one node: all buffers a forward and backward pass of up to `batch`
/// examples needs, in the device system, allocated once.
class mlp_workspace {
public:
    /// Buffers for batches of up to `batch` examples.
    mlp_workspace(const mlp_shape& s, std::size_t batch)
        : shape_(s),
          batch_(batch),
          index_(batch),
          z1_(batch * s.hidden),
          dz1_(batch * s.hidden),
          logits_(batch * s.classes),
          loss_(batch),
          correct_(batch) {}

    /// Forward pass of the images `index` (numbers into `pixels` / `labels`) with parameters
    /// `p`; with `gradient`, also the backward pass, writing the batch-mean gradient there.
    batch_result run(const thrust::device_vector<float>& p, const float* pixels,
                     const std::uint8_t* labels, const std::vector<int>& index,
                     thrust::device_vector<float>* gradient) {
        const std::size_t n = index.size();
        swarmsgd::detail::require<invalid_argument_error>(
            n >= 1 && n <= batch_, "mlp_workspace: a batch of ", n,
            " examples, but the workspace holds 1 to ", batch_);
        thrust::copy(index.begin(), index.end(), index_.begin());
        const auto* params = thrust::raw_pointer_cast(p.data());
        const int* idx = thrust::raw_pointer_cast(index_.data());
        float* z1 = thrust::raw_pointer_cast(z1_.data());
        float* logits = thrust::raw_pointer_cast(logits_.data());
        const auto items = thrust::counting_iterator<std::size_t>(0);
        thrust::for_each_n(thrust::device, items, n * shape_.hidden,
                           hidden_forward_op{shape_, params, pixels, idx, z1});
        thrust::for_each_n(thrust::device, items, n * shape_.classes,
                           output_forward_op{shape_, params, z1, logits});
        thrust::for_each_n(
            thrust::device, items, n,
            softmax_loss_op{shape_, idx, labels, logits, thrust::raw_pointer_cast(loss_.data()),
                            thrust::raw_pointer_cast(correct_.data()), 1.f / float(n)});
        if (gradient != nullptr) {
            float* g = thrust::raw_pointer_cast(gradient->data());
            float* dz1 = thrust::raw_pointer_cast(dz1_.data());
            thrust::for_each_n(thrust::device, items, shape_.classes * (shape_.hidden + 1),
                               output_gradient_op{shape_, n, z1, logits, g});
            thrust::for_each_n(thrust::device, items, n * shape_.hidden,
                               hidden_backward_op{shape_, params, z1, logits, dz1});
            thrust::for_each_n(thrust::device, items, shape_.hidden * (shape_.inputs + 1),
                               hidden_gradient_op{shape_, n, pixels, idx, dz1, g});
        }
        batch_result r;
        r.loss_sum = thrust::reduce(thrust::device, loss_.begin(), loss_.begin() + long(n), 0.0);
        r.correct = std::size_t(
            thrust::reduce(thrust::device, correct_.begin(), correct_.begin() + long(n), 0));
        return r;
    }

private:
    mlp_shape shape_;
    std::size_t batch_;
    thrust::device_vector<int> index_;
    thrust::device_vector<float> z1_, dz1_, logits_, loss_;
    thrust::device_vector<int> correct_;
};

/// Initial parameters (the same on every node for the same seed).
inline void initialize(thrust::device_vector<float>& p, const mlp_shape& s, std::uint64_t seed) {
    p.resize(s.size());
    thrust::for_each_n(thrust::device, thrust::counting_iterator<std::size_t>(0), s.size(),
                       init_op{s, seed, thrust::raw_pointer_cast(p.data())});
}

}  // namespace swarmsgd::examples::device
