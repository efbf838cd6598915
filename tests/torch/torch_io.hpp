#pragma once
// torch_model<double>s for the shared semantic suite's harnesses (semantics.hpp driver_harness,
// mpi_semantics.hpp mpi_harness): the values in two tensors, a 1 x k "weight" and the rest as
// "bias". The model holds handles to its tensors, so its copies share them.

#include <swarmsgd/model.hpp>
#include <swarmsgd/torch.hpp>

#include <cstdint>
#include <span>
#include <vector>

namespace test_support {

struct torch_io {
    static swarmsgd::torch_model<double> make(const std::vector<double>& x) {
        const auto k = static_cast<std::int64_t>(x.size() / 2);
        auto all = torch::tensor(x, torch::kFloat64);
        return swarmsgd::torch_model<double>(
            {all.slice(0, 0, k).reshape({1, k}).clone(), all.slice(0, k).clone()},
            {"weight", "bias"});
    }
    static std::vector<double> values(const swarmsgd::torch_model<double>& m) {
        std::vector<double> out(m.elements());
        swarmsgd::gather(m, std::span<double>(out));
        return out;
    }
};

}  // namespace test_support
