#pragma once
// The examples' own collectives (evaluation reductions, a barrier), checked: every MPI call goes
// through swarmsgd::mpi_check on a communicator with MPI_ERRORS_RETURN, so an error becomes a
// swarmsgd::mpi_error naming the call and MPI's text instead of MPI's default of aborting the
// job (or of an unchecked return code). They run on a duplicate of MPI_COMM_WORLD of their own,
// never on the library's communicator, so their collectives and the library's (the start-up
// size check, the shutdown barrier, allreduce SGD) can never interleave differently on
// different ranks. Copy this file along with an example.

#include <swarmsgd/communicators/mpi.hpp>

#include <climits>
#include <cstddef>
#include <span>
#include <string>

#include "checks.hpp"

namespace swarmsgd::examples {

/// Checked reductions to rank 0 (and a barrier) on a private duplicate of MPI_COMM_WORLD with
/// MPI_ERRORS_RETURN. Constructing one is collective. Sizes must agree on every rank, as MPI
/// requires; a receive span is only read on rank 0 (other ranks may pass an empty one).
class mpi_reductions {
public:
    /// A request of start_sum_to_root; test() or wait() it to completion.
    class request {
    public:
        request() = default;
        request(const request&) = delete;
        request& operator=(const request&) = delete;
        request(request&& o) noexcept : handle_(o.handle_) { o.handle_ = MPI_REQUEST_NULL; }
        request& operator=(request&& o) noexcept {
            std::swap(handle_, o.handle_);
            return *this;
        }
        /// Waits for a request still in flight (an exception is unwinding, say).
        ~request() {
            if (handle_ != MPI_REQUEST_NULL) MPI_Wait(&handle_, MPI_STATUS_IGNORE);
        }
        /// True once complete (never blocks).
        [[nodiscard]] bool test() {
            if (handle_ == MPI_REQUEST_NULL) return true;
            int done = 0;
            swarmsgd::mpi_check(MPI_Test(&handle_, &done, MPI_STATUS_IGNORE),
                                "MPI_Test (reduction)");
            return done != 0;
        }
        /// Blocks until complete.
        void wait() {
            if (handle_ == MPI_REQUEST_NULL) return;
            swarmsgd::mpi_check(MPI_Wait(&handle_, MPI_STATUS_IGNORE), "MPI_Wait (reduction)");
        }

    private:
        friend class mpi_reductions;
        MPI_Request handle_ = MPI_REQUEST_NULL;
    };

    mpi_reductions() {
        swarmsgd::mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
        MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
        int rank = 0;
        swarmsgd::mpi_check(MPI_Comm_rank(comm_, &rank), "MPI_Comm_rank");
        root_ = rank == 0;
    }
    mpi_reductions(const mpi_reductions&) = delete;
    mpi_reductions& operator=(const mpi_reductions&) = delete;
    ~mpi_reductions() {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (finalized == 0) MPI_Comm_free(&comm_);
    }

    /// receive = the element-wise sum of every rank's `send` (on rank 0).
    void sum_to_root(std::span<const double> send, std::span<double> receive) {
        check_counts(send, receive, "sum_to_root");
        swarmsgd::mpi_check(
            MPI_Reduce(send.data(), root_ ? receive.data() : nullptr, static_cast<int>(send.size()),
                       MPI_DOUBLE, MPI_SUM, 0, comm_),
            "MPI_Reduce (sum)");
    }
    /// The same, started: the buffers must stay valid until the request completes.
    [[nodiscard]] request start_sum_to_root(std::span<const double> send,
                                            std::span<double> receive) {
        check_counts(send, receive, "start_sum_to_root");
        request r;
        swarmsgd::mpi_check(
            MPI_Ireduce(send.data(), root_ ? receive.data() : nullptr,
                        static_cast<int>(send.size()), MPI_DOUBLE, MPI_SUM, 0, comm_, &r.handle_),
            "MPI_Ireduce (sum)");
        return r;
    }
    /// The largest of every rank's `value` (on rank 0; other ranks get their own).
    [[nodiscard]] double max_to_root(double value) {
        double out = value;
        swarmsgd::mpi_check(MPI_Reduce(&value, &out, 1, MPI_DOUBLE, MPI_MAX, 0, comm_),
                            "MPI_Reduce (max)");
        return out;
    }
    /// receive = every rank's `send`, in rank order (on rank 0; send.size() per rank).
    void gather_to_root(std::span<const double> send, std::span<double> receive) {
        int ranks = 0;
        swarmsgd::mpi_check(MPI_Comm_size(comm_, &ranks), "MPI_Comm_size");
        require<swarmsgd::invalid_argument_error>(
            !root_ || receive.size() == send.size() * static_cast<std::size_t>(ranks),
            "gather_to_root: ", receive.size(), " receive elements for ", ranks, " ranks of ",
            send.size());
        swarmsgd::mpi_check(MPI_Gather(send.data(), static_cast<int>(send.size()), MPI_DOUBLE,
                                       root_ ? receive.data() : nullptr,
                                       static_cast<int>(send.size()), MPI_DOUBLE, 0, comm_),
                            "MPI_Gather");
    }
    /// Every rank's `values` summed, on every rank (in place).
    void sum_everywhere(std::span<float> values) {
        check_counts(values, values, "sum_everywhere");
        swarmsgd::mpi_check(
            MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_FLOAT,
                          MPI_SUM, comm_),
            "MPI_Allreduce (sum)");
    }
    /// Waits for every rank.
    void barrier() { swarmsgd::mpi_check(MPI_Barrier(comm_), "MPI_Barrier"); }

private:
    template <class T, class U>
    void check_counts(std::span<T> send, std::span<U> receive, const char* what) const {
        require<swarmsgd::invalid_argument_error>(send.size() <= static_cast<std::size_t>(INT_MAX),
                                                  what, ": ", send.size(),
                                                  " elements exceed MPI's int count limit");
        require<swarmsgd::invalid_argument_error>(!root_ || receive.size() == send.size(), what,
                                                  ": ", receive.size(), " receive elements for ",
                                                  send.size(), " sent");
    }

    MPI_Comm comm_ = MPI_COMM_NULL;
    bool root_ = false;
};

}  // namespace swarmsgd::examples
