#pragma once
/// \file epoch_record.hpp
/// One row of the per-epoch results, and the CSV file they are written to (one row per epoch,
/// flushed as soon as it is known, so an interrupted run keeps its rows).

#include <swarmsgd/errors.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "../../common/checks.hpp"

namespace swarmsgd::examples::resnet {

/// What the run measured at the end of an epoch.
struct epoch_record {
    double epoch = 0;              ///< epochs done (the last one may be fractional)
    double train_loss = 0;         ///< mean training loss over every node's steps of the epoch
    double acc_mean = 0;           ///< test accuracy of the mean of the nodes' models, 0..1
    double acc_node0 = 0;          ///< test accuracy of node 0's model, 0..1
    double gamma = 0;              ///< consensus distance sum_i ||X_i - mean||^2
    std::uint64_t bytes_sent = 0;  ///< by all nodes since the start
    double averaging_share = 0;    ///< of the nodes' time during the epoch spent averaging, 0..1
    double seconds = 0;            ///< wall time since the start of training
};

/// "12.3 MiB".
[[nodiscard]] inline std::string format_bytes(double b) {
    const char* unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) b /= 1024, ++u;
    char out[32];
    std::snprintf(out, sizeof out, "%.1f %s", b, unit[u]);
    return out;
}

/// The line printed for a record: "epoch 1.00  loss 0.5123  test accuracy: mean model 85.12%,
/// node 0 84.90%  Gamma 0.123  averaging 0.8%  sent 12.3 MiB  45 s".
[[nodiscard]] inline std::string describe(const epoch_record& r) {
    char out[256];
    std::snprintf(out, sizeof out,
                  "epoch %.2f  loss %.4f  test accuracy: mean model %.2f%%, node 0 %.2f%%  "
                  "Gamma %.4g  averaging %.1f%%  sent %s  %.0f s",
                  r.epoch, r.train_loss, 100 * r.acc_mean, 100 * r.acc_node0, r.gamma,
                  100 * r.averaging_share, format_bytes(static_cast<double>(r.bytes_sent)).c_str(),
                  r.seconds);
    return out;
}

/// The CSV header line.
inline constexpr const char* epoch_csv_header =
    "epoch,train_loss,test_acc_mean,test_acc_node0,gamma,bytes_sent,averaging_share,seconds";

/// A CSV file of epoch_records, written row by row.
class epoch_csv {
public:
    /// Creates (truncates) `path` and writes the header. Throws swarmsgd::error naming the
    /// file if it cannot be written.
    explicit epoch_csv(std::string path) : path_(std::move(path)) {
        file_ = std::fopen(path_.c_str(), "w");
        if (file_ == nullptr)
            throw error(swarmsgd::examples::concat("cannot write CSV file ", path_, ": ",
                                                   std::strerror(errno)));
        std::fprintf(file_, "%s\n", epoch_csv_header);
        std::fflush(file_);
    }
    epoch_csv(const epoch_csv&) = delete;
    epoch_csv& operator=(const epoch_csv&) = delete;
    ~epoch_csv() {
        if (file_ != nullptr) std::fclose(file_);
    }

    /// Appends one row and flushes it. Throws swarmsgd::error if the write fails.
    void append(const epoch_record& r) {
        const int written = std::fprintf(file_, "%.4f,%.6f,%.6f,%.6f,%.6g,%llu,%.6f,%.3f\n",
                                         r.epoch, r.train_loss, r.acc_mean, r.acc_node0, r.gamma,
                                         static_cast<unsigned long long>(r.bytes_sent),
                                         r.averaging_share, r.seconds);
        if (written < 0 || std::fflush(file_) != 0)
            throw error(swarmsgd::examples::concat("cannot write CSV file ", path_, ": ",
                                                   std::strerror(errno)));
    }

    /// The file's path.
    [[nodiscard]] const std::string& path() const noexcept { return path_; }

private:
    std::string path_;
    std::FILE* file_ = nullptr;
};

}  // namespace swarmsgd::examples::resnet
