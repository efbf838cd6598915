#pragma once
/// \file thrust.hpp
/// Thrust adapter (component swarmsgd::thrust; swarmsgd::cuda for CUDA): models held in
/// `thrust::device_vector<float|double>` (or a list of them) run Swarm SGD with every
/// quantizer, every tensor operation and every encode/decode running in the vector's own
/// system (the GPU with nvcc and CUDA; Thrust's CPP / OMP / TBB systems on the CPU). Only
/// encoded bytes cross to host memory, where the communicators work. See docs/thrust.md.
///
/// Compile with nvcc (THRUST_DEVICE_SYSTEM defaults to CUDA; CMake target swarmsgd::cuda), or
/// with a host compiler and -DTHRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_CPP (or _OMP with
/// OpenMP; CMake targets swarmsgd::thrust_cpp, swarmsgd::thrust_omp).

#if !__has_include(<thrust/version.h>)
#error \
    "swarmsgd/thrust.hpp needs Thrust (Debian: apt-get install libthrust-dev libcub-dev, or the CCCL of a CUDA toolkit; CMake: link swarmsgd::thrust_cpp, swarmsgd::thrust_omp or swarmsgd::cuda)"
#endif

// The CUDA system's copies and errors (nvcc for THRUST_DEVICE_SYSTEM_CUDA): before anything
// that copies memory is instantiated.
#include <thrust/detail/config.h>
#if defined(__CUDACC__) && THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
#include "cuda/system.hpp"
#endif

#include "thrust/codec.hpp"
#include "thrust/detail/baseline_memory.hpp"
#include "thrust/detail/node_memory.hpp"
#include "thrust/model_ops.hpp"
#include "thrust/quantizers.hpp"
#include "thrust/sgd.hpp"
#include "thrust/system.hpp"
#include "thrust/system_buffer.hpp"
#include "thrust/tensor.hpp"
