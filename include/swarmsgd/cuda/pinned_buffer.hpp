#pragma once
/// \file cuda/pinned_buffer.hpp
/// `pinned_buffer`: page-locked host memory (cudaHostAlloc), the staging area of copies
/// between the GPU and host message buffers: the DMA engine copies to and from it at full bus
/// speed, asynchronously, where pageable memory goes through the driver's own bounce buffer.

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "error.hpp"

namespace swarmsgd {

/// Growable page-locked host memory (contents are not kept when it grows).
class pinned_buffer {
public:
    pinned_buffer() noexcept = default;
    /// At least `bytes` bytes.
    explicit pinned_buffer(std::size_t bytes) { reserve(bytes); }
    pinned_buffer(const pinned_buffer&) = delete;
    pinned_buffer& operator=(const pinned_buffer&) = delete;
    pinned_buffer(pinned_buffer&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)), capacity_(std::exchange(o.capacity_, 0)) {}
    pinned_buffer& operator=(pinned_buffer&& o) noexcept {
        if (this != &o) {
            release();
            data_ = std::exchange(o.data_, nullptr);
            capacity_ = std::exchange(o.capacity_, 0);
        }
        return *this;
    }
    ~pinned_buffer() { release(); }

    /// Makes room for `bytes` bytes (reallocates, growing by half at least, when needed).
    void reserve(std::size_t bytes) {
        if (bytes <= capacity_) return;
        const std::size_t grown = capacity_ + capacity_ / 2;
        const std::size_t size = bytes > grown ? bytes : grown;
        release();
        void* p = nullptr;
        detail::cuda_check(cudaHostAlloc(&p, size, cudaHostAllocDefault),
                           "swarmsgd: cudaHostAlloc of a pinned staging buffer");
        data_ = static_cast<std::byte*>(p);
        capacity_ = size;
    }
    /// The memory.
    [[nodiscard]] std::byte* data() noexcept { return data_; }
    /// Bytes available.
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

private:
    void release() noexcept {
        if (data_ != nullptr) (void)cudaFreeHost(data_);
        data_ = nullptr;
        capacity_ = 0;
    }
    std::byte* data_ = nullptr;
    std::size_t capacity_ = 0;
};

}  // namespace swarmsgd
