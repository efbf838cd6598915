#pragma once
/// \file detail/config.hpp
/// Portability macros shared by the element kernels.
///
/// `SWARMSGD_HOST_DEVICE` marks a function callable from host and device code. It expands to
/// `__host__ __device__` when the translation unit is compiled by a CUDA compiler (nvcc or
/// clang in CUDA mode, both define `__CUDACC__`) and to nothing otherwise, so the per-element
/// kernels of the quantizers (min_max_kernel, qsgd_kernel, fp16/bf16 conversions, the counter
/// RNG) can be reused unchanged by a Thrust/CUDA back end through `thrust::transform`.

#if defined(__CUDACC__)
#define SWARMSGD_HOST_DEVICE __host__ __device__
#else
#define SWARMSGD_HOST_DEVICE
#endif

/// `SWARMSGD_RESTRICT`: the non-standard `__restrict` qualifier (GCC, Clang, MSVC, nvcc).
#define SWARMSGD_RESTRICT __restrict
