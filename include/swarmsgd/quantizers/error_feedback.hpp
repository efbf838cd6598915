#pragma once
/// \file quantizers/error_feedback.hpp
/// Error feedback (EF / EF-SGD, Seide et al. 2014; Karimireddy et al. 2019) around any
/// quantizer: the part of a message the quantizer dropped is remembered and added to the next
/// message, so nothing is lost over time:
///   v = values + e;   payload = Q(v);   e = v - reconstruction;   values = reconstruction
/// Telescoping: over T encodes, sum of reconstructions = sum of inputs - final residual
/// (up to the float rounding of v and e), whatever Q's error.
///
/// Meant for ONE stream of related vectors, typically gradients (or model deltas) sent by one
/// node. A swarm_node's model exchange does not need it: the mean-preserving protocol applies
/// the decoded values of both messages, so quantization error never accumulates in the mean;
/// and since the residual belongs to one stream, using a wrapped quantizer for messages to many
/// different partners mixes their errors.
///
/// Same id and wire format as the inner quantizer (decode simply forwards), so a receiver
/// decodes with either Q or error_feedback<Q>. Name: "ef(<inner name>)". The residual is
/// sized on the first encode and reset to zero whenever the size changes. Copying the wrapper
/// copies the residual.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "../message.hpp"
#include "../quantizer.hpp"
#include "../random.hpp"

namespace swarmsgd {

/// Error-feedback wrapper of quantizer Q (see the file comment). Q must expose `value_type`.
template <class Q>
    requires quantizer_for<Q, typename Q::value_type>
class error_feedback {
public:
    using value_type = typename Q::value_type;  ///< Element type.
    using inner_type = Q;                       ///< Wrapped quantizer.

    /// Wraps a default-constructed Q.
    error_feedback() requires std::default_initializable<Q> : error_feedback(Q{}) {}

    /// Wraps `inner`.
    explicit error_feedback(Q inner)
        : inner_(std::move(inner)), name_("ef(" + std::string(inner_.name()) + ")") {}

    /// The inner quantizer's id: the wire format is the inner one.
    [[nodiscard]] std::uint16_t id() const { return inner_.id(); }
    /// "ef(<inner name>)".
    [[nodiscard]] std::string_view name() const noexcept { return name_; }
    /// The inner quantizer's bound.
    [[nodiscard]] std::size_t max_encoded_size(std::size_t n) const {
        return inner_.max_encoded_size(n);
    }

    /// Encodes values + residual with the inner quantizer; `values` becomes the
    /// reconstruction and the residual becomes (values + old residual) - reconstruction.
    /// If the inner encode throws, the residual is unchanged (and `values` holds
    /// values + residual, possibly partly quantized).
    std::size_t encode(std::span<value_type> values, std::span<std::byte> out, rng& random) {
        const std::size_t n = values.size();
        if (residual_.size() != n) residual_.assign(n, value_type(0));
        scratch_.resize(n);
        value_type* x = values.data();
        value_type* e = residual_.data();
        value_type* v = scratch_.data();
        for (std::size_t k = 0; k < n; ++k) {
            v[k] = x[k] + e[k];
            x[k] = v[k];
        }
        const std::size_t bytes = inner_.encode(values, out, random);
        for (std::size_t k = 0; k < n; ++k) e[k] = v[k] - x[k];
        return bytes;
    }

    /// Forwards to the inner quantizer.
    decode_result decode(std::span<const std::byte> payload, std::span<const value_type> reference,
                         std::span<value_type> out) {
        return inner_.decode(payload, reference, out);
    }
    /// Forwards to the inner quantizer (when its decode is const).
    decode_result decode(std::span<const std::byte> payload, std::span<const value_type> reference,
                         std::span<value_type> out) const requires
        requires(const Q& q, std::span<const std::byte> p, std::span<const value_type> r,
                 std::span<value_type> o) {
        q.decode(p, r, o);
    }
    { return inner_.decode(payload, reference, out); }

    /// The residual carried to the next encode (empty before the first one).
    [[nodiscard]] std::span<const value_type> residual() const noexcept { return residual_; }
    /// Forgets the residual (for instance when the stream restarts).
    void reset() noexcept { residual_.clear(); }
    /// Replaces the residual (a device back end's, to save it; empty: none yet).
    void set_residual(std::span<const value_type> e) { residual_.assign(e.begin(), e.end()); }

    /// Checkpoints (stateful_quantizer): u64 residual length, the residual, then the inner
    /// quantizer's state when it has one.
    void save_state(std::vector<std::byte>& out) const {
        std::size_t at = out.size();
        out.resize(at + 8 + residual_.size() * sizeof(value_type));
        detail::store<std::uint64_t>(out.data() + at, residual_.size());
        if (!residual_.empty())
            std::memcpy(out.data() + at + 8, residual_.data(),
                        residual_.size() * sizeof(value_type));
        if constexpr (stateful_quantizer<Q>) inner_.save_state(out);
    }
    /// Restores save_state's bytes; invalid_argument_error (and no change) for anything else.
    void load_state(std::span<const std::byte> in) {
        detail::require<invalid_argument_error>(in.size() >= 8,
                                                "error_feedback load_state: ", in.size(),
                                                " bytes, fewer than the 8 of a length");
        const auto n = detail::load<std::uint64_t>(in.data());
        detail::require<invalid_argument_error>(
            n <= (in.size() - 8) / sizeof(value_type), "error_feedback load_state: a residual of ",
            n, " values does not fit in ", in.size() - 8, " bytes");
        const auto rest = in.subspan(8 + n * sizeof(value_type));
        if constexpr (stateful_quantizer<Q>) {
            Q inner = inner_;
            inner.load_state(rest);
            inner_ = std::move(inner);
        } else {
            detail::require<invalid_argument_error>(
                rest.empty(), "error_feedback load_state: ", rest.size(), " bytes left over");
        }
        residual_.resize(n);
        if (n != 0) std::memcpy(residual_.data(), in.data() + 8, n * sizeof(value_type));
    }
    /// The wrapped quantizer.
    [[nodiscard]] const Q& inner() const noexcept { return inner_; }

private:
    Q inner_;
    std::string name_;
    std::vector<value_type> residual_;
    std::vector<value_type> scratch_;
};

}  // namespace swarmsgd
