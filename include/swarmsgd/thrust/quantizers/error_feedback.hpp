#pragma once
/// \file thrust/quantizers/error_feedback.hpp
/// error_feedback<Q> in a Thrust system: the residual lives in the system, in the codec (a
/// node keeps one codec per quantizer, so one residual per stream, as with the CPU wrapper);
/// v = values + e and values = v in one pass, the inner quantizer's codec, then e = v - values.
/// The host wrapper's residual() stays empty: read the codec's residual() instead. A node's
/// checkpoint holds it (thrust/detail/node_memory.hpp: save_quantizer_state).

#include <cstddef>
#include <span>

#include "../../quantizers/error_feedback.hpp"
#include "../codec.hpp"
#include "../detail/codec_support.hpp"

namespace swarmsgd {

namespace detail {
template <class V>
struct ef_add_residual {
    V* x;
    const V* e;
    V* v;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t k) const {
        v[k] = x[k] + e[k];
        x[k] = v[k];
    }
};
template <class V>
struct ef_new_residual {
    const V* x;
    V* e;
    const V* v;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t k) const { e[k] = v[k] - x[k]; }
};
}  // namespace detail

/// error_feedback<Q> in system S (Q must have a codec in S).
template <class Q, class S>
    requires system_quantizer_for<Q, typename Q::value_type, S>
struct system_codec<error_feedback<Q>, S> {
    using V = typename Q::value_type;  ///< element type

    /// As error_feedback::encode: values + residual through the inner codec; the residual
    /// becomes (values + old residual) - reconstruction (unchanged if the inner encode throws).
    std::size_t encode(const error_feedback<Q>& q, system_span<V, S> values,
                       system_span<std::byte, S> out, rng& random) {
        const std::size_t n = values.size();
        return detail::device_call("swarmsgd: error_feedback encode", [&] {
            if (residual_.size() != n) {
                residual_.resize(n);
                detail::system_for_each<S>(n, detail::fill_value<V>{residual_.data(), V(0)});
            }
            scratch_.resize(n);
            detail::system_for_each<S>(
                n, detail::ef_add_residual<V>{values.data(), residual_.data(), scratch_.data()});
            const std::size_t bytes = inner_.encode(q.inner(), values, out, random);
            detail::system_for_each<S>(
                n, detail::ef_new_residual<V>{values.data(), residual_.data(), scratch_.data()});
            return bytes;
        });
    }

    /// Forwards to the inner codec.
    decode_result decode(const error_feedback<Q>& q, std::span<const std::byte> payload,
                         system_span<const V, S> reference, system_span<V, S> out,
                         const std::byte* payload_in_system = nullptr) {
        return inner_.decode(q.inner(), payload, reference, out, payload_in_system);
    }

    /// The residual carried to the next encode (in S; empty before the first one).
    [[nodiscard]] system_span<const V, S> residual() const noexcept { return residual_.span(); }
    /// Forgets the residual.
    void reset() noexcept { residual_ = {}; }
    /// Replaces the residual with host values (a restored checkpoint's; empty: none yet).
    void set_residual(std::span<const V> host) {
        if (host.empty()) {
            residual_ = {};
            return;
        }
        detail::device_call("swarmsgd: error_feedback residual upload", [&] {
            residual_.resize(host.size());
            detail::system_ops<S>::to_system(host.data(), host.size(), residual_.data());
        });
    }

private:
    system_codec<Q, S> inner_;
    system_buffer<V, S> residual_;
    system_buffer<V, S> scratch_;
};

}  // namespace swarmsgd
