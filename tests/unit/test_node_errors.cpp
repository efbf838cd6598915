// Node-level error handling (tests/support/node_error_suite.hpp) through each of the node's
// three exchanges on host models: exact (identity; flat and list models), general
// (general_identity: identity's wire bytes without the fused path) and recovering (lattice).
// tests/thrust/test_node_errors.cpp runs the same suite on the Thrust back end.
#include <doctest/doctest.h>

#include <cstddef>
#include <vector>

#include <swarmsgd/quantizers/identity.hpp>
#include <swarmsgd/quantizers/lattice.hpp>

#include "general_identity.hpp"
#include "node_error_suite.hpp"

namespace {

/// A flat host model.
template <class Q>
struct flat_config {
    using model_type = std::vector<float>;
    using quantizer_type = Q;
    static model_type make(const std::vector<float>& v) { return v; }
    static std::vector<float> values(const model_type& m) { return m; }
    static void assign(model_type& m, const std::vector<float>& v) { m = v; }
};

/// A host list model: two parts (3 elements, then the rest).
template <class Q>
struct list_config {
    using model_type = std::vector<std::vector<float>>;
    using quantizer_type = Q;
    static model_type make(const std::vector<float>& v) {
        const std::size_t head = v.size() < 3 ? v.size() : 3;
        return {std::vector<float>(v.begin(), v.begin() + long(head)),
                std::vector<float>(v.begin() + long(head), v.end())};
    }
    static std::vector<float> values(const model_type& m) {
        std::vector<float> out = m[0];
        out.insert(out.end(), m[1].begin(), m[1].end());
        return out;
    }
    static void assign(model_type& m, const std::vector<float>& v) {
        const auto parts = make(v);
        m[0] = parts[0];
        m[1] = parts[1];
    }
};

struct exact_flat : flat_config<swarmsgd::identity_quantizer<float>> {};
struct exact_list : list_config<swarmsgd::identity_quantizer<float>> {};
struct general_flat : flat_config<test_support::general_identity<float>> {};
struct recovering_flat : flat_config<swarmsgd::lattice_quantizer<float>> {};
struct recovering_list : list_config<swarmsgd::lattice_quantizer<float>> {};

using test_support::node_errors::node_of;
static_assert(node_of<exact_flat>::exact && node_of<exact_list>::exact);
static_assert(!node_of<general_flat>::exact && !node_of<general_flat>::recovers);
static_assert(node_of<recovering_flat>::recovers && node_of<recovering_list>::recovers);

}  // namespace

namespace test_support::node_errors {
SWARMSGD_NODE_ERROR_SUITE(exact_flat, exact_list, general_flat, recovering_flat, recovering_list);
}
