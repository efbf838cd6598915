#pragma once
/// \file communicator.hpp
/// The communicator customization point: byte messages between the nodes of a swarm,
/// non-blocking, plus the two calls of the shutdown protocol.

#include <chrono>
#include <concepts>
#include <cstddef>
#include <optional>
#include <vector>

namespace swarmsgd {

/// A message taken out of a node's inbox.
struct received_message {
    std::size_t source = 0;        ///< rank of the sender
    std::vector<std::byte> bytes;  ///< the whole message (envelope and payload)
};

/// A move-only handle on a non-blocking send. `test()` says whether the send buffer has been
/// released (the send is complete locally); `wait(timeout)` waits at most `timeout` for that
/// and returns the same answer. Destroying an incomplete request waits for it (bounded by the
/// communicator's own timeout) or cancels it, as the communicator documents.
template <class R>
concept send_request = std::movable<R> && !std::copy_constructible<R> &&
                       requires(R & r, std::chrono::nanoseconds timeout) {
    { r.test() } -> std::same_as<bool>;
    { r.wait(timeout) } -> std::same_as<bool>;
};

/// A communicator is one node's endpoint:
/// - `rank()`, `size()`: this node's rank and the number of nodes;
/// - `isend(dest, bytes)`: starts sending `bytes` (ownership moves in) and returns a
///   send_request at once; messages between one pair of nodes arrive in the order sent;
/// - `try_receive()`: the next message for this node if one has arrived, never blocks;
/// - `wait_for_message(timeout)`: sleeps until a message may be there or `timeout` passed
///   (returns whether one may be there; spurious true is allowed), so an idle node does not
///   burn a core another node needs;
/// - `announce_done()`: this node will start no more interactions (it still answers);
/// - `all_done()`: every node has announced; non-blocking, once true stays true.
template <class C>
concept communicator = requires(C& c, const C& cc, std::size_t dest, std::vector<std::byte> bytes,
                                std::chrono::nanoseconds timeout) {
    { cc.rank() } -> std::convertible_to<std::size_t>;
    { cc.size() } -> std::convertible_to<std::size_t>;
    { c.isend(dest, std::move(bytes)) } -> send_request;
    { c.try_receive() } -> std::same_as<std::optional<received_message>>;
    { c.wait_for_message(timeout) } -> std::same_as<bool>;
    {c.announce_done()};
    { c.all_done() } -> std::same_as<bool>;
};

/// A send_request that is complete from the start (for communicators that hand the buffer
/// over synchronously, like the in-process and simulated ones).
class completed_request {
public:
    completed_request() = default;
    completed_request(completed_request&&) noexcept = default;
    completed_request& operator=(completed_request&&) noexcept = default;
    completed_request(const completed_request&) = delete;
    completed_request& operator=(const completed_request&) = delete;
    ~completed_request() = default;

    /// Always true.
    [[nodiscard]] bool test() noexcept { return true; }
    /// Always true, at once.
    [[nodiscard]] bool wait(std::chrono::nanoseconds /*timeout*/) noexcept { return true; }
};

}  // namespace swarmsgd
