#pragma once
/// \file thrust/system.hpp
/// Thrust memory systems as seen by swarmsgd (component swarmsgd::thrust): which systems host
/// code may read directly, the execution policy of a system, copies between host memory and a
/// system, and device_error.
///
/// A system is named by its Thrust tag type: `thrust::device_system_tag` (whatever
/// THRUST_DEVICE_SYSTEM selects: CUDA with nvcc, or CPP / OMP / TBB on the CPU),
/// `thrust::cpp::tag`, `thrust::omp::tag`, `thrust::cuda::tag`. The CPU systems (cpp, omp,
/// tbb) derive from the cpp execution policy; their memory is host memory.

#if !__has_include(<thrust/version.h>)
#error \
    "swarmsgd/thrust.hpp needs Thrust (Debian: apt-get install libthrust-dev libcub-dev, or the CCCL of a CUDA toolkit; CMake: link swarmsgd::thrust or swarmsgd::cuda)"
#endif

#include <thrust/copy.h>
#include <thrust/execution_policy.h>
#include <thrust/memory.h>
#include <thrust/system/cpp/execution_policy.h>
#include <thrust/system_error.h>

#include <cstddef>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#include "../errors.hpp"
#include "../message_block_pool.hpp"

namespace swarmsgd {

/// A failure reported by a Thrust system or the CUDA runtime (an allocation that failed, a
/// kernel that could not run, an illegal address). The message carries the system's own error
/// text (for CUDA, cudaGetErrorString) and what swarmsgd was doing.
class device_error : public error {
public:
    using error::error;
};

/// True when host code may dereference pointers of system S: Thrust's CPU systems (cpp, omp,
/// tbb), whose execution policies derive from the cpp one.
template <class S>
inline constexpr bool host_accessible_system_v =
    std::is_base_of_v<thrust::system::cpp::detail::execution_policy<S>, S>;

namespace detail {

/// Customization point for what a system needs beyond Thrust's generic algorithms (the CUDA
/// part specializes it: its stream-ordered policy and pinned staging of host copies).
template <class S>
struct system_ops {
    /// The execution policy the library's algorithms run with in system S.
    static S policy() noexcept { return S{}; }
    /// The memory a node in S receives messages into (message_block_pool): host memory.
    using block_allocator = host_block_allocator;

    /// Copies n elements from host memory to system memory.
    template <class T>
    static void to_system(const T* host, std::size_t n, T* system) {
        if (n == 0) return;
        if constexpr (host_accessible_system_v<S>)
            std::memcpy(static_cast<void*>(system), host, n * sizeof(T));
        else
            thrust::copy_n(host, n, thrust::pointer<T, S>(system));
    }

    /// Copies n elements from system memory to host memory.
    template <class T>
    static void to_host(const T* system, std::size_t n, T* host) {
        if (n == 0) return;
        if constexpr (host_accessible_system_v<S>)
            std::memcpy(static_cast<void*>(host), system, n * sizeof(T));
        else
            thrust::copy_n(thrust::pointer<const T, S>(system), n, host);
    }

    /// Copies n elements within system memory (the ranges must not overlap).
    template <class T>
    static void within(const T* from, std::size_t n, T* to) {
        if (n == 0) return;
        if constexpr (host_accessible_system_v<S>)
            std::memcpy(static_cast<void*>(to), from, n * sizeof(T));
        else
            thrust::copy_n(policy(), from, n, to);
    }

    /// Waits until the work queued in S is done (no-op where every call is synchronous).
    static void synchronize() {}
};

/// Runs f(), turning Thrust's own exceptions (thrust::system_error, which carries the CUDA
/// error string on CUDA) into device_error naming `what`; swarmsgd's exceptions and
/// std::bad_alloc pass through.
template <class F>
decltype(auto) device_call(const char* what, F&& f) {
    try {
        return std::forward<F>(f)();
    } catch (const error&) {
        throw;
    } catch (const thrust::system_error& e) {
        throw device_error(concat(what, ": ", e.what()));
    }
}

}  // namespace detail
}  // namespace swarmsgd
