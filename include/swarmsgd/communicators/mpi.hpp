#pragma once
/// \file communicators/mpi.hpp
/// MPI communicator (component swarmsgd::mpi): one swarm node per MPI rank, any MPI library
/// (tested with Open MPI and MPICH). Point-to-point only, no global coordination:
/// - every message is an MPI_Isend on a private duplicate of the user's communicator, so the
///   library's traffic never matches the user's receives;
/// - a node polls its inbox between local steps with MPI_Improbe + MPI_Imrecv (matched probe:
///   safe even if the user calls MPI from other threads at MPI_THREAD_MULTIPLE) and hands a
///   message over once its receive has completed. The receive never blocks: a large message
///   goes by rendezvous, and its data moves only while the SENDER is inside MPI, which it may
///   not be for a whole local step (or ever, if it stopped). A blocking MPI_Mrecv waited for
///   that (up to a step of the receiver's time, or for ever).  Messages from one sender are
///   handed over in the order they were sent;
/// - an idle node waits with a bounded, backing-off sleep between probes, so 8 ranks on 2
///   cores leave the cores to the ranks that compute;
/// - the shutdown protocol's "done" is a non-blocking barrier (MPI_Ibarrier): announce_done()
///   enters it, all_done() tests it, while the node keeps answering requests;
/// - OPTIONAL block capability (block_communicator.hpp): try_receive_block has MPI receive
///   straight into memory the caller lends (page-locked blocks of a CUDA node), isend_block
///   sends straight from it;
/// - OPTIONAL native_allreduce capability (baselines/native_allreduce.hpp): iallreduce_sum
///   starts an MPI_Iallreduce, which allreduce SGD and local SGD use instead of their ring.
/// MPI_Init is not called unless you ask for it with mpi_environment.

#if !__has_include(<mpi.h>)
#error \
    "swarmsgd/communicators/mpi.hpp needs an MPI library (Debian: apt-get install libopenmpi-dev openmpi-bin, or libmpich-dev mpich; CMake: link swarmsgd::mpi)"
#endif

// The deprecated MPI C++ bindings are not used; skipping them also avoids their warnings.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../agreement.hpp"
#include "../block_communicator.hpp"
#include "../communicator.hpp"
#include "../errors.hpp"

namespace swarmsgd {

/// An MPI call failed; the message holds the call and MPI's error string.
class mpi_error : public error {
public:
    using error::error;
};

/// Throws mpi_error naming `call` and MPI's error text unless `code` is MPI_SUCCESS. For MPI
/// calls of your own on a communicator whose error handler is MPI_ERRORS_RETURN (the library's
/// communicators have it; MPI_COMM_WORLD's default aborts the job instead of returning).
inline void mpi_check(int code, const char* call) {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    throw mpi_error(
        detail::concat(call, " failed: ", std::string(text, static_cast<std::size_t>(length))));
}

namespace detail {
/// Sleeps a little longer each time nothing arrives (50 us up to 1 ms): cheap when messages
/// flow, and an idle rank costs almost no CPU when ranks outnumber cores.
class backoff {
public:
    void pause() {
        std::this_thread::sleep_for(delay_);
        delay_ = std::min(delay_ * 2, std::chrono::microseconds(1000));
    }

private:
    std::chrono::microseconds delay_{50};
};
}  // namespace detail

/// Initializes MPI for the lifetime of the object (MPI_Init_thread with `required`) unless it
/// is already initialized, and finalizes it in the destructor if it initialized it.
class mpi_environment {
public:
    /// Calls MPI_Init_thread(argc, argv, required) unless MPI is already initialized.
    mpi_environment(int& argc, char**& argv, int required = MPI_THREAD_FUNNELED) {
        int initialized = 0;
        MPI_Initialized(&initialized);
        if (initialized == 0) {
            int provided = 0;
            mpi_check(MPI_Init_thread(&argc, &argv, required, &provided), "MPI_Init_thread");
            owner_ = true;
        }
    }
    mpi_environment(const mpi_environment&) = delete;
    mpi_environment& operator=(const mpi_environment&) = delete;
    /// Finalizes MPI if this object initialized it.
    ~mpi_environment() {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (owner_ && finalized == 0) MPI_Finalize();
    }

private:
    bool owner_ = false;
};

/// A pending MPI_Isend; owns its buffer until the send completes. Move-only.
class mpi_send_request {
public:
    mpi_send_request() = default;
    /// Takes ownership of a started request and of the buffer it sends.
    mpi_send_request(MPI_Request request, std::vector<std::byte> buffer)
        : request_(request), buffer_(std::move(buffer)) {}
    /// Takes ownership of a started request and keeps the caller's block it sends from alive.
    mpi_send_request(MPI_Request request, message_block block)
        : request_(request), block_(std::move(block)) {}
    mpi_send_request(mpi_send_request&& o) noexcept
        : request_(std::exchange(o.request_, MPI_REQUEST_NULL)),
          buffer_(std::move(o.buffer_)),
          block_(std::move(o.block_)) {}
    mpi_send_request& operator=(mpi_send_request&& o) noexcept {
        if (this != &o) {
            release();
            request_ = std::exchange(o.request_, MPI_REQUEST_NULL);
            buffer_ = std::move(o.buffer_);
            block_ = std::move(o.block_);
        }
        return *this;
    }
    mpi_send_request(const mpi_send_request&) = delete;
    mpi_send_request& operator=(const mpi_send_request&) = delete;
    /// An incomplete send is waited for up to 2 s, then detached (see detach()). A swarm_node
    /// detaches its sends itself after swarm_options::send_linger in total, so destroying a
    /// node never waits 2 s per send.
    ~mpi_send_request() { release(); }

    /// Whether the send completed (the buffer may be reused).
    [[nodiscard]] bool test() {
        if (request_ == MPI_REQUEST_NULL) return true;
        int done = 0;
        mpi_check(MPI_Test(&request_, &done, MPI_STATUS_IGNORE), "MPI_Test (send)");
        return done != 0;
    }

    /// Gives up on an incomplete send at once: the request is freed (MPI completes or drops
    /// the transfer on its own) and the buffer is leaked rather than freed under MPI's feet.
    /// It happens only when the peer stopped or died, and costs that one message's bytes.
    void detach() noexcept {
        if (request_ == MPI_REQUEST_NULL) return;
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (finalized == 0) MPI_Request_free(&request_);
        request_ = MPI_REQUEST_NULL;
        new std::vector<std::byte>(std::move(buffer_));    // deliberately leaked, see above
        if (block_) new message_block(std::move(block_));  // likewise: never recycled
    }

    /// Waits at most `timeout` for the send to complete.
    [[nodiscard]] bool wait(std::chrono::nanoseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        detail::backoff pause;
        while (!test()) {
            if (std::chrono::steady_clock::now() >= deadline) return false;
            pause.pause();
        }
        return true;
    }

private:
    void release() noexcept {
        if (request_ == MPI_REQUEST_NULL) return;
        try {
            if (wait(std::chrono::seconds(2))) return;
        } catch (...) {
        }
        detach();
    }

    MPI_Request request_ = MPI_REQUEST_NULL;
    std::vector<std::byte> buffer_;
    message_block block_;  // the caller's memory, when sent by isend_block
};

/// A pending MPI_Iallreduce (sum) started by mpi_communicator::iallreduce_sum: owns the
/// buffer MPI reduces in (a copy of the caller's values) and copies the result back into the
/// caller's span when test() first sees the operation complete. Move-only.
template <class V>
class mpi_allreduce_request {
public:
    mpi_allreduce_request() = default;
    /// Takes ownership of a started request, the buffer it reduces in and the destination of
    /// the result.
    mpi_allreduce_request(MPI_Request request, std::vector<V> buffer, std::span<V> target)
        : request_(request), buffer_(std::move(buffer)), target_(target) {}
    mpi_allreduce_request(mpi_allreduce_request&& o) noexcept
        : request_(std::exchange(o.request_, MPI_REQUEST_NULL)),
          buffer_(std::move(o.buffer_)),
          target_(std::exchange(o.target_, {})) {}
    mpi_allreduce_request& operator=(mpi_allreduce_request&& o) noexcept {
        if (this != &o) {
            release();
            request_ = std::exchange(o.request_, MPI_REQUEST_NULL);
            buffer_ = std::move(o.buffer_);
            target_ = std::exchange(o.target_, {});
        }
        return *this;
    }
    mpi_allreduce_request(const mpi_allreduce_request&) = delete;
    mpi_allreduce_request& operator=(const mpi_allreduce_request&) = delete;
    /// An incomplete operation is tested for up to 2 s, then abandoned: a non-blocking
    /// collective request may not be freed (MPI forbids MPI_Request_free on it), so its buffer
    /// is leaked rather than freed under MPI's feet. It happens only when a rank never joins
    /// the collective (it crashed, hung, or took fewer steps), and the job is failing anyway.
    ~mpi_allreduce_request() { release(); }

    /// Whether the allreduce completed; on the first true, the sum is copied to the target.
    [[nodiscard]] bool test() {
        if (request_ == MPI_REQUEST_NULL) return true;
        int done = 0;
        mpi_check(MPI_Test(&request_, &done, MPI_STATUS_IGNORE), "MPI_Test (allreduce)");
        if (done == 0) return false;
        std::copy(buffer_.begin(), buffer_.end(), target_.begin());
        return true;
    }

private:
    void release() noexcept {
        if (request_ == MPI_REQUEST_NULL) return;
        try {
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
            detail::backoff pause;
            while (std::chrono::steady_clock::now() < deadline) {
                int done = 0;
                if (MPI_Test(&request_, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done != 0)
                    return;
                pause.pause();
            }
        } catch (...) {
        }
        new std::vector<V>(std::move(buffer_));  // deliberately leaked, see above
        request_ = MPI_REQUEST_NULL;
    }

    MPI_Request request_ = MPI_REQUEST_NULL;
    std::vector<V> buffer_;
    std::span<V> target_;
};

/// One rank's endpoint; satisfies swarmsgd::communicator. Owns a duplicate of the communicator
/// it wraps (MPI_Comm_dup is collective: every rank constructs its mpi_communicator together).
/// Movable, not copyable (see the move constructor for what moving does to a bound node).
class mpi_communicator {
public:
    /// Wraps `comm` (default MPI_COMM_WORLD). MPI must be initialized.
    explicit mpi_communicator(MPI_Comm comm = MPI_COMM_WORLD) {
        int initialized = 0;
        MPI_Initialized(&initialized);
        detail::require<mpi_error>(initialized != 0,
                                   "mpi_communicator: MPI is not initialized (call MPI_Init or "
                                   "create a swarmsgd::mpi_environment first)");
        mpi_check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
        MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
        int rank = 0, size = 0;
        MPI_Comm_rank(comm_, &rank);
        MPI_Comm_size(comm_, &size);
        rank_ = static_cast<std::size_t>(rank);
        size_ = static_cast<std::size_t>(size);
    }
    mpi_communicator(const mpi_communicator&) = delete;
    mpi_communicator& operator=(const mpi_communicator&) = delete;

    /// Moves the endpoint: the private communicator, the shutdown barrier and the receives in
    /// flight go to the new object. The moved-from object is empty: rank() and size() keep
    /// their values, native_handle() is MPI_COMM_NULL, and every member that communicates
    /// throws mpi_error saying it was moved from. A swarm_node (or baseline node) keeps a
    /// pointer to its communicator, so a node bound to the moved-from object fails with that
    /// error at its next call, never silently: move communicators before binding nodes.
    mpi_communicator(mpi_communicator&& o) noexcept { take(o); }

    /// Releases this endpoint (as the destructor does), then takes `o`'s (see the move
    /// constructor).
    mpi_communicator& operator=(mpi_communicator&& o) noexcept {
        if (this != &o) {
            release();
            take(o);
        }
        return *this;
    }

    /// Frees the duplicate communicator (after the barrier, if one was started, completed).
    ~mpi_communicator() { release(); }

    /// Rank of this node.
    [[nodiscard]] std::size_t rank() const noexcept { return rank_; }
    /// Number of ranks.
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// The duplicate communicator the library sends on.
    [[nodiscard]] MPI_Comm native_handle() const noexcept { return comm_; }

    /// Starts an MPI_Isend of `bytes` to rank `dest`.
    mpi_send_request isend(std::size_t dest, std::vector<std::byte> bytes) {
        using detail::require;
        require_usable("isend");
        require<invalid_argument_error>(dest < size_, "mpi isend from rank ", rank_, " to rank ",
                                        dest, " but the communicator has ", size_, " ranks");
        require<invalid_argument_error>(bytes.size() <= static_cast<std::size_t>(INT_MAX),
                                        "mpi isend: message of ", bytes.size(),
                                        " bytes exceeds MPI's int count limit ", INT_MAX);
        MPI_Request request = MPI_REQUEST_NULL;
        mpi_check(MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE,
                            static_cast<int>(dest), tag, comm_, &request),
                  "MPI_Isend");
        return {request, std::move(bytes)};
    }

    /// The block capability (block_communicator.hpp): starts an MPI_Isend of the block's first
    /// `size` bytes, straight from the block (which the request keeps alive until the send
    /// completed, or for ever if it has to be detached).
    mpi_send_request isend_block(std::size_t dest, message_block block, std::size_t size) {
        using detail::require;
        require_usable("isend_block");
        require<invalid_argument_error>(dest < size_, "mpi isend_block from rank ", rank_,
                                        " to rank ", dest, " but the communicator has ", size_,
                                        " ranks");
        detail::require_block_fits(block, size, "mpi isend_block from rank ", rank_, " to rank ",
                                   dest);
        require<invalid_argument_error>(size <= static_cast<std::size_t>(INT_MAX),
                                        "mpi isend_block: message of ", size,
                                        " bytes exceeds MPI's int count limit ", INT_MAX);
        MPI_Request request = MPI_REQUEST_NULL;
        mpi_check(MPI_Isend(block.data(), static_cast<int>(size), MPI_BYTE, static_cast<int>(dest),
                            tag, comm_, &request),
                  "MPI_Isend");
        return {request, std::move(block)};
    }

    /// Receives the next message that has arrived completely, if any (never blocks): starts
    /// the receive of every message that has begun to arrive, then hands over the oldest one
    /// whose data is all there and which no older message of the same sender precedes.
    std::optional<received_message> try_receive() {
        require_usable("try_receive");
        match_arrivals(nullptr);
        const auto it = next_complete();
        if (it == receiving_.end()) return std::nullopt;
        received_message m{it->source, std::move(it->bytes)};
        if (it->block) {  // received by try_receive_block's matching: copied out of the block
            const auto* from = it->block.data();
            m.bytes.assign(from, from + it->size);
        }
        receiving_.erase(it);
        return m;
    }

    /// The block capability (block_communicator.hpp): as try_receive, but every message that
    /// begins to arrive is received by MPI straight into a block from `source`, and the message
    /// handed over is in its block (a message matched earlier by try_receive is copied into
    /// one). When `source` throws or gives a block too small, the message is received into the
    /// communicator's own memory instead (nothing is lost) and the error is rethrown; a later
    /// call hands it over.
    std::optional<received_block> try_receive_block(message_block_source& source) {
        require_usable("try_receive_block");
        match_arrivals(&source);
        const auto it = next_complete();
        if (it == receiving_.end()) return std::nullopt;
        if (!it->block) {
            const std::size_t size = it->bytes.size();
            message_block block = source.acquire(size);
            detail::require_block_fits(block, size, "mpi try_receive_block on rank ", rank_,
                                       ", message from rank ", it->source);
            if (size != 0) std::memcpy(block.data(), it->bytes.data(), size);
            it->block = std::move(block);
            it->size = size;
        }
        received_block r{it->source, std::move(it->block), it->size};
        receiving_.erase(it);
        return r;
    }

    /// Messages matched whose data is still arriving (their senders must progress them).
    [[nodiscard]] std::size_t receives_in_progress() const noexcept { return receiving_.size(); }

    /// Probes with a backing-off sleep until a message is there or `timeout` passed.
    bool wait_for_message(std::chrono::nanoseconds timeout) {
        require_usable("wait_for_message");
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        detail::backoff pause;
        while (true) {
            int flag = 0;
            mpi_check(MPI_Iprobe(MPI_ANY_SOURCE, tag, comm_, &flag, MPI_STATUS_IGNORE),
                      "MPI_Iprobe");
            if (flag != 0 || (barrier_ != MPI_REQUEST_NULL && all_done())) return true;
            if (std::any_of(receiving_.begin(), receiving_.end(),
                            [&](pending_receive& p) { return complete(p); }))
                return true;
            if (std::chrono::steady_clock::now() >= deadline) return false;
            pause.pause();
        }
    }

    /// Start-up check, collective over the communicator (the baselines' nodes call it): every
    /// rank must train a model of the same size. Throws size_mismatch_error on EVERY rank,
    /// naming the first rank whose size differs from rank 0's and both sizes.
    void check_model_size(std::size_t elements) {
        swarm_agreement mine;
        mine.model_size = elements;
        check_agreement(mine);
    }

    /// Start-up check, collective over the communicator (swarm_node's constructor calls it):
    /// every rank must agree on the wire format, the model size and value type, the averaging
    /// mode, the quantizer and its parameters, and the topology (agreement.hpp). Throws on
    /// EVERY rank the same error, naming the first rank that differs from rank 0 and how.
    void check_agreement(const swarm_agreement& mine) {
        require_usable("check_agreement");
        const auto values = mine.values();
        constexpr std::size_t k = swarm_agreement::fields;
        std::vector<unsigned long long> all(size_ * k);
        std::array<unsigned long long, k> own{};
        for (std::size_t f = 0; f < k; ++f) own[f] = values[f];
        mpi_check(MPI_Allgather(own.data(), static_cast<int>(k), MPI_UNSIGNED_LONG_LONG, all.data(),
                                static_cast<int>(k), MPI_UNSIGNED_LONG_LONG, comm_),
                  "MPI_Allgather (start-up agreement)");
        const auto of = [&](std::size_t r) {
            std::array<std::uint64_t, k> v{};
            for (std::size_t f = 0; f < k; ++f) v[f] = all[r * k + f];
            return swarm_agreement::from_values(v);
        };
        const swarm_agreement reference = of(0);
        for (std::size_t r = 1; r < size_; ++r) require_agreement(reference, 0, of(r), r, rank_);
    }

    /// The native_allreduce capability (baselines/native_allreduce.hpp): starts an
    /// MPI_Iallreduce (MPI_SUM, MPI_FLOAT or MPI_DOUBLE) of `data` on the private duplicate
    /// communicator and returns at once. The request reduces in its own copy of `data` and
    /// writes the sum back into `data` when its test() sees it complete, so `data` must stay
    /// valid until then. Collective: every rank calls it in the same order with the same number
    /// of elements (check_model_size checks the sizes at start-up).
    template <class V>
        requires std::same_as<V, float> || std::same_as<V, double> mpi_allreduce_request<V>
        iallreduce_sum(std::span<V> data) {
            require_usable("iallreduce_sum");
            detail::require<invalid_argument_error>(
                data.size() <= static_cast<std::size_t>(INT_MAX), "mpi iallreduce: ", data.size(),
                " elements exceed MPI's int count limit ", INT_MAX);
            std::vector<V> buffer(data.begin(), data.end());
            MPI_Request request = MPI_REQUEST_NULL;
            mpi_check(MPI_Iallreduce(MPI_IN_PLACE, buffer.data(), static_cast<int>(data.size()),
                                     std::same_as<V, float> ? MPI_FLOAT : MPI_DOUBLE, MPI_SUM,
                                     comm_, &request),
                      "MPI_Iallreduce");
            return {request, std::move(buffer), data};
        }

    /// Enters the non-blocking barrier of the shutdown protocol (once).
    void announce_done() {
        require_usable("announce_done");
        if (barrier_ != MPI_REQUEST_NULL || done_) return;
        mpi_check(MPI_Ibarrier(comm_, &barrier_), "MPI_Ibarrier");
    }

    /// True once every rank has entered the barrier.
    [[nodiscard]] bool all_done() {
        require_usable("all_done");
        if (done_) return true;
        if (barrier_ == MPI_REQUEST_NULL) return false;
        int flag = 0;
        mpi_check(MPI_Test(&barrier_, &flag, MPI_STATUS_IGNORE), "MPI_Test (barrier)");
        done_ = flag != 0;
        return done_;
    }

    /// Tag of the library's messages on its private communicator.
    static constexpr int tag = 0x5357;

private:
    /// A matched message whose MPI_Imrecv is in flight, into `block` (its first `size` bytes)
    /// when try_receive_block matched it, else into `bytes`.
    struct pending_receive {
        std::size_t source = 0;
        std::vector<std::byte> bytes;
        message_block block;
        std::size_t size = 0;
        MPI_Request request = MPI_REQUEST_NULL;
        bool done = false;
    };

    /// The oldest receive that is complete and that no older message of its sender precedes.
    std::vector<pending_receive>::iterator next_complete() {
        for (auto it = receiving_.begin(); it != receiving_.end(); ++it) {
            if (!complete(*it)) continue;
            const bool older_from_same_sender =
                std::any_of(receiving_.begin(), it,
                            [&](const pending_receive& p) { return p.source == it->source; });
            if (!older_from_same_sender) return it;
        }
        return receiving_.end();
    }

    /// Throws mpi_error when this object was moved from (see the move constructor).
    void require_usable(const char* member) const {
        detail::require<mpi_error>(comm_ != MPI_COMM_NULL, "mpi_communicator::", member,
                                   " on rank ", rank_,
                                   ": this communicator was moved from (a node bound to it "
                                   "must be bound to the object it was moved to; move "
                                   "communicators before binding nodes)");
    }

    /// Takes `o`'s endpoint, leaving `o` empty (moved from).
    void take(mpi_communicator& o) noexcept {
        comm_ = std::exchange(o.comm_, MPI_COMM_NULL);
        rank_ = o.rank_;
        size_ = o.size_;
        barrier_ = std::exchange(o.barrier_, MPI_REQUEST_NULL);
        done_ = std::exchange(o.done_, false);
        receiving_ = std::exchange(o.receiving_, {});
    }

    /// The destructor's work: frees the barrier, abandons receives in flight and frees the
    /// duplicate communicator (nothing for a moved-from object or after MPI_Finalize).
    void release() noexcept {
        if (comm_ == MPI_COMM_NULL) return;
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (finalized != 0) return;
        if (barrier_ != MPI_REQUEST_NULL) MPI_Request_free(&barrier_);
        abandon_receives();
        MPI_Comm_free(&comm_);  // sets comm_ to MPI_COMM_NULL
    }

    /// Starts an MPI_Imrecv for every message that has begun to arrive: into a block from
    /// `source` when there is one (see try_receive_block for its errors), else into a vector.
    void match_arrivals(message_block_source* source) {
        while (true) {
            int flag = 0;
            MPI_Message handle = MPI_MESSAGE_NULL;
            MPI_Status status;
            mpi_check(MPI_Improbe(MPI_ANY_SOURCE, tag, comm_, &flag, &handle, &status),
                      "MPI_Improbe");
            if (flag == 0) return;
            int count = 0;
            mpi_check(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
            pending_receive p;
            p.source = static_cast<std::size_t>(status.MPI_SOURCE);
            p.size = static_cast<std::size_t>(count);
            std::exception_ptr refused;  // the source's error, rethrown once the message is safe
            if (source != nullptr) {
                try {
                    p.block = source->acquire(p.size);
                    detail::require_block_fits(p.block, p.size, "mpi try_receive_block on rank ",
                                               rank_, ", message from rank ", p.source);
                } catch (...) {
                    refused = std::current_exception();
                    p.block = {};
                }
            }
            // The matched message must be received now: into the vector when no block fits.
            // Neither the block's memory nor the vector's storage moves when p is moved.
            if (!p.block) p.bytes.resize(p.size);
            std::byte* into = p.block ? p.block.data() : p.bytes.data();
            mpi_check(MPI_Imrecv(into, count, MPI_BYTE, &handle, &p.request), "MPI_Imrecv");
            receiving_.push_back(std::move(p));
            if (refused) std::rethrow_exception(refused);
        }
    }

    /// Whether the receive of `p` has completed (tests it once more if not yet).
    bool complete(pending_receive& p) {
        if (!p.done) {
            int flag = 0;
            mpi_check(MPI_Test(&p.request, &flag, MPI_STATUS_IGNORE), "MPI_Test (recv)");
            p.done = flag != 0;
        }
        return p.done;
    }

    /// At destruction: receives whose sender never finished the transfer (it stopped or
    /// died) get up to 2 s, as sends do (mpi_send_request), then their buffers are leaked
    /// rather than freed under a live request.
    void abandon_receives() noexcept {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        detail::backoff pause;
        for (auto& p : receiving_) {
            while (!p.done && std::chrono::steady_clock::now() < deadline) {
                int flag = 0;
                if (MPI_Test(&p.request, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS) break;
                p.done = flag != 0;
                if (!p.done) pause.pause();
            }
            if (!p.done) {  // leaked: MPI may still write there
                new std::vector<std::byte>(std::move(p.bytes));
                if (p.block) new message_block(std::move(p.block));
            }
        }
        receiving_.clear();
    }

    MPI_Comm comm_ = MPI_COMM_NULL;
    std::size_t rank_ = 0;
    std::size_t size_ = 0;
    MPI_Request barrier_ = MPI_REQUEST_NULL;
    bool done_ = false;
    std::vector<pending_receive> receiving_;
};

static_assert(communicator<mpi_communicator>);
static_assert(block_communicator<mpi_communicator>);

}  // namespace swarmsgd
