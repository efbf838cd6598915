#pragma once
/// \file cuda/system.hpp
/// The CUDA system of the Thrust back end (detail::system_ops<thrust::cuda::tag>): algorithms
/// run with thrust::cuda::par; copies between the GPU and host memory (encoded payloads going
/// to or coming from a message) are staged through a pinned buffer of the calling thread
/// (pinned_buffer, in pieces of 4 MiB whose host memcpy overlaps the cudaMemcpyAsync of the
/// previous piece on the thread's stream), small ones (below 64 KiB) copied directly, and
/// copies from or to page-locked memory (a message block of a CUDA node) are one DMA; team loops
/// (system_team_for_each) run one warp per item (warp_team); every CUDA error becomes a cuda_error.
/// Included by <swarmsgd/thrust.hpp> when compiled by nvcc for the CUDA device system.

#include <cuda_runtime_api.h>
#include <thrust/system/cuda/execution_policy.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../detail/config.hpp"
#include "../thrust/system.hpp"
#include "error.hpp"
#include "pinned_block_allocator.hpp"
#include "pinned_buffer.hpp"

namespace swarmsgd::detail {

/// A warp as a team (thrust/detail/team.hpp): 32 lanes, reductions by butterfly shuffles, so
/// every lane holds the result. Host-callable only so that the codecs' host-device functors
/// compile; it is used in device code alone.
struct warp_team {
    static constexpr unsigned lanes = 32;
    [[nodiscard]] SWARMSGD_HOST_DEVICE static unsigned lane() noexcept {
#if defined(__CUDA_ARCH__)
        return threadIdx.x & 31u;
#else
        return 0;
#endif
    }
    [[nodiscard]] SWARMSGD_HOST_DEVICE static bool leader() noexcept { return lane() == 0; }
    template <class T>
    [[nodiscard]] SWARMSGD_HOST_DEVICE static T min(T v) noexcept {
        return reduce(v, [](T a, T b) { return b < a ? b : a; });
    }
    template <class T>
    [[nodiscard]] SWARMSGD_HOST_DEVICE static T max(T v) noexcept {
        return reduce(v, [](T a, T b) { return b > a ? b : a; });
    }
    template <class T>
    [[nodiscard]] SWARMSGD_HOST_DEVICE static T sum(T v) noexcept {
        static_assert(std::is_unsigned_v<T>, "warp_team::sum: unsigned (exact, mod 2^N) only");
        return reduce(v, [](T a, T b) { return static_cast<T>(a + b); });
    }
    [[nodiscard]] SWARMSGD_HOST_DEVICE static bool any(bool v) noexcept {
#if defined(__CUDA_ARCH__)
        return __any_sync(0xFFFFFFFFu, v) != 0;
#else
        return v;
#endif
    }

private:
    /// op over the 32 lanes' values of an integer type of 4 or 8 bytes.
    template <class T, class Op>
    SWARMSGD_HOST_DEVICE static T reduce(T v, Op op) noexcept {
        static_assert(std::is_integral_v<T> && (sizeof(T) == 4 || sizeof(T) == 8));
#if defined(__CUDA_ARCH__)
        using W = std::conditional_t<sizeof(T) == 4, unsigned, unsigned long long>;
        for (int offset = 16; offset > 0; offset >>= 1)
            v = op(v, std::bit_cast<T>(__shfl_xor_sync(0xFFFFFFFFu, std::bit_cast<W>(v), offset)));
#else
        (void)op;
#endif
        return v;
    }
};

/// One warp per item (grid-stride over items): f(item, warp_team{}) on each of its lanes.
template <class F>
__global__ void team_kernel(std::size_t items, F f) {
    const std::size_t warps = std::size_t{gridDim.x} * blockDim.x / warp_team::lanes;
    for (std::size_t item = (std::size_t{blockIdx.x} * blockDim.x + threadIdx.x) / warp_team::lanes;
         item < items; item += warps)
        f(item, warp_team{});
}

/// CUDA: thrust::cuda::par, pinned staging of host copies.
template <>
struct system_ops<thrust::cuda::tag> {
    /// Copies below this size go directly (cudaMemcpy): staging costs more than it saves.
    static constexpr std::size_t direct_copy_limit = std::size_t{64} << 10;

    static auto policy() noexcept { return thrust::cuda::par; }

    /// Where a CUDA node receives its messages (message_block_pool): page-locked memory.
    using block_allocator = pinned_block_allocator;

    /// Whether `host` is page-locked memory the runtime knows (cudaHostAlloc'ed, or
    /// registered): the DMA engine reads and writes it directly, so a copy needs no staging.
    [[nodiscard]] static bool page_locked(const void* host) noexcept {
        cudaPointerAttributes attributes{};
        if (cudaPointerGetAttributes(&attributes, host) != cudaSuccess) {
            (void)cudaGetLastError();  // not an error worth keeping: the answer is "no"
            return false;
        }
        return attributes.type == cudaMemoryTypeHost;
    }

    /// One asynchronous DMA of `bytes` bytes between page-locked host memory and the GPU on
    /// cudaStreamPerThread (a blocking stream: it waits for the kernels Thrust queued on the
    /// legacy default stream), then waits for it.
    static void direct_copy(void* to, const void* from, std::size_t bytes, cudaMemcpyKind kind,
                            const char* what) {
        cuda_check(cudaMemcpyAsync(to, from, bytes, kind, cudaStreamPerThread), what);
        cuda_check(cudaStreamSynchronize(cudaStreamPerThread), what);
    }

    /// Bytes per piece of a staged copy: the host copy of one piece overlaps the DMA of the
    /// other, so a large copy takes about the longer of the two rather than their sum.
    static constexpr std::size_t staging_piece = std::size_t{4} << 20;

    /// The calling thread's staging area (one node per thread in the in-process driver): a
    /// pinned buffer of two pieces and an event per piece marking the end of its DMA.
    struct staging_area {
        pinned_buffer buffer;
        cudaEvent_t done[2] = {nullptr, nullptr};
        staging_area() = default;
        staging_area(const staging_area&) = delete;
        staging_area& operator=(const staging_area&) = delete;
        ~staging_area() {
            for (cudaEvent_t e : done)
                if (e != nullptr) (void)cudaEventDestroy(e);  // may run after CUDA shut down
        }
    };

    /// The calling thread's staging area, with room for two pieces of `piece` bytes.
    static staging_area& staging(std::size_t piece) {
        thread_local staging_area area;
        area.buffer.reserve(2 * piece);
        for (cudaEvent_t& e : area.done)
            if (e == nullptr)
                cuda_check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming),
                           "swarmsgd: cudaEventCreate for the staging buffer");
        return area;
    }

    template <class T>
    static void to_system(const T* host, std::size_t n, T* system) {
        const std::size_t bytes = n * sizeof(T);
        if (bytes == 0) return;
        if (bytes < direct_copy_limit) {
            cuda_check(cudaMemcpy(system, host, bytes, cudaMemcpyHostToDevice),
                       "swarmsgd: cudaMemcpy to the GPU");
            return;
        }
        if (page_locked(host)) {  // a message received into a pinned block: no staging
            direct_copy(system, host, bytes, cudaMemcpyHostToDevice,
                        "swarmsgd: copy from page-locked memory to the GPU");
            return;
        }
        const std::size_t piece = bytes < staging_piece ? bytes : staging_piece;
        auto& area = staging(piece);
        const auto* from = reinterpret_cast<const std::byte*>(host);
        auto* to = reinterpret_cast<std::byte*>(system);
        for (std::size_t at = 0, i = 0; at < bytes; at += piece, ++i) {
            const std::size_t len = bytes - at < piece ? bytes - at : piece;
            std::byte* const slot = area.buffer.data() + (i % 2) * piece;
            if (i >= 2)  // the DMA that read this slot two pieces ago
                cuda_check(cudaEventSynchronize(area.done[i % 2]),
                           "swarmsgd: copy to the GPU (staging slot)");
            std::memcpy(slot, from + at, len);
            cuda_check(
                cudaMemcpyAsync(to + at, slot, len, cudaMemcpyHostToDevice, cudaStreamPerThread),
                "swarmsgd: cudaMemcpyAsync to the GPU");
            cuda_check(cudaEventRecord(area.done[i % 2], cudaStreamPerThread),
                       "swarmsgd: cudaEventRecord for the staging buffer");
        }
        cuda_check(cudaStreamSynchronize(cudaStreamPerThread),
                   "swarmsgd: copy to the GPU (stream synchronization)");
    }

    template <class T>
    static void to_host(const T* system, std::size_t n, T* host) {
        const std::size_t bytes = n * sizeof(T);
        if (bytes == 0) return;
        if (bytes < direct_copy_limit) {
            cuda_check(cudaMemcpy(host, system, bytes, cudaMemcpyDeviceToHost),
                       "swarmsgd: cudaMemcpy from the GPU");
            return;
        }
        if (page_locked(host)) {
            direct_copy(host, system, bytes, cudaMemcpyDeviceToHost,
                        "swarmsgd: copy from the GPU to page-locked memory");
            return;
        }
        // cudaStreamPerThread is a blocking stream: the copies wait for the kernels that Thrust
        // queued on the legacy default stream. The DMA of piece i + 1 runs while piece i is
        // copied out of its slot.
        const std::size_t piece = bytes < staging_piece ? bytes : staging_piece;
        auto& area = staging(piece);
        const auto* from = reinterpret_cast<const std::byte*>(system);
        auto* to = reinterpret_cast<std::byte*>(host);
        const auto start = [&](std::size_t i) {
            const std::size_t at = i * piece;
            if (at >= bytes) return;
            const std::size_t len = bytes - at < piece ? bytes - at : piece;
            cuda_check(cudaMemcpyAsync(area.buffer.data() + (i % 2) * piece, from + at, len,
                                       cudaMemcpyDeviceToHost, cudaStreamPerThread),
                       "swarmsgd: cudaMemcpyAsync from the GPU");
            cuda_check(cudaEventRecord(area.done[i % 2], cudaStreamPerThread),
                       "swarmsgd: cudaEventRecord for the staging buffer");
        };
        start(0);
        for (std::size_t at = 0, i = 0; at < bytes; at += piece, ++i) {
            start(i + 1);
            cuda_check(cudaEventSynchronize(area.done[i % 2]),
                       "swarmsgd: copy from the GPU (staging slot)");
            const std::size_t len = bytes - at < piece ? bytes - at : piece;
            std::memcpy(to + at, area.buffer.data() + (i % 2) * piece, len);
        }
    }

    template <class T>
    static void within(const T* from, std::size_t n, T* to) {
        if (n == 0) return;
        cuda_check(cudaMemcpy(to, from, n * sizeof(T), cudaMemcpyDeviceToDevice),
                   "swarmsgd: cudaMemcpy within the GPU");
    }

    /// Runs f(item, warp_team) for item in [0, items), one warp per item, on the stream of
    /// policy() (the legacy default stream, which orders it with Thrust's algorithms).
    template <class F>
    static void team_for_each(std::size_t items, F f) {
        constexpr unsigned threads = 256;
        constexpr std::size_t max_blocks = std::size_t{1} << 20;  // then grid-stride
        const std::size_t wanted = (items * warp_team::lanes + threads - 1) / threads;
        const auto blocks = static_cast<unsigned>(wanted < max_blocks ? wanted : max_blocks);
        team_kernel<<<blocks, threads>>>(items, f);
        cuda_check(cudaGetLastError(), "swarmsgd: launch of a team loop");
    }

    static void synchronize() {
        cuda_check(cudaDeviceSynchronize(), "swarmsgd: cudaDeviceSynchronize");
    }
};

}  // namespace swarmsgd::detail
