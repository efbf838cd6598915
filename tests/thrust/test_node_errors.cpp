// Node-level error handling (tests/support/node_error_suite.hpp) on the Thrust back end: system
// models (thrust::device_vector in the build's device system; a list of them), through the
// general exchange (identity, which has no fused path in a memory system) and the recovering
// one (lattice). tests/unit/test_node_errors.cpp runs the same suite on host models.
#include <doctest/doctest.h>

#include <cstddef>
#include <span>
#include <vector>

#include <swarmsgd/thrust.hpp>

#include "node_error_suite.hpp"
#include "thrust_support.hpp"

namespace {

template <class M, class Q>
struct device_config {
    using model_type = M;
    using quantizer_type = Q;
    static model_type make(const std::vector<float>& v) {
        return test_support::thrust_models::make_model<M>(v);
    }
    static std::vector<float> values(const model_type& m) {
        return test_support::thrust_models::host_values(m);
    }
    static void assign(model_type& m, const std::vector<float>& v) {
        swarmsgd::from_host(std::span<const float>(v), m);
    }
};

using device_flat = thrust::device_vector<float>;
using device_list = std::vector<thrust::device_vector<float>>;

struct general_device : device_config<device_flat, swarmsgd::identity_quantizer<float>> {};
struct general_device_list : device_config<device_list, swarmsgd::identity_quantizer<float>> {};
struct recovering_device : device_config<device_flat, swarmsgd::lattice_quantizer<float>> {};

using test_support::node_errors::node_of;
static_assert(!node_of<general_device>::exact && !node_of<general_device>::recovers);
static_assert(!node_of<general_device_list>::exact);
static_assert(node_of<recovering_device>::recovers);

}  // namespace

namespace test_support::node_errors {
SWARMSGD_NODE_ERROR_SUITE(general_device, general_device_list, recovering_device);
}
