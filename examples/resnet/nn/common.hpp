#pragma once
/// \file common.hpp
/// What every layer of the ResNet example shares: the activation layout, Eigen views, the
/// per-thread scratch memory and the OpenMP switch.
///
/// Activation layout: "CBHW". A tensor of C channels over a batch of B images of H x W pixels
/// is stored channel-major, [C][B][H][W], i.e. a row-major C x (B*H*W) matrix. Why not NCHW:
///   - batch norm reduces over (B, H, W) per channel: with CBHW that is one contiguous row;
///   - a convolution over a group of consecutive images is a block of columns of that matrix,
///     so one GEMM covers the group and writes its output in place (no transposes).
/// Only the network's input (NCHW, from the caller) is converted, once per step.
///
/// Threads: the layers parallelize their outer loops with OpenMP when the program is compiled
/// with -fopenmp, over exactly `threads` threads (1 by default, so a network uses only the
/// calling thread). Eigen's own product parallelism is never used (EIGEN_DONT_PARALLELIZE is
/// defined here): every GEMM runs on the thread that calls it. The results do not depend on
/// the thread count, bit for bit: the tasks (images, channels) are independent, and sums over
/// the batch (weight gradients) run over a fixed split of it, added in a fixed order.

#if !defined(EIGEN_DONT_PARALLELIZE)
#define EIGEN_DONT_PARALLELIZE
#endif
#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
/// `for` loop over independent tasks, parallelized over `threads` threads (a local int) when
/// OpenMP is on. Dynamic scheduling: on a busy machine a thread that gets the CPU takes over
/// the tasks of one that does not, instead of waiting for it at the end of the loop.
#define SWARMSGD_RESNET_PARALLEL_FOR \
    _Pragma("omp parallel for num_threads(threads) schedule(dynamic)")
#else
#define SWARMSGD_RESNET_PARALLEL_FOR
#endif

namespace swarmsgd::examples::resnet::nn {

/// Row-major dynamic matrix (weights are stored row-major, like PyTorch).
template <class T>
using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Writable row-major view with a row stride (a block of columns of a CBHW tensor).
template <class T>
using row_map = Eigen::Map<row_matrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

/// Read-only row-major view with a row stride.
template <class T>
using const_row_map = Eigen::Map<const row_matrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

/// Contiguous read-only vector view.
template <class T>
using const_vector_map = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

/// Contiguous writable vector view.
template <class T>
using vector_map = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;

/// std::size_t / int -> Eigen::Index.
template <class I>
[[nodiscard]] constexpr Eigen::Index idx(I n) noexcept {
    return static_cast<Eigen::Index>(n);
}

/// Index of the calling thread inside a parallel loop (0 without OpenMP).
[[nodiscard]] inline int thread_index() noexcept {
#if defined(_OPENMP)
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/// Number of threads the layers can really use: `requested` with OpenMP, else 1.
[[nodiscard]] inline int usable_threads(int requested) noexcept {
#if defined(_OPENMP)
    return std::max(1, requested);
#else
    (void)requested;
    return 1;
#endif
}

/// Scratch memory of the layers, reused from step to step so that a step does not allocate
/// (Eigen's products still take their small packing buffers from malloc).
template <class T>
struct scratch {
    /// Parts of the batch whose weight-gradient sums are computed separately (in parallel),
    /// then added in order: fixed, so that the result does not depend on the thread count.
    static constexpr int weight_tasks = 8;

    int threads = 1;  ///< threads the layers use (see the file comment)
    /// Bytes an im2col matrix may take: groups of images are sized to stay within it (L2).
    std::size_t col_budget = 1024 * 1024;
    /// Convolutions with kernel > 1 and output planes of at least this many pixels use the row
    /// lowering (row_lowering.hpp), the others im2col (tests set it to force either).
    std::size_t row_lowering_min_plane = 64;
    std::vector<T> weights;  ///< weights rearranged for the row lowering (shared by threads)
    std::vector<std::ptrdiff_t> tap_offsets;  ///< direct convolution: offset of each tap
    std::vector<std::uint16_t> tap_masks;     ///< direct convolution: pixels each tap reads
    std::vector<std::vector<T>> col;          ///< per thread: im2col / row-lowered matrix
    std::vector<std::vector<T>> wgrad;        ///< per weight task: partial weight gradient

    /// Sets the thread count and makes room for `col_size` lowering elements per thread and
    /// `wgrad_size` weight-gradient elements per weight task (grows, never shrinks).
    void reserve(int threads_, std::size_t col_size, std::size_t wgrad_size) {
        threads = usable_threads(threads_);
        col.resize(static_cast<std::size_t>(threads));
        wgrad.resize(static_cast<std::size_t>(weight_tasks));
        for (auto& c : col)
            if (c.size() < col_size) c.resize(col_size);
        for (auto& g : wgrad)
            if (g.size() < wgrad_size) g.resize(wgrad_size);
    }
};

}  // namespace swarmsgd::examples::resnet::nn
