#pragma once
/// \file exchanges/recovering.hpp
/// The recovering exchange: for quantizers that can fail to decode and adapt to the distances
/// they see (recovering_quantizer_for in quantizer.hpp, e.g. lattice). Every range that fails
/// is recovered at full precision, so a model is never corrupted and the mean stays exact:
/// - the reply carries a fallback section (message.hpp) with the responder's raw values for
///   the ranges it could not decode (F1) and for those it predicts the initiator could not
///   decode of its reply (F2, it runs the initiator's decode itself);
/// - when F1 is not empty, the initiator answers with a fixup (its raw values there), and the
///   responder applies its half of F1 only then.
/// Both sides end at the exact average (S_i + S_j) / 2 on every recovered range. See
/// docs/algorithm.md, "Recovery of failed decodes".

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include "../detail/fallback.hpp"
#include "../detail/kernels.hpp"
#include "../errors.hpp"
#include "../message.hpp"

namespace swarmsgd::exchanges {

/// The recovering exchange over a node core `Core` (detail::node_core with Core::recovers).
template <class Core>
class recovering_exchange {
    static_assert(Core::recovers, "recovering_exchange needs a recovering quantizer");

public:
    using buffer = typename Core::buffer;          ///< a model-sized buffer of the back end
    using value_type = typename Core::value_type;  ///< float or double
    /// A served interaction may wait for a fixup.
    static constexpr bool recovers = true;

    /// What the initiator keeps while its request is in flight.
    struct initiator_state {
        buffer sent;  ///< D(m_i): what the partner reconstructs of our snapshot
        buffer raw;   ///< S_i itself, for exact recovery
    };

    /// A served interaction whose fixup is awaited: the responder could not decode these
    /// ranges of the request, sent its own values instead, and applies its half when the
    /// initiator's values arrive.
    struct fixup_state {
        std::vector<detail::fallback_range> ranges;
        std::vector<value_type> own;  ///< S_j on the ranges, concatenated (host memory)
    };

    /// Buffers for a model of `size` elements.
    explicit recovering_exchange(std::size_t size)
        : own_(size), received_(size), raw_own_(size), scratch_(size) {}

    /// Initiator: snapshot S_i (kept raw), send D(m_i).
    void request(Core& c, std::size_t peer, std::uint64_t id, initiator_state& s) {
        s.sent.resize(c.size);
        c.memory.gather(*c.model, s.sent);
        s.raw = s.sent;
        c.send(peer, message_kind::request, id, &s.sent);  // s.sent becomes D(m_i)
    }

    /// Responder: decode what can be (own_ holds S_j, received_ the decoded request, failed
    /// ranges F1), reply with D(m_j) plus the fallback section of F = F1 u F2, apply our half
    /// outside F1. Returns the fixup to wait for when F1 is not empty.
    std::optional<fixup_state> serve(Core& c, const envelope& e, std::span<const std::byte> bytes) {
        const auto payload = bytes.subspan(envelope_size);
        c.memory.gather(*c.model, own_);
        std::optional<fixup_state> awaited;
        c.answer_or_refuse(e, [&] {
            awaited = reply(c, e, c.decode(e.sender, e.kind, payload, own_, received_));
        });
        c.memory.apply_half_difference(*c.model, received_, own_);
        return awaited;
    }

    /// Responder of a pull: send D(m_j), change nothing.
    void serve_pull(Core& c, const envelope& e) {
        c.memory.gather(*c.model, own_);
        c.send(e.sender, message_kind::pull_reply, e.interaction, &own_);
    }

    /// Initiator: apply a reply (recovering its fallback ranges, sending a fixup when the
    /// responder could not decode ours) or a pull reply.
    void apply_reply(Core& c, const envelope& e, std::span<const std::byte> payload,
                     initiator_state& s) {
        if (e.kind == message_kind::pull_reply)
            apply_pull_reply(c, e, payload);
        else
            apply_push_reply(c, e, payload, s);
    }

    /// The responder's last step of a recovered interaction: the initiator's raw values for
    /// the ranges we could not decode; apply our half there, x += (S_i - S_j) / 2.
    void apply_fixup(Core& c, const envelope& e, std::span<const std::byte> payload,
                     fixup_state f) {
        using detail::concat;
        const auto section = detail::read_fallback<value_type>(
            payload, c.size, concat("fixup from node ", e.sender).c_str());
        bool same = section.ranges.size() == f.ranges.size();
        for (std::size_t i = 0; same && i < f.ranges.size(); ++i)
            same = section.ranges[i].begin == f.ranges[i].begin &&
                   section.ranges[i].end == f.ranges[i].end;
        if (!same)
            throw message_error(concat("node ", c.rank(), ": fixup from node ", e.sender,
                                       " for interaction ", e.interaction,
                                       " covers other ranges than were asked for"));
        std::vector<value_type> theirs(detail::range_elements(section.ranges));
        if (!theirs.empty())
            std::memcpy(theirs.data(), section.values, theirs.size() * sizeof(value_type));
        if (const auto k = detail::first_non_finite(theirs.data(), theirs.size());
            k != theirs.size())
            throw message_error(concat("node ", c.rank(), ": fixup from node ", e.sender,
                                       " holds a non-finite value; the model was not changed"));
        if (c.guarding())
            c.guard_distance(e.sender, e.kind,
                             detail::squared_distance(theirs.data(), f.own.data(), theirs.size()),
                             detail::squared_norm(f.own.data(), f.own.size()), theirs.size());
        c.memory.add_half_difference_ranges(*c.model, f.ranges, theirs.data(), f.own.data());
        // The initiator's step failed here, not ours: only observe the distance.
        c.quantizer.observe(std::span<const value_type>(theirs),
                            std::span<const value_type>(f.own));
    }

private:
    /// Throws when the decoded partner model received_ holds a NaN or Inf. A decode runs
    /// against `reference`, our own snapshot: when that holds a non-finite value (our model
    /// went bad), the failed ranges and the decode's output carry it, and the fault is ours:
    /// non_finite_error naming our element, as when any exchange refuses to send a non-finite
    /// model; otherwise the partner's message is at fault (message_error). Only the failure
    /// path reads the reference.
    void check_decoded(Core& c, const envelope& e, const buffer& reference) {
        const auto k = c.memory.first_non_finite(received_);
        if (k == received_.size()) return;
        if (const auto j = c.memory.first_non_finite(reference); j != reference.size())
            throw non_finite_error(detail::concat(
                "node ", c.rank(), ": model element ", j, " is ", c.memory.element(reference, j),
                e.kind == message_kind::request
                    ? "; refusing to send a non-finite model to node "
                    : "; refusing to average a non-finite model with node ",
                e.sender));
        c.throw_non_finite_received(e.sender, e.kind, k);
    }

    /// The responder's reply (own_ holds S_j, received_ the decoded request with `request`
    /// listing the ranges that failed, F1):
    /// - F1: nothing to average with yet; our raw values go to the initiator, and we apply our
    ///   half when its fixup brings its values;
    /// - F2: ranges where the initiator's decode of OUR message would fail. We know its
    ///   reference (received_ = D(m_i) outside F1) so we run its decode ourselves, and send
    ///   those ranges raw too;
    /// on F = F1 u F2 our reconstruction is S_j itself, so both sides apply the same values.
    std::optional<fixup_state> reply(Core& c, const envelope& e, const decode_result& request) {
        c.stats.failed_decode_elements += request.failed_elements();
        raw_own_ = own_;
        for (const auto& r : request.failed)  // no change there until the fixup
            c.memory.copy_range(own_, received_, r.begin, r.end);
        check_decoded(c, e, own_);
        c.guard_distance(e.sender, e.kind, received_, own_);
        std::vector<std::byte> bytes = c.build(e.sender, &own_);  // own_ becomes D(m_j)
        const std::size_t quantized = bytes.size() - envelope_size;
        const auto predicted =
            c.memory.decode(c.quantizer, std::span<const std::byte>(bytes).subspan(envelope_size),
                            received_, scratch_);
        const auto fallback = detail::merge_ranges(request.failed, predicted.failed);
        std::uint8_t flags = 0;
        if (!fallback.empty()) {
            for (const auto& r : fallback) {
                c.memory.copy_range(raw_own_, own_, r.begin, r.end);
                // A range merged from F1 and an adjacent F2 range is wholly settled by the
                // fixup: no change there now (else the F2 part would get our half twice).
                if (r.needs_fixup) c.memory.copy_range(raw_own_, received_, r.begin, r.end);
            }
            c.memory.append_fallback(bytes, fallback, raw_own_);
            const std::size_t at = bytes.size();
            bytes.resize(at + 8);
            detail::store<std::uint64_t>(bytes.data() + at, quantized);
            flags = flag_fallback;
            c.stats.recovered_elements += detail::range_elements(fallback);
        }
        c.post(e.sender, message_kind::reply, e.interaction, std::move(bytes), flags);
        std::optional<fixup_state> awaited;
        if (!request.ok()) {
            awaited.emplace();
            for (const auto& r : fallback) {
                if (!r.needs_fixup) continue;
                awaited->ranges.push_back(r);
                c.memory.append_range(awaited->own, raw_own_, r.begin, r.end);
            }
        }
        // Adapt OUR step: it is to blame only if OUR message would fail (F2). A failure of
        // the request (F1) is the initiator's step; its distance is observed at the fixup.
        // received_ equals raw_own_ on F1, so the distance below ignores F1.
        if (!predicted.ok())
            c.quantizer.on_failure(c.memory.max_difference(fallback, raw_own_, received_));
        else
            c.memory.observe(c.quantizer, raw_own_, received_);
        return awaited;
    }

    /// The initiator's side of a reply: decode what can be, take the fallback ranges raw,
    /// average, and send a fixup for the ranges the responder could not decode (with our raw
    /// snapshot S_i there, so that both sides end at the exact average (S_i + S_j) / 2 of
    /// those ranges).
    void apply_push_reply(Core& c, const envelope& e, std::span<const std::byte> payload,
                          initiator_state& s) {
        using detail::concat;
        auto quantized = payload;
        detail::fallback_section section;
        if ((e.flags & flag_fallback) != 0) {
            if (payload.size() < 8)
                throw message_error(concat("node ", c.rank(), " got a malformed reply from node ",
                                           e.sender, ": ", payload.size(), " bytes"));
            const auto q = detail::load<std::uint64_t>(payload.data() + payload.size() - 8);
            if (q > payload.size() - 8)
                throw message_error(concat("node ", c.rank(), " got a malformed reply from node ",
                                           e.sender, ": quantized part of ", q, " bytes in ",
                                           payload.size()));
            quantized = payload.first(q);
            section = detail::read_fallback<value_type>(
                payload.subspan(q, payload.size() - 8 - q), c.size,
                concat("reply from node ", e.sender).c_str());
        }
        const auto result = c.decode(e.sender, e.kind, quantized, s.sent, received_);
        for (const auto& f : result.failed) {
            const bool covered = std::any_of(section.ranges.begin(), section.ranges.end(),
                                             [&](const detail::fallback_range& r) {
                                                 return r.begin <= f.begin && f.end <= r.end;
                                             });
            if (!covered)
                throw message_error(concat("node ", c.rank(), " could not decode elements [",
                                           f.begin, ", ", f.end, ") of the reply from node ",
                                           e.sender,
                                           ", which sent no full-precision values "
                                           "for them; the model was not changed"));
        }
        c.stats.failed_decode_elements += result.failed_elements();
        c.memory.copy_fallback_values(section, received_);
        check_decoded(c, e, s.sent);
        c.guard_distance(e.sender, e.kind, received_, s.sent);
        std::vector<detail::fallback_range> fixup;
        for (const auto& r : section.ranges) {
            if (!r.needs_fixup) continue;
            fixup.push_back({r.begin, r.end, false});
            c.memory.copy_range(s.raw, s.sent, r.begin, r.end);  // we apply S_j - S_i there
        }
        c.memory.apply_half_difference(*c.model, received_, s.sent);
        if (!fixup.empty()) {
            std::vector<std::byte> bytes = c.take_bytes();
            bytes.resize(envelope_size);
            c.memory.append_fallback(bytes, fixup, s.raw);
            c.post(e.sender, message_kind::fixup, e.interaction, std::move(bytes));
        }
        // Adapt OUR step: it is to blame if the responder could not decode our request (the
        // ranges it needs a fixup for); otherwise just observe the distance (the fallback
        // ranges included, now exact).
        if (!fixup.empty())
            c.quantizer.on_failure(c.memory.max_difference(section.ranges, s.sent, received_));
        else
            c.memory.observe(c.quantizer, s.sent, received_);
        c.stats.recovered_elements += detail::range_elements(section.ranges);
    }

    /// X_i <- (X_i + D(m_j)) / 2. Pull is not mean-preserving anyway: failed ranges are simply
    /// not averaged.
    void apply_pull_reply(Core& c, const envelope& e, std::span<const std::byte> payload) {
        c.memory.gather(*c.model, own_);
        const auto result = c.decode(e.sender, e.kind, payload, own_, received_);
        for (const auto& r : result.failed) c.memory.copy_range(own_, received_, r.begin, r.end);
        check_decoded(c, e, own_);
        c.guard_distance(e.sender, e.kind, received_, own_);
        c.stats.failed_decode_elements += result.failed_elements();
        if (result.ok())
            c.memory.observe(c.quantizer, own_, received_);
        else
            c.quantizer.on_failure(0.0);
        c.memory.apply_half_difference(*c.model, received_, own_);
    }

    buffer own_;       // the responder's snapshot, then D(m_own)
    buffer received_;  // the decoded partner snapshot
    buffer raw_own_;   // the responder's raw snapshot S_j
    buffer scratch_;   // the initiator's decode of our reply, predicted
};

}  // namespace swarmsgd::exchanges
