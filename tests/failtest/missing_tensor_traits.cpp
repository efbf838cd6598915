// expect: constraints not satisfied|does not satisfy 'tensor'
#include <swarmsgd/tensor_traits.hpp>
struct not_a_tensor {};
static_assert(swarmsgd::tensor<not_a_tensor>);  // never satisfied
int main() {}
