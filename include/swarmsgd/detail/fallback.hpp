#pragma once
/// \file detail/fallback.hpp
/// The recovery of failed decodes on host memory: merging failed ranges, writing a fallback
/// section from host values and reading its values back. The section's wire layout, its
/// reader and writer are in message.hpp (the wire format in one header).

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <vector>

#include "../message.hpp"
#include "../quantizer.hpp"

namespace swarmsgd::detail {

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
