#pragma once
/// \file torch.hpp
/// LibTorch adapter (component swarmsgd::torch; docs/torch.md). Makes a LibTorch module, or a
/// list of `torch::Tensor`s, a swarmsgd model whose averaging works on the tensors' own memory:
/// - `torch_tensor<V>`: one CPU tensor of dtype V (float or double), contiguous and defined;
/// - `torch_model<V>`: a list of them, built from a module's parameters (and, by default, its
///   floating-point buffers: BatchNorm's running statistics) or from tensors you name.
/// The checks run when the model is built and again on every access by the node, so a tensor
/// that became non-contiguous, undefined, of another dtype, moved to another device or
/// resized after the node was built is refused with an invalid_argument_error or a
/// size_mismatch_error naming the tensor (index and name) and what is wrong; never a crash.
///
/// Autograd: the node writes the averaged values into the tensors' storage directly, as an
/// in-place update on `.data()` under `torch::NoGradGuard` would, and bumps each written
/// tensor's version counter, so that a backward pass whose saved tensors were averaged in
/// between is refused by autograd ("modified by an inplace operation") instead of computing a
/// wrong gradient. Gradients (`.grad()`) and the optimizer's state are never touched.
///
/// Bring your own optimizer: build the node with `swarm_options::optimizer =
/// local_optimizer::external`, let `torch::optim::SGD` / `Adam` take the step, then call
/// `node.after_local_step()` (docs/torch.md, decision 46 in docs/decisions.md).

#if !__has_include(<torch/torch.h>)
#error \
    "swarmsgd/torch.hpp needs LibTorch (Debian: apt-get install libtorch-dev; CMake: find_package(swarmsgd COMPONENTS torch) and link swarmsgd::torch)"
#endif

#include <torch/torch.h>

#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "errors.hpp"
#include "tensor_traits.hpp"

namespace swarmsgd {

namespace detail {
/// The dtype of value type V.
template <tensor_value V>
inline constexpr c10::ScalarType torch_dtype_of =
    std::is_same_v<V, float> ? c10::ScalarType::Float : c10::ScalarType::Double;

/// "tensor 3 ('layer1.0.conv1.weight')", or "tensor 3" without a name.
inline std::string torch_tensor_label(std::size_t index, const std::string& name) {
    return name.empty() ? concat("torch tensor ", index)
                        : concat("torch tensor ", index, " ('", name, "')");
}
}  // namespace detail

/// One `torch::Tensor` as a swarmsgd tensor of value type V (float or double). Holds a handle
/// to the same tensor (LibTorch's shared TensorImpl: what the module holds), its position in
/// the model and its name, and the number of elements it had when it was wrapped.
template <tensor_value V>
class torch_tensor {
public:
    /// Wraps `t` (checked: see check()). `index` and `name` only label error messages.
    explicit torch_tensor(at::Tensor t, std::size_t index = 0, std::string name = {})
        : tensor_(std::move(t)), index_(index), name_(std::move(name)) {
        size_ = check_layout();
    }

    /// The wrapped tensor (the module's own).
    [[nodiscard]] const at::Tensor& tensor() const noexcept { return tensor_; }
    /// Its position in the model.
    [[nodiscard]] std::size_t index() const noexcept { return index_; }
    /// Its name in the module ("" when it was given none).
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    /// Number of elements when it was wrapped (what the node was built with).
    [[nodiscard]] std::size_t size() const noexcept { return size_; }

    /// Throws invalid_argument_error when the tensor is no longer a defined, contiguous CPU
    /// tensor of dtype V, and size_mismatch_error when its number of elements changed.
    void check() const {
        const std::size_t n = check_layout();
        detail::require<size_mismatch_error>(
            n == size_, detail::torch_tensor_label(index_, name_), " has ", n,
            " elements, but had ", size_,
            " when the model was built; a node's model cannot change size (build a new node)");
    }

    /// Contiguous storage for reading (checked first).
    [[nodiscard]] const V* read() const {
        check();
        return tensor_.data_ptr<V>();
    }
    /// Contiguous storage for writing (checked first). Bumps the tensor's version counter, as
    /// an in-place operation does: autograd then refuses a backward pass that saved the old
    /// values instead of silently using the new ones.
    [[nodiscard]] V* write() {
        check();
        tensor_.unsafeGetTensorImpl()->bump_version();
        return tensor_.data_ptr<V>();
    }

private:
    /// The layout checks; returns the number of elements.
    std::size_t check_layout() const {
        const auto what = [&] { return detail::torch_tensor_label(index_, name_); };
        detail::require<invalid_argument_error>(tensor_.defined(), what(), " is undefined");
        detail::require<invalid_argument_error>(
            tensor_.device().is_cpu(), what(), " is on ", tensor_.device().str(),
            "; the torch adapter averages CPU tensors (no device back end for torch tensors is "
            "built: move the module to the CPU, or use <swarmsgd/thrust.hpp> models on a GPU)");
        detail::require<invalid_argument_error>(
            tensor_.scalar_type() == detail::torch_dtype_of<V>, what(), " has dtype ",
            c10::toString(tensor_.scalar_type()), ", the model's value type is ",
            c10::toString(detail::torch_dtype_of<V>));
        detail::require<invalid_argument_error>(
            !tensor_.is_sparse() && tensor_.layout() == c10::kStrided, what(),
            " is not a dense (strided) tensor");
        detail::require<invalid_argument_error>(
            tensor_.is_contiguous(), what(), " is not contiguous (sizes ", tensor_.sizes(),
            ", strides ", tensor_.strides(), "); make it contiguous before building the model");
        return static_cast<std::size_t>(tensor_.numel());
    }

    at::Tensor tensor_;
    std::size_t index_ = 0;
    std::string name_;
    std::size_t size_ = 0;
};

/// torch_tensor<V> is a tensor: every access goes through its checks.
template <tensor_value V>
struct tensor_traits<torch_tensor<V>> {
    using value_type = V;  ///< float or double
    /// Elements when wrapped (a changed size is refused by data()).
    static std::size_t size(const torch_tensor<V>& t) noexcept { return t.size(); }
    /// Writable storage (checked; bumps the version counter).
    static V* data(torch_tensor<V>& t) { return t.write(); }
    /// Read-only storage (checked).
    static const V* data(const torch_tensor<V>& t) { return t.read(); }
};

/// What a torch_model takes from a module.
struct torch_model_options {
    /// Also the module's floating-point buffers (BatchNorm's running mean and variance), which
    /// must be averaged too, or the averaged model evaluates with another model's statistics.
    /// Integer buffers (BatchNorm's num_batches_tracked, a counter) are left to each node.
    bool buffers = true;
};

/// A model made of torch tensors: a random-access range of torch_tensor<V>, in the module's
/// order (parameters, then buffers). The tensors are the module's own (no copy).
template <tensor_value V>
class torch_model {
public:
    using value_type = torch_tensor<V>;  ///< one part

    /// The parameters of `module` (recursively, in named_parameters() order) and, unless
    /// `options.buffers` is false, its floating-point buffers. Every tensor is checked
    /// (invalid_argument_error naming it). A module with no such tensor is refused.
    explicit torch_model(const torch::nn::Module& module, torch_model_options options = {}) {
        for (const auto& p : module.named_parameters(/*recurse=*/true)) add(p.value(), p.key());
        if (options.buffers)
            for (const auto& b : module.named_buffers(/*recurse=*/true))
                if (b.value().defined() && at::isFloatingType(b.value().scalar_type()))
                    add(b.value(), b.key());
        require_some();
    }

    /// Any list of tensors; `names` (same length, or empty) label error messages.
    explicit torch_model(const std::vector<at::Tensor>& tensors,
                         const std::vector<std::string>& names = {}) {
        detail::require<invalid_argument_error>(names.empty() || names.size() == tensors.size(),
                                                "torch_model: ", tensors.size(), " tensors but ",
                                                names.size(), " names");
        for (std::size_t k = 0; k < tensors.size(); ++k)
            add(tensors[k], names.empty() ? std::string() : names[k]);
        require_some();
    }

    /// The parts (range interface: a torch_model is a swarmsgd tensor list).
    [[nodiscard]] auto begin() noexcept { return parts_.begin(); }
    [[nodiscard]] auto end() noexcept { return parts_.end(); }
    [[nodiscard]] auto begin() const noexcept { return parts_.begin(); }
    [[nodiscard]] auto end() const noexcept { return parts_.end(); }
    [[nodiscard]] std::size_t size() const noexcept { return parts_.size(); }
    [[nodiscard]] torch_tensor<V>& operator[](std::size_t k) noexcept { return parts_[k]; }
    [[nodiscard]] const torch_tensor<V>& operator[](std::size_t k) const noexcept {
        return parts_[k];
    }

    /// Total number of elements.
    [[nodiscard]] std::size_t elements() const noexcept {
        std::size_t n = 0;
        for (const auto& p : parts_) n += p.size();
        return n;
    }
    /// Checks every tensor (torch_tensor::check); the node does so on each access too.
    void check() const {
        for (const auto& p : parts_) p.check();
    }

private:
    void add(const at::Tensor& t, const std::string& name) {
        parts_.emplace_back(t, parts_.size(), name);
    }
    void require_some() const {
        detail::require<invalid_argument_error>(!parts_.empty(),
                                                "torch_model: no tensor to average (a module "
                                                "without parameters, or an empty list)");
    }

    std::vector<torch_tensor<V>> parts_;
};

}  // namespace swarmsgd
