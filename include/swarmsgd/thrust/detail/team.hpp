#pragma once
/// \file thrust/detail/team.hpp
/// Teams of lanes that work on one item of a team loop together (system_team_for_each in
/// thrust/model_ops.hpp). The codecs' bucket and segment loops are written once over a team:
/// lane l takes the groups l, l + lanes, l + 2 lanes, ... of the item, and the bucket-wide
/// values (range, largest magnitude, checksum sum) come from the team's reductions. On the CPU
/// systems a team is one thread (serial_team: every reduction is the identity, the loops run
/// in order, as the CPU quantizers do); on a GPU it is a warp of 32 lanes (cuda/system.hpp,
/// warp_team), so that neighbouring lanes read neighbouring memory instead of each thread
/// walking a bucket of its own. Every reduction used here (min, max, integer sums mod 2^N, or)
/// is exact and independent of order, so a team of any size gives the same bytes.
///
/// A team functor is called as f(item, team) by every lane of the team; its control flow must
/// be the same on every lane up to each reduction (decide on reduced values only).

#include <cstddef>

#include "../../detail/config.hpp"

namespace swarmsgd::detail {

/// A team of one: the CPU systems' team, and the reference a wider team must agree with.
struct serial_team {
    static constexpr unsigned lanes = 1;
    [[nodiscard]] SWARMSGD_HOST_DEVICE static constexpr unsigned lane() noexcept { return 0; }
    /// True on the one lane that writes a team's result.
    [[nodiscard]] SWARMSGD_HOST_DEVICE static constexpr bool leader() noexcept { return true; }
    template <class T>
    [[nodiscard]] SWARMSGD_HOST_DEVICE static constexpr T min(T v) noexcept {
        return v;
    }
    template <class T>
    [[nodiscard]] SWARMSGD_HOST_DEVICE static constexpr T max(T v) noexcept {
        return v;
    }
    /// Sum over the team (unsigned: mod 2^N).
    template <class T>
    [[nodiscard]] SWARMSGD_HOST_DEVICE static constexpr T sum(T v) noexcept {
        return v;
    }
    [[nodiscard]] SWARMSGD_HOST_DEVICE static constexpr bool any(bool v) noexcept { return v; }
};

/// f(item, serial_team{}) as a Thrust for_each functor over items.
template <class F>
struct serial_team_call {
    F f;
    SWARMSGD_HOST_DEVICE void operator()(std::size_t item) const { f(item, serial_team{}); }
};

}  // namespace swarmsgd::detail
