// Consumer test program, built against swarmsgd as a user would (find_package or
// add_subdirectory; the add_subdirectory consumer compiles this same file).
//
// TODO(lead): once <swarmsgd/swarmsgd.hpp> and <swarmsgd/eigen.hpp> exist, drop the
// __has_include fallbacks and replace the body with a real tiny training run.
#if __has_include(<swarmsgd/swarmsgd.hpp>)
#include <swarmsgd/swarmsgd.hpp>
#endif
#if __has_include(<swarmsgd/eigen.hpp>)
#include <swarmsgd/eigen.hpp>
#endif
#include <Eigen/Core>
#include <iostream>
#include <swarmsgd/random.hpp>

int main() {
    swarmsgd::rng r(1);
    const auto x = r.uniform(10);
    Eigen::VectorXd v = Eigen::VectorXd::Constant(3, static_cast<double>(x));
    std::cout << "swarmsgd consumer: rng(1).uniform(10) = " << x << ", sum = " << v.sum() << '\n';
    return x < 10 ? 0 : 1;
}
