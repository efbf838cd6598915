#pragma once
/// \file cuda/device.hpp
/// Finding a CUDA device: probe_cuda_device() says whether one can be used and, if not, why (no
/// driver, no device, a driver older than the runtime), without throwing, so that a test or a
/// program can report it and skip; require_cuda_device() throws cuda_error instead.

#include <cuda_runtime_api.h>

#include <string>

#include "error.hpp"

namespace swarmsgd {

/// What probe_cuda_device() found.
struct cuda_device_probe {
    bool available = false;  ///< a device can be used
    int count = 0;           ///< devices visible
    int device = -1;         ///< the current device when available
    std::string name;        ///< its name ("NVIDIA H100 80GB HBM3"), or empty
    std::string reason;      ///< why none can be used, or empty
};

/// Looks for a usable device (the current one). Never throws.
[[nodiscard]] inline cuda_device_probe probe_cuda_device() {
    cuda_device_probe p;
    const cudaError_t status = cudaGetDeviceCount(&p.count);
    if (status != cudaSuccess) {
        (void)cudaGetLastError();
        p.count = 0;
        p.reason = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(status) + " (" +
                   cudaGetErrorString(status) + ")";
        return p;
    }
    if (p.count == 0) {
        p.reason = "cudaGetDeviceCount found no CUDA device";
        return p;
    }
    if (cudaGetDevice(&p.device) != cudaSuccess) p.device = 0;
    cudaDeviceProp prop{};
    if (const cudaError_t e = cudaGetDeviceProperties(&prop, p.device); e != cudaSuccess) {
        (void)cudaGetLastError();
        p.reason = std::string("cudaGetDeviceProperties failed: ") + cudaGetErrorString(e);
        return p;
    }
    p.name = prop.name;
    p.available = true;
    return p;
}

/// The probe of a usable device; throws cuda_error (cudaErrorNoDevice) with the reason when
/// there is none.
inline cuda_device_probe require_cuda_device() {
    auto p = probe_cuda_device();
    if (!p.available)
        throw cuda_error(cudaErrorNoDevice, "swarmsgd: no usable CUDA device: " + p.reason);
    return p;
}

}  // namespace swarmsgd
