// expect: cannot be a model tensor
// A Map over const storage cannot be written by the averaging step: a list of such Maps must
// stop with eigen.hpp's readable static_assert. Compile with -DSWARMSGD_FAILTEST_CORRECTED to
// check the corrected code (Maps over mutable storage) compiles.
#include <swarmsgd/eigen.hpp>
#include <swarmsgd/model.hpp>
#include <vector>

int main() {
    std::vector<float> buffer(6, 1.0f);
#ifdef SWARMSGD_FAILTEST_CORRECTED
    using view = Eigen::Map<Eigen::VectorXf>;
    float* base = buffer.data();
#else
    using view = Eigen::Map<const Eigen::VectorXf>;  // read-only view: rejected
    const float* base = buffer.data();
#endif
    std::vector<view> model{view(base, 2), view(base + 2, 4)};
    static_assert(swarmsgd::model<std::vector<view>>);
    return static_cast<int>(swarmsgd::model_size(model)) - 6;
}
