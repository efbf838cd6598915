#pragma once
/// \file cuda/error.hpp
/// CUDA runtime failures as exceptions (component swarmsgd::cuda): cuda_error carries the
/// runtime's own name and text of the error (cudaGetErrorName, cudaGetErrorString) and what
/// swarmsgd was doing.

#if !defined(__CUDACC__) && !__has_include(<cuda_runtime_api.h>)
#error "swarmsgd/cuda/*.hpp needs the CUDA toolkit (nvcc; CMake: link swarmsgd::cuda)"
#endif

#include <cuda_runtime_api.h>

#include <string>

#include "../errors.hpp"
#include "../thrust/system.hpp"

namespace swarmsgd {

/// A CUDA runtime call failed; what() names the call, the error and its text.
class cuda_error : public device_error {
public:
    /// The error of `status` while doing `what`.
    cuda_error(cudaError_t status, const std::string& what)
        : device_error(detail::concat(what, ": ", cudaGetErrorName(status), " (",
                                      cudaGetErrorString(status), ")")),
          status_(status) {}
    /// The runtime's status code.
    [[nodiscard]] cudaError_t status() const noexcept { return status_; }

private:
    cudaError_t status_;
};

namespace detail {
/// Throws cuda_error when `status` is not cudaSuccess (the sticky error is cleared first so the
/// message is about this call).
inline void cuda_check(cudaError_t status, const char* what) {
    if (status != cudaSuccess) {
        (void)cudaGetLastError();
        throw cuda_error(status, what);
    }
}
}  // namespace detail

}  // namespace swarmsgd
