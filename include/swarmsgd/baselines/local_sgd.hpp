#pragma once
/// \file baselines/local_sgd.hpp
/// Local SGD (periodic model averaging): every node takes H local SGD steps on its own model,
/// then all nodes average their MODELS (ring_allreduce, or the communicator's native allreduce)
/// and continue from the common average. With the identity quantizer the average preserves the
/// sum of the models to rounding, and every node ends the averaging with the same model bit
/// for bit (also with a quantizer: the ring's reconstruction rule).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "../model.hpp"
#include "../node_stats.hpp"
#include "../sgd.hpp"
#include "../stepping_node.hpp"
#include "../topology.hpp"
#include "collective_node.hpp"
#include "common.hpp"
#include "ring_allreduce.hpp"

namespace swarmsgd {

/// Options of a local SGD node.
struct local_sgd_options {
    sgd_options sgd;  ///< the local optimizer (its state is each node's own)
    /// H: local steps between two global averages (>= 1; 1 averages the models every step).
    std::size_t period = 8;
    /// step() throws peer_timeout_error when the awaited peer (or the native allreduce) has not
    /// delivered within this time.
    std::chrono::milliseconds timeout{60'000};
    /// finish() throws peer_timeout_error when the other nodes are not all done by then.
    std::chrono::milliseconds shutdown_timeout{300'000};
    /// Use the communicator's native allreduce (MPI_Iallreduce) when it has one and the
    /// quantizer is identity; false forces the ring of point-to-point messages.
    bool use_native_collective = true;
    /// Seed of the node's random stream (stochastic rounding of the quantizer; stream = rank).
    std::uint64_t seed = 0;

    /// Throws invalid_argument_error naming the offending value.
    void validate() const {
        sgd.validate();
        detail::require<invalid_argument_error>(
            period >= 1, "local_sgd_options: period = ", period,
            "; at least 1 local step must separate two averages");
        detail::require<invalid_argument_error>(timeout.count() > 0,
                                                "local_sgd_options: timeout = ", timeout.count(),
                                                " ms; it must be > 0");
        detail::require<invalid_argument_error>(shutdown_timeout.count() > 0,
                                                "local_sgd_options: shutdown_timeout = ",
                                                shutdown_timeout.count(), " ms; it must be > 0");
    }
};

/// One node of local SGD. `Model` is a model (a tensor or a list of tensors; host, or Thrust device
/// vectors with <swarmsgd/thrust.hpp>, staged through host memory), `Comm` a communicator, `Quant`
/// a quantizer for the models on the wire (identity by default). Satisfies stepping_node
/// (begin_step / progress), plus blocking step() and finish(); see detail::collective_node for the
/// members it shares with allreduce_sgd_node. Keeps pointers to the model, the communicator and the
/// topology (which must outlive it; the topology only fixes n: the ring runs over the ranks). Every
/// node must take the same number of steps; finish() does not average, so a run that should end at
/// consensus takes a multiple of H steps.
template <class Model, class Comm, class Quant = typename detail::default_quantizer<Model>::type>
class local_sgd_node : public detail::collective_node<local_sgd_node<Model, Comm, Quant>, Model,
                                                      Comm, Quant, local_sgd_options> {
    using base = detail::collective_node<local_sgd_node, Model, Comm, Quant, local_sgd_options>;
    friend base;

public:
    using typename base::value_type;

    /// Name of the algorithm, for messages.
    static constexpr const char* algorithm = "local SGD";

    /// Binds a node to its model, communicator and topology. Validates the options and that
    /// the topology has as many nodes as the communicator; a communicator that can (MPI)
    /// checks that every node's model has the same size (collective).
    local_sgd_node(Model& model, Comm& comm, const topology& graph,
                   const local_sgd_options& options, Quant quantizer = Quant{})
        : base(model, comm, graph, options, std::move(quantizer)) {}

private:
    // begin_step: a local step; after every H-th, the average of the models starts. A model
    // that is not finite is refused (non_finite_error, nothing sent).
    void start_step(std::span<const value_type> grad) {
        this->optimizer_step(grad);
        const auto& s = this->stats_;
        if (s.local_steps % this->options_.period != 0) return;
        auto& b = this->buffer_;
        this->memory_.load(*this->model_, std::span<value_type>(b));
        if (const auto k = detail::first_non_finite(b.data(), b.size()); k != b.size())
            throw non_finite_error(detail::concat(
                "node ", this->rank(), ": model element ", k, " is ", b[k], " after step ",
                s.local_steps, "; refusing to send a non-finite model to the average"));
        this->start_average();
    }

    // The average is there: it becomes the model.
    void complete() {
        this->memory_.store(std::span<const value_type>(this->buffer_), *this->model_);
    }
};

}  // namespace swarmsgd
