// Consumer test program for the LibTorch adapter, written as a LibTorch user would: each of 4
// threads trains its own torch::nn module with its own torch::optim::SGD, and Swarm SGD only
// averages (local_optimizer::external: one call after each optimizer step). Fails unless every
// node fits the shared linear target and the nodes end close to one another.
#include <swarmsgd/swarmsgd.hpp>
#include <swarmsgd/torch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <vector>

int main() {
    at::set_num_threads(1);
    const std::size_t n = 4;
    torch::manual_seed(1);
    const auto w_true = torch::randn({8, 1});
    std::vector<torch::nn::Linear> nets;
    std::vector<swarmsgd::torch_model<float>> models;
    for (std::size_t i = 0; i < n; ++i) {
        nets.emplace_back(torch::nn::Linear(8, 1));
        models.emplace_back(*nets.back());
    }
    swarmsgd::in_process_world world(n);
    const auto graph = swarmsgd::topology::ring(n);
    swarmsgd::swarm_options options;
    options.optimizer = swarmsgd::local_optimizer::external;
    std::vector<std::string> errors(n);
    // A node that is done keeps training until every node is: on a loaded machine one thread
    // can finish long before another starts, and a finished node only serves averages, which
    // would pull it halfway to an untrained partner each time. Each step also gives up the
    // core for 100 us (a stand-in for a real model's compute): a step of this tiny model takes
    // about 50 us, so without it a thread ran all its 400 steps within one time slice of a
    // loaded machine, its partners replied hundreds of steps late, and x += (r - o) / 2 with a
    // snapshot o that old left an error no later step removed (seen in CI: 0.05 to 0.13).
    std::atomic<std::size_t> done{0};
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            try {
                auto comm = world.endpoint_for(i);
                swarmsgd::swarm_node node(models[i], comm, graph, options);
                torch::optim::SGD opt(nets[i]->parameters(), torch::optim::SGDOptions(0.05));
                for (int t = 0; t < 400 || done.load() < n; ++t) {
                    if (t == 400) ++done;
                    const auto x = torch::randn({16, 8});
                    opt.zero_grad();
                    torch::mse_loss(nets[i]->forward(x), torch::mm(x, w_true)).backward();
                    opt.step();
                    node.after_local_step();  // the one line that makes it Swarm SGD
                    std::this_thread::sleep_for(std::chrono::microseconds(100));
                }
                node.finish();
            } catch (const std::exception& e) {
                errors[i] = e.what();
                world.abort(e.what());
            }
        });
    for (auto& t : threads) t.join();
    int failed = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (!errors[i].empty()) {
            std::printf("node %zu: %s\n", i, errors[i].c_str());
            failed = 1;
            continue;
        }
        const double err = (nets[i]->weight.detach().t() - w_true).abs().max().item<double>();
        const double spread = (nets[i]->weight - nets[0]->weight).abs().max().item<double>();
        std::printf("node %zu: max |w - w*| = %.4f, max |w - w_0| = %.4f\n", i, err, spread);
        if (!(err < 0.05) || !(spread < 0.05)) failed = 1;
    }
    std::printf("consumer_torch: %s\n", failed ? "FAILED" : "ok");
    return failed;
}
