#pragma once
/// \file message_block_pool.hpp
/// `message_block_pool<Allocator>`: a message_block_source that reuses its blocks. A block
/// handed out comes back to the pool when the last handle on it is dropped (the caller is done
/// with the message and the communicator with any transfer), so a node that receives messages
/// of one size allocates a handful of blocks once and then only reuses them. The allocator
/// decides what memory it is: ordinary host memory (host_block_allocator) or page-locked memory
/// a GPU reads by DMA (pinned_block_allocator, <swarmsgd/cuda/pinned_block_allocator.hpp>).

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <memory>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "message_block.hpp"

namespace swarmsgd {

/// How a message_block_pool gets memory: `allocate(bytes)` returns at least `bytes` bytes
/// aligned to 64 or throws; `deallocate(p, bytes)` frees what allocate returned (noexcept).
template <class A>
concept block_allocator = std::movable<A> && requires(A& a, std::size_t n, std::byte* p) {
    { a.allocate(n) } -> std::same_as<std::byte*>;
    { a.deallocate(p, n) }
    noexcept;
};

/// Ordinary host memory, 64-byte aligned (operator new).
struct host_block_allocator {
    /// `bytes` bytes; std::bad_alloc when there are none.
    [[nodiscard]] std::byte* allocate(std::size_t bytes) {
        return static_cast<std::byte*>(::operator new (bytes, std::align_val_t{64}));
    }
    /// Frees what allocate returned.
    void deallocate(std::byte* p, std::size_t /*bytes*/) noexcept {
        ::operator delete (p, std::align_val_t{64});
    }
};

/// A message_block_source that recycles its blocks (see the file comment). Thread-safe: blocks
/// may be released from any thread, and acquire may be called from several. Blocks outlive the
/// pool safely: one released after the pool is destroyed is freed, not recycled.
template <block_allocator Allocator = host_block_allocator>
class message_block_pool final : public message_block_source {
public:
    /// Allocations are rounded up to a multiple of this.
    static constexpr std::size_t granule = 4096;

    /// A pool that keeps at most `max_cached` free blocks (more are freed when released).
    explicit message_block_pool(Allocator allocator = {}, std::size_t max_cached = 16)
        : state_(std::make_shared<state>(std::move(allocator), max_cached)) {}
    message_block_pool(const message_block_pool&) = delete;
    message_block_pool& operator=(const message_block_pool&) = delete;
    message_block_pool(message_block_pool&&) noexcept = default;
    message_block_pool& operator=(message_block_pool&&) noexcept = default;
    /// Frees the free blocks; blocks still in use are freed when they are released.
    ~message_block_pool() {
        if (state_) state_->close();
    }

    /// The smallest free block of at least `bytes` bytes, or a new one (rounded up to
    /// `granule`). Throws what the allocator throws when it has no memory.
    [[nodiscard]] message_block acquire(std::size_t bytes) override {
        std::byte* p = nullptr;
        std::size_t capacity = 0;
        {
            std::lock_guard lock(state_->mutex);
            auto& free = state_->free;
            auto best = free.end();
            for (auto it = free.begin(); it != free.end(); ++it)
                if (it->second >= bytes && (best == free.end() || it->second < best->second))
                    best = it;
            if (best != free.end()) {
                p = best->first;
                capacity = best->second;
                free.erase(best);
                ++state_->reused;
            }
        }
        if (p == nullptr) {
            capacity = std::max<std::size_t>(granule, (bytes + granule - 1) / granule * granule);
            p = state_->allocator.allocate(capacity);
            std::lock_guard lock(state_->mutex);
            ++state_->allocated;
        }
        // The deleter owns a reference to the state: the allocator outlives every block.
        auto shared = state_;
        return {std::shared_ptr<std::byte>(
                    p, [shared, capacity](std::byte* q) noexcept { shared->release(q, capacity); }),
                capacity};
    }

    /// Blocks allocated so far (not counting reuses).
    [[nodiscard]] std::size_t allocations() const {
        std::lock_guard lock(state_->mutex);
        return state_->allocated;
    }
    /// Acquisitions served by a free block.
    [[nodiscard]] std::size_t reuses() const {
        std::lock_guard lock(state_->mutex);
        return state_->reused;
    }
    /// Free blocks held now.
    [[nodiscard]] std::size_t cached() const {
        std::lock_guard lock(state_->mutex);
        return state_->free.size();
    }

private:
    struct state {
        state(Allocator a, std::size_t max) : allocator(std::move(a)), max_cached(max) {}
        state(const state&) = delete;
        state& operator=(const state&) = delete;
        ~state() {
            for (auto& [p, n] : free) allocator.deallocate(p, n);
        }
        void release(std::byte* p, std::size_t n) noexcept {
            {
                std::lock_guard lock(mutex);
                if (open && free.size() < max_cached) {
                    free.emplace_back(p, n);
                    return;
                }
            }
            allocator.deallocate(p, n);
        }
        void close() noexcept {
            std::vector<std::pair<std::byte*, std::size_t>> dropped;
            {
                std::lock_guard lock(mutex);
                open = false;
                dropped.swap(free);
            }
            for (auto& [p, n] : dropped) allocator.deallocate(p, n);
        }

        Allocator allocator;
        std::size_t max_cached;
        mutable std::mutex mutex;
        std::vector<std::pair<std::byte*, std::size_t>> free;
        bool open = true;
        std::size_t allocated = 0;
        std::size_t reused = 0;
    };
    std::shared_ptr<state> state_;
};

}  // namespace swarmsgd
