// Swarm SGD on the GPU: n nodes, one thread each, every node with its own classifier in a
// thrust::device_vector<float>, trained by device kernels (device_mlp.hpp) on its own shard of
// Fashion-MNIST, and averaged with one random neighbour every H local steps through a quantized
// channel. Everything model-sized stays in the device system: data, activations, gradient, the
// SGD step, the snapshot, encode, decode and averaging; host memory sees only the encoded
// messages, which the nodes receive into page-locked blocks (docs/thrust.md). Compiled by nvcc
// it runs on the GPU (fashion_mnist_device_swarm_cuda; each thread has its own default stream);
// by the host compiler, in Thrust's OMP system (fashion_mnist_device_swarm), which CI runs.
// One process per node over MPI: fashion_mnist_device_swarm_mpi.
//
//   fashion_mnist_device_swarm [--nodes 4] [--epochs 1] [--hidden 128] [--batch 64] [--lr 0.05]
//       [--momentum 0.9] [--H 2] [--quantizer lattice8|min_max8|fp16|identity]
//       [--topology complete|ring|torus|hypercube|expander] [--seed 1] [--data DIR]
//       [--min-accuracy A]
//
// Prints the device, a line per epoch (mean training loss and accuracy over the nodes), then
// the test accuracy of the mean model and of node 0, the time per local step and the averaging
// share of it: seconds_averaging over the training loop's seconds, summed over the nodes. With
// --min-accuracy A it exits 1 when the mean model's test accuracy is below A.
#include <exception>
#include <mutex>
#include <thread>

#include "device_training.hpp"

namespace ex = swarmsgd::examples;
namespace dev = swarmsgd::examples::device;

namespace {

template <class Quant>
int run(const dev::config& c, const ex::image_set& train_set, const ex::image_set& test_set,
        const Quant& quantizer) {
    const dev::mlp_shape s{train_set.pixels_per_image(), c.hidden, 10};
    const dev::device_data train(train_set), test(test_set);
    const auto graph = ex::make_topology<ex::usage_error>(c.topology, c.nodes, c.seed);
    std::vector<std::vector<std::size_t>> shards(c.nodes);
    std::size_t smallest = train_set.count;
    for (std::size_t i = 0; i < c.nodes; ++i) {
        shards[i] = ex::shard_indices(train_set.count, i, c.nodes, c.seed);
        smallest = std::min(smallest, shards[i].size());
    }
    const auto plan = dev::plan_for(c, smallest);
    std::printf(
        "%zu nodes (threads), %s, %zu parameters (%zu-%zu-%zu MLP), %s, H = %zu, batch "
        "%zu, %zu local steps each (%.2f epochs of a shard)\n",
        c.nodes, graph.name().c_str(), s.size(), s.inputs, s.hidden, s.classes, c.quantizer.c_str(),
        c.H, c.batch, plan.steps, double(plan.steps) / double(plan.steps_per_epoch));

    std::vector<thrust::device_vector<float>> models(c.nodes);
    for (auto& m : models) dev::initialize(m, s, c.seed);
    swarmsgd::in_process_world world(c.nodes);
    std::vector<dev::node_report> reports(c.nodes);
    std::exception_ptr failure;
    std::mutex failure_mutex;
    std::vector<std::thread> threads;
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < c.nodes; ++i)
        threads.emplace_back([&, i] {
            try {
                auto comm = world.endpoint_for(i);
                reports[i] = dev::train_node(comm, c, s, graph, train, shards[i], plan, models[i],
                                             quantizer);
            } catch (const std::exception& e) {
                {
                    std::lock_guard lock(failure_mutex);
                    if (!failure) failure = std::current_exception();
                }
                world.abort(std::string("node ") + std::to_string(i) + ": " + e.what());
            }
        });
    for (auto& t : threads) t.join();
    if (failure) std::rethrow_exception(failure);
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    std::vector<double> loss(reports[0].epoch_loss.size()), acc(loss.size());
    dev::totals t;
    for (const auto& r : reports) {
        t.add(r);
        for (std::size_t e = 0; e < loss.size(); ++e) {
            loss[e] += r.epoch_loss[e] / double(c.nodes);
            acc[e] += r.epoch_accuracy[e] / double(c.nodes);
        }
    }
    dev::print_epochs(loss, acc);
    const std::vector<double> mean = swarmsgd::mean_model(models);
    const thrust::device_vector<float> mean_model(mean.begin(), mean.end());
    return dev::print_results(c, dev::accuracy(mean_model, s, test),
                              dev::accuracy(models[0], s, test),
                              swarmsgd::consensus_distance(models), t, double(c.batch), wall);
}

}  // namespace

int main(int argc, char** argv) try {
    const dev::config c = dev::parse(argc, argv, true);
    if (!dev::print_device()) return 77;
    const auto [train, test] = dev::load_data(c);
    return dev::with_quantizer(c, [&](auto q) { return run(c, train, test, q); });
} catch (const ex::usage_error& e) {
    std::fprintf(stderr, "usage error: %s\n", e.what());
    return 2;
} catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
}
