#pragma once
/// \file detail/send_queue.hpp
/// The sends of one node that have not completed yet, kept until they do, and released with a
/// bounded linger when the node goes away (swarm_options::send_linger).

#include <chrono>
#include <concepts>
#include <utility>
#include <vector>

namespace swarmsgd::detail {

/// Send requests of type Request (communicator.hpp's send_request) in flight.
template <class Request>
class send_queue {
public:
    send_queue() = default;
    send_queue(const send_queue&) = delete;
    send_queue& operator=(const send_queue&) = delete;
    send_queue(send_queue&&) noexcept = default;
    /// Releases this queue's own sends first (as the destructor does), then takes `o`'s.
    send_queue& operator=(send_queue&& o) noexcept {
        if (this != &o) {
            release();
            requests_ = std::move(o.requests_);
            linger_ = o.linger_;
        }
        return *this;
    }
    /// release().
    ~send_queue() { release(); }

    /// The total time release() gives the sends in flight.
    void set_linger(std::chrono::nanoseconds linger) noexcept { linger_ = linger; }

    /// Keeps `r` unless it has completed, and forgets every send that has.
    void add(Request r) {
        if (!r.test()) requests_.push_back(std::move(r));
        std::erase_if(requests_, [](Request& q) { return q.test(); });
    }

    /// Waits for the sends in flight until the linger has passed IN TOTAL, then detaches the
    /// rest: a request type with wait(timeout) and detach() (mpi_send_request) keeps its
    /// buffer alive for the transport and returns at once; others are simply destroyed (their
    /// own destructors decide). Never throws.
    void release() noexcept {
        if (requests_.empty()) return;
        if constexpr (requires(Request & r) {
                          { r.wait(std::chrono::nanoseconds{}) } -> std::convertible_to<bool>;
                          r.detach();
                      }) {
            using clock = std::chrono::steady_clock;
            const auto deadline = clock::now() + linger_;
            for (auto& r : requests_) {
                try {
                    const auto left = deadline - clock::now();
                    if (left > clock::duration::zero() && r.wait(left)) continue;
                } catch (...) {  // a failing transport: detach, as for a late send
                }
                r.detach();
            }
        }
        requests_.clear();
    }

private:
    std::vector<Request> requests_;
    std::chrono::nanoseconds linger_{std::chrono::seconds(1)};
};

}  // namespace swarmsgd::detail
