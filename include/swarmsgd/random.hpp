#pragma once
/// \file random.hpp
/// A small, fast, portable random number generator. The library never uses
/// std::uniform_*_distribution, whose output differs between standard libraries, so a
/// seed gives bit-identical runs on every platform.

#include <array>
#include <cstddef>
#include <cstdint>

namespace swarmsgd {

namespace detail {
__extension__ typedef unsigned __int128 uint128;  // GCC/Clang extension, silenced for -Wpedantic
}  // namespace detail

/// SplitMix64 step: used to expand one seed into independent streams.
[[nodiscard]] constexpr std::uint64_t splitmix64(std::uint64_t& state) noexcept {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/// xoshiro256** generator (Blackman and Vigna). Satisfies std::uniform_random_bit_generator.
class rng {
public:
    using result_type = std::uint64_t;

    /// Seeds the four words of state from `seed` and `stream` through SplitMix64, so
    /// rng(seed, 0), rng(seed, 1), ... are independent streams (one per node, say).
    explicit constexpr rng(std::uint64_t seed = 0, std::uint64_t stream = 0) noexcept {
        std::uint64_t sm = seed ^ (0xD1B54A32D192ED03ULL * (stream + 1));
        for (auto& word : s_) word = splitmix64(sm);
    }

    /// The four words of state (checkpoints); set_state(state()) continues the same stream.
    [[nodiscard]] std::array<std::uint64_t, 4> state() const noexcept {
        return {s_[0], s_[1], s_[2], s_[3]};
    }
    /// Restores a state from state().
    void set_state(const std::array<std::uint64_t, 4>& s) noexcept {
        for (std::size_t k = 0; k < 4; ++k) s_[k] = s[k];
    }

    static constexpr result_type min() noexcept { return 0; }
    static constexpr result_type max() noexcept { return ~result_type{0}; }

    /// Next 64 random bits.
    constexpr result_type operator()() noexcept {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    /// Uniform integer in [0, bound), bound > 0 (Lemire's nearly divisionless method, unbiased).
    constexpr std::uint64_t uniform(std::uint64_t bound) noexcept {
        detail::uint128 m = static_cast<detail::uint128>((*this)()) * bound;
        auto low = static_cast<std::uint64_t>(m);
        if (low < bound) {
            const std::uint64_t threshold = (0 - bound) % bound;
            while (low < threshold) {
                m = static_cast<detail::uint128>((*this)()) * bound;
                low = static_cast<std::uint64_t>(m);
            }
        }
        return static_cast<std::uint64_t>(m >> 64);
    }

    /// Uniform double in [0, 1) with 53 random bits.
    constexpr double uniform01() noexcept {
        return static_cast<double>((*this)() >> 11) * 0x1.0p-53;
    }

private:
    static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept {
        return (x << k) | (x >> (64 - k));
    }
    std::uint64_t s_[4]{};
};

}  // namespace swarmsgd
