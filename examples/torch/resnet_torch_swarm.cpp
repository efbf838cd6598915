// Swarm SGD inside LibTorch: the ResNet of examples/resnet written with torch::nn and trained by
// n in-process nodes, one thread each, every node with its own module and its own
// torch::optim::SGD on its own shard of Fashion-MNIST (or CIFAR). The optimizer takes each step;
// the node only averages (swarmsgd::local_optimizer::external): after every step,
// node.after_local_step() averages with one random neighbour when H steps are due, quantized,
// without any global round. Same command line, recipe, progress line, CSV and plot as
// resnet_swarm (the Eigen example), so the two compare directly.
//
//   resnet_torch_swarm [--nodes 8] [--epochs 1] [--quantizer lattice8] ...   (--help: all)
#include <swarmsgd/swarmsgd.hpp>
#include <swarmsgd/torch.hpp>

#include <string>
#include <utility>

#include "../resnet/train/in_process_program.hpp"
#include "in_process_training.hpp"

namespace rn = swarmsgd::examples::resnet;
namespace tr = swarmsgd::examples::torch_resnet;

int main(int argc, char** argv) {
    rn::run_options defaults;
    defaults.csv = "resnet_torch_swarm.csv";
    defaults.plot = "resnet_torch_swarm.png";
    const rn::program_text text{"resnet_torch_swarm", std::string(" in LibTorch ") + TORCH_VERSION,
                                " (torch::optim::SGD each)", ", torch::nn"};
    return rn::in_process_main(argc, argv, text, defaults,
                               [](const auto& o, const auto& d, auto q, const auto& out) {
                                   return tr::train_in_process(o, d, std::move(q), out);
                               });
}
