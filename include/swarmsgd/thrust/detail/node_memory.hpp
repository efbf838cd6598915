#pragma once
/// \file thrust/detail/node_memory.hpp
/// The back end of swarm_node for system models (detail::node_memory, see
/// detail/node_memory.hpp, which holds the interface and the host back end):
/// snapshots, decoded models and the optimizer's velocity are system_buffers in the model's
/// system; finiteness checks, the averaging step, range copies and distances run there;
/// encode/decode go through the quantizer's system_codec. Host memory sees only message bytes:
/// the encoded payload (copied out of the system unless the system's memory is host memory,
/// where the codec writes the message directly), the ranges of a fallback section or fixup,
/// and single values named in error messages.
///
/// Staging: on a system whose memory the host cannot read (CUDA), payloads are encoded into
/// a buffer in the system and copied to the message (system_ops<S>::to_host; the CUDA part
/// stages through pinned host memory); received payloads are copied into the system by the
/// codec (staged_payload). A node received its messages into blocks of this back end's pool
/// (message_blocks(); page-locked on CUDA), so on CUDA that copy is one DMA.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../../detail/fallback.hpp"
#include "../../detail/node_memory.hpp"
#include "../../detail/type_checks.hpp"
#include "../../errors.hpp"
#include "../../message.hpp"
#include "../../model.hpp"
#include "../../quantizer.hpp"
#include "../../random.hpp"
#include "../codec.hpp"
#include "../model_ops.hpp"
#include "../sgd.hpp"
#include "../system_buffer.hpp"

namespace swarmsgd::detail {

/// node_memory for a system model in memory system S.
template <class Model, class Quant, class S>
    requires system_model<Model>
struct node_memory<Model, Quant, S> {
    using value_type = model_value_t<Model>;  ///< float or double
    static_assert(system_quantizer_for<Quant, value_type, S>,
                  "swarmsgd: this quantizer has no back end in the model's memory system "
                  "(swarmsgd::system_codec<Quant, System> is not specialized), so it cannot "
                  "encode a device model: it would run host loops over device memory. Use one "
                  "of the library's quantizers (identity, fp16, bf16, min_max, qsgd, lattice, "
                  "error_feedback of them; <swarmsgd/thrust.hpp>) or specialize "
                  "swarmsgd::system_codec for yours; see docs/thrust.md");
    using buffer = system_buffer<value_type, S>;       ///< a flat model-sized buffer in S
    using optimizer_type = system_sgd<value_type, S>;  ///< the local optimizer, in S
    /// The model is not host memory: no fused host path.
    static constexpr bool host = false;
    /// Whether received payloads must be copied into S (the host cannot read S's memory): the
    /// node then receives every message into a block of message_blocks() (page-locked on
    /// CUDA, so the upload is one DMA), whatever the communicator.
    static constexpr bool stages_messages = !host_accessible_system_v<S>;

    explicit node_memory(std::size_t /*size*/) {}

    void gather(const Model& m, buffer& out) { swarmsgd::gather(m, out.span()); }

    std::size_t first_non_finite(const buffer& b) { return first_non_finite(b.data(), b.size()); }
    std::size_t first_non_finite(const value_type* p, std::size_t n) {
        return device_call("swarmsgd: finiteness check",
                           [&] { return flat_first_non_finite<S>(p, n); });
    }
    value_type element(const buffer& b, std::size_t k) { return element(b.data(), k); }
    value_type element(const value_type* p, std::size_t k) {
        return device_call("swarmsgd: reading a value", [&] { return element_at<S>(p, k); });
    }

    /// Encodes in S; only the payload's bytes are copied to the message `out` (host memory).
    std::size_t encode(Quant& q, buffer& values, std::span<std::byte> out, rng& random) {
        if constexpr (host_accessible_system_v<S>) {
            return codec_.encode(q, values.span(),
                                 system_span<std::byte, S>(out.data(), out.size()), random);
        } else {
            staging_.resize(out.size());
            const std::size_t bytes = codec_.encode(q, values.span(), staging_.span(), random);
            device_call("swarmsgd: copying a payload to the message",
                        [&] { system_ops<S>::to_host(staging_.data(), bytes, out.data()); });
            return bytes;
        }
    }

    decode_result decode(Quant& q, std::span<const std::byte> payload, const buffer& reference,
                         buffer& out) {
        return codec_.decode(q, payload, reference.span(), out.span());
    }

    void apply_half_difference(Model& m, const buffer& received, const buffer& own) {
        swarmsgd::add_half_difference(m, received.span(), own.span());
    }

    void copy_range(const buffer& from, buffer& to, std::size_t begin, std::size_t end) {
        device_call("swarmsgd: range copy", [&] {
            system_ops<S>::within(from.data() + begin, end - begin, to.data() + begin);
        });
    }

    /// sum_k (a[k] - b[k])^2 (the distance guard).
    double squared_distance(const buffer& a, const buffer& b) {
        return device_call("swarmsgd: distance",
                           [&] { return flat_squared_distance<S>(a.data(), b.data(), a.size()); });
    }
    /// sum_k a[k]^2 (the distance guard).
    double squared_norm(const buffer& a) {
        return device_call("swarmsgd: norm",
                           [&] { return flat_squared_norm<S>(a.data(), a.size()); });
    }

    /// Largest |a[k] - b[k]| over the ranges (both are finite here: checked before they get here).
    double max_difference(std::span<const fallback_range> ranges, const buffer& a,
                          const buffer& b) {
        double d = 0;
        device_call("swarmsgd: distance", [&] {
            for (const auto& r : ranges) {
                const double m = flat_max_abs_difference<S>(a.data() + r.begin, b.data() + r.begin,
                                                            r.end - r.begin);
                d = std::max(d, m);
            }
        });
        return d;
    }

    /// The fallback section of detail::append_fallback (u32 count | per range u64 begin,
    /// u64 end, u8 needs_fixup | the ranges' values), the values copied out of S.
    void append_fallback(std::vector<std::byte>& out, std::span<const fallback_range> ranges,
                         const buffer& values) {
        std::byte* p = append_fallback_header(out, ranges, sizeof(value_type));
        device_call("swarmsgd: fallback values", [&] {
            for (const auto& r : ranges) {
                const std::size_t bytes = (r.end - r.begin) * sizeof(value_type);
                system_ops<S>::to_host(reinterpret_cast<const std::byte*>(values.data() + r.begin),
                                       bytes, p);
                p += bytes;
            }
        });
    }

    void copy_fallback_values(const fallback_section& section, buffer& out) {
        device_call("swarmsgd: fallback values", [&] {
            const std::byte* p = section.values;
            for (const auto& r : section.ranges) {
                const std::size_t bytes = (r.end - r.begin) * sizeof(value_type);
                system_ops<S>::to_system(p, bytes,
                                         reinterpret_cast<std::byte*>(out.data() + r.begin));
                p += bytes;
            }
        });
    }

    void append_range(std::vector<value_type>& out, const buffer& from, std::size_t begin,
                      std::size_t end) {
        const std::size_t at = out.size();
        out.resize(at + (end - begin));
        device_call("swarmsgd: range copy", [&] {
            system_ops<S>::to_host(from.data() + begin, end - begin, out.data() + at);
        });
    }

    /// model[r] += (s_i - s_j) / 2 for the ranges; s_i, s_j are host values (a fixup's and the
    /// ranges of our snapshot), uploaded first.
    void add_half_difference_ranges(Model& m, std::span<const fallback_range> ranges,
                                    const value_type* s_i, const value_type* s_j) {
        const std::size_t total = range_elements(ranges);
        device_call("swarmsgd: fixup", [&] {
            scratch_.resize(2 * total);
            system_ops<S>::to_system(s_i, total, scratch_.data());
            system_ops<S>::to_system(s_j, total, scratch_.data() + total);
            std::size_t at = 0;
            for (const auto& r : ranges) {
                for_each_system_part(m, [&](value_type* x, std::size_t n, std::size_t offset) {
                    const std::size_t lo = std::max(r.begin, offset),
                                      hi = std::min(r.end, offset + n);
                    if (lo < hi)
                        flat_add_half_difference<S>(
                            x + (lo - offset), scratch_.data() + at + (lo - r.begin),
                            scratch_.data() + total + at + (lo - r.begin), hi - lo);
                });
                at += r.end - r.begin;
            }
        });
    }

    /// The quantizer observes max |mine - theirs|, computed in S (observe(a, b) is
    /// observe_distance(max_abs_difference(a, b)) for the lattice quantizer).
    void observe(Quant& q, const buffer& mine, const buffer& theirs) {
        require<size_mismatch_error>(mine.size() == theirs.size(), "lattice observe: models of ",
                                     mine.size(), " and ", theirs.size(), " elements");
        const double d = device_call("swarmsgd: distance", [&] {
            return flat_max_abs_difference<S>(mine.data(), theirs.data(), mine.size());
        });
        q.observe_distance(d);
    }

    /// A step with a host gradient (what the drivers pass): uploaded, then applied in S.
    void step(optimizer_type& optimizer, Model& m, std::span<const value_type> grad) {
        device_call("swarmsgd: gradient upload", [&] {
            scratch_.resize(grad.size());
            system_ops<S>::to_system(grad.data(), grad.size(), scratch_.data());
        });
        optimizer.step(m, scratch_.data());
    }
    /// A step with a gradient already in S.
    void step(optimizer_type& optimizer, Model& m, const value_type* grad, std::size_t /*n*/) {
        optimizer.step(m, grad);
    }

    /// Appends the quantizer's adaptive state for a checkpoint, in the quantizer's own
    /// save_state format: error feedback's residual lives in the codec, in S, and is copied
    /// out into a host copy of the quantizer first; anything else lives in the host quantizer.
    void save_quantizer_state(const Quant& q, std::vector<std::byte>& out) {
        if constexpr (is_error_feedback<Quant>::value) {
            const auto e = codec_.residual();
            std::vector<value_type> host(e.size());
            device_call("swarmsgd: error_feedback residual download",
                        [&] { system_ops<S>::to_host(e.data(), e.size(), host.data()); });
            Quant copy = q;
            copy.set_residual(host);
            copy.save_state(out);
        } else if constexpr (stateful_quantizer<Quant>) {
            q.save_state(out);
        }
    }
    /// After `q` was restored (load_state): error feedback's residual moves into the codec,
    /// where encode reads it, and the host wrapper's is emptied again.
    void adopt_quantizer_state(Quant& q) {
        if constexpr (is_error_feedback<Quant>::value) {
            codec_.set_residual(q.residual());
            q.reset();
        }
    }

    /// The blocks the node receives messages into (swarm_node::receives_into_blocks):
    /// page-locked memory on CUDA, host memory on the CPU systems; reused message after
    /// message.
    message_block_source& message_blocks() noexcept { return blocks_; }

private:
    message_block_pool<typename system_ops<S>::block_allocator> blocks_;
    system_codec<Quant, S> codec_;
    system_buffer<std::byte, S> staging_;
    system_buffer<value_type, S> scratch_;
};

}  // namespace swarmsgd::detail
