#pragma once
/// \file idx_reader.hpp
/// Reader for the IDX files of MNIST and Fashion-MNIST (gzip-compressed or not), and a helper
/// that splits a data set into disjoint per-node shards for Swarm SGD.
///
/// IDX format: a 4-byte big-endian magic number `0x00 0x00 <type> <ndims>` (type 0x08 is
/// unsigned byte), then `ndims` big-endian 32-bit dimensions, then the payload in row-major
/// order. Image files have magic 0x00000803 (count x rows x cols), label files 0x00000801
/// (count). Every problem with a file is reported as a swarmsgd::data_error whose message
/// names the file and what is wrong with it.

#include <swarmsgd/errors.hpp>
#include <swarmsgd/random.hpp>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "../common/checks.hpp"

namespace swarmsgd::examples {

/// A set of grey-scale images with one class label each.
struct image_set {
    std::size_t count = 0;             ///< number of images (and labels)
    std::size_t rows = 0;              ///< image height in pixels
    std::size_t cols = 0;              ///< image width in pixels
    std::vector<float> pixels;         ///< count x rows x cols, row-major, scaled to [0, 1]
    std::vector<std::uint8_t> labels;  ///< count class labels (empty for an image-only file)

    /// Pixels per image, rows * cols.
    [[nodiscard]] std::size_t pixels_per_image() const noexcept { return rows * cols; }

    /// The `rows * cols` pixels of image `i` (i < count).
    [[nodiscard]] const float* image(std::size_t i) const noexcept {
        return pixels.data() + i * pixels_per_image();
    }
};

/// Largest image side accepted by load_idx_images (protects against corrupt headers).
inline constexpr std::size_t max_idx_image_side = 4096;

/// IDX magic number of an unsigned-byte image file (3 dimensions).
inline constexpr std::uint32_t idx_images_magic = 0x00000803;

/// IDX magic number of an unsigned-byte label file (1 dimension).
inline constexpr std::uint32_t idx_labels_magic = 0x00000801;

/// Environment variable that overrides the Fashion-MNIST directory.
inline constexpr const char* fashion_mnist_dir_env = "SWARMSGD_FASHION_MNIST_DIR";

/// Where Debian's dataset-fashion-mnist package installs the data.
inline constexpr const char* fashion_mnist_default_dir = "/usr/share/datasets/fashion-mnist";

/// How to get the data; appended to the message when a data file does not exist.
inline constexpr const char* fashion_mnist_install_hint =
    "install it with: apt-get install dataset-fashion-mnist (or set SWARMSGD_FASHION_MNIST_DIR)";

namespace detail {

/// `0x00000803`: an IDX magic number as 8 hex digits.
[[nodiscard]] inline std::string hex32(std::uint32_t value) {
    std::ostringstream out;
    out << "0x" << std::hex << std::setw(8) << std::setfill('0') << value;
    return std::move(out).str();
}

/// A gzip (or plain) file opened for reading with zlib; closes itself. Reads return the number
/// of bytes read (short only at the end of the data) or throw data_error.
class gz_reader {
public:
    /// Opens `path`; throws data_error if it does not exist or cannot be opened.
    explicit gz_reader(std::filesystem::path path) : path_(std::move(path)) {
        std::error_code ec;
        const auto status = std::filesystem::status(path_, ec);
        if (status.type() == std::filesystem::file_type::not_found) {
            throw data_error(swarmsgd::examples::concat("cannot open file ", path_.string(),
                                                        ": it does not exist; if it is part of "
                                                        "Fashion-MNIST, ",
                                                        fashion_mnist_install_hint));
        }
        if (ec) {
            throw data_error(swarmsgd::examples::concat("cannot open file ", path_.string(), ": ",
                                                        ec.message()));
        }
        if (!std::filesystem::is_regular_file(status)) {
            throw data_error(swarmsgd::examples::concat("cannot open file ", path_.string(),
                                                        ": it is not a regular file"));
        }
        errno = 0;
        file_ = gzopen(path_.string().c_str(), "rb");
        if (file_ == nullptr) {
            const int err = errno;
            throw data_error(swarmsgd::examples::concat(
                "cannot open file ", path_.string(), ": ",
                err != 0 ? std::strerror(err) : "zlib could not allocate its state"));
        }
        gzbuffer(file_, 1U << 17);  // fewer, larger reads; ignoring failure only costs speed
    }

    gz_reader(const gz_reader&) = delete;
    gz_reader& operator=(const gz_reader&) = delete;
    ~gz_reader() {
        if (file_ != nullptr) gzclose(file_);
    }

    /// Reads up to `size` bytes into `buffer`; returns fewer only when the data ends (then
    /// cut_off() tells whether the gzip stream was cut off). Throws data_error if the file
    /// is corrupt or cannot be read.
    std::size_t read(void* buffer, std::size_t size) {
        auto* out = static_cast<unsigned char*>(buffer);
        std::size_t done = 0;
        while (done < size) {
            const std::size_t want = std::min<std::size_t>(size - done, 1U << 30);
            const int got = gzread(file_, out + done, static_cast<unsigned>(want));
            if (got < 0) throw_zlib_error();
            done += static_cast<std::size_t>(got);
            if (static_cast<std::size_t>(got) < want) break;
        }
        if (done < size) {
            int errnum = Z_OK;
            const char* message = gzerror(file_, &errnum);
            if (errnum == Z_BUF_ERROR) {
                cut_off_ = without_path(message);
            } else if (errnum != Z_OK) {
                throw_zlib_error();
            }
        }
        return done;
    }

    /// After a short read: zlib's message if the gzip stream was cut off (it lacks its end
    /// marker or trailer), else "".
    [[nodiscard]] const std::string& cut_off() const noexcept { return cut_off_; }

    /// " (its gzip stream is cut off: <zlib message>)" if cut_off() is set, else "".
    [[nodiscard]] std::string cut_off_note() const {
        return cut_off_.empty()
                   ? std::string()
                   : swarmsgd::examples::concat(" (its gzip stream is cut off: ", cut_off_, ")");
    }

    /// The file's path.
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
    [[noreturn]] void throw_zlib_error() const {
        int errnum = Z_OK;
        const char* message = gzerror(file_, &errnum);
        if (errnum == Z_ERRNO) {
            throw data_error(swarmsgd::examples::concat("cannot read file ", path_.string(), ": ",
                                                        std::strerror(errno)));
        }
        throw data_error(swarmsgd::examples::concat(
            "cannot read file ", path_.string(), ": it is corrupt (", without_path(message), ")"));
    }

    /// zlib's message without the "<path>: " that zlib puts in front of it.
    [[nodiscard]] std::string without_path(const char* message) const {
        std::string text = message != nullptr ? message : "unknown zlib error";
        const std::string prefix = path_.string() + ": ";
        if (text.compare(0, prefix.size(), prefix) == 0) text.erase(0, prefix.size());
        return text;
    }

    std::filesystem::path path_;
    gzFile file_ = nullptr;
    std::string cut_off_;
};

/// Reads one big-endian 32-bit word of an IDX header; `what` names it for the error message.
[[nodiscard]] inline std::uint32_t read_be32(gz_reader& in, const char* what) {
    std::array<unsigned char, 4> bytes{};
    const std::size_t got = in.read(bytes.data(), bytes.size());
    if (got != bytes.size()) {
        throw data_error(swarmsgd::examples::concat(
            "file ", in.path().string(), " is truncated: its IDX header ends before ", what,
            " (got ", got, " of 4 bytes)", in.cut_off_note()));
    }
    return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
           (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
}

/// Reads and checks the magic number; explains a mix-up of image and label files.
inline void read_magic(gz_reader& in, std::uint32_t expected, const char* expected_kind) {
    const std::uint32_t magic = read_be32(in, "the magic number");
    if (magic == expected) return;
    const char* guess = magic == idx_images_magic   ? " (this is an IDX image file)"
                        : magic == idx_labels_magic ? " (this is an IDX label file)"
                        : (magic >> 16) != 0        ? " (this is not an IDX file)"
                                                    : "";
    throw data_error(swarmsgd::examples::concat(
        "file ", in.path().string(), " has the wrong magic number ", hex32(magic), guess,
        ", expected ", hex32(expected), " (", expected_kind, ")"));
}

/// Reads a 32-bit dimension and checks 1 <= value <= max.
[[nodiscard]] inline std::size_t read_dimension(gz_reader& in, const char* what, std::size_t max) {
    const std::uint32_t value = read_be32(in, what);
    if (value == 0 || value > max) {
        throw data_error(swarmsgd::examples::concat("file ", in.path().string(),
                                                    " has an invalid header: ", what, " is ", value,
                                                    ", expected 1 to ", max));
    }
    return value;
}

/// Reads exactly `size` payload bytes in chunks, passing each chunk to `sink(data, n)`, then
/// checks that nothing follows. `what` names the payload ("pixel data", "labels").
template <class Sink>
void read_payload(gz_reader& in, std::size_t size, const char* what, Sink&& sink) {
    std::vector<unsigned char> chunk(std::min<std::size_t>(size, std::size_t{1} << 20));
    std::size_t done = 0;
    while (done < size) {
        const std::size_t want = std::min(chunk.size(), size - done);
        const std::size_t got = in.read(chunk.data(), want);
        sink(static_cast<const unsigned char*>(chunk.data()), got);
        done += got;
        if (got < want) {
            throw data_error(swarmsgd::examples::concat(
                "file ", in.path().string(), " is truncated: expected ", size, " bytes of ", what,
                ", got ", done, in.cut_off_note()));
        }
    }
    unsigned char extra = 0;
    if (in.read(&extra, 1) != 0) {
        throw data_error(swarmsgd::examples::concat("file ", in.path().string(),
                                                    " has trailing data after the ", size,
                                                    " bytes of ", what, " its header declares"));
    }
    if (!in.cut_off().empty()) {
        throw data_error(swarmsgd::examples::concat(
            "file ", in.path().string(), " is truncated: all ", size, " bytes of ", what,
            " are there but its gzip stream is cut off before its trailer (", in.cut_off(), ")"));
    }
}

}  // namespace detail

/// Loads an IDX image file (magic 0x00000803, unsigned bytes, count x rows x cols), gzip-
/// compressed or not. Pixels are scaled from [0, 255] to [0, 1]; `labels` stays empty.
/// Throws data_error if the file is missing, unreadable, corrupt, has a wrong magic number,
/// a zero dimension, a side above max_idx_image_side, or a payload that is shorter or longer
/// than its header declares.
[[nodiscard]] inline image_set load_idx_images(const std::filesystem::path& path) {
    detail::gz_reader in(path);
    detail::read_magic(in, idx_images_magic, "IDX unsigned-byte images, 3 dimensions");
    image_set set;
    set.count =
        detail::read_dimension(in, "the image count", std::numeric_limits<std::uint32_t>::max());
    set.rows = detail::read_dimension(in, "the row count", max_idx_image_side);
    set.cols = detail::read_dimension(in, "the column count", max_idx_image_side);
    const std::size_t size = set.count * set.rows * set.cols;  // < 2^56: no overflow
    // Grow while reading, so that a corrupt header claiming a huge count is caught as a
    // truncated file rather than by a failed allocation.
    set.pixels.reserve(std::min<std::size_t>(size, std::size_t{1} << 26));
    detail::read_payload(in, size, "pixel data", [&](const unsigned char* data, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            set.pixels.push_back(static_cast<float>(data[i]) / 255.0F);
        }
    });
    return set;
}

/// Loads an IDX label file (magic 0x00000801, unsigned bytes, count), gzip-compressed or not.
/// Every label must be below `num_classes` (10 for (Fashion-)MNIST; pass 256 to accept any
/// byte). Throws data_error naming the file on any problem, including the index and value of
/// the first out-of-range label, and invalid_argument_error if num_classes is 0.
[[nodiscard]] inline std::vector<std::uint8_t> load_idx_labels(const std::filesystem::path& path,
                                                               unsigned num_classes = 10) {
    swarmsgd::examples::require<invalid_argument_error>(
        num_classes > 0, "load_idx_labels: num_classes must be positive, got ", num_classes);
    detail::gz_reader in(path);
    detail::read_magic(in, idx_labels_magic, "IDX unsigned-byte labels, 1 dimension");
    const std::size_t count =
        detail::read_dimension(in, "the label count", std::numeric_limits<std::uint32_t>::max());
    std::vector<std::uint8_t> labels;
    labels.reserve(std::min<std::size_t>(count, std::size_t{1} << 26));
    detail::read_payload(in, count, "labels", [&](const unsigned char* data, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            if (data[i] >= num_classes) {
                throw data_error(swarmsgd::examples::concat(
                    "file ", path.string(), " is corrupt: label ", unsigned{data[i]}, " at index ",
                    labels.size(), " is out of range (expected < ", num_classes, ")"));
            }
            labels.push_back(data[i]);
        }
    });
    return labels;
}

/// Loads an image file and its label file and pairs them. Throws what load_idx_images and
/// load_idx_labels throw, and size_mismatch_error (naming both counts and both files) if
/// the two files hold different numbers of entries. (Every other error is a data_error.)
[[nodiscard]] inline image_set load_idx_pair(const std::filesystem::path& images_path,
                                             const std::filesystem::path& labels_path,
                                             unsigned num_classes = 10) {
    image_set set = load_idx_images(images_path);
    set.labels = load_idx_labels(labels_path, num_classes);
    if (set.labels.size() != set.count) {
        throw size_mismatch_error(swarmsgd::examples::concat(
            "image file ", images_path.string(), " holds ", set.count, " images but label file ",
            labels_path.string(), " holds ", set.labels.size(), " labels"));
    }
    return set;
}

/// The Fashion-MNIST directory: $SWARMSGD_FASHION_MNIST_DIR if set and non-empty, else
/// /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist).
[[nodiscard]] inline std::filesystem::path default_fashion_mnist_dir() {
    const char* env = std::getenv(fashion_mnist_dir_env);
    return (env != nullptr && *env != '\0') ? std::filesystem::path(env)
                                            : std::filesystem::path(fashion_mnist_default_dir);
}

/// Path of a Fashion-MNIST file in `dir`: `<stem>.gz` if it exists, else the uncompressed
/// `<stem>` if that exists, else `<stem>.gz` (which the loader then reports as missing).
[[nodiscard]] inline std::filesystem::path fashion_mnist_file(const std::filesystem::path& dir,
                                                              const std::string& stem) {
    std::error_code ec;
    std::filesystem::path gz = dir / (stem + ".gz");
    if (std::filesystem::exists(gz, ec)) return gz;
    std::filesystem::path plain = dir / stem;
    if (std::filesystem::exists(plain, ec)) return plain;
    return gz;
}

/// Loads the Fashion-MNIST training set (`train`: 60000 images, train-*-ubyte.gz) or test set
/// (`!train`: 10000 images, t10k-*-ubyte.gz) from `dir` (see default_fashion_mnist_dir()),
/// 28 x 28 pixels in [0, 1], labels 0 to 9. Throws as load_idx_pair does.
[[nodiscard]] inline image_set load_fashion_mnist(const std::filesystem::path& dir, bool train) {
    const std::string prefix = train ? "train" : "t10k";
    return load_idx_pair(fashion_mnist_file(dir, prefix + "-images-idx3-ubyte"),
                         fashion_mnist_file(dir, prefix + "-labels-idx1-ubyte"));
}

/// Random stream of swarmsgd::rng used for the shard permutation (distinct from the small
/// stream numbers a program would use per node).
inline constexpr std::uint64_t shard_rng_stream = 0x5348415244ULL;  // "SHARD"

/// Node `node`'s shard of `count` examples split among `n` nodes: the examples are put in one
/// random order, a Fisher-Yates permutation drawn from swarmsgd::rng(seed, shard_rng_stream)
/// (the same on every node and platform for the same seed), and node k gets the contiguous
/// positions [k * count / n, (k + 1) * count / n) of it. The shards are disjoint, cover all
/// examples, and differ in size by at most one. Returns the example indices in permuted
/// order. Throws invalid_argument_error unless 0 < n <= count and node < n.
[[nodiscard]] inline std::vector<std::size_t> shard_indices(std::size_t count, std::size_t node,
                                                            std::size_t n, std::uint64_t seed) {
    swarmsgd::examples::require<invalid_argument_error>(n > 0 && node < n, "shard: node ", node,
                                                        " is not below the node count ", n);
    swarmsgd::examples::require<invalid_argument_error>(n <= count, "shard: cannot split ", count,
                                                        " examples among ", n,
                                                        " nodes (every node needs at least one)");
    std::vector<std::size_t> order(count);
    for (std::size_t i = 0; i < count; ++i) order[i] = i;
    rng gen(seed, shard_rng_stream);
    for (std::size_t i = count - 1; i > 0; --i) {
        std::swap(order[i], order[static_cast<std::size_t>(gen.uniform(i + 1))]);
    }
    const auto bound = [&](std::size_t k) {
        return static_cast<std::size_t>(static_cast<swarmsgd::examples::uint128>(k) * count / n);
    };
    const auto first = static_cast<std::ptrdiff_t>(bound(node));
    const auto last = static_cast<std::ptrdiff_t>(bound(node + 1));
    return {order.begin() + first, order.begin() + last};
}

/// A copy of node `node`'s shard of `set` (see shard_indices): about set.count / n images
/// with their labels, in the shard's permuted order. Throws as shard_indices does.
[[nodiscard]] inline image_set shard(const image_set& set, std::size_t node, std::size_t n,
                                     std::uint64_t seed) {
    const std::vector<std::size_t> indices = shard_indices(set.count, node, n, seed);
    const std::size_t per_image = set.pixels_per_image();
    image_set out;
    out.count = indices.size();
    out.rows = set.rows;
    out.cols = set.cols;
    out.pixels.resize(out.count * per_image);
    if (!set.labels.empty()) out.labels.resize(out.count);
    for (std::size_t i = 0; i < indices.size(); ++i) {
        std::copy_n(set.image(indices[i]), per_image,
                    out.pixels.begin() + static_cast<std::ptrdiff_t>(i * per_image));
        if (!set.labels.empty()) out.labels[i] = set.labels[indices[i]];
    }
    return out;
}

}  // namespace swarmsgd::examples
