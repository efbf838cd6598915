// Swarm SGD training of a ResNet (He et al.'s CIFAR ResNet-6k+2) on n in-process nodes: each
// node trains its own copy on its own shard of Fashion-MNIST, CIFAR-10 or CIFAR-100 and every
// H local steps averages with one random neighbour, quantized, without any global round.
// Prints a progress line, the test accuracy of the mean model and of node 0 after every
// epoch, writes them to a CSV and plots them with gnuplot.
//
//   resnet_swarm [--dataset fashion-mnist|cifar10|cifar100] [--data DIR] [--nodes 8]
//                [--epochs 1] [--depth 20] [--batch 128] [--lr 0.1] [--quantizer lattice8] ...
//   resnet_swarm --help
#include <swarmsgd/swarmsgd.hpp>

#include <utility>

#include "train/in_process_program.hpp"
#include "train/in_process_training.hpp"

namespace rn = swarmsgd::examples::resnet;

int main(int argc, char** argv) {
    return rn::in_process_main(argc, argv, {"resnet_swarm", "", "", ""}, rn::run_options{},
                               [](const auto& o, const auto& d, auto q, const auto& out) {
                                   return rn::train_in_process(o, d, std::move(q), out);
                               });
}
