#pragma once
/// \file cuda/pinned_block_allocator.hpp
/// `pinned_block_allocator`: page-locked host memory (cudaHostAlloc) for message_block_pool, so
/// that the messages a CUDA node receives land where the GPU's DMA engine reads them: the
/// upload of a payload from such a block is one cudaMemcpyAsync at the bus's rate, with no host
/// copy into a staging buffer (cuda/system.hpp detects page-locked sources).

#include <cuda_runtime_api.h>

#include <cstddef>

#include "../message_block_pool.hpp"
#include "error.hpp"

namespace swarmsgd {

/// A block_allocator of page-locked host memory.
struct pinned_block_allocator {
    /// `bytes` bytes of page-locked memory (cudaHostAlloc's alignment is a page); cuda_error
    /// naming the size when the runtime has none.
    [[nodiscard]] std::byte* allocate(std::size_t bytes) {
        void* p = nullptr;
        if (const cudaError_t status = cudaHostAlloc(&p, bytes, cudaHostAllocDefault);
            status != cudaSuccess) {
            (void)cudaGetLastError();
            throw cuda_error(status, detail::concat("swarmsgd: cudaHostAlloc of a page-locked "
                                                    "message block of ",
                                                    bytes, " bytes"));
        }
        return static_cast<std::byte*>(p);
    }
    /// Frees what allocate returned (errors ignored: this may run after the runtime shut down).
    void deallocate(std::byte* p, std::size_t /*bytes*/) noexcept { (void)cudaFreeHost(p); }
};

static_assert(block_allocator<pinned_block_allocator>);

}  // namespace swarmsgd
