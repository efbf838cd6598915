#pragma once
/// \file cuda/cuda.hpp
/// The CUDA component (swarmsgd::cuda): the Thrust adapter (<swarmsgd/thrust.hpp>) compiled by
/// nvcc for THRUST_DEVICE_SYSTEM_CUDA, with CUDA errors as cuda_error, pinned staging of
/// payload copies and device probing. CUDA-aware MPI detection is in <swarmsgd/cuda/mpi.hpp>
/// (it needs MPI). See docs/thrust.md.

#if !defined(__CUDACC__)
#error \
    "swarmsgd/cuda/cuda.hpp is for CUDA translation units (compile with nvcc; CMake: swarmsgd::cuda)"
#endif

#include "../thrust.hpp"
#include "device.hpp"
#include "error.hpp"
#include "pinned_block_allocator.hpp"
#include "pinned_buffer.hpp"
#include "system.hpp"
