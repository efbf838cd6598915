#pragma once
/// \file message_block.hpp
/// `message_block`: host memory that a caller lends a communicator for one message, and
/// `message_block_source`, where a communicator gets the block of a message it receives for a
/// caller (the optional block capability, block_communicator.hpp). A Thrust/CUDA node lends
/// page-locked blocks (message_block_pool with cuda's pinned_block_allocator), so a received
/// payload is uploaded to the GPU at the DMA rate, without a host copy into staging memory.

#include <cstddef>
#include <memory>
#include <span>
#include <utility>

namespace swarmsgd {

/// A block of host memory holding (or about to hold) one message. Ownership is shared: a
/// communicator keeps the block alive for as long as a transfer into or out of it may run, so
/// a transfer it has to abandon (its peer died mid-message) never writes into freed memory,
/// whatever the lender does meanwhile. Copying a block copies the handle, not the bytes.
class message_block {
public:
    /// An empty block (no memory, capacity 0).
    message_block() = default;
    /// Wraps `capacity` bytes at `memory.get()`; the deleter of `memory` frees or recycles them.
    message_block(std::shared_ptr<std::byte> memory, std::size_t capacity) noexcept
        : memory_(std::move(memory)), capacity_(memory_ ? capacity : 0) {}

    /// The first byte (nullptr for an empty block).
    [[nodiscard]] std::byte* data() const noexcept { return memory_.get(); }
    /// Bytes the block can hold.
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    /// The first `size` bytes (size <= capacity(), which callers check).
    [[nodiscard]] std::span<std::byte> first(std::size_t size) const noexcept {
        return {memory_.get(), size};
    }
    /// Whether the block has memory.
    explicit operator bool() const noexcept { return memory_ != nullptr; }

private:
    std::shared_ptr<std::byte> memory_;
    std::size_t capacity_ = 0;
};

/// Where a communicator gets the memory of a message it receives for a caller
/// (block_communicator::try_receive_block). `acquire(bytes)` returns a block of at least
/// `bytes` bytes, which the caller owns again once the message is handed over; it may throw
/// (the communicator then leaves the message where it was, see try_receive_block).
class message_block_source {
public:
    /// A block of at least `bytes` bytes.
    [[nodiscard]] virtual message_block acquire(std::size_t bytes) = 0;

protected:
    message_block_source() = default;
    message_block_source(const message_block_source&) = default;
    message_block_source& operator=(const message_block_source&) = default;
    ~message_block_source() = default;
};

}  // namespace swarmsgd
