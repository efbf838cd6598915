#pragma once
/// \file resnet.hpp
/// ResNet for CIFAR-sized images (He et al. 2016, section 4.2), in the spirit of llm.c: one
/// readable network whose every layer is a forward/backward pair (nn/*.hpp), and whose
/// parameters AND batch-norm running statistics live in ONE contiguous float buffer owned by
/// the caller, so Swarm SGD averages, quantizes and sends the whole model as one array.
///
/// Architecture, depth = 6k + 2 (ResNet-20: k = 3, 272,474 trainable parameters), w = base_width:
///     conv3x3(in_channels -> w) - BN - ReLU                         [w][B][S][S], S = image_size
///     stage 1: k basic blocks, w channels, stride 1                 [w][B][S][S]
///     stage 2: k basic blocks, 2w channels, first stride 2          [2w][B][S2][S2]
///     stage 3: k basic blocks, 4w channels, first stride 2          [4w][B][S4][S4]
///     global average pooling - fully connected (4w -> classes)      [B][classes]
/// A basic block: out = relu(BN(conv3x3(relu(BN(conv3x3(x))))) + shortcut(x)); the shortcut
/// is the identity, or a projection conv1x1(stride 2) - BN where the shape changes ("option B").
/// Convolutions have no bias. Padding is kernel / 2.
///
/// Buffer layout (parameter_count() floats), PyTorch's order so that fixtures compare 1:1:
///     [ trainable: for each module in order (stem, blocks, fc), its parameters in the order of
///       torch's named_parameters(): conv weight [out][in][kh][kw]; BN weight (gamma) [C],
///       BN bias (beta) [C]; in a block conv1, bn1, conv2, bn2, then shortcut conv, shortcut bn;
///       fc weight [classes][4w], fc bias [classes]
///     | running statistics: for each BN in the same order, running_mean [C], running_var [C] ]
/// so trainable_count() is a prefix, and gradients are zero on the running-statistics tail.

#include "../common/checks.hpp"
#include "nn/batch_norm.hpp"
#include "nn/common.hpp"
#include "nn/conv2d.hpp"
#include "nn/global_avg_pool.hpp"
#include "nn/linear.hpp"
#include "nn/relu.hpp"
#include "nn/softmax_cross_entropy.hpp"

#include <swarmsgd/errors.hpp>
#include <swarmsgd/random.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <span>
#include <vector>

namespace swarmsgd::examples::resnet {

/// Shape of a ResNet.
struct resnet_config {
    int depth = 20;       ///< 6k+2, k >= 1 (8, 14, 20, 32, 44, 56, ...)
    int in_channels = 3;  ///< 3 for CIFAR, 1 for Fashion-MNIST
    int image_size = 32;  ///< height = width (32 CIFAR, 28 Fashion-MNIST)
    int classes = 10;     ///< outputs of the classifier
    int base_width = 16;  ///< channels of stage 1 (16, 32, 64 for the three stages)

    /// Basic blocks per stage, k = (depth - 2) / 6.
    [[nodiscard]] int blocks_per_stage() const noexcept { return (depth - 2) / 6; }

    /// Throws swarmsgd::invalid_argument_error naming the bad value.
    void validate() const {
        using swarmsgd::examples::require;
        require<invalid_argument_error>(depth >= 8 && depth <= 1202 && (depth - 2) % 6 == 0,
                                        "resnet_config: depth must be 6k+2 with k >= 1 (8, 14, "
                                        "20, 32, ...) and at most 1202, got ",
                                        depth);
        require<invalid_argument_error>(in_channels >= 1 && in_channels <= 64,
                                        "resnet_config: in_channels must be 1 to 64, got ",
                                        in_channels);
        require<invalid_argument_error>(image_size >= 4 && image_size <= 1024,
                                        "resnet_config: image_size must be 4 to 1024, got ",
                                        image_size);
        require<invalid_argument_error>(classes >= 2 && classes <= 100000,
                                        "resnet_config: classes must be 2 to 100000, got ",
                                        classes);
        require<invalid_argument_error>(base_width >= 1 && base_width <= 256,
                                        "resnet_config: base_width must be 1 to 256, got ",
                                        base_width);
    }
};

/// The network in scalar type T (float for training; double for the gradient-check tests).
/// See resnet for the documentation of the members.
template <class T>
class basic_resnet {
public:
    /// Lays the network out and allocates the workspace for up to `max_batch` images. Throws
    /// invalid_argument_error on a bad config or max_batch < 1.
    basic_resnet(const resnet_config& c, int max_batch) : config_(c), max_batch_(max_batch) {
        config_.validate();
        swarmsgd::examples::require<invalid_argument_error>(
            max_batch >= 1 && max_batch <= (1 << 20), "resnet: max_batch must be 1 to 2^20, got ",
            max_batch);
        lay_out();
        allocate();
    }

    /// The configuration.
    [[nodiscard]] const resnet_config& config() const noexcept { return config_; }
    /// Largest batch train_step and predict accept.
    [[nodiscard]] int max_batch() const noexcept { return max_batch_; }
    /// Elements of the whole buffer (trainable + BN running statistics).
    [[nodiscard]] std::size_t parameter_count() const noexcept { return total_; }
    /// Elements that get gradients: the prefix [0, trainable_count()) of the buffer.
    [[nodiscard]] std::size_t trainable_count() const noexcept { return trainable_; }

    /// Threads the layers use (1 unless set_threads asked for more; always 1 without OpenMP).
    [[nodiscard]] int threads() const noexcept { return ws_.threads; }
    /// Uses `n` threads (OpenMP) inside train_step and predict; without OpenMP this is 1.
    /// Throws invalid_argument_error unless n >= 1.
    void set_threads(int n) {
        swarmsgd::examples::require<invalid_argument_error>(
            n >= 1 && n <= 1024, "resnet: threads must be 1 to 1024, got ", n);
        ws_.reserve(n, 0, 0);
        ws_.reserve(ws_.threads, max_col_, max_weights_);
    }

    /// He (kaiming-normal, fan_out, like torchvision's ResNet) init of the convolutions, BN
    /// gamma = 1, beta = 0, running mean 0, var 1, the fully connected layer as PyTorch's
    /// default (weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))). Deterministic for a seed.
    void initialize(std::span<T> params, std::uint64_t seed) const {
        check_size(params.size(), "initialize: params");
        rng gen(seed, 0);
        const auto uniform = [&](T bound) {
            return static_cast<T>((2.0 * gen.uniform01() - 1.0) * static_cast<double>(bound));
        };
        const auto normal = [&](double stddev) {      // Box-Muller, one value per pair
            const double u1 = 1.0 - gen.uniform01();  // (0, 1]
            const double u2 = gen.uniform01();
            return static_cast<T>(stddev * std::sqrt(-2.0 * std::log(u1)) *
                                  std::cos(2.0 * std::numbers::pi * u2));
        };
        for_each_unit([&](const unit& u) {
            const double fan_out =
                static_cast<double>(u.conv.out_channels) * u.conv.kernel * u.conv.kernel;
            const double stddev = std::sqrt(2.0 / fan_out);
            for (std::size_t i = 0; i < u.conv.weight_count(); ++i)
                params[u.weight + i] = normal(stddev);
            const auto ch = static_cast<std::size_t>(u.conv.out_channels);
            std::fill_n(params.begin() + idx(u.gamma), ch, T(1));
            std::fill_n(params.begin() + idx(u.beta), ch, T(0));
            std::fill_n(params.begin() + idx(u.running_mean), ch, T(0));
            std::fill_n(params.begin() + idx(u.running_var), ch, T(1));
        });
        const T bound = T(1) / std::sqrt(static_cast<T>(features()));
        for (std::size_t i = 0; i < fc_weight_count(); ++i) params[fc_w_ + i] = uniform(bound);
        for (int i = 0; i < config_.classes; ++i)
            params[fc_b_ + static_cast<std::size_t>(i)] = uniform(bound);
    }

    /// Forward + backward in training mode on `batch` NCHW images. Writes d(mean
    /// cross-entropy)/d(params) into grad (zero on the running statistics; no weight decay),
    /// updates the running statistics inside params, returns the mean loss. Throws
    /// size_mismatch_error / invalid_argument_error on bad sizes or labels, before touching
    /// params or grad.
    T train_step(std::span<T> params, const T* images, const std::int32_t* labels, int batch,
                 std::span<T> grad) {
        check_size(params.size(), "train_step: params");
        check_size(grad.size(), "train_step: grad");
        check_batch(batch, images, "train_step");
        swarmsgd::examples::require<invalid_argument_error>(labels != nullptr,
                                                            "train_step: labels is null");
        for (int b = 0; b < batch; ++b) {
            swarmsgd::examples::require<invalid_argument_error>(
                labels[b] >= 0 && labels[b] < config_.classes, "train_step: label ", labels[b],
                " of image ", b, " is outside [0, ", config_.classes, ")");
        }
        const std::size_t last_values =
            static_cast<std::size_t>(batch) * blocks_.back().b.conv.out_plane();
        swarmsgd::examples::require<invalid_argument_error>(
            last_values >= 2, "train_step: batch norm needs more than one value per channel; ",
            batch, " images of ", config_.image_size, "x", config_.image_size, " give ",
            last_values, " in the last stage");

        // Running statistics are staged and committed at the end (params change only on success).
        std::copy(params.begin() + idx(trainable_), params.end(), running_.begin());
        const T* p = params.data();
        to_cbhw(images, batch);  // [B][C][S][S] -> input_ [C][B][S][S]
        unit_forward_train(stem_, p, input_.data(), batch, {nullptr, true});  // [w][B][S][S]
        const T* x = stem_.y.data();
        for (auto& blk : blocks_) {  // [C][B][H][W] -> [C'][B][H'][W']
            unit_forward_train(blk.a, p, x, batch, {nullptr, true});
            const T* shortcut = x;
            if (blk.projection) {
                unit_forward_train(blk.shortcut, p, x, batch, {nullptr, false});
                shortcut = blk.shortcut.y.data();
            }
            unit_forward_train(blk.b, p, blk.a.y.data(), batch, {shortcut, true});
            x = blk.b.y.data();
        }
        const int c_last = blocks_.back().b.conv.out_channels;
        const std::size_t plane = blocks_.back().b.conv.out_plane();
        nn::global_avg_pool_forward(c_last, batch, plane, x, pooled_.data());  // [4w][B]
        nn::linear_forward(c_last, config_.classes, batch, p + fc_w_, p + fc_b_, pooled_.data(),
                           logits_.data());  // [B][classes]
        const T loss = nn::softmax_cross_entropy_forward(batch, config_.classes, logits_.data(),
                                                         labels, logits_.data());

        // Backward. logits_ holds the probabilities, then d(loss)/d(logits).
        T* g = grad.data();
        nn::softmax_cross_entropy_backward(batch, config_.classes, logits_.data(), labels,
                                           logits_.data());
        nn::linear_backward(c_last, config_.classes, batch, p + fc_w_, pooled_.data(),
                            logits_.data(), g + fc_w_, g + fc_b_, pooled_.data());
        T* d_out = grad_a_.data();    // d(loss)/d(output of the current block)
        T* d_other = grad_b_.data();  // the other ping-pong buffer
        nn::global_avg_pool_backward(c_last, batch, plane, pooled_.data(), d_out);
        for (std::size_t i = blocks_.size(); i-- > 0;) {
            block& blk = blocks_[i];
            const T* x_in = i == 0 ? stem_.y.data() : blocks_[i - 1].b.y.data();
            // relu after the residual add: d_out becomes d(sum), the gradient of both branches
            nn::relu_backward(blk.b.size(batch), blk.b.y.data(), d_out, d_out, ws_.threads);
            unit_backward(blk.b, p, g, blk.a.y.data(), d_out, tmp_a_.data(), nullptr, batch,
                          tmp_b_.data(), false);
            // tmp_b_ = d(output of a); fused relu, then conv a
            T* d_in = blk.projection ? d_other : d_out;  // identity: d(x) = d(sum) + conv path
            if (blk.projection) {
                unit_backward(blk.shortcut, p, g, x_in, d_out, tmp_a_.data(), nullptr, batch, d_in,
                              false);
            }
            unit_backward(blk.a, p, g, x_in, tmp_b_.data(), tmp_b_.data(), blk.a.y.data(), batch,
                          d_in, true);
            if (d_in != d_out) std::swap(d_out, d_other);
        }
        unit_backward(stem_, p, g, input_.data(), d_out, d_out, stem_.y.data(), batch, nullptr,
                      false);
        std::fill(grad.begin() + idx(trainable_), grad.end(), T(0));
        std::copy(running_.begin(), running_.end(), params.begin() + idx(trainable_));
        return loss;
    }

    /// Inference (BN with the running statistics): logits [batch][classes], row-major.
    void predict(std::span<const T> params, const T* images, int batch, T* logits) {
        check_size(params.size(), "predict: params");
        check_batch(batch, images, "predict");
        swarmsgd::examples::require<invalid_argument_error>(logits != nullptr,
                                                            "predict: logits is null");
        const T* p = params.data();
        to_cbhw(images, batch);
        unit_forward_eval(stem_, p, input_.data(), batch, {nullptr, true});
        const T* x = stem_.y.data();
        for (auto& blk : blocks_) {
            unit_forward_eval(blk.a, p, x, batch, {nullptr, true});
            const T* shortcut = x;
            if (blk.projection) {
                unit_forward_eval(blk.shortcut, p, x, batch, {nullptr, false});
                shortcut = blk.shortcut.y.data();
            }
            unit_forward_eval(blk.b, p, blk.a.y.data(), batch, {shortcut, true});
            x = blk.b.y.data();
        }
        const int c_last = blocks_.back().b.conv.out_channels;
        nn::global_avg_pool_forward(c_last, batch, blocks_.back().b.conv.out_plane(), x,
                                    pooled_.data());
        nn::linear_forward(c_last, config_.classes, batch, p + fc_w_, p + fc_b_, pooled_.data(),
                           logits);
    }

    /// grad += wd * params on the trainable elements only (coupled weight decay, PyTorch's).
    void add_weight_decay(std::span<const T> params, std::span<T> grad, T wd) const {
        check_size(params.size(), "add_weight_decay: params");
        check_size(grad.size(), "add_weight_decay: grad");
        nn::vector_map<T>(grad.data(), idx(trainable_)) +=
            wd * nn::const_vector_map<T>(params.data(), idx(trainable_));
    }

private:
    using index = Eigen::Index;
    template <class I>
    static constexpr index idx(I n) noexcept {
        return static_cast<index>(n);
    }

    /// A convolution followed by batch norm: where its tensors are in the buffer, and the
    /// activations it keeps for backward.
    struct unit {
        nn::conv2d_shape conv;
        std::size_t weight = 0, gamma = 0, beta = 0;    ///< trainable offsets
        std::size_t running_mean = 0, running_var = 0;  ///< offsets in the buffer
        std::vector<T> z;  ///< [C_out][B][out_h][out_w] conv output (BN input)
        std::vector<T> y;  ///< [C_out][B][out_h][out_w] output (after BN, add, ReLU)
        std::vector<T> mean, var, invstd;  ///< [C_out] batch statistics
        /// Values per channel of the output: B * out_h * out_w.
        [[nodiscard]] std::size_t values(int batch) const noexcept {
            return static_cast<std::size_t>(batch) * conv.out_plane();
        }
        /// Elements of the output tensor.
        [[nodiscard]] std::size_t size(int batch) const noexcept {
            return values(batch) * static_cast<std::size_t>(conv.out_channels);
        }
    };
    struct block {
        unit a, b;                ///< conv1-bn1(-relu), conv2-bn2(-add-relu)
        bool projection = false;  ///< shortcut is conv1x1-BN (else the identity)
        unit shortcut;
    };

    static constexpr T eps = T(1e-5);
    static constexpr T momentum = T(0.1);

    template <class F>
    void for_each_unit(F&& f) const {
        f(stem_);
        for (const auto& blk : blocks_) {
            f(blk.a);
            f(blk.b);
            if (blk.projection) f(blk.shortcut);
        }
    }
    template <class F>
    void for_each_unit(F&& f) {
        f(stem_);
        for (auto& blk : blocks_) {
            f(blk.a);
            f(blk.b);
            if (blk.projection) f(blk.shortcut);
        }
    }

    [[nodiscard]] int features() const noexcept { return blocks_.back().b.conv.out_channels; }
    [[nodiscard]] std::size_t fc_weight_count() const noexcept {
        return static_cast<std::size_t>(features()) * static_cast<std::size_t>(config_.classes);
    }

    void lay_out() {
        std::size_t offset = 0;
        const auto place = [&](unit& u, const nn::conv2d_shape& s) {
            u.conv = s;
            u.weight = offset;
            offset += s.weight_count();
            u.gamma = offset;
            offset += static_cast<std::size_t>(s.out_channels);
            u.beta = offset;
            offset += static_cast<std::size_t>(s.out_channels);
        };
        int size = config_.image_size;
        int channels = config_.base_width;
        place(stem_, nn::conv2d_shape::make(config_.in_channels, channels, 3, 1, size, size));
        int in = channels;
        for (int stage = 0; stage < 3; ++stage) {
            const int out = config_.base_width << stage;
            for (int i = 0; i < config_.blocks_per_stage(); ++i) {
                const int stride = (stage > 0 && i == 0) ? 2 : 1;
                block blk;
                place(blk.a, nn::conv2d_shape::make(in, out, 3, stride, size, size));
                const int out_size = blk.a.conv.out_h;
                place(blk.b, nn::conv2d_shape::make(out, out, 3, 1, out_size, out_size));
                blk.projection = stride != 1 || in != out;
                if (blk.projection)
                    place(blk.shortcut, nn::conv2d_shape::make(in, out, 1, stride, size, size));
                blocks_.push_back(std::move(blk));
                in = out;
                size = out_size;
            }
        }
        fc_w_ = offset;
        offset += fc_weight_count();
        fc_b_ = offset;
        offset += static_cast<std::size_t>(config_.classes);
        trainable_ = offset;
        for_each_unit([&](unit& u) {
            u.running_mean = offset;
            offset += static_cast<std::size_t>(u.conv.out_channels);
            u.running_var = offset;
            offset += static_cast<std::size_t>(u.conv.out_channels);
        });
        total_ = offset;
    }

    void allocate() {
        std::size_t largest = 0;
        for_each_unit([&](unit& u) {
            const std::size_t n = u.size(max_batch_);
            u.z.assign(n, T(0));
            u.y.assign(n, T(0));
            const auto ch = static_cast<std::size_t>(u.conv.out_channels);
            u.mean.assign(ch, T(0));
            u.var.assign(ch, T(0));
            u.invstd.assign(ch, T(0));
            largest = std::max(largest, n);
            max_col_ = std::max(max_col_, nn::conv2d_scratch_size(u.conv, max_batch_, ws_));
            max_weights_ = std::max(max_weights_, u.conv.weight_count());
        });
        for (const auto& blk : blocks_) {
            largest =
                std::max(largest, blk.a.conv.in_plane() * static_cast<std::size_t>(max_batch_) *
                                      static_cast<std::size_t>(blk.a.conv.in_channels));
        }
        input_.assign(stem_.conv.in_plane() * static_cast<std::size_t>(max_batch_) *
                          static_cast<std::size_t>(config_.in_channels),
                      T(0));
        for (auto* buffer : {&grad_a_, &grad_b_, &tmp_a_, &tmp_b_}) buffer->assign(largest, T(0));
        pooled_.assign(static_cast<std::size_t>(features()) * static_cast<std::size_t>(max_batch_),
                       T(0));
        logits_.assign(
            static_cast<std::size_t>(config_.classes) * static_cast<std::size_t>(max_batch_), T(0));
        running_.assign(total_ - trainable_, T(0));
        ws_.reserve(1, max_col_, max_weights_);
        ws_.weights.resize(max_weights_);
    }

    void check_size(std::size_t size, const char* what) const {
        swarmsgd::examples::require<size_mismatch_error>(
            size == total_, what, " holds ", size, " elements but the network (depth ",
            config_.depth, ", in_channels ", config_.in_channels, ", image_size ",
            config_.image_size, ", classes ", config_.classes, ", base_width ", config_.base_width,
            ") has ", total_);
    }
    void check_batch(int batch, const T* images, const char* what) const {
        swarmsgd::examples::require<invalid_argument_error>(batch >= 1 && batch <= max_batch_, what,
                                                            ": batch ", batch, " is outside [1, ",
                                                            max_batch_, "]");
        swarmsgd::examples::require<invalid_argument_error>(images != nullptr, what,
                                                            ": images is null");
    }

    /// NCHW images -> input_ [C][B][H][W].
    void to_cbhw(const T* images, int batch) {
        const std::size_t plane = stem_.conv.in_plane();
        const int channels = config_.in_channels;
        for (int b = 0; b < batch; ++b) {
            for (int c = 0; c < channels; ++c) {
                const T* src = images + (static_cast<std::size_t>(b) * channels + c) * plane;
                std::copy(src, src + plane,
                          input_.begin() + idx((static_cast<std::size_t>(c) * batch + b) * plane));
            }
        }
    }

    /// u.z = conv(x), u.y = epilogue(BN_train(u.z)); stages the running statistics in running_.
    void unit_forward_train(unit& u, const T* p, const T* x, int batch,
                            nn::batch_norm_epilogue<T> epilogue) {
        nn::conv2d_forward(u.conv, batch, p + u.weight, x, u.z.data(), ws_);
        const std::size_t n = u.values(batch);
        nn::batch_norm_forward_train(u.conv.out_channels, n, u.z.data(), p + u.gamma, p + u.beta,
                                     eps, epilogue, u.y.data(), u.mean.data(), u.var.data(),
                                     u.invstd.data(), ws_.threads);
        nn::batch_norm_update_running(u.conv.out_channels, n, u.mean.data(), u.var.data(), momentum,
                                      running_.data() + (u.running_mean - trainable_),
                                      running_.data() + (u.running_var - trainable_));
    }

    /// u.y = epilogue(BN_eval(conv(x))).
    void unit_forward_eval(unit& u, const T* p, const T* x, int batch,
                           nn::batch_norm_epilogue<T> epilogue) {
        nn::conv2d_forward(u.conv, batch, p + u.weight, x, u.y.data(), ws_);
        nn::batch_norm_forward_eval(u.conv.out_channels, u.values(batch), u.y.data(), p + u.gamma,
                                    p + u.beta, p + u.running_mean, p + u.running_var, eps,
                                    epilogue, u.y.data(), ws_.threads);
    }

    /// Backward through BN (and its fused ReLU when relu_out is u.y) and the convolution:
    /// dy = d(loss)/d(u's output before any residual add), d_conv (may alias dy) receives
    /// d(loss)/d(conv output); writes u's gradients into g and d(loss)/d(x) into dx (added when
    /// accumulate; skipped when dx is null).
    void unit_backward(unit& u, const T* p, T* g, const T* x, const T* dy, T* d_conv,
                       const T* relu_out, int batch, T* dx, bool accumulate) {
        nn::batch_norm_backward(u.conv.out_channels, u.values(batch), u.z.data(), p + u.gamma,
                                u.mean.data(), u.invstd.data(), relu_out, dy, d_conv, g + u.gamma,
                                g + u.beta, ws_.threads);
        nn::conv2d_backward(u.conv, batch, p + u.weight, x, d_conv, g + u.weight, dx, accumulate,
                            ws_);
    }

    resnet_config config_;
    int max_batch_;
    unit stem_;
    std::vector<block> blocks_;
    std::size_t fc_w_ = 0, fc_b_ = 0, trainable_ = 0, total_ = 0;
    std::size_t max_col_ = 0, max_weights_ = 0;
    std::vector<T> input_;            ///< [in_channels][B][S][S]
    std::vector<T> grad_a_, grad_b_;  ///< ping-pong d(loss)/d(block output)
    std::vector<T> tmp_a_, tmp_b_;    ///< d(conv outputs) inside a block
    std::vector<T> pooled_;           ///< [features][B], then its gradient
    std::vector<T> logits_;           ///< [B][classes]: logits, probabilities, d(logits)
    std::vector<T> running_;          ///< running statistics staged during a step
    nn::scratch<T> ws_;
};

/// ResNet-20-style network for one thread's training (see the file comment). The parameters
/// live outside, in one contiguous float buffer owned by the caller; the object holds the
/// architecture and the workspace (activations), so use one object per thread.
///   - parameter_count(): whole buffer (trainable + BN running statistics)
///   - trainable_count(): elements that get gradients (a prefix of the buffer)
///   - initialize(params, seed): He init (fan_out) of convs, BN 1/0, running 0/1, FC as PyTorch
///   - train_step(params, images, labels, batch, grad): forward + backward in training mode on
///     NCHW images; grad = d(mean cross-entropy)/d(params) (0 on running stats, no weight
///     decay); updates the running stats in params (momentum 0.1, unbiased var); returns the loss
///   - predict(params, images, batch, logits): inference, logits [batch][classes] row-major
///   - add_weight_decay(params, grad, wd): grad += wd * params on trainable elements only
///   - set_threads(n): OpenMP threads inside a step (default 1, the calling thread only)
class resnet : public basic_resnet<float> {
public:
    /// See basic_resnet::basic_resnet.
    resnet(const resnet_config& c, int max_batch) : basic_resnet<float>(c, max_batch) {}
};

}  // namespace swarmsgd::examples::resnet
