#pragma once
/// \file resnet_problem.hpp
/// Node i's objective for run_in_process (swarmsgd::problem_for): the ResNet's mean
/// cross-entropy on mini-batches of node i's own shard, plus coupled weight decay on the
/// trainable parameters.

#include <swarmsgd/errors.hpp>
#include <swarmsgd/random.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "../data/batch_sampler.hpp"
#include "../data/image_dataset.hpp"
#include "resnet.hpp"

namespace swarmsgd::examples::resnet {

/// One node's network workspace, batch sampler and buffers.
struct node_trainer {
    /// A network of `config` for batches of `batch` images of `shard`.
    node_trainer(const resnet_config& config, int batch, batch_sampler sampler, float weight_decay)
        : net(config, batch),
          sampler(std::move(sampler)),
          batch(batch),
          weight_decay(weight_decay),
          images(static_cast<std::size_t>(batch) * this->sampler.data().image_bytes()),
          labels(static_cast<std::size_t>(batch)) {}

    /// One mini-batch: writes the gradient of the loss (+ weight decay) at `params` into
    /// `grad`, updates the BatchNorm running statistics inside `params`, returns the loss.
    double step(std::span<float> params, std::span<float> grad, rng& random) {
        sampler.next(random, batch, images.data(), labels.data());
        const float loss = net.train_step(params, images.data(), labels.data(), batch, grad);
        if (weight_decay > 0) net.add_weight_decay(params, grad, weight_decay);
        return loss;
    }

    resnet net;
    batch_sampler sampler;
    int batch;
    float weight_decay;
    std::vector<float> images;
    std::vector<std::int32_t> labels;
};

/// The problem of run_in_process: node i trains on shard i. The model is the parameter buffer;
/// the forward pass in training mode updates the BatchNorm running statistics stored in it,
/// so gradient() writes into node i's own model. That is safe: run_in_process calls it from
/// node i's thread, the only thread that ever changes node i's model (its partners' averaging
/// halves are applied by this thread too), between two of the node's local steps.
struct resnet_problem {
    /// One node_trainer per shard.
    resnet_problem(const resnet_config& config, int batch, const image_dataset& train,
                   const channel_normalization& norm, std::size_t nodes, bool augment,
                   float weight_decay, std::uint64_t seed) {
        for (std::size_t i = 0; i < nodes; ++i)
            trainers.push_back(std::make_unique<node_trainer>(
                config, batch, batch_sampler(node_shard(train, i, nodes, seed), norm, augment),
                weight_decay));
    }

    /// swarmsgd::problem_for: the stochastic gradient of node `node` at its model `x`.
    double gradient(std::size_t node, const std::vector<float>& x, std::span<float> grad,
                    rng& random) {
        // x is node `node`'s own model (see the class comment): the BatchNorm running
        // statistics in it are updated in place.
        auto& model = const_cast<std::vector<float>&>(x);
        return trainers[node]->step(std::span<float>(model), grad, random);
    }

    std::vector<std::unique_ptr<node_trainer>> trainers;
};

}  // namespace swarmsgd::examples::resnet
