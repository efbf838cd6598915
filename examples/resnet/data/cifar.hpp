#pragma once
/// \file cifar.hpp
/// Loaders for the binary versions of CIFAR-10 and CIFAR-100
/// (https://www.cs.toronto.edu/~kriz/cifar.html, "binary version").
///
/// CIFAR-10 (cifar-10-batches-bin/): data_batch_1.bin .. data_batch_5.bin (training, 10000
/// images each) and test_batch.bin; every record is 1 label byte (0..9) + 3072 pixel bytes.
/// CIFAR-100 (cifar-100-binary/): train.bin (50000) and test.bin (10000); every record is 1
/// coarse label byte (0..19) + 1 fine label byte (0..99) + 3072 pixel bytes; the fine label
/// is used. Pixels: 1024 red, then 1024 green, then 1024 blue bytes, each channel row-major
/// 32 x 32, i.e. CHW, which image_dataset keeps as is.
///
/// Every problem with a file (missing, unreadable, empty, a size that is not a whole number
/// of records, a label out of range) is a swarmsgd::data_error whose message names the file
/// and what is wrong with it.

#include <swarmsgd/errors.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "../../common/checks.hpp"
#include "image_dataset.hpp"

namespace swarmsgd::examples::resnet {

/// Which CIFAR.
enum class cifar_variant { cifar10, cifar100 };

/// Where users get the files; appended to the message when a file does not exist.
inline constexpr const char* cifar_download_hint =
    "download the binary version from https://www.cs.toronto.edu/~kriz/cifar.html, unpack it "
    "and pass its directory with --data";

/// Layout of one record of a CIFAR binary file.
struct cifar_format {
    const char* name;          ///< "CIFAR-10" or "CIFAR-100"
    std::size_t label_bytes;   ///< 1 (CIFAR-10) or 2 (coarse + fine, CIFAR-100)
    int classes;               ///< 10 or 100 (range of the label that is used)
    int coarse_classes;        ///< 20 for CIFAR-100's coarse label, 0 when there is none
    const char* subdirectory;  ///< what the official archive unpacks to
    static constexpr std::size_t pixel_bytes = 3 * 32 * 32;  ///< 3072
    /// Bytes per record: label bytes + 3072.
    [[nodiscard]] std::size_t record_bytes() const noexcept { return label_bytes + pixel_bytes; }
};

/// The record layout of `v`.
[[nodiscard]] inline cifar_format format_of(cifar_variant v) noexcept {
    return v == cifar_variant::cifar10 ? cifar_format{"CIFAR-10", 1, 10, 0, "cifar-10-batches-bin"}
                                       : cifar_format{"CIFAR-100", 2, 100, 20, "cifar-100-binary"};
}

/// The file names of the training set (`train`) or test set of `v`.
[[nodiscard]] inline std::vector<std::string> cifar_file_names(cifar_variant v, bool train) {
    if (v == cifar_variant::cifar100) return {train ? "train.bin" : "test.bin"};
    if (!train) return {"test_batch.bin"};
    return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
            "data_batch_5.bin"};
}

/// Appends the records of one CIFAR binary file to `out` (whose shape fields are set here).
/// Throws data_error naming `path` if it is missing, unreadable, empty, not a whole number of
/// records long, or holds a label out of range (index of the record and the value).
inline void append_cifar_file(const std::filesystem::path& path, cifar_variant variant,
                              image_dataset& out) {
    const cifar_format f = format_of(variant);
    const std::string file = path.string();
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (status.type() == std::filesystem::file_type::not_found)
        throw data_error(swarmsgd::examples::concat("cannot open ", f.name, " file ", file,
                                                    ": it does not exist; ", cifar_download_hint));
    if (ec)
        throw data_error(swarmsgd::examples::concat("cannot open file ", file, ": ", ec.message()));
    if (!std::filesystem::is_regular_file(status))
        throw data_error(
            swarmsgd::examples::concat("cannot open file ", file, ": it is not a regular file"));
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec)
        throw data_error(swarmsgd::examples::concat("cannot read file ", file, ": ", ec.message()));
    const std::size_t record = f.record_bytes();
    if (size == 0)
        throw data_error(swarmsgd::examples::concat("file ", file, " is empty; a ", f.name,
                                                    " file holds records of ", record, " bytes"));
    if (size % record != 0)
        throw data_error(swarmsgd::examples::concat(
            "file ", file, " is truncated (or not a ", f.name, " binary file): its size, ", size,
            " bytes, is not a multiple of the ", record, "-byte record (", f.label_bytes,
            f.label_bytes == 1 ? " label byte" : " label bytes", " + ", cifar_format::pixel_bytes,
            " pixel bytes); its last record has ", size % record, " bytes"));

    std::ifstream in(path, std::ios::binary);
    if (!in) {
        const int err = errno;
        throw data_error(swarmsgd::examples::concat(
            "cannot open file ", file, ": ", err != 0 ? std::strerror(err) : "unknown error"));
    }
    const std::size_t records = static_cast<std::size_t>(size / record);
    std::vector<std::uint8_t> buffer(record);
    out.channels = 3;
    out.height = 32;
    out.width = 32;
    out.classes = f.classes;
    out.pixels.reserve(out.pixels.size() + records * cifar_format::pixel_bytes);
    out.labels.reserve(out.labels.size() + records);
    for (std::size_t r = 0; r < records; ++r) {
        if (!in.read(reinterpret_cast<char*>(buffer.data()), static_cast<std::streamsize>(record)))
            throw data_error(swarmsgd::examples::concat("cannot read file ", file, ": record ", r,
                                                        " of ", records, " could not be read"));
        if (f.coarse_classes > 0 && buffer[0] >= f.coarse_classes)
            throw data_error(swarmsgd::examples::concat("file ", file, " is corrupt: record ", r,
                                                        " has coarse label ", unsigned{buffer[0]},
                                                        ", expected 0..", f.coarse_classes - 1));
        const std::uint8_t label = buffer[f.label_bytes - 1];
        if (label >= f.classes)
            throw data_error(
                swarmsgd::examples::concat("file ", file, " is corrupt: record ", r, " has ",
                                           f.coarse_classes > 0 ? "fine label " : "label ",
                                           unsigned{label}, ", expected 0..", f.classes - 1));
        out.labels.push_back(label);
        out.pixels.insert(out.pixels.end(), buffer.begin() + static_cast<long>(f.label_bytes),
                          buffer.end());
    }
}

/// The directory that holds the files of `v`: `dir` itself if its first file is there, else
/// the archive's subdirectory of `dir` (cifar-10-batches-bin / cifar-100-binary) if it is
/// there, else `dir` (the loader then reports the missing file).
[[nodiscard]] inline std::filesystem::path cifar_directory(const std::filesystem::path& dir,
                                                           cifar_variant v) {
    const std::string first = cifar_file_names(v, true).front();
    std::error_code ec;
    if (std::filesystem::exists(dir / first, ec)) return dir;
    const std::filesystem::path sub = dir / format_of(v).subdirectory;
    if (std::filesystem::exists(sub / first, ec)) return sub;
    return dir;
}

/// Loads the training set (`train`: 50000 images) or the test set (10000) of CIFAR-10 or
/// CIFAR-100 from `dir` (see cifar_directory()), fine labels for CIFAR-100. Throws
/// data_error naming the file on any problem (see append_cifar_file()).
[[nodiscard]] inline image_dataset load_cifar(const std::filesystem::path& dir, cifar_variant v,
                                              bool train) {
    const std::filesystem::path base = cifar_directory(dir, v);
    image_dataset set;
    set.name = swarmsgd::examples::concat(format_of(v).name, train ? " train" : " test");
    for (const std::string& name : cifar_file_names(v, train))
        append_cifar_file(base / name, v, set);
    return set;
}

}  // namespace swarmsgd::examples::resnet
