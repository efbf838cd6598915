#pragma once
/// \file quantizer_choice.hpp
/// The --quantizer names and the quantizer objects they stand for.

#include <swarmsgd/quantizers/bf16.hpp>
#include <swarmsgd/quantizers/fp16.hpp>
#include <swarmsgd/quantizers/identity.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/quantizers/min_max.hpp>
#include <swarmsgd/quantizers/qsgd.hpp>

#include <string>

#include "options.hpp"

namespace swarmsgd::examples::resnet {

/// Calls `f(q)` with the quantizer named `name` (a quantizer_names entry) and returns its
/// result (the same type for every quantizer):
///   identity  fp32 as is            fp16, bf16  16-bit floats
///   lattice8  lattice, 8 bits, bucket 256 (the paper's; decoded against the receiver's model)
///   lattice4  lattice, 4 bits
///   minmax8   min-max per bucket of 512, 8 bits;  minmax4: 4 bits
///   qsgd      QSGD, 127 levels (8-bit codes), bucket 512
/// Throws usage_error for an unknown name.
template <class F>
decltype(auto) with_quantizer(const std::string& name, F&& f) {
    if (name == "identity") return f(identity_quantizer<float>{});
    if (name == "fp16") return f(fp16_quantizer<float>{});
    if (name == "bf16") return f(bf16_quantizer<float>{});
    if (name == "lattice8" || name == "lattice4") {
        lattice_options l;
        l.bits = name == "lattice8" ? 8 : 4;
        return f(lattice_quantizer<float>(l));
    }
    if (name == "minmax8" || name == "minmax4") {
        min_max_options m;
        m.bits = name == "minmax8" ? 8 : 4;
        return f(min_max_quantizer<float>(m));
    }
    if (name == "qsgd") return f(qsgd_quantizer<float>{});
    throw usage_error("unknown --quantizer '" + name + "'");
}

}  // namespace swarmsgd::examples::resnet
