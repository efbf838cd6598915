#pragma once
/// \file checkpoint.hpp
/// The checkpoint file format and its reading and writing (swarm_node::save_checkpoint and
/// restore_checkpoint use it). A checkpoint file is
///
///   magic "SWCK" | u16 format version | u16 reserved (0) | u64 body bytes | body |
///   u64 FNV-1a of the body
///
/// all little-endian. It is written atomically: to `<path>.tmp`, then renamed over `<path>`, so
/// a crash while writing leaves the previous checkpoint intact. Reading checks the magic, the
/// version, the length and the checksum before anything is parsed, and the parser checks
/// every field's bounds: a missing, truncated, corrupt or foreign file is a checkpoint_error
/// naming the file and what is wrong. What the body holds is the node's business
/// (swarm_node.hpp, "Checkpoints"; docs/algorithm.md).

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "agreement.hpp"
#include "errors.hpp"
#include "message.hpp"

namespace swarmsgd {

/// Version of the checkpoint format; a reader refuses any other.
inline constexpr std::uint16_t checkpoint_format_version = 2;

namespace detail {

/// Appends little-endian values to a checkpoint body.
class checkpoint_writer {
public:
    /// Appends one integer or floating-point value.
    template <class T>
    void put(T v) {
        const std::size_t at = bytes_.size();
        bytes_.resize(at + sizeof(T));
        store<T>(bytes_.data() + at, v);
    }
    /// Appends a u64 count, then the values.
    template <class V>
    void put_values(std::span<const V> values) {
        put<std::uint64_t>(values.size());
        const std::size_t at = bytes_.size();
        bytes_.resize(at + values.size() * sizeof(V));
        if (!values.empty()) std::memcpy(bytes_.data() + at, values.data(), values.size_bytes());
    }
    /// The body written so far.
    [[nodiscard]] std::vector<std::byte>& bytes() noexcept { return bytes_; }

private:
    std::vector<std::byte> bytes_;
};

/// Reads a checkpoint body back, every read bounds-checked (checkpoint_error naming the file
/// and the field).
class checkpoint_reader {
public:
    checkpoint_reader(std::span<const std::byte> body, std::string path)
        : body_(body), path_(std::move(path)) {}

    /// One value named `what` (for the error).
    template <class T>
    [[nodiscard]] T get(const char* what) {
        need(sizeof(T), what);
        const T v = load<T>(body_.data() + at_);
        at_ += sizeof(T);
        return v;
    }
    /// A u64 count and that many values, which must be `expected` (checked before reading).
    template <class V>
    [[nodiscard]] std::vector<V> get_values(const char* what, std::size_t expected) {
        const auto n = get<std::uint64_t>(what);
        if (n != expected)
            throw checkpoint_error(concat("checkpoint ", path_, ": ", what, " holds ", n,
                                          " values, this node needs ", expected));
        need(n * sizeof(V), what);
        std::vector<V> out(n);
        if (n != 0) std::memcpy(out.data(), body_.data() + at_, n * sizeof(V));
        at_ += n * sizeof(V);
        return out;
    }
    /// A u64 length and that many bytes.
    [[nodiscard]] std::span<const std::byte> get_bytes(const char* what) {
        const auto n = get<std::uint64_t>(what);
        need(n, what);
        const auto out = body_.subspan(at_, n);
        at_ += n;
        return out;
    }
    /// Throws unless the whole body was read.
    void expect_end() const {
        if (at_ != body_.size())
            throw checkpoint_error(concat("checkpoint ", path_, ": ", body_.size() - at_,
                                          " bytes left over after the last field"));
    }
    /// The file, for messages.
    [[nodiscard]] const std::string& path() const noexcept { return path_; }

private:
    void need(std::uint64_t n, const char* what) const {
        if (n > body_.size() - at_)
            throw checkpoint_error(concat("checkpoint ", path_, " is truncated: ", what, " needs ",
                                          n, " bytes, ", body_.size() - at_, " are left"));
    }

    std::span<const std::byte> body_;
    std::size_t at_ = 0;
    std::string path_;
};

inline constexpr std::size_t checkpoint_header_bytes = 16;

/// FNV-1a of a byte range.
[[nodiscard]] inline std::uint64_t fnv1a_bytes(std::span<const std::byte> bytes) noexcept {
    std::uint64_t h = fnv1a_basis;
    for (const std::byte b : bytes) fnv1a(h, b);
    return h;
}

/// Writes header, body and checksum to `<path>.tmp`, then renames it over `path`.
inline void write_checkpoint_file(const std::filesystem::path& path,
                                  std::span<const std::byte> body) {
    std::vector<std::byte> header(checkpoint_header_bytes);
    std::memcpy(header.data(), "SWCK", 4);
    store<std::uint16_t>(header.data() + 4, checkpoint_format_version);
    store<std::uint16_t>(header.data() + 6, 0);
    store<std::uint64_t>(header.data() + 8, body.size());
    std::byte trailer[8];
    store<std::uint64_t>(trailer, fnv1a_bytes(body));
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out)
            throw checkpoint_error(
                concat("checkpoint: cannot create ", tmp.string(), ": ", std::strerror(errno)));
        out.write(reinterpret_cast<const char*>(header.data()), long(header.size()));
        out.write(reinterpret_cast<const char*>(body.data()), long(body.size()));
        out.write(reinterpret_cast<const char*>(trailer), 8);
        out.close();
        if (!out)
            throw checkpoint_error(concat("checkpoint: writing ", tmp.string(), " failed (",
                                          body.size() + 24, " bytes; disk full?)"));
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec)
        throw checkpoint_error(concat("checkpoint: cannot rename ", tmp.string(), " to ",
                                      path.string(), ": ", ec.message()));
}

/// Reads a checkpoint file and returns its body, after checking the magic, the format
/// version, the length and the checksum.
[[nodiscard]] inline std::vector<std::byte> read_checkpoint_file(
    const std::filesystem::path& path) {
    const std::string name = path.string();
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw checkpoint_error(
            concat("checkpoint ", name, " cannot be opened: ", std::strerror(errno)));
    std::error_code ec;
    const auto file_bytes = std::filesystem::file_size(path, ec);
    if (ec) throw checkpoint_error(concat("checkpoint ", name, " cannot be read: ", ec.message()));
    std::vector<std::byte> all(file_bytes);
    if (!in.read(reinterpret_cast<char*>(all.data()), static_cast<std::streamsize>(all.size())))
        throw checkpoint_error(
            concat("checkpoint ", name, ": reading its ", all.size(), " bytes failed"));
    if (all.size() < checkpoint_header_bytes + 8 || std::memcmp(all.data(), "SWCK", 4) != 0)
        throw checkpoint_error(concat("checkpoint ", name, " is not a swarmsgd checkpoint (",
                                      all.size(), " bytes, no SWCK header)"));
    const auto version = load<std::uint16_t>(all.data() + 4);
    if (version != checkpoint_format_version)
        throw checkpoint_error(concat("checkpoint ", name, " has format version ", version,
                                      "; this swarmsgd reads version ", checkpoint_format_version));
    const auto body_bytes = load<std::uint64_t>(all.data() + 8);
    if (body_bytes != all.size() - checkpoint_header_bytes - 8)
        throw checkpoint_error(concat("checkpoint ", name, " is truncated or padded: its header ",
                                      "announces ", body_bytes, " bytes of state, the file holds ",
                                      all.size() - checkpoint_header_bytes - 8));
    const auto body = std::span<const std::byte>(all).subspan(checkpoint_header_bytes, body_bytes);
    const auto expected = load<std::uint64_t>(all.data() + all.size() - 8);
    if (fnv1a_bytes(body) != expected)
        throw checkpoint_error(
            concat("checkpoint ", name, " is corrupt: its checksum does not match its contents"));
    return {body.begin(), body.end()};
}

}  // namespace detail

}  // namespace swarmsgd
