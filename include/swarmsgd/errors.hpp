#pragma once
/// \file errors.hpp
/// The exception hierarchy of swarmsgd. Every runtime failure of the library is reported
/// by one of these types; the message always names the values involved (ranks, sizes, indices).

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace swarmsgd {

/// Base of every exception thrown by swarmsgd.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// An option or argument is out of range (negative learning rate, H = 0, n = 0, ...).
class invalid_argument_error : public error {
public:
    using error::error;
};

/// Two tensors, models or messages disagree in size (for example two nodes whose models differ).
class size_mismatch_error : public error {
public:
    using error::error;
};

/// A NaN or infinity was found where only finite values are allowed (a gradient, a model
/// about to be sent, a received message). Nothing non-finite is ever sent to a peer.
class non_finite_error : public error {
public:
    using error::error;
};

/// A received message is malformed: truncated, oversized, wrong magic, version or quantizer.
class message_error : public error {
public:
    using error::error;
};

/// A communication graph is invalid: disconnected, asymmetric, self-looped, out of range.
class topology_error : public error {
public:
    using error::error;
};

/// A peer did not answer within the configured timeout (it crashed, hung or is far too slow).
class peer_timeout_error : public error {
public:
    using error::error;
};

/// This node was excluded from the swarm (failure_policy::exclude): a partner gave up on it
/// (it did not answer within reply_timeout: it was stopped, hung or far too slow) and told the
/// others. It no longer takes part; no survivor's model was changed by it after that. Restart
/// it (from a checkpoint, say) as a new run.
class excluded_error : public error {
public:
    using error::error;
};

/// The run was aborted because another node failed: thrown by every in-process endpoint (and
/// by the endpoints of any thread_world) after its world's abort(); the threaded drivers
/// rethrow the original failure instead.
class aborted_error : public error {
public:
    using error::error;
};

/// A data file is missing, truncated or corrupt.
class data_error : public error {
public:
    using error::error;
};

/// A checkpoint cannot be written, or cannot be read back: missing, truncated, corrupt (its
/// checksum does not match), of another format version, or made by another node, model,
/// quantizer or topology (checkpoint.hpp).
class checkpoint_error : public error {
public:
    using error::error;
};

namespace detail {

/// Builds a message from any streamable pieces: `concat("size ", n, " != ", m)`.
template <class... Parts>
[[nodiscard]] std::string concat(const Parts&... parts) {
    std::ostringstream out;
    (out << ... << parts);
    return std::move(out).str();
}

/// "a, b, c": the streamable values of `range`, comma separated (for lists of ranks).
template <class Range>
[[nodiscard]] std::string join(const Range& range) {
    std::ostringstream out;
    const char* separator = "";
    for (const auto& v : range) {
        out << separator << v;
        separator = ", ";
    }
    return std::move(out).str();
}

/// Throws `Error` with the concatenation of `parts` (kept out of line: the cold path).
template <class Error, class... Parts>
[[noreturn, gnu::cold, gnu::noinline]] void raise(const Parts&... parts) {
    throw Error(concat(parts...));
}

/// Throws `Error` with the concatenation of `parts` when `condition` is false. Always inlined
/// so the compiler knows the code after it runs only when `condition` holds.
template <class Error, class... Parts>
[[gnu::always_inline]] inline void require(bool condition, const Parts&... parts) {
    if (!condition) [[unlikely]]
        raise<Error>(parts...);
}

}  // namespace detail
}  // namespace swarmsgd
