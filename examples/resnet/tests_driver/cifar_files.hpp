#pragma once
// Test helpers: a temporary directory, and CIFAR-format files generated into it.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace swarmsgd::examples::resnet::testing {

/// A fresh directory under the system's temporary directory, removed with its contents.
class temp_dir {
public:
    explicit temp_dir(const std::string& tag) {
        static int counter = 0;
        path_ =
            std::filesystem::temp_directory_path() /
            ("swarmsgd_" + tag + "_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
    std::filesystem::path path_;
};

/// One CIFAR record: the label bytes then 3072 pixel bytes.
struct cifar_record {
    std::vector<std::uint8_t> labels;  // 1 (CIFAR-10) or 2 (coarse, fine)
    std::vector<std::uint8_t> pixels;  // 3072, CHW
};

/// Writes `records` to `path` in the binary format, then `extra` raw bytes (to truncate a
/// file, say).
inline void write_cifar_file(const std::filesystem::path& path,
                             const std::vector<cifar_record>& records,
                             const std::vector<std::uint8_t>& extra = {}) {
    std::ofstream out(path, std::ios::binary);
    for (const auto& r : records) {
        out.write(reinterpret_cast<const char*>(r.labels.data()),
                  static_cast<std::streamsize>(r.labels.size()));
        out.write(reinterpret_cast<const char*>(r.pixels.data()),
                  static_cast<std::streamsize>(r.pixels.size()));
    }
    out.write(reinterpret_cast<const char*>(extra.data()),
              static_cast<std::streamsize>(extra.size()));
}

/// A learnable CIFAR-10-like image of class `label`: low noise everywhere and a bright 8 x 8
/// square whose position (a 4 x 4 grid of cells, in the class's channel) depends on the class.
inline cifar_record synthetic_record(int label, std::uint32_t seed) {
    cifar_record r;
    r.labels = {static_cast<std::uint8_t>(label)};
    r.pixels.resize(3072);
    std::uint32_t s = seed * 2654435761u + 12345u;
    for (auto& p : r.pixels) {
        s = s * 1664525u + 1013904223u;
        p = static_cast<std::uint8_t>(40 + (s >> 26));  // 40..103
    }
    const int cell = label % 16, channel = label % 3;
    const int y0 = (cell / 4) * 8, x0 = (cell % 4) * 8;
    for (int y = y0; y < y0 + 8; ++y)
        for (int x = x0; x < x0 + 8; ++x) r.pixels[channel * 1024 + y * 32 + x] = 240;
    return r;
}

/// Writes a synthetic CIFAR-10 set into `dir`: data_batch_1..5.bin with `per_file` records
/// each and test_batch.bin with `test` records, classes cycling 0..9.
inline void write_synthetic_cifar10(const std::filesystem::path& dir, int per_file, int test) {
    std::uint32_t seed = 1;
    for (int f = 1; f <= 5; ++f) {
        std::vector<cifar_record> records;
        for (int i = 0; i < per_file; ++i) records.push_back(synthetic_record(i % 10, seed++));
        write_cifar_file(dir / ("data_batch_" + std::to_string(f) + ".bin"), records);
    }
    std::vector<cifar_record> records;
    for (int i = 0; i < test; ++i) records.push_back(synthetic_record((i * 7) % 10, seed++));
    write_cifar_file(dir / "test_batch.bin", records);
}

}  // namespace swarmsgd::examples::resnet::testing
