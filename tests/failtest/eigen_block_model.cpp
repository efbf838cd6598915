// expect: cannot be a model tensor
// An Eigen Block (v.head(3)) is a view with Eigen's inner/outer strides, not a plain object or a
// contiguous Map: asking whether it is a tensor must stop with eigen.hpp's readable static_assert.
// Compile with -DSWARMSGD_FAILTEST_CORRECTED to check the corrected code (a Map over the same
// three coefficients) compiles.
#include <swarmsgd/eigen.hpp>
#include <swarmsgd/model.hpp>

int main() {
    Eigen::VectorXf v = Eigen::VectorXf::Zero(8);
    Eigen::Map<Eigen::VectorXf> head(v.data(), 3);  // the correction
    static_assert(swarmsgd::tensor<decltype(head)>);
#ifndef SWARMSGD_FAILTEST_CORRECTED
    static_assert(swarmsgd::tensor<decltype(v.head(3))>);  // Block: rejected
#endif
    return static_cast<int>(swarmsgd::model_size(head)) - 3;
}
