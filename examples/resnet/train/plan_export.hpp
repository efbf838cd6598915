#pragma once
/// \file plan_export.hpp
/// Writes what one rank of resnet_swarm_mpi trains on, so that another framework can train on
/// exactly the same thing (bench/ddp_resnet20.py, the PyTorch DDP baseline): the rank's shard,
/// the order in which its batch_sampler visits it, the initial model and the test set. Files
/// in `dir` (little-endian, no headers):
///   meta.txt                     key=value lines: ranks, batch, steps_per_node, epochs,
///                                steps_per_epoch (fractional; warm-up steps = its multiple),
///                                boundaries, boundary_epochs, channels, height, width,
///                                classes, depth, base_width, params, mean, std, train_count,
///                                test_count, seed
///   init.f32                     the initial model (resnet.hpp's buffer layout = PyTorch's
///                                parameters, then each BatchNorm's running mean and variance)
///   shard.rank<r>.u8 / .labels.i32   rank r's shard: CHW bytes per image, int32 labels
///   order.rank<r>.u32            steps_per_node x batch indices into that shard, step by step
///   test.u8 / test.labels.i32    the test set
/// Augmentation draws from the same random stream as the order, so it is refused here.

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "../../common/checks.hpp"
#include "../data/batch_sampler.hpp"
#include "../data/image_dataset.hpp"
#include "../resnet.hpp"
#include "options.hpp"
#include "training_setup.hpp"

namespace swarmsgd::examples::resnet {

namespace plan_files {

/// Writes `bytes` bytes at `data` to `path`; throws swarmsgd::error naming the file.
inline void write_raw(const std::filesystem::path& path, const void* data, std::size_t bytes) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) throw swarmsgd::error("export-plan: cannot create " + path.string());
    const bool ok = std::fwrite(data, 1, bytes, f) == bytes;
    if (std::fclose(f) != 0 || !ok)
        throw swarmsgd::error("export-plan: cannot write " + path.string());
}

template <class T>
void write_vector(const std::filesystem::path& path, const std::vector<T>& v) {
    write_raw(path, v.data(), v.size() * sizeof(T));
}

/// Writes a data set as <stem>.u8 and <stem>.labels.i32.
inline void write_images(const std::filesystem::path& dir, const std::string& stem,
                         const image_dataset& set) {
    write_vector(dir / (stem + ".u8"), set.pixels);
    write_vector(dir / (stem + ".labels.i32"), set.labels);
}

/// "a,b,c"; floating-point values with 9 significant digits (a float round-trips).
template <class T>
std::string join(const std::vector<T>& v) {
    std::string out;
    for (const auto& x : v) {
        if (!out.empty()) out += ',';
        if constexpr (std::is_floating_point_v<T>) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(x));
            out += buf;
        } else {
            out += swarmsgd::examples::concat(x);
        }
    }
    return out;
}

}  // namespace plan_files

/// Writes rank `rank`'s part of the plan of `o` to `o.export_plan` (every rank calls it; rank 0
/// also writes meta.txt, init.f32 and the test set). `initial` is the initial model. Throws
/// usage_error with --augment, swarmsgd::error naming a file that cannot be written.
inline void export_plan(const run_options& o, const training_data& d, const resnet_config& config,
                        const training_plan& plan, std::size_t rank, std::size_t n,
                        std::span<const float> initial, std::size_t trainable) {
    namespace pf = plan_files;
    if (o.augment)
        throw usage_error(
            "--export-plan cannot reproduce --augment (its random crops come from the same "
            "stream as the batch order); drop --augment");
    const std::filesystem::path dir(o.export_plan);
    std::filesystem::create_directories(dir);
    const image_dataset shard = node_shard(d.train, rank, n, o.seed);
    pf::write_images(dir, "shard.rank" + std::to_string(rank), shard);
    // The driver's sampler with the driver's stream (seed, n + rank), drawing indices only.
    batch_sampler sampler(shard, d.norm, false);
    rng data(o.seed, n + rank);
    std::vector<std::uint32_t> order(plan.steps_per_node * static_cast<std::size_t>(o.batch));
    for (auto& i : order) i = static_cast<std::uint32_t>(sampler.next_index(data));
    pf::write_vector(dir / ("order.rank" + std::to_string(rank) + ".u32"), order);
    if (rank != 0) return;
    pf::write_raw(dir / "init.f32", initial.data(), initial.size_bytes());
    pf::write_images(dir, "test", d.test);
    const std::string meta = swarmsgd::examples::concat(
        "ranks=", n, "\nbatch=", o.batch, "\nsteps_per_node=", plan.steps_per_node,
        "\nepochs=", o.epochs,
        "\nsteps_per_epoch=", pf::join(std::vector<double>{plan.steps_per_epoch}),
        "\nboundaries=", pf::join(plan.boundaries), "\nboundary_epochs=", pf::join(plan.epochs),
        "\nchannels=", d.train.channels, "\nheight=", d.train.height, "\nwidth=", d.train.width,
        "\nclasses=", d.train.classes, "\ndepth=", config.depth, "\nbase_width=", config.base_width,
        "\nparams=", initial.size(), "\ntrainable=", trainable, "\nmean=", pf::join(d.norm.mean),
        "\nstd=", pf::join(d.norm.std), "\ntrain_count=", d.train.count(),
        "\ntest_count=", d.test.count(), "\nseed=", o.seed, "\n");
    pf::write_raw(dir / "meta.txt", meta.data(), meta.size());
}

}  // namespace swarmsgd::examples::resnet
