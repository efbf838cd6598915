#pragma once
/// \file thrust/detail/codec_support.hpp
/// Helpers of the system codecs: unaligned loads and stores usable in device code, the
/// payload prefix (header and parameters) written on the host, payloads staged into a system,
/// per-bucket scratch, and the launch of a functor over n items.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "../../detail/config.hpp"
#include "../../detail/quantizer_support.hpp"
#include "../model_ops.hpp"
#include "../system.hpp"
#include "../system_buffer.hpp"

namespace swarmsgd::detail {

/// T at byte address p (any alignment), in host or device code.
template <class T>
[[nodiscard]] SWARMSGD_HOST_DEVICE inline T load_any(const std::byte* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

/// Stores v at byte address p (any alignment), in host or device code.
template <class T>
SWARMSGD_HOST_DEVICE inline void store_any(std::byte* p, T v) noexcept {
    std::memcpy(p, &v, sizeof(T));
}

/// Largest header-plus-parameters prefix of the library's payloads (lattice: 32 bytes).
inline constexpr std::size_t max_payload_prefix = 32;

/// A payload prefix assembled in host memory with the host writers of message.hpp, then copied
/// to the payload in S.
struct payload_prefix {
    std::byte bytes[max_payload_prefix] = {};
    /// The first n bytes, writable by the host writers.
    [[nodiscard]] std::span<std::byte> first(std::size_t n) noexcept { return {bytes, n}; }
    /// Copies the first n bytes to `out` (in S).
    template <class S>
    void copy_to(std::size_t n, std::byte* out) const {
        system_ops<S>::to_system(bytes, n, out);
    }
};

/// A payload (in host memory, where messages arrive) made readable by code running in S: the
/// very bytes in a host-accessible system, an uploaded copy otherwise.
template <class S>
class staged_payload {
public:
    /// The payload's bytes as seen from S.
    const std::byte* stage(std::span<const std::byte> payload) {
        if constexpr (host_accessible_system_v<S>) {
            return payload.data();
        } else {
            copy_.resize(payload.size());
            system_ops<S>::to_system(payload.data(), payload.size(), copy_.data());
            return copy_.data();
        }
    }

private:
    system_buffer<std::byte, S> copy_;
};

/// Elements per inner chunk of the codecs' loops in system S: 256 where S runs on the CPU (a
/// vectorizable loop over an L1-resident array of codes, packed once per chunk), 8 on a GPU
/// (one group of 8 codes in registers per step). A multiple of 8, so chunks that start on a
/// multiple of 8 start on a byte of the packed stream.
template <class S>
inline constexpr std::size_t inner_chunk = host_accessible_system_v<S> ? 256 : 8;

/// Number of pieces of `size` in n: ceil(n / size).
[[nodiscard]] constexpr std::size_t count_of(std::size_t n, std::size_t size) noexcept {
    return n / size + (n % size != 0 ? 1 : 0);
}

template <class T>
struct flagged {
    const T* flags;
    SWARMSGD_HOST_DEVICE bool operator()(std::size_t k) const { return flags[k] != 0; }
};

/// Index of the first nonzero flag among flags[0, n) (in S), or n.
template <class S, class T>
[[nodiscard]] std::size_t first_flagged(const T* flags, std::size_t n) {
    if (n == 0) return 0;
    const auto it = thrust::find_if(system_ops<S>::policy(), index_iterator(0), index_iterator(n),
                                    flagged<T>{flags});
    return static_cast<std::size_t>(*it);
}

/// The cold path of a bucketed encoder that flagged bucket b: copies its values (m elements
/// from element b0) out of S and throws non_finite_error, as the CPU encoders do, at the first
/// NaN/inf. Returns the copy when every value is finite: the caller raises its own error.
template <class V, class S>
[[nodiscard]] std::vector<V> flagged_bucket_on_host(std::string_view quantizer, const V* values,
                                                    std::size_t b0, std::size_t m) {
    std::vector<V> xb(m);
    system_ops<S>::to_host(values + b0, m, xb.data());
    for (std::size_t j = 0; j < m; ++j)
        if (!std::isfinite(xb[j]))
            raise<non_finite_error>(quantizer, " encode: element ", b0 + j, " is ",
                                    exact_text(xb[j]), "; only finite values can be sent");
    return xb;
}

}  // namespace swarmsgd::detail
