#pragma once
/// \file resnet_module.hpp
/// ResNet for CIFAR-sized images (He et al. 2016, section 4.2) written with torch::nn: the same
/// network as examples/resnet/resnet.hpp and examples/resnet/tools/make_torch_fixtures.py
/// (projection shortcuts, "option B"; no convolution bias; BatchNorm eps 1e-5, momentum 0.1).
/// Modules are registered in the same order, so a swarmsgd::torch_model of it (parameters,
/// then each BatchNorm's running mean and variance) has exactly the Eigen network's flat
/// buffer layout: the examples can start from the same initial model and compare runs.

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace swarmsgd::examples::torch_resnet {

/// relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); shortcut = conv1x1-BN on a shape change.
struct basic_blockImpl : torch::nn::Module {
    basic_blockImpl(std::int64_t in, std::int64_t out, std::int64_t stride)
        : conv1(register_module(
              "conv1",
              torch::nn::Conv2d(
                  torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)))),
          bn1(register_module("bn1", torch::nn::BatchNorm2d(out))),
          conv2(register_module(
              "conv2",
              torch::nn::Conv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1).bias(false)))),
          bn2(register_module("bn2", torch::nn::BatchNorm2d(out))) {
        if (stride != 1 || in != out) {
            shortcut = register_module(
                "shortcut",
                torch::nn::Sequential(
                    torch::nn::Conv2d(
                        torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)),
                    torch::nn::BatchNorm2d(out)));
        }
    }

    torch::Tensor forward(const torch::Tensor& x) {
        auto y = bn2(conv2(torch::relu(bn1(conv1(x)))));
        return torch::relu(y + (shortcut.is_empty() ? x : shortcut->forward(x)));
    }

    torch::nn::Conv2d conv1;
    torch::nn::BatchNorm2d bn1;
    torch::nn::Conv2d conv2;
    torch::nn::BatchNorm2d bn2;
    torch::nn::Sequential shortcut{nullptr};
};
TORCH_MODULE(basic_block);

/// CIFAR ResNet, depth 6k+2: conv3x3-BN-ReLU, 3 stages of k blocks (w, 2w, 4w channels; the
/// first block of stages 2 and 3 has stride 2), global average pooling, fully connected.
struct resnetImpl : torch::nn::Module {
    resnetImpl(int depth, std::int64_t in_channels, std::int64_t classes, std::int64_t width) {
        TORCH_CHECK(depth >= 8 && (depth - 2) % 6 == 0, "resnet: depth ", depth, " is not 6k+2");
        const int k = (depth - 2) / 6;
        conv1 = register_module(
            "conv1", torch::nn::Conv2d(
                         torch::nn::Conv2dOptions(in_channels, width, 3).padding(1).bias(false)));
        bn1 = register_module("bn1", torch::nn::BatchNorm2d(width));
        std::int64_t in = width;
        for (int stage = 0; stage < 3; ++stage) {
            torch::nn::Sequential blocks;
            const std::int64_t out = width << stage;
            for (int i = 0; i < k; ++i) {
                blocks->push_back(basic_block(in, out, stage > 0 && i == 0 ? 2 : 1));
                in = out;
            }
            layers[stage] = register_module("layer" + std::to_string(stage + 1), blocks);
        }
        fc = register_module("fc", torch::nn::Linear(in, classes));
    }

    /// Logits [batch][classes] of images [batch][channels][size][size].
    torch::Tensor forward(const torch::Tensor& x) {
        auto y = torch::relu(bn1(conv1(x)));
        for (auto& stage : layers) y = stage->forward(y);
        return fc(torch::adaptive_avg_pool2d(y, {1, 1}).flatten(1));
    }

    torch::nn::Conv2d conv1{nullptr};
    torch::nn::BatchNorm2d bn1{nullptr};
    torch::nn::Sequential layers[3] = {torch::nn::Sequential{nullptr},
                                       torch::nn::Sequential{nullptr},
                                       torch::nn::Sequential{nullptr}};
    torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(resnet);

}  // namespace swarmsgd::examples::torch_resnet
