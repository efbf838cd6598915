#pragma once
/// \file detail/type_checks.hpp
/// Readable compile-time diagnostics for the template arguments of every entry point
/// (swarm_node, the baselines, run_in_process, simulator), and the default quantizer they share.
///
/// Two rules make a mistake reach its message rather than a wall of substitution failures:
/// - no entry point names `model_value_t<Model>` in a template parameter, a default argument or
///   a deduction guide: the default quantizer is `default_quantizer<Model>::type`, which is a
///   placeholder type (not `void`) for a type that is not a model, so that class template
///   argument deduction and overload resolution succeed and the body's static_assert runs;
/// - the static_asserts name the requirement that failed: for a type whose tensor_traits were
///   specialized, which member is missing or has the wrong type, not merely "not a tensor".

#include <concepts>
#include <cstddef>
#include <ranges>
#include <type_traits>

#include "../communicator.hpp"
#include "../model.hpp"
#include "../quantizer.hpp"
#include "../quantizers/identity.hpp"
#include "../tensor_traits.hpp"

namespace swarmsgd {
template <class Q>
    requires quantizer_for<Q, typename Q::value_type>
class error_feedback;
}  // namespace swarmsgd

namespace swarmsgd::detail {

/// Whether Q is error_feedback<Inner> (a device back end keeps its residual in the codec).
template <class Q>
struct is_error_feedback : std::false_type {};
template <class Q>
struct is_error_feedback<error_feedback<Q>> : std::true_type {};

/// The default quantizer of an entry point given a type that is not a model: deduction and
/// overload resolution still succeed, and check_model's static_assert reports the model.
struct not_a_model_quantizer {};

/// The default quantizer of an entry point: identity for the model's value type. Evaluated
/// lazily, so that a Model which is not a model reaches check_model's readable static_assert.
template <class Model>
struct default_quantizer {
    using type = not_a_model_quantizer;
};
template <class Model>
    requires any_model<Model>
struct default_quantizer<Model> {
    using type = identity_quantizer<model_value_t<Model>>;
};

template <class T>
using traits_of = tensor_traits<std::remove_cv_t<T>>;

/// tensor_traits<T> is specialized: it names a value_type.
template <class T>
concept has_traits = requires {
    typename traits_of<T>::value_type;
};

/// The element type of a range, or void for a type that is not one.
template <class M>
struct element_of {
    using type = void;
};
template <class M>
    requires std::ranges::range<std::remove_cv_t<M>>
struct element_of<M> {
    using type = std::ranges::range_value_t<std::remove_cv_t<M>>;
};

/// For a type T whose tensor_traits are specialized but which is not a tensor: a static_assert
/// that names the member of tensor_traits<T> that is missing or has the wrong type (T is the
/// model type, or the element type of a list model).
template <class T>
constexpr bool diagnose_traits() {
    using traits = traits_of<T>;
    using V = typename traits::value_type;
    static_assert(tensor_value<V>,
                  "swarmsgd: tensor_traits<T>::value_type must be float or double (T is the model "
                  "type, or the element type of a list model)");
    static_assert(
        requires(const T& ct) {
            { traits::size(ct) } -> std::convertible_to<std::size_t>;
        },
        "swarmsgd: tensor_traits<T>::size(const T&) must return the number of elements");
    if constexpr (tensor_value<V>) {
        if constexpr (requires { typename traits::memory_system; }) {
            static_assert(
                requires(T & t) {
                    { traits::system_data(t) } -> std::same_as<V*>;
                },
                "swarmsgd: tensor_traits<T>::system_data(T&) must return value_type* (a system "
                "tensor, with memory_system; see tensor_traits.hpp)");
            static_assert(
                requires(const T& ct) {
                    { traits::system_data(ct) } -> std::convertible_to<const V*>;
                },
                "swarmsgd: tensor_traits<T>::system_data(const T&) must return const value_type*");
            static_assert(
                requires(const T& ct, V* out) { traits::copy_to_host(ct, out); },
                "swarmsgd: tensor_traits<T>::copy_to_host(const T&, value_type*) is "
                "missing (a system tensor; see tensor_traits.hpp)");
            static_assert(
                requires(T & t, const V* in) { traits::copy_from_host(in, t); },
                "swarmsgd: tensor_traits<T>::copy_from_host(const value_type*, T&) is "
                "missing (a system tensor; see tensor_traits.hpp)");
        } else {
            static_assert(
                requires(T & t) {
                    { traits::data(t) } -> std::same_as<V*>;
                },
                "swarmsgd: tensor_traits<T>::data(T&) must return value_type* (writable "
                "storage: a data overload for non-const T is missing, or returns const)");
            static_assert(
                requires(const T& ct) {
                    { traits::data(ct) } -> std::convertible_to<const V*>;
                },
                "swarmsgd: tensor_traits<T>::data(const T&) must return const value_type*");
        }
    }
    return true;
}

/// The model check of every entry point: Model is a tensor, a list of tensors, or a system
/// model. Otherwise a static_assert says what is wrong, as precisely as the type allows.
template <class Model>
constexpr bool check_model() {
    using element = typename element_of<Model>::type;
    if constexpr (any_model<Model>) {
        return true;
    } else if constexpr (has_traits<Model>) {
        return diagnose_traits<Model>();
    } else if constexpr (!std::is_void_v<element> && has_traits<element>) {
        if constexpr (tensor<element> || system_tensor<element>)
            static_assert(any_model<Model>,
                          "swarmsgd: the Model type is a range of tensors but not a list model: a "
                          "list model is a random-access range (std::vector, std::array, "
                          "std::span, ...) of tensors; std::list and other ranges are not");
        else
            static_assert(diagnose_traits<element>());
        return true;
    } else {
        static_assert(any_model<Model>,
                      "swarmsgd: the Model type is neither a tensor nor a list of tensors. "
                      "Specialize swarmsgd::tensor_traits<T> (value_type, size, data) for it or "
                      "for its elements, or include the adapter for your library (e.g. "
                      "<swarmsgd/eigen.hpp>); see docs/architecture.md");
        return true;
    }
}

/// The communicator check of every entry point that takes a Comm type.
template <class Comm>
constexpr bool check_communicator() {
    static_assert(communicator<Comm>,
                  "swarmsgd: the Comm type does not satisfy swarmsgd::communicator: it needs "
                  "rank(), size(), isend(dest, bytes) returning a send_request, try_receive(), "
                  "wait_for_message(timeout), announce_done() and all_done(); see "
                  "docs/architecture.md");
    return true;
}

/// Both checks, model first (a node's other diagnostics assume both passed).
template <class Model, class Comm>
constexpr bool check_node_types() {
    static_assert(check_model<Model>());
    static_assert(check_communicator<Comm>());
    return true;
}

/// The quantizer check, once the model is known to be one (otherwise check_model reported).
template <class Model, class Quant>
constexpr bool check_quantizer() {
    if constexpr (any_model<Model>)
        static_assert(quantizer_for<Quant, model_value_t<Model>>,
                      "swarmsgd: the Quant type is not a quantizer for this model's value type: "
                      "it needs id(), name(), max_encoded_size(n), encode(values, out, rng) and "
                      "decode(payload, reference, out) -> decode_result; see quantizer.hpp");
    return true;
}

}  // namespace swarmsgd::detail
