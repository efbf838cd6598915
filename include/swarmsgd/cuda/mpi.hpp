#pragma once
/// \file cuda/mpi.hpp
/// Whether the MPI library can send and receive GPU memory directly ("CUDA-aware MPI"), as the
/// library itself reports it. Needs <mpi.h> (component swarmsgd::mpi); no CUDA call is made.
///
/// Detection, in order (docs/thrust.md):
/// 1. Open MPI: <mpi-ext.h> defines MPIX_CUDA_AWARE_SUPPORT (0 or 1: how the library was
///    BUILT); when it is 1, the run-time answer of MPIX_Query_cuda_support() decides (it
///    returns 0 when CUDA support is disabled at run time, e.g. by --mca opal_cuda_support 0,
///    or when the runtime finds no usable CUDA).
/// 2. MPICH >= 4 (and derivatives that keep its extension): MPIX_GPU_query_support(
///    MPIX_GPU_SUPPORT_CUDA, &flag) at run time.
/// 3. Anything else: not CUDA-aware.
/// Call it after MPI_Init.

#if !__has_include(<mpi.h>)
#error "swarmsgd/cuda/mpi.hpp needs MPI (CMake: link swarmsgd::mpi)"
#endif

#include <mpi.h>
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>
#endif

#include <string>

namespace swarmsgd {

/// What the MPI library says about GPU memory.
struct mpi_cuda_support {
    bool aware = false;  ///< MPI calls may take device pointers
    std::string how;     ///< how it was found out (for logs)
};

/// Asks the MPI library whether it is CUDA-aware (see the file comment).
[[nodiscard]] inline mpi_cuda_support query_mpi_cuda_support() {
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
    const bool at_run_time = MPIX_Query_cuda_support() == 1;
    return {at_run_time, at_run_time ? "Open MPI built with CUDA, MPIX_Query_cuda_support() = 1"
                                     : "Open MPI built with CUDA, but MPIX_Query_cuda_support() "
                                       "= 0 (disabled at run time)"};
#elif defined(MPIX_CUDA_AWARE_SUPPORT)
    return {false, "Open MPI built without CUDA (MPIX_CUDA_AWARE_SUPPORT = 0 in mpi-ext.h)"};
#elif defined(MPICH_NUMVERSION) && defined(MPIX_GPU_SUPPORT_CUDA)
    int flag = 0;
    if (MPIX_GPU_query_support(MPIX_GPU_SUPPORT_CUDA, &flag) != MPI_SUCCESS) flag = 0;
    return {flag != 0, flag != 0 ? "MPICH: MPIX_GPU_query_support(CUDA) = 1"
                                 : "MPICH: MPIX_GPU_query_support(CUDA) = 0"};
#else
    return {false, "the MPI library offers no way to ask (not Open MPI, not MPICH >= 4)"};
#endif
}

}  // namespace swarmsgd
