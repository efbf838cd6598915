#pragma once
/// \file eigen.hpp
/// Eigen adapter (component swarmsgd::eigen). Makes these types tensors:
/// - plain objects: `Eigen::Matrix<float|double, ...>` and `Eigen::Array<float|double, ...>`
///   (VectorXf, VectorXd, ArrayXf, MatrixXf, ...: any shape, their storage is contiguous);
/// - `Eigen::Map<Matrix/Array<float|double, ...>>` with the default (contiguous) stride:
///   non-owning views, e.g. one per layer into one parameter buffer.
/// A list of them (`std::vector<Eigen::Map<Eigen::VectorXf>>`) is one model.
/// Expressions, Blocks, Refs, strided or const Maps are rejected with a static_assert that
/// says what to use instead.

#if !__has_include(<Eigen/Core>)
#error \
    "swarmsgd/eigen.hpp needs Eigen 3.3 or later (Debian: apt-get install libeigen3-dev; CMake: link swarmsgd::eigen)"
#endif

#include <Eigen/Core>
#include <concepts>
#include <cstddef>
#include <type_traits>

#include "tensor_traits.hpp"

namespace swarmsgd {

namespace detail {
template <class T>
inline constexpr bool always_false = false;

template <class T>
struct is_eigen_plain : std::false_type {};
template <class S, int R, int C, int O, int MR, int MC>
struct is_eigen_plain<Eigen::Matrix<S, R, C, O, MR, MC>> : std::true_type {};
template <class S, int R, int C, int O, int MR, int MC>
struct is_eigen_plain<Eigen::Array<S, R, C, O, MR, MC>> : std::true_type {};

template <class T>
struct is_eigen_contiguous_map : std::false_type {};
template <class P, int MapOptions>
struct is_eigen_contiguous_map<Eigen::Map<P, MapOptions, Eigen::Stride<0, 0>>> : is_eigen_plain<P> {
};

template <class D>
void eigen_base_probe(const Eigen::EigenBase<D>&);  // matches any type with an EigenBase base
template <class T>
concept eigen_object = requires(const T& t) {
    detail::eigen_base_probe(t);
};

/// A Map with the default stride over a writable plain float/double matrix or array.
template <class T>
concept eigen_writable_map = is_eigen_contiguous_map<T>::value &&
    tensor_value<typename T::Scalar> && !std::is_const_v<typename T::PointerArgType>;

/// An Eigen object that is not a plain float/double matrix or array, nor a Map over one.
template <class T>
concept eigen_non_tensor =
    eigen_object<T> && !((is_eigen_plain<T>::value || is_eigen_contiguous_map<T>::value) &&
                         tensor_value<typename T::Scalar>);
}  // namespace detail

/// Eigen plain matrices and arrays of float or double.
template <class T>
    requires detail::is_eigen_plain<T>::value && tensor_value<typename T::Scalar>
struct tensor_traits<T> {
    using value_type = typename T::Scalar;  ///< Element type.
    /// Number of coefficients.
    static std::size_t size(const T& t) noexcept { return static_cast<std::size_t>(t.size()); }
    /// Contiguous storage.
    static value_type* data(T& t) noexcept { return t.data(); }
    /// Contiguous storage (read-only).
    static const value_type* data(const T& t) noexcept { return t.data(); }
};

/// Eigen Maps with the default stride over plain float/double matrices or arrays.
template <detail::eigen_writable_map T>
struct tensor_traits<T> {
    using value_type = typename T::Scalar;  ///< Element type.
    /// Number of coefficients.
    static std::size_t size(const T& t) noexcept { return static_cast<std::size_t>(t.size()); }
    /// Contiguous storage (a Map is a view: constness of the Map does not protect elements).
    static value_type* data(const T& t) noexcept { return const_cast<value_type*>(t.data()); }
};

/// Any other Eigen type: a readable compile-time error.
template <detail::eigen_non_tensor T>
struct tensor_traits<T> {
    static_assert(detail::always_false<T>,
                  "swarmsgd: this Eigen type cannot be a model tensor. Eigen expressions, Blocks, "
                  "Refs, strided or const Maps and integer scalars are not contiguous writable "
                  "float/double storage: evaluate into an Eigen::VectorXf/VectorXd (or ArrayX*, "
                  "MatrixX*) or use Eigen::Map<Eigen::VectorXf> over contiguous memory.");
};

}  // namespace swarmsgd
