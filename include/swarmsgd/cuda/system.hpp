#pragma once
/// \file cuda/system.hpp
/// The CUDA system of the Thrust back end (detail::system_ops<thrust::cuda::tag>): algorithms
/// run with thrust::cuda::par; copies between the GPU and host memory (encoded payloads going
/// to or coming from a message) are staged through a pinned buffer of the calling thread
/// (pinned_buffer, cudaMemcpyAsync on the thread's stream, then one host memcpy), small
/// ones (below 64 KiB) copied directly; every CUDA error becomes a cuda_error. Included by
/// <swarmsgd/thrust.hpp> when compiled by nvcc for the CUDA device system.

#include <cuda_runtime_api.h>
#include <thrust/system/cuda/execution_policy.h>

#include <cstddef>
#include <cstring>

#include "../thrust/system.hpp"
#include "error.hpp"
#include "pinned_buffer.hpp"

namespace swarmsgd::detail {

/// CUDA: thrust::cuda::par, pinned staging of host copies.
template <>
struct system_ops<thrust::cuda::tag> {
    /// Copies below this size go directly (cudaMemcpy): staging costs more than it saves.
    static constexpr std::size_t direct_copy_limit = std::size_t{64} << 10;

    static auto policy() noexcept { return thrust::cuda::par; }

    /// The calling thread's staging buffer (one node per thread in the in-process driver).
    static pinned_buffer& staging(std::size_t bytes) {
        thread_local pinned_buffer buffer;
        buffer.reserve(bytes);
        return buffer;
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
        auto& stage = staging(bytes);
        std::memcpy(stage.data(), host, bytes);
        cuda_check(cudaMemcpyAsync(system, stage.data(), bytes, cudaMemcpyHostToDevice,
                                   cudaStreamPerThread),
                   "swarmsgd: cudaMemcpyAsync to the GPU");
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
        // cudaStreamPerThread is a blocking stream: the copy waits for the kernels that Thrust
        // queued on the legacy default stream.
        auto& stage = staging(bytes);
        cuda_check(cudaMemcpyAsync(stage.data(), system, bytes, cudaMemcpyDeviceToHost,
                                   cudaStreamPerThread),
                   "swarmsgd: cudaMemcpyAsync from the GPU");
        cuda_check(cudaStreamSynchronize(cudaStreamPerThread),
                   "swarmsgd: copy from the GPU (stream synchronization)");
        std::memcpy(host, stage.data(), bytes);
    }

    template <class T>
    static void within(const T* from, std::size_t n, T* to) {
        if (n == 0) return;
        cuda_check(cudaMemcpy(to, from, n * sizeof(T), cudaMemcpyDeviceToDevice),
                   "swarmsgd: cudaMemcpy within the GPU");
    }

    static void synchronize() {
        cuda_check(cudaDeviceSynchronize(), "swarmsgd: cudaDeviceSynchronize");
    }
};

}  // namespace swarmsgd::detail
