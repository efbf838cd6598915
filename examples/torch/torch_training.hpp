#pragma once
/// \file torch_training.hpp
/// What resnet_torch_swarm and resnet_torch_swarm_mpi share: one node's LibTorch training
/// state (its own torch::nn ResNet, its own torch::optim::SGD, its shard's batch sampler), the
/// evaluation of a flat model with a torch module, and the recipe of the Eigen example
/// (examples/resnet/train: the same command line, data, shards, schedule and node options),
/// except that the optimizer is LibTorch's and the node only averages
/// (swarmsgd::local_optimizer::external).

#include <swarmsgd/swarmsgd.hpp>
#include <swarmsgd/torch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../resnet/data/batch_sampler.hpp"
#include "../resnet/data/image_dataset.hpp"
#include "../resnet/data/normalization.hpp"
#include "../resnet/train/options.hpp"
#include "../resnet/train/training_setup.hpp"
#include "resnet_module.hpp"

namespace swarmsgd::examples::torch_resnet {

namespace rn = swarmsgd::examples::resnet;

/// A ResNet module for `config` (depth, input channels, classes, width).
[[nodiscard]] inline resnet make_module(const rn::resnet_config& config) {
    return resnet(config.depth, config.in_channels, config.classes, config.base_width);
}

/// torchvision's initialization, which the Eigen network uses too: He normal (fan_out) for the
/// convolutions, BatchNorm gamma 1 and beta 0, the fully connected layer as LibTorch's default.
/// Deterministic for a seed.
inline void initialize(resnet& net, std::uint64_t seed) {
    torch::manual_seed(seed);
    torch::NoGradGuard no_grad;
    for (auto& m : net->modules(/*include_self=*/false)) {
        if (auto* conv = m->as<torch::nn::Conv2d>())
            torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
        else if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
            torch::nn::init::ones_(bn->weight);
            torch::nn::init::zeros_(bn->bias);
        }
    }
}

/// The node options of the Eigen example (rn::make_swarm_options: mode, H, timeouts, seed)
/// with the step left to LibTorch's optimizer.
[[nodiscard]] inline swarm_options make_node_options(const rn::run_options& o,
                                                     const rn::training_plan& plan) {
    swarm_options s = rn::make_swarm_options(o, plan);
    s.optimizer = local_optimizer::external;
    s.sgd = {};
    return s;
}

/// One node: its module, the swarmsgd view of the module's tensors (parameters and BatchNorm
/// running statistics; no copy), its optimizer and its shard's batches.
struct node_trainer {
    /// A node of `config` starting from the flat model `initial` (torch_model order).
    node_trainer(const rn::resnet_config& config, const rn::run_options& o,
                 rn::batch_sampler sampler, std::span<const float> initial)
        : net(make_module(config)),
          model(*net),
          optimizer(
              net->parameters(),
              torch::optim::SGDOptions(o.lr).momentum(o.momentum).weight_decay(o.weight_decay)),
          sampler(std::move(sampler)),
          batch(o.batch),
          images(static_cast<std::size_t>(o.batch) * this->sampler.data().image_bytes()),
          labels(static_cast<std::size_t>(o.batch)) {
        scatter(initial, model);
    }

    /// One local step at learning rate `lr`: a mini-batch of the shard, forward, backward,
    /// the optimizer's step. Returns the loss.
    double step(double lr, rng& random) {
        for (auto& group : optimizer.param_groups())
            static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
        sampler.next(random, batch, images.data(), labels.data());
        const auto& d = sampler.data();
        const auto x = torch::from_blob(images.data(), {batch, d.channels, d.height, d.width});
        const auto y = torch::from_blob(labels.data(), {batch}, torch::kInt32).to(torch::kLong);
        optimizer.zero_grad();
        const auto loss = torch::nn::functional::cross_entropy(net->forward(x), y);
        loss.backward();
        optimizer.step();
        return loss.item<double>();
    }

    /// The model, flat (torch_model order), into `out`.
    void copy_model(std::span<float> out) const { gather(model, out); }

    resnet net;
    torch_model<float> model;
    torch::optim::SGD optimizer;
    rn::batch_sampler sampler;
    int batch;
    std::vector<float> images;
    std::vector<std::int32_t> labels;
};

/// Evaluates flat models with a module of its own (one per evaluating thread).
class evaluator {
public:
    explicit evaluator(const rn::resnet_config& config)
        : net_(make_module(config)), model_(*net_) {}

    /// Number of parameters and running statistics of the module (the flat model's size).
    [[nodiscard]] std::size_t size() const noexcept { return model_.elements(); }

    /// Fraction of `set` that the flat model `params` classifies correctly (eval mode: the
    /// running statistics normalize), `chunk` images at a time.
    double accuracy(std::span<const float> params, const rn::image_dataset& set,
                    const rn::channel_normalization& norm, std::size_t chunk = 500) {
        scatter(params, model_);
        net_->eval();
        torch::NoGradGuard no_grad;
        const std::size_t stride = set.image_bytes();
        std::vector<float> images(chunk * stride);
        std::size_t correct = 0;
        for (std::size_t begin = 0; begin < set.count(); begin += chunk) {
            const std::size_t n = std::min(chunk, set.count() - begin);
            for (std::size_t b = 0; b < n; ++b)
                rn::normalize_image(set, set.image(begin + b), norm, images.data() + b * stride);
            const auto x = torch::from_blob(
                images.data(), {static_cast<std::int64_t>(n), set.channels, set.height, set.width});
            const auto best = net_->forward(x).argmax(1);
            const auto* label = best.data_ptr<std::int64_t>();
            for (std::size_t b = 0; b < n; ++b)
                if (label[b] == set.labels[begin + b]) ++correct;
        }
        return static_cast<double>(correct) / static_cast<double>(set.count());
    }

private:
    resnet net_;
    torch_model<float> model_;
};

}  // namespace swarmsgd::examples::torch_resnet
