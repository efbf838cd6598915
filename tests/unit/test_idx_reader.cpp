// Tests of examples/fashion_mnist/idx_reader.hpp: IDX parsing, validation and error messages,
// sharding, and (when installed) the real Fashion-MNIST files.

#include "fashion_mnist/idx_reader.hpp"

#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using swarmsgd::examples::image_set;

namespace {

/// A fresh directory under the system temp directory, removed with its contents at scope exit.
class temp_dir {
public:
    temp_dir() {
        static unsigned counter = 0;
        const auto ticks =
            static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
        swarmsgd::rng gen(ticks, counter++);
        for (;;) {
            path_ = fs::temp_directory_path() /
                    ("swarmsgd_idx_test_" + std::to_string(gen() & 0xFFFFFFFFFFFFULL));
            if (fs::create_directory(path_)) break;
        }
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    [[nodiscard]] fs::path operator/(const std::string& name) const { return path_ / name; }
    [[nodiscard]] const fs::path& path() const noexcept { return path_; }

private:
    fs::path path_;
};

using bytes = std::vector<unsigned char>;

void append_be32(bytes& out, std::uint32_t value) {
    for (int shift = 24; shift >= 0; shift -= 8) {
        out.push_back(static_cast<unsigned char>((value >> shift) & 0xFFU));
    }
}

/// An IDX image file: header for count x rows x cols, then `pixels` (which may deliberately
/// be shorter or longer than the header says).
bytes idx_images(std::uint32_t count, std::uint32_t rows, std::uint32_t cols, const bytes& pixels,
                 std::uint32_t magic = 0x00000803) {
    bytes out;
    append_be32(out, magic);
    append_be32(out, count);
    append_be32(out, rows);
    append_be32(out, cols);
    out.insert(out.end(), pixels.begin(), pixels.end());
    return out;
}

/// An IDX label file holding `labels`, whose header claims `count` labels.
bytes idx_labels(std::uint32_t count, const bytes& labels, std::uint32_t magic = 0x00000801) {
    bytes out;
    append_be32(out, magic);
    append_be32(out, count);
    out.insert(out.end(), labels.begin(), labels.end());
    return out;
}

/// n bytes 0, 1, 2, ... (mod 256).
bytes ramp(std::size_t n) {
    bytes out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<unsigned char>(i % 256);
    return out;
}

void write_gzip(const fs::path& path, const bytes& data) {
    gzFile file = gzopen(path.string().c_str(), "wb");
    REQUIRE(file != nullptr);
    if (!data.empty()) {
        REQUIRE(gzwrite(file, data.data(), static_cast<unsigned>(data.size())) ==
                static_cast<int>(data.size()));
    }
    REQUIRE(gzclose(file) == Z_OK);
}

void write_plain(const fs::path& path, const bytes& data) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size()));
    REQUIRE(out.good());
}

bytes read_plain(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// The message of the data_error that `f` throws (fails the test if it throws none).
template <class F>
std::string data_error_message(F&& f) {
    try {
        f();
    } catch (const swarmsgd::data_error& e) {
        return e.what();
    }
    FAIL("expected a swarmsgd::data_error");
    return {};
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("idx_reader: gzip image and label files round trip") {
    temp_dir dir;
    const bytes pixels = ramp(3 * 4 * 5);
    write_gzip(dir / "images.gz", idx_images(3, 4, 5, pixels));
    write_gzip(dir / "labels.gz", idx_labels(3, {7, 0, 9}));

    const image_set images = swarmsgd::examples::load_idx_images(dir / "images.gz");
    CHECK(images.count == 3);
    CHECK(images.rows == 4);
    CHECK(images.cols == 5);
    CHECK(images.pixels_per_image() == 20);
    REQUIRE(images.pixels.size() == pixels.size());
    for (std::size_t i = 0; i < pixels.size(); ++i) {
        CHECK(images.pixels[i] == doctest::Approx(pixels[i] / 255.0));
        CHECK(images.pixels[i] >= 0.0F);
        CHECK(images.pixels[i] <= 1.0F);
    }
    CHECK(images.image(2) == images.pixels.data() + 40);
    CHECK(images.labels.empty());

    const auto labels = swarmsgd::examples::load_idx_labels(dir / "labels.gz");
    CHECK(labels == std::vector<std::uint8_t>{7, 0, 9});

    const image_set both = swarmsgd::examples::load_idx_pair(dir / "images.gz", dir / "labels.gz");
    CHECK(both.count == 3);
    CHECK(both.pixels == images.pixels);
    CHECK(both.labels == labels);
}

TEST_CASE("idx_reader: a white pixel is exactly 1 and a black one exactly 0") {
    temp_dir dir;
    write_gzip(dir / "images.gz", idx_images(1, 1, 2, {0, 255}));
    const image_set images = swarmsgd::examples::load_idx_images(dir / "images.gz");
    CHECK(images.pixels == std::vector<float>{0.0F, 1.0F});
}

TEST_CASE("idx_reader: uncompressed files are accepted too") {
    temp_dir dir;
    write_plain(dir / "images", idx_images(2, 2, 2, ramp(8)));
    write_plain(dir / "labels", idx_labels(2, {1, 2}));
    const image_set set = swarmsgd::examples::load_idx_pair(dir / "images", dir / "labels");
    CHECK(set.count == 2);
    CHECK(set.pixels.size() == 8);
    CHECK(set.labels == std::vector<std::uint8_t>{1, 2});
}

TEST_CASE("idx_reader: a missing file names the path and how to get the data") {
    temp_dir dir;
    const fs::path missing = dir / "no-such-images-idx3-ubyte.gz";
    const std::string message =
        data_error_message([&] { (void)swarmsgd::examples::load_idx_images(missing); });
    CHECK(contains(message, missing.string()));
    CHECK(contains(message, "does not exist"));
    CHECK(contains(message, "apt-get install dataset-fashion-mnist"));
    CHECK(contains(message, "SWARMSGD_FASHION_MNIST_DIR"));

    const std::string labels_message =
        data_error_message([&] { (void)swarmsgd::examples::load_idx_labels(dir / "labels.gz"); });
    CHECK(contains(labels_message, (dir / "labels.gz").string()));
    CHECK(contains(labels_message, "apt-get install dataset-fashion-mnist"));
}

TEST_CASE("idx_reader: load_fashion_mnist on an empty directory reports the missing file") {
    temp_dir dir;
    const std::string message =
        data_error_message([&] { (void)swarmsgd::examples::load_fashion_mnist(dir.path(), true); });
    CHECK(contains(message, "train-images-idx3-ubyte.gz"));
    CHECK(contains(message, "apt-get install dataset-fashion-mnist"));
}

TEST_CASE("idx_reader: a directory is not a data file") {
    temp_dir dir;
    const std::string message = data_error_message(
        [&] { (void)swarmsgd::examples::load_idx_images(fs::temp_directory_path()); });
    CHECK(contains(message, "not a regular file"));
}

TEST_CASE("idx_reader: truncated payloads are reported with expected and actual sizes") {
    temp_dir dir;
    SUBCASE("gzip image file, 3 pixels missing") {
        const fs::path path = dir / "images.gz";
        write_gzip(path, idx_images(2, 3, 4, ramp(21)));
        const std::string message =
            data_error_message([&] { (void)swarmsgd::examples::load_idx_images(path); });
        CHECK(contains(message, "file " + path.string() + " is truncated"));
        CHECK(contains(message, "expected 24 bytes of pixel data, got 21"));
    }
    SUBCASE("uncompressed image file, no pixels at all") {
        const fs::path path = dir / "images";
        write_plain(path, idx_images(2, 3, 4, {}));
        const std::string message =
            data_error_message([&] { (void)swarmsgd::examples::load_idx_images(path); });
        CHECK(contains(message, "is truncated: expected 24 bytes of pixel data, got 0"));
    }
    SUBCASE("label file") {
        const fs::path path = dir / "labels.gz";
        write_gzip(path, idx_labels(5, {1, 2, 3}));
        const std::string message =
            data_error_message([&] { (void)swarmsgd::examples::load_idx_labels(path); });
        CHECK(contains(message, path.string()));
        CHECK(contains(message, "expected 5 bytes of labels, got 3"));
    }
    SUBCASE("header cut short") {
        const fs::path path = dir / "images.gz";
        bytes header = idx_images(2, 3, 4, {});
        header.resize(10);
        write_gzip(path, header);
        const std::string message =
            data_error_message([&] { (void)swarmsgd::examples::load_idx_images(path); });
        CHECK(contains(message, path.string()));
        CHECK(contains(message, "is truncated: its IDX header ends before the row count"));
    }
    SUBCASE("empty file") {
        const fs::path path = dir / "empty.gz";
        write_plain(path, {});
        const std::string message =
            data_error_message([&] { (void)swarmsgd::examples::load_idx_labels(path); });
        CHECK(contains(message, "ends before the magic number (got 0 of 4 bytes)"));
    }
    SUBCASE("gzip stream cut in the middle") {
        const fs::path path = dir / "images.gz";
        write_gzip(path, idx_images(100, 28, 28, ramp(100 * 28 * 28)));
        bytes compressed = read_plain(path);
        REQUIRE(compressed.size() > 40);
        compressed.resize(compressed.size() / 2);
        write_plain(path, compressed);
        const std::string message =
            data_error_message([&] { (void)swarmsgd::examples::load_idx_images(path); });
        CHECK(contains(message, path.string()));
        CHECK(contains(message, "is truncated: expected 78400 bytes of pixel data, got "));
        CHECK(contains(message, "gzip stream is cut off"));
    }
    SUBCASE("gzip trailer missing") {
        const fs::path path = dir / "labels.gz";
        write_gzip(path, idx_labels(4, {1, 2, 3, 4}));
        bytes compressed = read_plain(path);
        compressed.resize(compressed.size() - 8);  // drop CRC-32 and length
        write_plain(path, compressed);
        const std::string message =
            data_error_message([&] { (void)swarmsgd::examples::load_idx_labels(path); });
        CHECK(contains(message, path.string()));
        CHECK(contains(message, "is truncated"));
    }
}

TEST_CASE("idx_reader: trailing data after the payload is an error") {
    temp_dir dir;
    const fs::path images = dir / "images.gz";
    write_gzip(images, idx_images(1, 2, 2, ramp(5)));
    const std::string message =
        data_error_message([&] { (void)swarmsgd::examples::load_idx_images(images); });
    CHECK(contains(message, images.string()));
    CHECK(contains(message, "trailing data after the 4 bytes of pixel data"));

    const fs::path labels = dir / "labels";
    write_plain(labels, idx_labels(2, {1, 2, 3}));
    CHECK(contains(data_error_message([&] { (void)swarmsgd::examples::load_idx_labels(labels); }),
                   "trailing data"));
}

TEST_CASE("idx_reader: corrupt gzip data is reported as corrupt") {
    temp_dir dir;
    const fs::path path = dir / "labels.gz";
    write_gzip(path, idx_labels(64, ramp(64)));
    bytes compressed = read_plain(path);
    compressed[compressed.size() - 6] ^= 0xFF;  // inside the CRC-32 of the trailer
    write_plain(path, compressed);
    const std::string message =
        data_error_message([&] { (void)swarmsgd::examples::load_idx_labels(path, 256); });
    CHECK(contains(message, path.string()));
    CHECK(contains(message, "corrupt"));
}

TEST_CASE("idx_reader: wrong magic numbers are explained") {
    temp_dir dir;
    const fs::path labels = dir / "labels.gz";
    write_gzip(labels, idx_labels(2, {1, 2}));
    const std::string swapped =
        data_error_message([&] { (void)swarmsgd::examples::load_idx_images(labels); });
    CHECK(contains(swapped, labels.string()));
    CHECK(contains(swapped, "wrong magic number 0x00000801 (this is an IDX label file)"));
    CHECK(contains(swapped, "expected 0x00000803"));

    const fs::path images = dir / "images.gz";
    write_gzip(images, idx_images(1, 1, 1, {0}));
    CHECK(contains(data_error_message([&] { (void)swarmsgd::examples::load_idx_labels(images); }),
                   "wrong magic number 0x00000803 (this is an IDX image file)"));

    const fs::path floats = dir / "floats.gz";
    write_gzip(floats, idx_images(1, 1, 1, {0, 0, 0, 0}, 0x00000D03));  // IDX float images
    const std::string message =
        data_error_message([&] { (void)swarmsgd::examples::load_idx_images(floats); });
    CHECK(contains(message, "wrong magic number 0x00000d03, expected 0x00000803"));

    const fs::path text = dir / "text";
    write_plain(text, {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'});
    CHECK(contains(data_error_message([&] { (void)swarmsgd::examples::load_idx_images(text); }),
                   "(this is not an IDX file)"));
}

TEST_CASE("idx_reader: zero and oversized dimensions are rejected") {
    temp_dir dir;
    const fs::path path = dir / "images.gz";
    write_gzip(path, idx_images(0, 28, 28, {}));
    CHECK(contains(data_error_message([&] { (void)swarmsgd::examples::load_idx_images(path); }),
                   "invalid header: the image count is 0"));
    write_gzip(path, idx_images(1, 28, 0, {}));
    CHECK(contains(data_error_message([&] { (void)swarmsgd::examples::load_idx_images(path); }),
                   "invalid header: the column count is 0"));
    write_gzip(path, idx_images(1, 5000, 28, {}));
    CHECK(contains(data_error_message([&] { (void)swarmsgd::examples::load_idx_images(path); }),
                   "the row count is 5000, expected 1 to 4096"));
    // A corrupt header claiming ~4 billion images is caught as truncated, without allocating
    // the 64 TB it claims.
    write_gzip(path, idx_images(0xFFFFFFFFU, 4096, 4096, ramp(100)));
    CHECK(contains(data_error_message([&] { (void)swarmsgd::examples::load_idx_images(path); }),
                   "is truncated"));
}

TEST_CASE("idx_reader: labels out of range") {
    temp_dir dir;
    const fs::path path = dir / "labels.gz";
    write_gzip(path, idx_labels(4, {0, 9, 10, 3}));
    const std::string message =
        data_error_message([&] { (void)swarmsgd::examples::load_idx_labels(path); });
    CHECK(contains(message, path.string()));
    CHECK(contains(message, "label 10 at index 2 is out of range (expected < 10)"));

    // More classes accepted when asked for, fewer enforced.
    CHECK(swarmsgd::examples::load_idx_labels(path, 11) == std::vector<std::uint8_t>{0, 9, 10, 3});
    CHECK(contains(data_error_message([&] { (void)swarmsgd::examples::load_idx_labels(path, 5); }),
                   "label 9 at index 1 is out of range (expected < 5)"));
    CHECK_THROWS_AS((void)swarmsgd::examples::load_idx_labels(path, 0),
                    swarmsgd::invalid_argument_error);
}

TEST_CASE("idx_reader: image and label counts must agree") {
    temp_dir dir;
    const fs::path images = dir / "images.gz";
    const fs::path labels = dir / "labels.gz";
    write_gzip(images, idx_images(3, 2, 2, ramp(12)));
    write_gzip(labels, idx_labels(2, {1, 2}));
    try {
        (void)swarmsgd::examples::load_idx_pair(images, labels);
        FAIL("expected a swarmsgd::size_mismatch_error");
    } catch (const swarmsgd::size_mismatch_error& e) {
        const std::string message = e.what();
        CHECK(contains(message, images.string()));
        CHECK(contains(message, labels.string()));
        CHECK(contains(message, "holds 3 images"));
        CHECK(contains(message, "holds 2 labels"));
    }
}

TEST_CASE("idx_reader: load_fashion_mnist reads the standard file names, gzip or plain") {
    temp_dir dir;
    write_gzip(dir / "train-images-idx3-ubyte.gz", idx_images(2, 3, 3, ramp(18)));
    write_gzip(dir / "train-labels-idx1-ubyte.gz", idx_labels(2, {4, 5}));
    write_plain(dir / "t10k-images-idx3-ubyte", idx_images(1, 3, 3, ramp(9)));
    write_plain(dir / "t10k-labels-idx1-ubyte", idx_labels(1, {6}));
    const fs::path& root = dir.path();

    const image_set train = swarmsgd::examples::load_fashion_mnist(root, true);
    CHECK(train.count == 2);
    CHECK(train.labels == std::vector<std::uint8_t>{4, 5});
    const image_set test = swarmsgd::examples::load_fashion_mnist(root, false);
    CHECK(test.count == 1);
    CHECK(test.labels == std::vector<std::uint8_t>{6});

    // Mismatched counts in the standard files: size_mismatch_error naming both files.
    write_gzip(dir / "train-labels-idx1-ubyte.gz", idx_labels(3, {4, 5, 6}));
    try {
        (void)swarmsgd::examples::load_fashion_mnist(root, true);
        FAIL("expected a swarmsgd::size_mismatch_error");
    } catch (const swarmsgd::size_mismatch_error& e) {
        CHECK(contains(e.what(), "train-images-idx3-ubyte.gz holds 2 images"));
        CHECK(contains(e.what(), "train-labels-idx1-ubyte.gz holds 3 labels"));
    }
}

TEST_CASE("idx_reader: shards are disjoint, cover everything, balanced and seeded") {
    using swarmsgd::examples::shard_indices;
    for (const std::size_t count : {10U, 97U, 1000U}) {
        for (const std::size_t n : {1U, 3U, 4U, 10U}) {
            std::vector<int> seen(count, 0);
            for (std::size_t node = 0; node < n; ++node) {
                const auto indices = shard_indices(count, node, n, 7);
                CHECK(indices.size() >= count / n);
                CHECK(indices.size() <= count / n + 1);
                for (const std::size_t i : indices) {
                    REQUIRE(i < count);
                    ++seen[i];
                }
                CHECK(indices == shard_indices(count, node, n, 7));  // deterministic
            }
            CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
        }
    }
    // The order is shuffled, and depends on the seed.
    const auto a = shard_indices(1000, 0, 1, 1);
    const auto b = shard_indices(1000, 0, 1, 2);
    std::vector<std::size_t> identity(1000);
    std::iota(identity.begin(), identity.end(), std::size_t{0});
    CHECK(a != identity);
    CHECK(a != b);

    CHECK_THROWS_AS((void)shard_indices(10, 4, 4, 0), swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS((void)shard_indices(10, 0, 0, 0), swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS((void)shard_indices(3, 0, 4, 0), swarmsgd::invalid_argument_error);
}

TEST_CASE("idx_reader: shard copies the images and labels of its indices") {
    image_set set;
    set.count = 10;
    set.rows = 1;
    set.cols = 2;
    for (std::size_t i = 0; i < set.count; ++i) {
        set.pixels.push_back(static_cast<float>(i));
        set.pixels.push_back(static_cast<float>(i) + 0.5F);
        set.labels.push_back(static_cast<std::uint8_t>(i));
    }
    std::set<std::uint8_t> all;
    for (std::size_t node = 0; node < 3; ++node) {
        const image_set part = swarmsgd::examples::shard(set, node, 3, 11);
        const auto indices = swarmsgd::examples::shard_indices(set.count, node, 3, 11);
        REQUIRE(part.count == indices.size());
        CHECK(part.rows == 1);
        CHECK(part.cols == 2);
        REQUIRE(part.pixels.size() == 2 * part.count);
        REQUIRE(part.labels.size() == part.count);
        for (std::size_t i = 0; i < part.count; ++i) {
            CHECK(part.labels[i] == indices[i]);
            CHECK(part.image(i)[0] == static_cast<float>(indices[i]));
            CHECK(part.image(i)[1] == static_cast<float>(indices[i]) + 0.5F);
            all.insert(part.labels[i]);
        }
    }
    CHECK(all.size() == 10);
}

TEST_CASE("idx_reader: the installed Fashion-MNIST data set") {
    const fs::path dir = swarmsgd::examples::default_fashion_mnist_dir();
    if (!fs::exists(dir / "train-images-idx3-ubyte.gz") ||
        !fs::exists(dir / "t10k-images-idx3-ubyte.gz")) {
        MESSAGE("Fashion-MNIST not found in " << dir.string()
                                              << ", skipped (apt-get install "
                                                 "dataset-fashion-mnist)");
        return;
    }
    const image_set train = swarmsgd::examples::load_fashion_mnist(dir, true);
    CHECK(train.count == 60000);
    CHECK(train.rows == 28);
    CHECK(train.cols == 28);
    CHECK(train.pixels.size() == 60000U * 28U * 28U);
    CHECK(train.labels.size() == 60000);

    const image_set test = swarmsgd::examples::load_fashion_mnist(dir, false);
    CHECK(test.count == 10000);
    CHECK(test.rows == 28);
    CHECK(test.cols == 28);
    CHECK(test.labels.size() == 10000);

    // Every class occurs (Fashion-MNIST is balanced: 6000 / 1000 per class).
    std::vector<std::size_t> per_class(10, 0);
    for (const auto label : train.labels) ++per_class[label];
    for (const auto n : per_class) CHECK(n == 6000);
    const auto [lo, hi] = std::minmax_element(train.pixels.begin(), train.pixels.end());
    CHECK(*lo == 0.0F);
    CHECK(*hi == 1.0F);
}
