#pragma once
/// \file thrust/tensor.hpp
/// Thrust vectors as model tensors (component swarmsgd::thrust):
/// - `thrust::device_vector<float|double>`: a SYSTEM tensor (see tensor_traits.hpp) in
///   `thrust::device_system_tag`, i.e. on the GPU when compiled by nvcc for CUDA, or in the
///   CPP / OMP / TBB system that THRUST_DEVICE_SYSTEM selects. Every operation of the algorithm
///   runs in that system, with Thrust algorithms over the shared element kernels.
/// - the system-specific vectors `thrust::cpp::vector`, `thrust::omp::vector`,
///   `thrust::cuda::vector` (Thrust's `detail::vector_base<V, Alloc>`): system tensors in the
///   system of their allocator, whatever THRUST_DEVICE_SYSTEM is (so one program can run a
///   model in the OMP system and another in the CPP system).
/// - `thrust::host_vector<float|double>`: an ordinary (host) tensor, like std::vector: its
///   memory is host memory, so it takes the CPU path.
/// A list of them (e.g. `std::vector<thrust::device_vector<float>>`, one vector per layer) is
/// one model.

#include <thrust/device_vector.h>
#include <thrust/host_vector.h>
#include <thrust/iterator/iterator_traits.h>

#include <cstddef>

#include "../tensor_traits.hpp"
#include "system.hpp"

namespace swarmsgd {

namespace detail {
/// The tensor_traits of a Thrust vector whose elements live in its allocator's system.
template <class Vec>
struct thrust_system_vector_traits {
    using value_type = typename Vec::value_type;  ///< float or double
    /// The Thrust system tag of the vector's memory.
    using memory_system = typename thrust::iterator_system<typename Vec::iterator>::type;
    /// Number of elements.
    static std::size_t size(const Vec& v) noexcept { return v.size(); }
    /// Contiguous storage in memory_system.
    static value_type* system_data(Vec& v) noexcept { return thrust::raw_pointer_cast(v.data()); }
    /// Contiguous storage in memory_system (read-only).
    static const value_type* system_data(const Vec& v) noexcept {
        return thrust::raw_pointer_cast(v.data());
    }
    /// Copies the size(v) values to host memory.
    static void copy_to_host(const Vec& v, value_type* out) {
        device_call("swarmsgd: copy to the host",
                    [&] { system_ops<memory_system>::to_host(system_data(v), v.size(), out); });
    }
    /// Copies size(v) host values into v.
    static void copy_from_host(const value_type* in, Vec& v) {
        device_call("swarmsgd: copy from the host",
                    [&] { system_ops<memory_system>::to_system(in, v.size(), system_data(v)); });
    }
};
}  // namespace detail

/// `thrust::device_vector<float|double>` is a system tensor in thrust::device_system_tag.
template <tensor_value V, class Alloc>
struct tensor_traits<thrust::device_vector<V, Alloc>>
    : detail::thrust_system_vector_traits<thrust::device_vector<V, Alloc>> {};

/// Thrust's system-specific vectors (`thrust::omp::vector<float>`, `thrust::cpp::vector`,
/// `thrust::cuda::vector`, ...) are system tensors in their allocator's system.
template <tensor_value V, class Alloc>
struct tensor_traits<thrust::detail::vector_base<V, Alloc>>
    : detail::thrust_system_vector_traits<thrust::detail::vector_base<V, Alloc>> {};

/// `thrust::host_vector<float|double>` is a host tensor (its memory is host memory).
template <tensor_value V, class Alloc>
struct tensor_traits<thrust::host_vector<V, Alloc>> {
    using value_type = V;  ///< Element type.
    /// Number of elements.
    static std::size_t size(const thrust::host_vector<V, Alloc>& t) noexcept { return t.size(); }
    /// Contiguous storage.
    static V* data(thrust::host_vector<V, Alloc>& t) noexcept {
        return thrust::raw_pointer_cast(t.data());
    }
    /// Contiguous storage (read-only).
    static const V* data(const thrust::host_vector<V, Alloc>& t) noexcept {
        return thrust::raw_pointer_cast(t.data());
    }
};

static_assert(system_tensor<thrust::device_vector<float>>);
static_assert(system_tensor<thrust::device_vector<double>>);
static_assert(!tensor<thrust::device_vector<float>>);
static_assert(tensor<thrust::host_vector<float>>);

}  // namespace swarmsgd
