#pragma once
/// \file baselines/baseline_memory.hpp
/// Where a baseline node (baselines/) touches its model (namespace swarmsgd::detail, not API).
/// The baselines' engines (the ring allreduce, D-PSGD's mixing) and their quantizers work on
/// flat host buffers, the communicators' memory; the model and its optimizer stay in the
/// model's own memory system. baseline_memory is the seam between the two:
/// - `optimizer_type`: the node's SGD, in the model's system;
/// - `load(model, host)`: the model's values into a host buffer;
/// - `store(host, model)`: host values into the model;
/// - `add(host, model)`: model += host values;
/// - `step(optimizer, model, host_gradient)`: one optimizer step with a host gradient.
///
/// Host models (std::vector, Eigen, spans, lists of them) are their own host buffers: the
/// specialization here copies nothing it does not have to. The Thrust back end
/// (thrust/baseline_memory.hpp, included by <swarmsgd/thrust.hpp>) specializes it for system
/// models: it stages through host memory, one model-sized copy each way per exchange
/// (docs/baselines.md, "Device models").

#include <cstddef>
#include <span>

#include "../model.hpp"
#include "../sgd.hpp"

namespace swarmsgd::detail {

/// The model access of the baselines for a model in memory system `System` (specialized per
/// system: host_memory here, Thrust systems in thrust/baseline_memory.hpp).
template <class Model, class System = model_system_t<Model>>
struct baseline_memory;

/// Host models: the optimizer and the copies run on the model directly.
template <class Model>
struct baseline_memory<Model, host_memory> {
    using value_type = model_value_t<Model>;  ///< float or double
    using optimizer_type = sgd<value_type>;   ///< the node's SGD

    explicit baseline_memory(std::size_t /*size*/) {}

    /// out = the model, flat (gather's size check and message).
    void load(const Model& m, std::span<value_type> out) { gather(m, out); }
    /// The model = in.
    void store(std::span<const value_type> in, Model& m) { scatter(in, m); }
    /// The model += d, element by element.
    void add(std::span<const value_type> d, Model& m) {
        for_each_part(m, [&](std::span<value_type> x, std::size_t offset) {
            const value_type* p = d.data() + offset;
            for (std::size_t k = 0; k < x.size(); ++k) x[k] += p[k];
        });
    }
    /// One optimizer step with the (checked) gradient `grad`.
    void step(optimizer_type& optimizer, Model& m, std::span<const value_type> grad) {
        optimizer.step(m, grad);
    }
};

}  // namespace swarmsgd::detail
