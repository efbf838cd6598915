#pragma once
/// \file baselines/ring_allreduce.hpp
/// A bandwidth-optimal ring allreduce over the point-to-point communicator concept, as a
/// non-blocking state machine (start / progress), with an optional quantizer on the wire.
/// Used by allreduce_sgd_node (to average gradients) and local_sgd_node (to average models).
///
/// The n nodes form the ring 0 -> 1 -> ... -> n-1 -> 0 over their ranks (whatever the
/// topology). The vector is cut into n segments of ceil(size / n) elements (the last ones may
/// be short or empty). Reduce-scatter, hops h = 0..n-2: node r sends segment (r - h) mod n to
/// node r+1 and adds the segment (r - h - 1) mod n it receives from node r-1; node r then holds
/// the sum of segment (r + 1) mod n. Allgather, hops n-1..2n-3: node r finalizes that segment
/// (divides it by n for the mean) and encodes it, which leaves in its copy EXACTLY what the
/// receivers decode (the quantizer's reconstruction rule); every other node decodes it once
/// and forwards the received payload verbatim. So every node ends with the same vector, bit for
/// bit, whatever the quantizer. Each node sends 2 (n - 1) messages of about size / n elements.
///
/// Wire: message_kind::collective, interaction = (round << 32) | hop (round modulo 2^32), the
/// payload is the quantizer's encoding of the segment. A node receives only from its left
/// neighbour; messages may arrive in any order (the engine does not rely on the communicator's
/// FIFO order): each is checked (sender, kind, a hop of the current round not consumed yet or
/// of the next round, no duplicate) and waits in a queue until its hop comes. A peer may be at
/// most one round ahead.
///
/// With a communicator that has the native_allreduce capability (MPI_Iallreduce on
/// mpi_communicator), an exact quantizer (identity) and `use_native_collective`, the engine
/// starts the native collective instead and tests it in progress().

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../communicator.hpp"
#include "../errors.hpp"
#include "../message.hpp"
#include "../node_stats.hpp"
#include "../quantizer.hpp"
#include "../quantizers/identity.hpp"
#include "../random.hpp"
#include "common.hpp"
#include "native_allreduce.hpp"

namespace swarmsgd {

/// What an allreduce computes from the nodes' vectors.
enum class reduce_op {
    sum,   ///< the elementwise sum
    mean,  ///< the elementwise mean (sum / n)
};

/// How far a ring allreduce has come: the round (0-based count of start() calls) and the hop
/// within it (0..2(n-1); 2(n-1) once complete).
struct ring_position {
    std::uint64_t round = 0;  ///< the round
    std::size_t hop = 0;      ///< the hop of the round
    /// Memberwise equality.
    friend bool operator==(const ring_position&, const ring_position&) = default;
};

/// The ring allreduce engine of one node: `start(data)` begins a round on the node's vector
/// `data` (which must stay valid and untouched until the round completes), `progress()`
/// handles what has arrived and sends what is due, never blocks, and returns true once `data`
/// holds the result. `Comm` is a communicator, `Quant` a quantizer for V (copied once per
/// encoding hop, n copies, so a stateful quantizer such as error_feedback sees one stream per
/// segment; an exact quantizer such as identity is stateless and not copied). Every node of
/// the communicator must run the same rounds with vectors of the same size. Movable (it keeps a
/// pointer to the communicator, which must outlive it).
template <tensor_value V, class Comm, class Quant = identity_quantizer<V>>
class ring_allreduce {
    static_assert(communicator<Comm>,
                  "swarmsgd: the Comm type of ring_allreduce does not satisfy "
                  "swarmsgd::communicator; see communicator.hpp");
    static_assert(quantizer_for<Quant, V>,
                  "swarmsgd: the Quant type of ring_allreduce is not a quantizer for V; see "
                  "quantizer.hpp");

public:
    using value_type = V;          ///< float or double
    using quantizer_type = Quant;  ///< the quantizer on the wire

    /// True when this engine can use the communicator's native allreduce: the communicator
    /// has the capability (native_allreduce.hpp) and the quantizer is exact (identity).
    static constexpr bool native_capable =
        native_allreduce<Comm, V> && exact_quantizer_for<Quant, V>;

    /// An engine for node comm.rank() of comm.size(). `seed` seeds its random stream (stream
    /// = rank; stochastic rounding of the quantizer). With `use_native_collective` (and
    /// native_capable) the native allreduce is used instead of the ring.
    explicit ring_allreduce(Comm& comm, Quant quantizer = Quant{}, std::uint64_t seed = 0,
                            bool use_native_collective = true)
        : comm_(&comm),
          n_(comm.size()),
          rank_(comm.rank()),
          left_((rank_ + n_ - 1) % n_),
          right_((rank_ + 1) % n_),
          native_(native_capable && use_native_collective && n_ > 1),
          quantizers_(exact_quantizer_for<Quant, V> ? 1 : n_, quantizer),
          random_(seed, rank_) {}

    ring_allreduce(const ring_allreduce&) = delete;
    ring_allreduce& operator=(const ring_allreduce&) = delete;
    ring_allreduce(ring_allreduce&&) noexcept = default;
    ring_allreduce& operator=(ring_allreduce&&) noexcept = default;
    ~ring_allreduce() = default;

    /// Starts round `rounds()` on `data` (every node's vector of the same size). Throws
    /// invalid_argument_error when the previous round is not complete, non_finite_error (and
    /// sends nothing) when `data` holds a NaN or infinity. With n = 1 the round is complete at
    /// once (the mean of one vector is itself).
    void start(std::span<V> data, reduce_op op = reduce_op::mean) {
        using detail::concat;
        detail::require<invalid_argument_error>(
            !busy_, "ring_allreduce on node ", rank_, ": start() while round ", round_,
            " is not complete; call progress() until it returns true");
        if (const auto k = detail::first_non_finite(data.data(), data.size()); k != data.size())
            throw non_finite_error(concat("node ", rank_, ": element ", k,
                                          " of the allreduce input is ", data[k], " (round ",
                                          started_, "); nothing was sent"));
        data_ = data;
        op_ = op;
        round_ = started_++;
        hop_ = 0;
        sent_ = false;
        segment_ = (data.size() + n_ - 1) / n_;
        scratch_.resize(segment_);
        busy_ = true;
        if (n_ == 1) {
            busy_ = false;
            return;
        }
        if (native_) {
            if constexpr (native_capable) request_.emplace(comm_->iallreduce_sum(data_));
            return;
        }
        advance();
    }

    /// Takes what has arrived, sends what is due; never blocks. True once the current round is
    /// complete (and when no round runs). Throws message_error / size_mismatch_error for a bad
    /// message, non_finite_error when a partial sum overflowed (nothing non-finite is sent).
    bool progress() {
        poll();
        if (!busy_) return true;
        if (native_) {
            if constexpr (native_capable) {
                if (request_->test()) {
                    request_.reset();
                    if (op_ == reduce_op::mean) divide(data_);
                    hop_ = hops();
                    busy_ = false;
                }
            }
            return !busy_;
        }
        advance();
        return !busy_;
    }

    /// Takes every message that has arrived into the queue, checking it (never blocks). Messages
    /// of the next round may arrive before this node started it: they wait in the queue.
    void poll() {
        while (auto m = comm_->try_receive()) accept(std::move(*m));
        outbox_.reap();
    }

    /// Whether a round is running.
    [[nodiscard]] bool busy() const noexcept { return busy_; }
    /// Whether this engine runs the communicator's native allreduce instead of the ring.
    [[nodiscard]] bool native() const noexcept { return native_; }
    /// Number of rounds started.
    [[nodiscard]] std::uint64_t rounds() const noexcept { return started_; }
    /// Number of hops of a round over the ring: 2 (n - 1).
    [[nodiscard]] std::size_t hops() const noexcept { return 2 * (n_ - 1); }
    /// The current (or last) round and hop.
    [[nodiscard]] ring_position position() const noexcept { return {round_, hop_}; }
    /// The node this engine is waiting for a message from (its left neighbour) while a ring
    /// round runs; nullopt when idle or with the native allreduce.
    [[nodiscard]] std::optional<std::size_t> awaited_peer() const noexcept {
        if (!busy_ || native_) return std::nullopt;
        return left_;
    }
    /// What the engine is waiting for, in words (for timeout messages).
    [[nodiscard]] std::string describe_wait() const {
        using detail::concat;
        if (!busy_) return "nothing (no allreduce running)";
        if (native_)
            return concat("the native allreduce of round ", round_,
                          " has not completed (a rank crashed, hung or has not reached it)");
        return concat("no collective message from node ", left_, " for round ", round_, ", hop ",
                      hop_, " of ", hops(), hop_ < n_ - 1 ? " (reduce-scatter)" : " (allgather)");
    }
    /// Messages of future hops or of the next round waiting in the queue.
    [[nodiscard]] std::size_t queued() const noexcept { return queue_.size(); }
    /// Messages sent and received, and their bytes (the native allreduce's traffic is not
    /// counted: it is not visible to the library).
    [[nodiscard]] const node_stats& traffic() const noexcept { return traffic_; }
    /// Destination of a send that has not completed yet, if any.
    [[nodiscard]] std::optional<std::size_t> pending_destination() {
        outbox_.reap();
        return outbox_.first_destination();
    }
    /// The quantizer (the copy used for decoding).
    [[nodiscard]] const Quant& quantizer() const noexcept { return quantizers_.front(); }

private:
    struct queued_message {
        ring_position at;
        envelope header;
        std::vector<std::byte> bytes;
    };

    [[nodiscard]] static std::uint64_t interaction(std::uint64_t round, std::size_t hop) noexcept {
        return (round << 32) | static_cast<std::uint64_t>(hop);
    }

    // The quantizer copy that encodes at `hop` (one per encoding hop; exact quantizers, which
    // are stateless, share one).
    [[nodiscard]] Quant& encoder(std::size_t hop) noexcept {
        return quantizers_[quantizers_.size() == 1 ? 0 : hop];
    }

    [[nodiscard]] std::span<V> segment(std::size_t s) const noexcept {
        const std::size_t begin = std::min(s * segment_, data_.size());
        const std::size_t end = std::min(begin + segment_, data_.size());
        return data_.subspan(begin, end - begin);
    }

    void divide(std::span<V> x) const noexcept {
        const V n = static_cast<V>(n_);
        for (auto& v : x) v /= n;
    }

    void accept(received_message m) {
        using detail::concat;
        using detail::require;
        traffic_.bytes_received += m.bytes.size();
        ++traffic_.messages_received;
        const envelope e =
            detail::read_baseline_envelope(m, rank_, message_kind::collective, "ring allreduce");
        const auto round = static_cast<std::uint32_t>(e.interaction >> 32);
        const auto hop = static_cast<std::size_t>(e.interaction & 0xFFFFFFFFu);
        require<message_error>(!native_, "node ", rank_, " got a collective message from node ",
                               m.source, " (round ", round, ", hop ", hop,
                               ") but runs the native allreduce of its communicator: every node "
                               "must use the same use_native_collective option");
        require<message_error>(hop < hops(), "node ", rank_, " got a collective message from node ",
                               m.source, " for hop ", hop, " (round ", round, ") but a round of ",
                               n_, " nodes has ", hops(), " hops");
        require<message_error>(m.source == left_, "node ", rank_,
                               " got a collective message from node ", m.source, " (round ", round,
                               ", hop ", hop, "); in the ring it receives only from node ", left_);
        // The next message to consume is (round_, hop_) while a round runs, else hop 0 of the
        // next round; a peer may be at most one round ahead of it.
        const ring_position next = busy_ ? ring_position{round_, hop_} : ring_position{started_, 0};
        std::uint64_t full = next.round;
        if (round != static_cast<std::uint32_t>(next.round)) full = next.round + 1;
        require<message_error>(
            round == static_cast<std::uint32_t>(full) && full <= started_ &&
                (full > next.round || hop >= next.hop),
            "node ", rank_, " got collective round ", round, ", hop ", hop, " from node ", m.source,
            " but expects round ", static_cast<std::uint32_t>(next.round), " from hop ", next.hop,
            " on (started rounds: ", started_,
            "): a message of a past round or hop, or a peer more than one round ahead");
        const ring_position at{full, hop};
        require<message_error>(std::none_of(queue_.begin(), queue_.end(),
                                            [&](const queued_message& q) { return q.at == at; }),
                               "node ", rank_, " got collective round ", round, ", hop ", hop,
                               " from node ", m.source, " twice");
        queue_.push_back({at, e, std::move(m.bytes)});
    }

    void advance() {
        while (busy_) {
            if (!sent_) {
                send_hop();
                sent_ = true;
            }
            const ring_position at{round_, hop_};
            const auto it = std::find_if(queue_.begin(), queue_.end(),
                                         [&](const queued_message& q) { return q.at == at; });
            if (it == queue_.end()) return;
            queued_message m = std::move(*it);
            queue_.erase(it);
            receive_hop(m);
            if (++hop_ == hops()) busy_ = false;
            sent_ = false;
        }
    }

    void send_hop() {
        std::vector<std::byte> bytes;
        if (hop_ < n_ - 1) {  // reduce-scatter: our partial sum of segment r - h
            bytes = detail::encode_message(encoder(hop_), segment((rank_ + n_ - hop_) % n_),
                                           random_, rank_, right_, "allreduce partial sum");
        } else if (hop_ == n_ - 1) {  // allgather starts: our finished segment r + 1
            const auto own = segment((rank_ + 1) % n_);
            if (op_ == reduce_op::mean) divide(own);
            bytes = detail::encode_message(encoder(n_ - 1), own, random_, rank_, right_,
                                           "allreduce result");
        } else {  // allgather: forward what we received at the previous hop
            bytes = std::move(forward_);
        }
        outbox_.post(*comm_, right_, message_kind::collective, interaction(round_, hop_),
                     std::move(bytes), traffic_);
    }

    void receive_hop(queued_message& m) {
        using detail::concat;
        const auto payload = std::span<const std::byte>(m.bytes).subspan(envelope_size);
        const bool scatter = hop_ < n_ - 1;
        const std::size_t s =
            scatter ? (rank_ + 2 * n_ - hop_ - 1) % n_ : (rank_ + 2 * n_ - (hop_ - (n_ - 1))) % n_;
        const auto target = segment(s);
        const auto out = std::span<V>(scratch_).first(target.size());
        detail::decode_message(quantizers_.front(), m.header, payload,
                               std::span<const V>(target.data(), target.size()), out, rank_, [&] {
                                   return concat("round ", round_, ", hop ", hop_, " of ", hops(),
                                                 ", segment ", s);
                               });
        if (scatter) {
            for (std::size_t k = 0; k < target.size(); ++k) target[k] += out[k];
        } else {
            std::copy(out.begin(), out.end(), target.begin());
            if (hop_ + 1 < hops()) forward_ = std::move(m.bytes);
        }
    }

    using request_type = typename detail::native_request<Comm, V>::type;

    Comm* comm_;
    std::size_t n_, rank_, left_, right_;
    bool native_;
    std::vector<Quant> quantizers_;  // one per hop that encodes (n), or one if exact
    rng random_;
    std::span<V> data_;
    reduce_op op_ = reduce_op::mean;
    std::uint64_t started_ = 0;  // rounds started
    std::uint64_t round_ = 0;    // the current (or last) round
    std::size_t hop_ = 0;
    bool sent_ = false;
    bool busy_ = false;
    std::size_t segment_ = 0;
    std::vector<V> scratch_;
    std::vector<std::byte> forward_;
    std::vector<queued_message> queue_;  // arrived, not consumed yet (any order)
    std::optional<request_type> request_;
    detail::outbox<Comm> outbox_;
    node_stats traffic_;
};

}  // namespace swarmsgd
