#pragma once
/// \file thrust/detail/baseline_memory.hpp
/// The back end of the baselines (baselines/baseline_memory.hpp) for system models: the model
/// and the optimizer's velocity stay in the model's system, the optimizer step and the
/// additions run there; the baselines' engines (the ring allreduce, D-PSGD's mixing, their
/// quantizers) run on flat host buffers, so a model or a gradient is staged through host
/// memory: one model-sized copy out (load) and one in (store, add, step) per exchange.
///
/// Why staging, not the node's device back end (thrust/detail/node_memory.hpp): a ring allreduce
/// reduces one segment per hop, each a few kilobytes to megabytes, where a kernel launch per hop
/// and per quantizer call costs more than the copy; and MPI (without CUDA awareness) needs the
/// values in host memory anyway. Any host quantizer works on the wire, device codecs are not
/// needed. The decision and its cost: docs/decisions.md.

#include <cstddef>
#include <span>

#include "../../baselines/baseline_memory.hpp"
#include "../../errors.hpp"
#include "../../model.hpp"
#include "../model_ops.hpp"
#include "../sgd.hpp"
#include "../system.hpp"
#include "../system_buffer.hpp"

namespace swarmsgd::detail {

/// baseline_memory for a system model in memory system S.
template <class Model, class S>
    requires system_model<Model>
struct baseline_memory<Model, S> {
    using value_type = model_value_t<Model>;           ///< float or double
    using optimizer_type = system_sgd<value_type, S>;  ///< the node's SGD, in S

    explicit baseline_memory(std::size_t size) : size_(size) {}

    /// out = the model (copied out of S).
    void load(const Model& m, std::span<value_type> out) {
        device_call("swarmsgd: copying a model to the host", [&] { swarmsgd::to_host(m, out); });
    }
    /// The model = in (copied into S).
    void store(std::span<const value_type> in, Model& m) {
        device_call("swarmsgd: copying a model from the host", [&] { swarmsgd::from_host(in, m); });
    }
    /// The model += d: d uploaded, then added in S.
    void add(std::span<const value_type> d, Model& m) {
        const value_type* u = upload(d, "swarmsgd: uploading an update");
        device_call("swarmsgd: adding an update", [&] {
            for_each_system_part(m, [&](value_type* x, std::size_t n, std::size_t offset) {
                system_for_each<S>(
                    n, axpby_op<value_type>{value_type(1), value_type(1), u + offset, x});
            });
        });
    }
    /// One optimizer step in S with the host gradient `grad` (uploaded first).
    void step(optimizer_type& optimizer, Model& m, std::span<const value_type> grad) {
        optimizer.step(m, upload(grad, "swarmsgd: gradient upload"));
    }

private:
    const value_type* upload(std::span<const value_type> values, const char* what) {
        require<size_mismatch_error>(values.size() == size_, what, ": ", values.size(),
                                     " values for a model of ", size_);
        device_call(what, [&] {
            scratch_.resize(values.size());
            system_ops<S>::to_system(values.data(), values.size(), scratch_.data());
        });
        return scratch_.data();
    }

    std::size_t size_;
    system_buffer<value_type, S> scratch_;
};

}  // namespace swarmsgd::detail
