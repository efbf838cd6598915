#pragma once
/// \file mlp.hpp
/// A small image classifier in the spirit of llm.c: all parameters live in ONE contiguous
/// float buffer (so Swarm SGD can average, quantize and send a model as one array), an
/// mlp_layout gives the offset of every tensor in it, and the gradient is a second buffer
/// with the same layout.
///
/// Model (hidden > 0), for an input column x (inputs = rows * cols pixels):
///     h      = relu(W1 x + b1)            W1: hidden x inputs, b1: hidden
///     logits = W2 h + b2                  W2: classes x hidden, b2: classes
///     loss   = -log softmax(logits)[y]    averaged over the batch
/// With hidden = 0 the model is softmax regression: logits = W2 x + b2 (W2: classes x inputs)
/// and W1, b1 are empty.
///
/// Buffer layout: [W1 (row-major) | b1 | W2 (row-major) | b2]. A batch is a matrix with one
/// example per column; `batch` row-major images of `inputs` floats are exactly such an
/// inputs x batch column-major matrix, so they are used in place. The products run through
/// Eigen (Eigen::Map over the buffers), so a step costs about two GEMMs per layer.

#include "../common/checks.hpp"
#include "idx_reader.hpp"

#include <swarmsgd/errors.hpp>
#include <swarmsgd/random.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

namespace swarmsgd::examples {

/// A row-major float matrix (the weight layout in the parameter buffer).
using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// A column-major float matrix (activations: one example per column).
using col_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;

/// Eigen::Map over `M`, read-only when `Const`.
template <class M, bool Const>
using map_of = Eigen::Map<std::conditional_t<Const, const M, M>>;

/// Views of the four tensors in a parameter (or gradient) buffer; read-only when `Const`.
template <bool Const>
struct mlp_tensors {
    map_of<row_matrix, Const> w1;       ///< hidden x inputs (0 x inputs when hidden = 0)
    map_of<Eigen::VectorXf, Const> b1;  ///< hidden
    map_of<row_matrix, Const> w2;       ///< classes x fan_in, fan_in = hidden or inputs
    map_of<Eigen::VectorXf, Const> b2;  ///< classes
};

/// Shapes and offsets of the tensors in the parameter buffer of a one-hidden-layer MLP
/// (or of softmax regression when hidden = 0).
struct mlp_layout {
    std::size_t inputs = 0;     ///< features per example (784 for 28 x 28 images)
    std::size_t hidden = 0;     ///< hidden units; 0 means softmax regression
    std::size_t classes = 0;    ///< output classes (2 to 256; labels are bytes)
    std::size_t w1_offset = 0;  ///< offset of W1 (hidden x inputs, row-major)
    std::size_t b1_offset = 0;  ///< offset of b1 (hidden)
    std::size_t w2_offset = 0;  ///< offset of W2 (classes x fan_in(), row-major)
    std::size_t b2_offset = 0;  ///< offset of b2 (classes)
    std::size_t total = 0;      ///< number of floats in the buffer

    /// Lays out the tensors; throws invalid_argument_error unless inputs > 0 and
    /// 2 <= classes <= 256.
    mlp_layout(std::size_t inputs_, std::size_t hidden_, std::size_t classes_)
        : inputs(inputs_), hidden(hidden_), classes(classes_) {
        swarmsgd::examples::require<invalid_argument_error>(
            inputs > 0, "mlp_layout: inputs must be positive, got ", inputs);
        swarmsgd::examples::require<invalid_argument_error>(
            classes >= 2 && classes <= 256, "mlp_layout: classes must be 2 to 256, got ", classes);
        w1_offset = 0;
        b1_offset = w1_offset + hidden * inputs;
        w2_offset = b1_offset + hidden;
        b2_offset = w2_offset + classes * fan_in();
        total = b2_offset + classes;
    }

    /// Number of floats in a parameter or gradient buffer.
    [[nodiscard]] std::size_t parameter_count() const noexcept { return total; }

    /// Inputs of the output layer: hidden, or inputs for softmax regression.
    [[nodiscard]] std::size_t fan_in() const noexcept { return hidden > 0 ? hidden : inputs; }

    /// Writable views into `buffer` (parameters or gradient); throws size_mismatch_error
    /// unless buffer.size() == parameter_count().
    [[nodiscard]] mlp_tensors<false> view(std::span<float> buffer) const {
        check_size(buffer.size(), "view");
        float* p = buffer.data();
        return {{p + w1_offset, eigen_index(hidden), eigen_index(inputs)},
                {p + b1_offset, eigen_index(hidden)},
                {p + w2_offset, eigen_index(classes), eigen_index(fan_in())},
                {p + b2_offset, eigen_index(classes)}};
    }

    /// Read-only views into `buffer`; throws size_mismatch_error unless
    /// buffer.size() == parameter_count().
    [[nodiscard]] mlp_tensors<true> const_view(std::span<const float> buffer) const {
        check_size(buffer.size(), "const_view");
        const float* p = buffer.data();
        return {{p + w1_offset, eigen_index(hidden), eigen_index(inputs)},
                {p + b1_offset, eigen_index(hidden)},
                {p + w2_offset, eigen_index(classes), eigen_index(fan_in())},
                {p + b2_offset, eigen_index(classes)}};
    }

    /// Throws size_mismatch_error unless `size` == parameter_count(); `what` names the caller.
    void check_size(std::size_t size, const char* what) const {
        if (size != total) {
            throw size_mismatch_error(swarmsgd::examples::concat(
                what, ": buffer holds ", size, " floats but the model (inputs ", inputs,
                ", hidden ", hidden, ", classes ", classes, ") has ", total, " parameters"));
        }
    }

    /// std::size_t -> Eigen::Index.
    [[nodiscard]] static Eigen::Index eigen_index(std::size_t n) noexcept {
        return static_cast<Eigen::Index>(n);
    }
};

/// Initializes `params` deterministically from `seed` (the same on every platform): W1 with
/// He-uniform, U(-sqrt(6 / inputs), +sqrt(6 / inputs)) (suits relu); W2 with Glorot-uniform,
/// U(-sqrt(6 / (fan_in + classes)), +...); biases zero. Draws from
/// swarmsgd::rng(seed, 0) in buffer order. Throws size_mismatch_error on a wrong buffer size.
inline void init_params(const mlp_layout& layout, std::span<float> params, std::uint64_t seed) {
    layout.check_size(params.size(), "init_params");
    rng gen(seed, 0);
    const auto fill_uniform = [&](std::size_t offset, std::size_t count, double bound) {
        for (std::size_t i = 0; i < count; ++i) {
            params[offset + i] = static_cast<float>((2.0 * gen.uniform01() - 1.0) * bound);
        }
    };
    std::fill(params.begin(), params.end(), 0.0F);
    if (layout.hidden > 0) {
        fill_uniform(layout.w1_offset, layout.hidden * layout.inputs,
                     std::sqrt(6.0 / static_cast<double>(layout.inputs)));
    }
    fill_uniform(layout.w2_offset, layout.classes * layout.fan_in(),
                 std::sqrt(6.0 / static_cast<double>(layout.fan_in() + layout.classes)));
}

/// Scratch memory for one forward/backward pass, reused between steps so that a step does
/// not allocate its activations. It grows (never shrinks) to the largest layout and batch
/// seen. (Eigen's matrix products still take their packing buffers, a few hundred KB, from
/// malloc on every product; that costs little next to the products themselves.)
struct workspace {
    std::vector<float> hidden;    ///< hidden x batch: relu activations h
    std::vector<float> d_hidden;  ///< hidden x batch: dloss/dh, then dloss/d(pre-activation)
    std::vector<float> logits;    ///< classes x batch: logits, then probabilities, then dlogits

    /// Makes room for `batch` examples of `layout`.
    void reserve(const mlp_layout& layout, std::size_t batch) {
        grow(hidden, layout.hidden * batch);
        grow(d_hidden, layout.hidden * batch);
        grow(logits, layout.classes * batch);
    }

private:
    static void grow(std::vector<float>& buffer, std::size_t size) {
        if (buffer.size() < size) buffer.resize(size);
    }
};

// ---------------------------------------------------------------------------------------------
// Layers: forward/backward pairs. B is the batch size; activations have one example per column.
// Backward functions overwrite (do not accumulate into) their gradient outputs.
// ---------------------------------------------------------------------------------------------

/// Column-major matrix view over mutable memory.
using col_map = Eigen::Map<col_matrix>;

/// Column-major matrix view over read-only memory.
using const_col_map = Eigen::Map<const col_matrix>;

/// Linear layer forward: y = W x + b.
///   w: out x in, b: out, x: in x B, y: out x B.
inline void linear_forward(const map_of<row_matrix, true>& w,
                           const map_of<Eigen::VectorXf, true>& b, const const_col_map& x,
                           col_map& y) {
    y.noalias() = w * x;
    y.colwise() += b;
}

/// Linear layer backward: dW = dy x^T, db = sum over the batch of dy, and dx = W^T dy when
/// `dx` is not null (skip it for the first layer).
///   w: out x in, x: in x B, dy: out x B, dw: out x in, db: out, dx: in x B.
inline void linear_backward(const map_of<row_matrix, true>& w, const const_col_map& x,
                            const const_col_map& dy, map_of<row_matrix, false>& dw,
                            map_of<Eigen::VectorXf, false>& db, float* dx) {
    dw.noalias() = dy * x.transpose();
    db.noalias() = dy.rowwise().sum();
    if (dx != nullptr) {
        col_map dx_map(dx, x.rows(), x.cols());
        dx_map.noalias() = w.transpose() * dy;
    }
}

/// ReLU forward, in place: h = max(z, 0).
///   z -> h: n x B.
inline void relu_forward(col_map& z) { z = z.cwiseMax(0.0F); }

/// ReLU backward, in place: dz = dh where h > 0, else 0 (h > 0 exactly where z > 0).
///   h: n x B (forward output), dh -> dz: n x B.
inline void relu_backward(const const_col_map& h, col_map& dh) {
    dh.array() = (h.array() > 0.0F).select(dh.array(), 0.0F);
}

/// Softmax cross-entropy forward, in place: turns each column of logits into probabilities
/// and returns the mean over the batch of -log p[label]. Throws invalid_argument_error for a
/// label >= classes.
///   logits -> probs: classes x B, labels: B.
inline double softmax_cross_entropy_forward(col_map& logits, const std::uint8_t* labels) {
    const Eigen::Index classes = logits.rows();
    const Eigen::Index batch = logits.cols();
    double total = 0.0;
    for (Eigen::Index j = 0; j < batch; ++j) {
        const std::uint8_t label = labels[j];
        if (label >= classes) {
            throw invalid_argument_error(swarmsgd::examples::concat(
                "softmax_cross_entropy: label ", unsigned{label}, " of example ", j,
                " is not below the class count ", classes));
        }
        float* column = logits.col(j).data();
        const float max = *std::max_element(column, column + classes);
        const float target = column[label] - max;
        float sum = 0.0F;
        for (Eigen::Index c = 0; c < classes; ++c) {
            column[c] = std::exp(column[c] - max);
            sum += column[c];
        }
        // -log p[label] = log(sum of exp(logit - max)) - (logit[label] - max); sum >= 1.
        total += std::log(static_cast<double>(sum)) - static_cast<double>(target);
        const float inv = 1.0F / sum;
        for (Eigen::Index c = 0; c < classes; ++c) column[c] *= inv;
    }
    return total / static_cast<double>(batch);
}

/// Softmax cross-entropy backward, in place: gradient of the MEAN loss w.r.t. the logits,
/// dlogits = (probs - onehot(label)) / B.
///   probs -> dlogits: classes x B, labels: B.
inline void softmax_cross_entropy_backward(col_map& probs, const std::uint8_t* labels) {
    const Eigen::Index batch = probs.cols();
    for (Eigen::Index j = 0; j < batch; ++j) probs(labels[j], j) -= 1.0F;
    probs *= 1.0F / static_cast<float>(batch);
}

// ---------------------------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------------------------

namespace detail {

/// Checks the arguments shared by forward and loss_and_gradient.
inline void check_batch(const mlp_layout& layout, std::span<const float> params,
                        const float* images, const std::uint8_t* labels, std::size_t batch,
                        const char* what) {
    layout.check_size(params.size(), what);
    swarmsgd::examples::require<invalid_argument_error>(batch > 0, what,
                                                        ": the batch must not be empty");
    swarmsgd::examples::require<invalid_argument_error>(images != nullptr && labels != nullptr,
                                                        what, ": images and labels must be set");
}

}  // namespace detail

/// Forward pass only: returns the mean cross-entropy of the batch and leaves the class
/// probabilities in ws.logits (classes x batch, column-major).
///   images: batch x inputs row-major (= inputs x batch column-major), labels: batch.
/// Throws size_mismatch_error on a wrong buffer size, invalid_argument_error on an empty
/// batch or a label >= classes.
inline float forward(const mlp_layout& layout, std::span<const float> params, const float* images,
                     const std::uint8_t* labels, std::size_t batch, workspace& ws) {
    detail::check_batch(layout, params, images, labels, batch, "forward");
    ws.reserve(layout, batch);
    const auto p = layout.const_view(params);
    const auto b = mlp_layout::eigen_index(batch);
    const const_col_map x(images, mlp_layout::eigen_index(layout.inputs), b);
    col_map logits(ws.logits.data(), mlp_layout::eigen_index(layout.classes), b);
    if (layout.hidden > 0) {
        col_map h(ws.hidden.data(), mlp_layout::eigen_index(layout.hidden), b);
        linear_forward(p.w1, p.b1, x, h);  // (hidden x inputs)(inputs x B) -> hidden x B
        relu_forward(h);
        const const_col_map h_in(ws.hidden.data(), h.rows(), b);
        linear_forward(p.w2, p.b2, h_in, logits);  // (classes x hidden)(hidden x B)
    } else {
        linear_forward(p.w2, p.b2, x, logits);  // (classes x inputs)(inputs x B)
    }
    return static_cast<float>(softmax_cross_entropy_forward(logits, labels));
}

/// Forward and backward pass: returns the mean cross-entropy of the batch and writes the
/// gradient of that mean loss w.r.t. every parameter into `grad` (overwriting it; same layout
/// as `params`).
///   images: batch x inputs row-major (= inputs x batch column-major), labels: batch.
/// Throws as forward() does, and size_mismatch_error if grad has the wrong size.
inline float loss_and_gradient(const mlp_layout& layout, std::span<const float> params,
                               const float* images, const std::uint8_t* labels, std::size_t batch,
                               std::span<float> grad, workspace& ws) {
    layout.check_size(grad.size(), "loss_and_gradient (gradient)");
    const float loss = forward(layout, params, images, labels, batch, ws);
    const auto p = layout.const_view(params);
    auto g = layout.view(grad);
    const auto b = mlp_layout::eigen_index(batch);
    const auto classes = mlp_layout::eigen_index(layout.classes);
    const auto hidden = mlp_layout::eigen_index(layout.hidden);
    const const_col_map x(images, mlp_layout::eigen_index(layout.inputs), b);

    col_map dlogits(ws.logits.data(), classes, b);
    softmax_cross_entropy_backward(dlogits, labels);  // classes x B
    const const_col_map dlogits_in(ws.logits.data(), classes, b);
    if (layout.hidden > 0) {
        const const_col_map h(ws.hidden.data(), hidden, b);
        // dW2: classes x hidden, db2: classes, dh: hidden x B.
        linear_backward(p.w2, h, dlogits_in, g.w2, g.b2, ws.d_hidden.data());
        col_map dh(ws.d_hidden.data(), hidden, b);
        relu_backward(h, dh);  // dh -> dz1: hidden x B
        const const_col_map dz(ws.d_hidden.data(), hidden, b);
        // dW1: hidden x inputs, db1: hidden; no gradient w.r.t. the images.
        linear_backward(p.w1, x, dz, g.w1, g.b1, nullptr);
    } else {
        linear_backward(p.w2, x, dlogits_in, g.w2, g.b2, nullptr);  // dW: classes x inputs
    }
    return loss;
}

/// Loss and accuracy of a model on a data set.
struct evaluation {
    double loss = 0.0;        ///< mean cross-entropy
    double accuracy = 0.0;    ///< fraction of examples whose most probable class is the label
    std::size_t correct = 0;  ///< examples classified correctly
    std::size_t count = 0;    ///< examples evaluated
};

/// Evaluates the model on all of `set`, `chunk` examples at a time (one workspace allocation
/// per call). Ties in the probabilities go to the lowest class. Throws size_mismatch_error
/// if the images do not have `layout.inputs` pixels or set.labels.size() != set.count, and
/// invalid_argument_error if the set is empty or chunk is 0.
[[nodiscard]] inline evaluation evaluate(const mlp_layout& layout, std::span<const float> params,
                                         const image_set& set, std::size_t chunk = 1024) {
    swarmsgd::examples::require<invalid_argument_error>(set.count > 0 && chunk > 0,
                                                        "evaluate: empty set or chunk size 0");
    swarmsgd::examples::require<size_mismatch_error>(
        set.pixels_per_image() == layout.inputs, "evaluate: images have ", set.rows, " x ",
        set.cols, " = ", set.pixels_per_image(), " pixels but the model has ", layout.inputs,
        " inputs");
    swarmsgd::examples::require<size_mismatch_error>(
        set.labels.size() == set.count && set.pixels.size() == set.count * layout.inputs,
        "evaluate: set of ", set.count, " images has ", set.labels.size(), " labels and ",
        set.pixels.size(), " pixels");
    workspace ws;
    evaluation result;
    double loss_sum = 0.0;
    for (std::size_t first = 0; first < set.count; first += chunk) {
        const std::size_t n = std::min(chunk, set.count - first);
        const float loss =
            forward(layout, params, set.image(first), set.labels.data() + first, n, ws);
        loss_sum += static_cast<double>(loss) * static_cast<double>(n);
        for (std::size_t j = 0; j < n; ++j) {
            const float* probs = ws.logits.data() + j * layout.classes;
            const auto best = std::max_element(probs, probs + layout.classes) - probs;
            if (static_cast<std::size_t>(best) == set.labels[first + j]) ++result.correct;
        }
    }
    result.count = set.count;
    result.loss = loss_sum / static_cast<double>(set.count);
    result.accuracy = static_cast<double>(result.correct) / static_cast<double>(set.count);
    return result;
}

/// Fraction of `set` classified correctly (see evaluate()).
[[nodiscard]] inline double accuracy(const mlp_layout& layout, std::span<const float> params,
                                     const image_set& set) {
    return evaluate(layout, params, set).accuracy;
}

}  // namespace swarmsgd::examples
