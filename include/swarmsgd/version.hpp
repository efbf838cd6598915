#pragma once
/// \file version.hpp
/// Library version and wire-format version.

#include <cstdint>

namespace swarmsgd {

inline constexpr int version_major = 0;  ///< Major version of the library.
inline constexpr int version_minor = 1;  ///< Minor version of the library.
inline constexpr int version_patch = 0;  ///< Patch version of the library.

/// Version of the message format on the wire; a receiver rejects any other. 2: the messages
/// of failure_policy::exclude (done, excluded, ping, pong) and failure_code::excluded.
inline constexpr std::uint16_t wire_format_version = 2;

}  // namespace swarmsgd
