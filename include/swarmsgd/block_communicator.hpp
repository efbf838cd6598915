#pragma once
/// \file block_communicator.hpp
/// The OPTIONAL block capability of a communicator: receiving into, and sending from, memory
/// the caller provides (message_block.hpp) instead of the communicator's own byte vectors.
/// A Thrust/CUDA node lends page-locked blocks, so the bytes of a received message land where
/// the GPU reads them by DMA. `block_receiver` and `send_block` work with every communicator:
/// they use the capability where the communicator has it (mpi_communicator: MPI receives
/// straight into the block, and sends straight from it), and copy through the byte-vector
/// interface otherwise (the in-process, simulated and timed communicators, whose messages
/// never leave host memory anyway).

#include <algorithm>
#include <cstddef>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "communicator.hpp"
#include "errors.hpp"
#include "message_block.hpp"

namespace swarmsgd {

/// A message received into a caller's block.
struct received_block {
    std::size_t source = 0;  ///< rank of the sender
    message_block block;     ///< holds the message in its first `size` bytes
    std::size_t size = 0;    ///< the message's length (envelope and payload)

    /// The message's bytes.
    [[nodiscard]] std::span<std::byte> bytes() const noexcept { return block.first(size); }
};

/// A communicator with the block capability:
/// - `try_receive_block(source)`: as try_receive (the same messages, in the same order: the
///   two may be mixed), but the message is handed over in a block from `source.acquire(size)`.
///   A block smaller than the message is refused with invalid_argument_error naming both
///   sizes; then, or when acquire throws, the message is kept and handed over by a later call.
/// - `isend_block(dest, block, size)`: as isend of the block's first `size` bytes; the request
///   keeps the block alive until the send completed, and the caller must not write into it
///   before then. A size above the block's capacity is refused with invalid_argument_error.
template <class C>
concept block_communicator = communicator<C> &&
    requires(C& c, std::size_t dest, message_block block, std::size_t size,
             message_block_source& source) {
    { c.try_receive_block(source) } -> std::same_as<std::optional<received_block>>;
    { c.isend_block(dest, std::move(block), size) } -> send_request;
};

namespace detail {

/// Refuses a block that cannot hold `size` bytes (what: who asks, for the message).
template <class... Context>
void require_block_fits(const message_block& block, std::size_t size, const Context&... what) {
    require<invalid_argument_error>(block.capacity() >= size, what..., ": the message has ", size,
                                    " bytes but the block holds only ", block.capacity());
}

}  // namespace detail

/// Receives the messages of any communicator into blocks. With the block capability the
/// communicator receives into the block itself; else a message comes from try_receive and is
/// copied into the block. Nothing is lost on an error: when the source throws, or gives a
/// block too small (invalid_argument_error), the message is kept (here, or by a block
/// communicator) and handed over by the next call. One per node (it may hold one message).
template <communicator C>
class block_receiver {
public:
    /// The next message for `comm`'s node, in a block from `source`, if one has arrived
    /// (never blocks).
    [[nodiscard]] std::optional<received_block> try_receive(C& comm, message_block_source& source) {
        if constexpr (block_communicator<C>) {
            return comm.try_receive_block(source);
        } else {
            if (!held_) held_ = comm.try_receive();
            if (!held_) return std::nullopt;
            const std::size_t size = held_->bytes.size();
            received_block r{held_->source, source.acquire(size), size};
            detail::require_block_fits(r.block, size, "block_receiver, message from node ",
                                       held_->source);
            std::copy(held_->bytes.begin(), held_->bytes.end(), r.block.data());
            held_.reset();
            return r;
        }
    }

    /// Whether a message is held after a failed hand-over.
    [[nodiscard]] bool holding() const noexcept {
        if constexpr (block_communicator<C>)
            return false;
        else
            return held_.has_value();
    }

private:
    std::optional<received_message> held_;
};

/// Starts sending the first `size` bytes of `block` to `dest`. With the block capability the
/// communicator sends from the block (which the request keeps alive); else the bytes are copied
/// into a vector for isend, and the block is free again on return.
template <communicator C>
[[nodiscard]] auto send_block(C& comm, std::size_t dest, message_block block, std::size_t size) {
    detail::require_block_fits(block, size, "send_block to node ", dest);
    if constexpr (block_communicator<C>) {
        return comm.isend_block(dest, std::move(block), size);
    } else {
        std::vector<std::byte> bytes(block.data(), block.data() + size);
        return comm.isend(dest, std::move(bytes));
    }
}

}  // namespace swarmsgd
