#pragma once
/// \file detail/send_queue.hpp
/// The sends of one node that have not completed yet, kept until they do, and released with a
/// bounded linger when the node goes away (swarm_options::send_linger).

#include <chrono>
#include <concepts>
#include <cstddef>
#include <exception>
#include <string>
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
            record_failures_ = o.record_failures_;
            failures_ = std::move(o.failures_);
        }
        return *this;
    }
    /// release().
    ~send_queue() { release(); }

    /// The total time release() gives the sends in flight.
    void set_linger(std::chrono::nanoseconds linger) noexcept { linger_ = linger; }

    /// When on (failure_policy::exclude), a send the transport fails (start() or a request's
    /// test() throws) is recorded with its peer for failures() instead of thrown.
    void record_failures(bool on) noexcept { record_failures_ = on; }

    /// Starts a send to `peer` (`start()` returns its request), keeps it unless it has
    /// completed, and forgets every send that has.
    template <class Start>
    void add(std::size_t peer, Start&& start) {
        try {
            entry e{peer, start()};
            if (!e.request.test()) requests_.push_back(std::move(e));
        } catch (const std::exception& x) {
            if (!record_failures_) throw;
            failures_.emplace_back(peer, x.what());
        }
        std::erase_if(requests_, [&](entry& q) {
            try {
                return q.request.test();
            } catch (const std::exception& x) {
                if (!record_failures_) throw;
                failures_.emplace_back(q.peer, x.what());
                return true;  // the transport gave up on it
            }
        });
    }

    /// The sends the transport failed since the last call (peer, the transport's message).
    [[nodiscard]] std::vector<std::pair<std::size_t, std::string>> take_failures() {
        return std::exchange(failures_, {});
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
            for (auto& e : requests_) {
                auto& r = e.request;
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
    struct entry {
        std::size_t peer;
        Request request;
    };
    std::vector<entry> requests_;
    std::chrono::nanoseconds linger_{std::chrono::seconds(1)};
    bool record_failures_ = false;
    std::vector<std::pair<std::size_t, std::string>> failures_;
};

}  // namespace swarmsgd::detail
