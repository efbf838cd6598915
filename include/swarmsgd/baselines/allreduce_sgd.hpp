#pragma once
/// \file baselines/allreduce_sgd.hpp
/// Allreduce SGD: synchronous data-parallel SGD (large-batch SGD). Every step, the nodes
/// average their gradients over all nodes (ring_allreduce, or the communicator's native
/// allreduce), then every node applies the same SGD step with the same averaged gradient, so
/// models that start equal stay equal bit for bit.

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

/// Options of an allreduce SGD node.
struct allreduce_sgd_options {
    sgd_options sgd;  ///< the optimizer every node applies to the averaged gradient
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
            timeout.count() > 0, "allreduce_sgd_options: timeout = ", timeout.count(),
            " ms; it must be > 0");
        detail::require<invalid_argument_error>(shutdown_timeout.count() > 0,
                                                "allreduce_sgd_options: shutdown_timeout = ",
                                                shutdown_timeout.count(), " ms; it must be > 0");
    }
};

/// One node of allreduce SGD. `Model` is a model (a tensor or a list of tensors; host, or Thrust
/// device vectors with <swarmsgd/thrust.hpp>, staged through host memory), `Comm` a communicator,
/// `Quant` a quantizer for the gradients on the wire (identity by default). Satisfies stepping_node
/// (begin_step / progress), plus blocking step() and finish(); see detail::collective_node for the
/// members it shares with local_sgd_node. Keeps pointers to the model, the communicator and the
/// topology (which must outlive it; the topology only fixes n: the ring runs over the ranks). Every
/// node must take the same number of steps and start from the same model (the same initialization,
/// or a broadcast).
template <class Model, class Comm, class Quant = typename detail::default_quantizer<Model>::type>
class allreduce_sgd_node
    : public detail::collective_node<allreduce_sgd_node<Model, Comm, Quant>, Model, Comm, Quant,
                                     allreduce_sgd_options> {
    using base =
        detail::collective_node<allreduce_sgd_node, Model, Comm, Quant, allreduce_sgd_options>;
    friend base;

public:
    using typename base::value_type;

    /// Name of the algorithm, for messages.
    static constexpr const char* algorithm = "allreduce SGD";

    /// Binds a node to its model, communicator and topology. Validates the options and that
    /// the topology has as many nodes as the communicator; a communicator that can (MPI)
    /// checks that every node's model has the same size (collective).
    allreduce_sgd_node(Model& model, Comm& comm, const topology& graph,
                       const allreduce_sgd_options& options, Quant quantizer = Quant{})
        : base(model, comm, graph, options, std::move(quantizer)) {}

private:
    // begin_step: the allreduce of the gradients starts.
    void start_step(std::span<const value_type> grad) {
        std::copy(grad.begin(), grad.end(), this->buffer_.begin());
        this->start_average();
    }

    // The mean gradient is there: every node applies the same step.
    void complete() { this->optimizer_step(std::span<const value_type>(this->buffer_)); }
};

}  // namespace swarmsgd
