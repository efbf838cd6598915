#pragma once
/// \file quantizer.hpp
/// The quantizer customization point: how a model snapshot becomes bytes on the wire and
/// back. A quantizer decodes AGAINST A REFERENCE, the receiver's own model, which is what the
/// paper's lattice quantizer needs; quantizers that do not need it ignore the reference.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include "random.hpp"
#include "tensor_traits.hpp"

namespace swarmsgd {

/// A half-open range [begin, end) of element indices.
struct element_range {
    std::size_t begin = 0;  ///< first index
    std::size_t end = 0;    ///< one past the last index
    friend bool operator==(const element_range&, const element_range&) = default;
};

/// What a decode achieved. A quantizer that can detect failed decodes (the lattice quantizer
/// when sender and receiver are farther apart than its radius) lists the element ranges it
/// could NOT reconstruct; their output values are unspecified and the caller must recover them
/// (for instance by asking for those ranges at full precision). An empty list means success.
struct decode_result {
    std::vector<element_range> failed;  ///< ranges that could not be decoded

    /// True when every element was decoded.
    [[nodiscard]] bool ok() const noexcept { return failed.empty(); }
    /// Number of elements that could not be decoded.
    [[nodiscard]] std::size_t failed_elements() const noexcept {
        std::size_t n = 0;
        for (const auto& r : failed) n += r.end - r.begin;
        return n;
    }
};

/// A quantizer for models of value type `V`:
/// - `q.id()`: a number that identifies the format (written in every payload);
/// - `q.name()`: a readable name for messages and statistics;
/// - `q.max_encoded_size(n)`: an upper bound of the payload bytes for n elements;
/// - `q.encode(values, out, rng)`: writes the payload of `values` (header included) to `out`
///   and returns the bytes written; on return `values` holds EXACTLY what a successful decode
///   of that payload yields (the sender's reconstruction), which keeps the mean of the models
///   exact under quantization;
/// - `q.decode(payload, reference, out)`: validates the payload (throws message_error or
///   size_mismatch_error on a malformed one, leaving `out` untouched) and writes the decoded
///   values to `out`, using `reference` (the receiver's own model) where the format needs it.
template <class Q, class V>
concept quantizer_for = tensor_value<V> && std::copy_constructible<Q> &&
    requires(Q& q, std::size_t n, std::span<V> values, std::span<std::byte> out,
             std::span<const std::byte> payload, std::span<const V> reference, rng& random) {
    { q.id() } -> std::convertible_to<std::uint16_t>;
    { q.name() } -> std::convertible_to<std::string_view>;
    { q.max_encoded_size(n) } -> std::convertible_to<std::size_t>;
    { q.encode(values, out, random) } -> std::convertible_to<std::size_t>;
    { q.decode(payload, reference, values) } -> std::same_as<decode_result>;
};

/// OPTIONAL capability of a quantizer: exact reconstruction with a raw payload. A quantizer
/// opts in with `static constexpr bool exact_reconstruction = true;` and two members, and
/// thereby promises that
/// - its payload for n values is a header followed by the n values verbatim (the in-memory
///   representation of V, little-endian, no padding), max_encoded_size(n) bytes in all: the
///   header has `max_encoded_size(n) - n * sizeof(V)` bytes, decode(encode(x)) == x bit for
///   bit and encode leaves `values` unchanged;
/// - encode draws nothing from the rng;
/// - `q.write_raw_header(out, n)` writes exactly the header that encode writes for n values;
/// - `q.check_raw_payload(payload, n)` validates a payload exactly as decode does when `out`
///   has n elements (same exceptions, same messages; it returns normally only if
///   payload.size() == max_encoded_size(n)); it does not look at the values.
/// swarm_node detects the capability and then reads and writes the wire bytes directly, in
/// fused passes, instead of encoding and decoding through intermediate buffers (see
/// docs/performance.md); the results are bit-identical. Everything else (other code, and
/// swarm_node for quantizers without the capability) uses only the quantizer_for interface,
/// which an exact quantizer must still provide in full.
template <class Q, class V>
concept exact_quantizer_for = quantizer_for<Q, V> &&
    requires(const Q& q, std::size_t n, std::span<std::byte> out,
             std::span<const std::byte> payload) {
    requires std::same_as < std::remove_cv_t<decltype(Q::exact_reconstruction)>,
    bool > ;
    requires Q::exact_reconstruction;
    q.write_raw_header(out, n);
    q.check_raw_payload(payload, n);
};

/// OPTIONAL capability of a quantizer: recovery of failed decodes. A quantizer that can fail
/// to decode (it lists the ranges in decode_result::failed) and adapts to the distances it
/// sees opts in with three members:
/// - `q.observe(mine, theirs)`: the sender's and the receiver's reconstructions of one
///   exchange (two spans of V), after a successful decode;
/// - `q.observe_distance(d)`: the same with the distance max |mine - theirs| already computed
///   (a back end that keeps the models in device memory computes it there);
/// - `q.on_failure(d)`: one of ITS OWN messages failed to decode at the partner, `d` being the
///   distance measured over the failed ranges (0 when unknown).
/// swarm_node then recovers every failed range at full precision (a fallback section in the
/// reply, a fixup message when the responder could not decode the request) instead of
/// refusing the message; see docs/algorithm.md. The lattice quantizer does. A quantizer with
/// some of these members and not all is refused at compile time by swarm_node.
template <class Q, class V>
concept recovering_quantizer_for = quantizer_for<Q, V> &&
    requires(Q& q, double d, std::span<const V> a) {
    q.observe(a, a);
    q.observe_distance(d);
    q.on_failure(d);
};

/// Optional capability: adaptive state a checkpoint must carry (checkpoint.hpp), such as the
/// lattice quantizer's distance estimate or error_feedback's residual.
/// - `q.save_state(out)` (const): appends the state to `out` (a std::vector<std::byte>);
/// - `q.load_state(in)`: restores it from exactly those bytes (a std::span<const std::byte>),
///   throwing swarmsgd::error for bytes it did not write, without changing itself then.
/// A quantizer without them is taken to have no state worth saving (identity, fp16, bf16,
/// min_max, qsgd: their only state is the node's random stream, which the checkpoint carries).
template <class Q>
concept stateful_quantizer = requires(const Q& cq, Q& q, std::vector<std::byte>& out,
                                      std::span<const std::byte> in) {
    cq.save_state(out);
    q.load_state(in);
};

/// Whether Q has any of the members of recovering_quantizer_for (to refuse a partial one).
template <class Q, class V>
concept has_any_recovery_member = requires(Q& q, double d, std::span<const V> a) {
    q.observe(a, a);
}
|| requires(Q& q, double d) { q.observe_distance(d); }
|| requires(Q& q, double d) { q.on_failure(d); };

}  // namespace swarmsgd
