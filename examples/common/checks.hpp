#pragma once
// The examples' own error helpers: messages built from their pieces, and a check that throws a
// given swarmsgd error type with such a message. The examples use these, never the library's
// swarmsgd::detail (which is not API and may change); copy this file along with an example.

#include <sstream>
#include <string>
#include <utility>

namespace swarmsgd::examples {

/// Concatenates any streamable pieces into one message: `concat("size ", n, " != ", m)`.
template <class... Parts>
[[nodiscard]] std::string concat(const Parts&... parts) {
    std::ostringstream out;
    (out << ... << parts);
    return std::move(out).str();
}

/// Throws `Error` (a swarmsgd error type, say) with `concat(parts...)` unless `condition`.
template <class Error, class... Parts>
void require(bool condition, const Parts&... parts) {
    if (!condition) [[unlikely]]
        throw Error(concat(parts...));
}

/// 128-bit unsigned arithmetic for exact products of 64-bit counts (GCC/Clang extension).
__extension__ typedef unsigned __int128 uint128;

}  // namespace swarmsgd::examples
