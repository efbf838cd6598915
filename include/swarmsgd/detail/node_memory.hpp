#pragma once
/// \file detail/node_memory.hpp
/// swarm_node's memory back ends behind one interface, detail::node_memory<Model, Quant,
/// System>: the primary template (declared here, selected by the model's memory system) and
/// the host back end. The Thrust back end, for system models, is in
/// thrust/detail/node_memory.hpp and specializes the same template.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include "../message.hpp"
#include "../model.hpp"
#include "../quantizer.hpp"
#include "../random.hpp"
#include "../sgd.hpp"
#include "fallback.hpp"
#include "kernels.hpp"

namespace swarmsgd::detail {

/// How a swarm_node touches model-sized memory: its buffers (snapshots, decoded models), the
/// averaging step, finiteness checks, encode/decode through the quantizer, the fallback ranges
/// of recovery and the local optimizer. This host back end runs the CPU kernels on
/// std::vector buffers; the Thrust back end (thrust/detail/node_memory.hpp) specializes it for
/// system models, so that every operation runs in the model's memory system and only encoded
/// bytes reach host memory. The protocol itself is written once, in swarm_node.
template <class Model, class Quant, class System = model_system_t<Model>>
struct node_memory;

/// The host back end (host models).
template <class Model, class Quant>
struct node_memory<Model, Quant, host_memory> {
    using value_type = model_value_t<Model>;  ///< float or double
    using buffer = std::vector<value_type>;   ///< a flat model-sized buffer
    using optimizer_type = sgd<value_type>;   ///< the local optimizer
    /// Host code may read the model and the buffers (enables the fused exact path).
    static constexpr bool host = true;
    /// Received payloads are read where they arrived (no copy into another memory).
    static constexpr bool stages_messages = false;

    explicit node_memory(std::size_t /*size*/) {}

    /// out = the model, flat (gather's size check and message).
    void gather(const Model& m, buffer& out) { swarmsgd::gather(m, std::span<value_type>(out)); }
    /// Index of the first non-finite element of `b`, or b.size().
    std::size_t first_non_finite(const buffer& b) {
        return detail::first_non_finite(b.data(), b.size());
    }
    /// Element k of `b` (for error messages).
    value_type element(const buffer& b, std::size_t k) { return b[k]; }
    /// Encodes `values` (which become the reconstruction) into `out`; returns the bytes.
    std::size_t encode(Quant& q, buffer& values, std::span<std::byte> out, rng& random) {
        return q.encode(std::span<value_type>(values), out, random);
    }
    /// Decodes `payload` against `reference` into `out`.
    decode_result decode(Quant& q, std::span<const std::byte> payload, const buffer& reference,
                         buffer& out) {
        return q.decode(payload, std::span<const value_type>(reference),
                        std::span<value_type>(out));
    }
    /// model += (received - own) / 2 over every part.
    void apply_half_difference(Model& m, const buffer& received, const buffer& own) {
        for_each_part(m, [&](std::span<value_type> x, std::size_t offset) {
            detail::add_half_difference(x.data(), received.data() + offset, own.data() + offset,
                                        x.size());
        });
    }
    /// to[begin, end) = from[begin, end).
    void copy_range(const buffer& from, buffer& to, std::size_t begin, std::size_t end) {
        std::copy(from.begin() + long(begin), from.begin() + long(end), to.begin() + long(begin));
    }
    /// Largest |a[k] - b[k]| over the ranges.
    double max_difference(std::span<const fallback_range> ranges, const buffer& a,
                          const buffer& b) {
        double d = 0;
        for (const auto& r : ranges)
            for (std::size_t k = r.begin; k < r.end; ++k)
                d = std::max(d, std::abs(double(a[k]) - double(b[k])));
        return d;
    }
    /// Appends a fallback section with values[r] for each range.
    void append_fallback(std::vector<std::byte>& out, std::span<const fallback_range> ranges,
                         const buffer& values) {
        detail::append_fallback<value_type>(out, ranges, std::span<const value_type>(values));
    }
    /// out[r] = the section's values for each range.
    void copy_fallback_values(const fallback_section& section, buffer& out) {
        detail::copy_fallback_values<value_type>(section, std::span<value_type>(out));
    }
    /// Appends from[begin, end) to a host vector.
    void append_range(std::vector<value_type>& out, const buffer& from, std::size_t begin,
                      std::size_t end) {
        out.insert(out.end(), from.begin() + long(begin), from.begin() + long(end));
    }
    /// model[r] += (s_i - s_j) / 2 for the ranges, s_i and s_j holding the ranges' values
    /// concatenated (host memory).
    void add_half_difference_ranges(Model& m, std::span<const fallback_range> ranges,
                                    const value_type* s_i, const value_type* s_j) {
        std::size_t at = 0;
        for (const auto& r : ranges) {
            for_each_part(m, [&](std::span<value_type> x, std::size_t offset) {
                const std::size_t lo = std::max(r.begin, offset),
                                  hi = std::min(r.end, offset + x.size());
                if (lo < hi)
                    detail::add_half_difference(x.data() + (lo - offset), s_i + at + (lo - r.begin),
                                                s_j + at + (lo - r.begin), hi - lo);
            });
            at += r.end - r.begin;
        }
    }
    /// sum_k (a[k] - b[k])^2 (the distance guard).
    double squared_distance(const buffer& a, const buffer& b) {
        return detail::squared_distance(a.data(), b.data(), a.size());
    }
    /// sum_k a[k]^2 (the distance guard).
    double squared_norm(const buffer& a) { return detail::squared_norm(a.data(), a.size()); }
    /// The quantizer observes the distance between two buffers.
    void observe(Quant& q, const buffer& mine, const buffer& theirs) {
        q.observe(std::span<const value_type>(mine), std::span<const value_type>(theirs));
    }
    /// One optimizer step with a host gradient (checked by the caller).
    void step(optimizer_type& optimizer, Model& m, std::span<const value_type> grad) {
        optimizer.step(m, grad);
    }
    /// Appends the quantizer's adaptive state for a checkpoint (stateful_quantizer's bytes;
    /// nothing for a stateless quantizer): all of it lives in the host quantizer here.
    void save_quantizer_state(const Quant& q, std::vector<std::byte>& out) const {
        if constexpr (stateful_quantizer<Quant>) q.save_state(out);
    }
    /// After `q` was restored from save_quantizer_state's bytes (load_state): nothing lives
    /// outside the host quantizer, so nothing moves.
    void adopt_quantizer_state(Quant& /*q*/) {}
};

}  // namespace swarmsgd::detail
