#pragma once
/// \file agreement.hpp
/// What every node of one swarm must agree on, and the error that names the first rank that
/// does not. A rank that disagrees breaks the algorithm without any message failing: one rank
/// in pull mode among push ranks changes the sum of the models; a rank with another topology
/// picks partners that never pick it; another quantizer's payloads are refused mid-run. A
/// communicator that can see every rank at start-up (mpi_communicator::check_agreement)
/// compares them there, so every rank reports the same mismatch at once.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "errors.hpp"
#include "swarm_options.hpp"
#include "topology.hpp"
#include "version.hpp"

namespace swarmsgd {

/// A node's side of the agreement: the values every rank must share.
struct swarm_agreement {
    std::uint64_t wire_version = wire_format_version;  ///< message format (version.hpp)
    std::uint64_t model_size = 0;                      ///< model elements
    std::uint64_t value_bytes = 0;                     ///< 4 (float) or 8 (double)
    std::uint64_t mode = 0;                            ///< swarm_options::mode
    std::uint64_t failure = 0;                         ///< swarm_options::failure
    std::uint64_t quantizer_id = 0;                    ///< the quantizer's wire id
    /// FNV-1a of the quantizer's payload sizes at several model sizes: differs when the
    /// parameters that shape its payload (bits, bucket size) differ.
    std::uint64_t quantizer_layout = 0;
    std::uint64_t topology_fingerprint = 0;  ///< FNV-1a of the topology's neighbour lists

    /// Number of values.
    static constexpr std::size_t fields = 8;
    /// What each value is, in values() order (for messages).
    static constexpr std::array<const char*, fields> names = {
        "the wire format version", "the model size",          "the value size",
        "the averaging mode",      "the failure policy",      "the quantizer id",
        "the quantizer layout",    "the topology fingerprint"};
    /// The values in a fixed order (what a communicator exchanges).
    [[nodiscard]] std::array<std::uint64_t, fields> values() const noexcept {
        return {wire_version, model_size,   value_bytes,      mode,
                failure,      quantizer_id, quantizer_layout, topology_fingerprint};
    }
    /// The inverse of values().
    [[nodiscard]] static swarm_agreement from_values(
        const std::array<std::uint64_t, fields>& v) noexcept {
        return {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
    }
};

namespace detail {

/// One step of FNV-1a (64 bits): hashes byte `b` into `h`.
inline void fnv1a(std::uint64_t& h, std::byte b) noexcept {
    h ^= std::to_integer<std::uint64_t>(b);
    h *= 0x100000001b3ULL;
}

/// FNV-1a over the 8 bytes of `word`, least significant first.
inline void fnv1a(std::uint64_t& h, std::uint64_t word) noexcept {
    for (int b = 0; b < 8; ++b) fnv1a(h, static_cast<std::byte>((word >> (8 * b)) & 0xFF));
}

inline constexpr std::uint64_t fnv1a_basis = 0xcbf29ce484222325ULL;

}  // namespace detail

/// FNV-1a of the topology's size and sorted neighbour lists: equal for equal graphs, however
/// they were built.
[[nodiscard]] inline std::uint64_t topology_fingerprint(const topology& g) {
    std::uint64_t h = detail::fnv1a_basis;
    detail::fnv1a(h, g.size());
    for (std::size_t i = 0; i < g.size(); ++i) {
        const std::size_t d = g.degree(i);
        detail::fnv1a(h, d);
        for (std::size_t k = 0; k < d; ++k) detail::fnv1a(h, g.neighbour(i, k));
    }
    return h;
}

/// The agreement of a node with `model_size` elements of `value_bytes` bytes, `options`,
/// quantizer `q` (its id and payload sizes) and topology `g`.
template <class Quant>
[[nodiscard]] swarm_agreement make_agreement(std::size_t model_size, std::size_t value_bytes,
                                             const swarm_options& options, const Quant& q,
                                             const topology& g) {
    swarm_agreement a;
    a.model_size = model_size;
    a.value_bytes = value_bytes;
    a.mode = static_cast<std::uint64_t>(options.mode);
    a.failure = static_cast<std::uint64_t>(options.failure);
    a.quantizer_id = q.id();
    std::uint64_t h = detail::fnv1a_basis;
    for (std::size_t n : {std::size_t{1}, std::size_t{7}, std::size_t{64}, std::size_t{1000},
                          std::size_t{65536}, model_size})
        detail::fnv1a(h, q.max_encoded_size(n));
    a.quantizer_layout = h;
    a.topology_fingerprint = topology_fingerprint(g);
    return a;
}

/// Throws, on rank `me`, the error for the first field in which `other` (rank `other_rank`)
/// differs from `reference` (rank `reference_rank`); returns when they agree. The error type
/// names the kind of mismatch: message_error (wire format), size_mismatch_error (model size),
/// invalid_argument_error (value type, mode, failure policy, quantizer), topology_error (topology).
inline void require_agreement(const swarm_agreement& reference, std::size_t reference_rank,
                              const swarm_agreement& other, std::size_t other_rank,
                              std::size_t me) {
    using detail::concat;
    const auto at = [&](const auto&... what) {
        return concat("rank ", me, ": rank ", other_rank, " ", what..., " but rank ",
                      reference_rank);
    };
    if (other.wire_version != reference.wire_version)
        throw message_error(concat(at("speaks wire format ", other.wire_version), " speaks ",
                                   reference.wire_version,
                                   "; every rank must run the same swarmsgd version"));
    if (other.model_size != reference.model_size)
        throw size_mismatch_error(concat(at("has a model of ", other.model_size, " elements"),
                                         " has ", reference.model_size,
                                         "; every rank must train a model of the same size"));
    if (other.value_bytes != reference.value_bytes)
        throw invalid_argument_error(
            concat(at("trains ", other.value_bytes, "-byte values"), " ", reference.value_bytes,
                   "-byte values; every rank must use the same value type (float or double)"));
    if (other.mode != reference.mode) {
        const auto name = [](std::uint64_t m) {
            return m <= static_cast<std::uint64_t>(averaging_mode::pull)
                       ? std::string(to_string(static_cast<averaging_mode>(m)))
                       : concat("mode #", m);
        };
        throw invalid_argument_error(
            concat(at("averages in ", name(other.mode), " mode"), " in ", name(reference.mode),
                   " mode; every rank must use the same swarm_options::mode"));
    }
    if (other.failure != reference.failure) {
        const auto name = [](std::uint64_t f) {
            return f <= static_cast<std::uint64_t>(failure_policy::exclude)
                       ? std::string(to_string(static_cast<failure_policy>(f)))
                       : concat("policy #", f);
        };
        throw invalid_argument_error(
            concat(at("has failure policy ", name(other.failure)), " has ", name(reference.failure),
                   "; every rank must use the same swarm_options::failure"));
    }
    if (other.quantizer_id != reference.quantizer_id)
        throw invalid_argument_error(concat(at("uses quantizer id ", other.quantizer_id), " uses ",
                                            reference.quantizer_id,
                                            "; every rank must use the same quantizer"));
    if (other.quantizer_layout != reference.quantizer_layout)
        throw invalid_argument_error(concat(
            "rank ", me, ": rank ", other_rank, "'s quantizer (id ", other.quantizer_id,
            ") has other parameters than rank ", reference_rank,
            "'s (its payloads have other sizes); every rank must use the same quantizer options "
            "(bits, bucket size)"));
    if (other.topology_fingerprint != reference.topology_fingerprint)
        throw topology_error(concat("rank ", me, ": rank ", other_rank,
                                    " built another topology than rank ", reference_rank,
                                    "; every rank must build the same graph (same kind, size "
                                    "and seed)"));
}

}  // namespace swarmsgd
