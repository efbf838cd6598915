#pragma once
/// \file detail/fallback.hpp
/// Element ranges sent at full precision when a quantizer could not decode them (the lattice
/// quantizer's failed buckets), and their wire form:
///   u32 range count | per range: u64 begin, u64 end, u8 needs_fixup | the values of every
///   range in order, raw (float or double)
/// A fixup message carries the same section with needs_fixup = 0.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "../errors.hpp"
#include "../message.hpp"
#include "../quantizer.hpp"

namespace swarmsgd::detail {

/// A range sent at full precision; needs_fixup: the sender could not decode it either and
/// waits for the receiver's values (a fixup message).
struct fallback_range {
    std::size_t begin = 0;     ///< first element
    std::size_t end = 0;       ///< one past the last
    bool needs_fixup = false;  ///< the sender waits for a fixup of this range
    friend bool operator==(const fallback_range&, const fallback_range&) = default;
};

inline constexpr std::size_t fallback_range_bytes = 17;

/// Union of two sorted lists of ranges (sorted, merged where they touch); a merged range needs
/// a fixup if any part of it came from `needing`.
[[nodiscard]] inline std::vector<fallback_range> merge_ranges(
    const std::vector<element_range>& needing, const std::vector<element_range>& other) {
    std::vector<fallback_range> all;
    for (const auto& r : needing) all.push_back({r.begin, r.end, true});
    for (const auto& r : other) all.push_back({r.begin, r.end, false});
    std::sort(all.begin(), all.end(),
              [](const fallback_range& a, const fallback_range& b) { return a.begin < b.begin; });
    std::vector<fallback_range> merged;
    for (const auto& r : all) {
        if (r.begin >= r.end) continue;
        if (!merged.empty() && r.begin <= merged.back().end) {
            merged.back().end = std::max(merged.back().end, r.end);
            merged.back().needs_fixup = merged.back().needs_fixup || r.needs_fixup;
        } else {
            merged.push_back(r);
        }
    }
    return merged;
}

/// Number of elements in the ranges.
[[nodiscard]] inline std::size_t range_elements(std::span<const fallback_range> ranges) {
    std::size_t n = 0;
    for (const auto& r : ranges) n += r.end - r.begin;
    return n;
}

/// Appends a section for `ranges` of elements of `value_size` bytes to `out`: writes its
/// header (u32 count | per range u64 begin, u64 end, u8 needs_fixup) and returns where the
/// ranges' values go, in order (the caller copies them from wherever the model lives).
[[nodiscard]] inline std::byte* append_fallback_header(std::vector<std::byte>& out,
                                                       std::span<const fallback_range> ranges,
                                                       std::size_t value_size) {
    const std::size_t start = out.size();
    out.resize(start + 4 + ranges.size() * fallback_range_bytes +
               range_elements(ranges) * value_size);
    std::byte* p = out.data() + start;
    store<std::uint32_t>(p, static_cast<std::uint32_t>(ranges.size()));
    p += 4;
    for (const auto& r : ranges) {
        store<std::uint64_t>(p, r.begin);
        store<std::uint64_t>(p + 8, r.end);
        store<std::uint8_t>(p + 16, r.needs_fixup ? 1 : 0);
        p += fallback_range_bytes;
    }
    return p;
}

/// Appends the section: ranges, then `values[r]` for each range (values is model-sized).
template <class V>
void append_fallback(std::vector<std::byte>& out, std::span<const fallback_range> ranges,
                     std::span<const V> values) {
    std::byte* p = append_fallback_header(out, ranges, sizeof(V));
    for (const auto& r : ranges) {
        std::memcpy(p, values.data() + r.begin, (r.end - r.begin) * sizeof(V));
        p += (r.end - r.begin) * sizeof(V);
    }
}

/// A parsed section: the ranges and where their raw values start.
struct fallback_section {
    std::vector<fallback_range> ranges;  ///< sorted, disjoint, non-empty, inside the model
    const std::byte* values = nullptr;   ///< raw values of every range, in order
};

/// Parses and validates a section that must fill `in` exactly, for a model of `size` elements;
/// throws message_error naming `what` and the defect.
template <class V>
[[nodiscard]] fallback_section read_fallback(std::span<const std::byte> in, std::size_t size,
                                             const char* what) {
    if (in.size() < 4)
        throw message_error(
            concat(what, ": fallback section of ", in.size(), " bytes is truncated"));
    const auto count = load<std::uint32_t>(in.data());
    if ((in.size() - 4) / fallback_range_bytes < count)
        throw message_error(concat(what, ": fallback section announces ", count,
                                   " ranges but has only ", in.size(), " bytes"));
    fallback_section s;
    const std::byte* p = in.data() + 4;
    std::size_t elements = 0, previous_end = 0;
    for (std::uint32_t i = 0; i < count; ++i, p += fallback_range_bytes) {
        fallback_range r{load<std::uint64_t>(p), load<std::uint64_t>(p + 8),
                         load<std::uint8_t>(p + 16) != 0};
        if (load<std::uint8_t>(p + 16) > 1 || r.begin >= r.end || r.end > size ||
            (i > 0 && r.begin < previous_end))
            throw message_error(concat(what, ": fallback range ", i, " [", r.begin, ", ", r.end,
                                       ") is empty, unsorted, overlapping or outside the model of ",
                                       size, " elements"));
        previous_end = r.end;
        elements += r.end - r.begin;
        s.ranges.push_back(r);
    }
    const std::size_t expected = 4 + count * fallback_range_bytes + elements * sizeof(V);
    if (in.size() != expected)
        throw message_error(concat(what, ": fallback section has ", in.size(), " bytes, expected ",
                                   expected, " for ", count, " ranges of ", elements, " elements"));
    s.values = p;
    return s;
}

/// Copies the section's raw values into `out[r]` for each range (out is model-sized).
template <class V>
void copy_fallback_values(const fallback_section& s, std::span<V> out) {
    const std::byte* p = s.values;
    for (const auto& r : s.ranges) {
        std::memcpy(out.data() + r.begin, p, (r.end - r.begin) * sizeof(V));
        p += (r.end - r.begin) * sizeof(V);
    }
}

}  // namespace swarmsgd::detail
