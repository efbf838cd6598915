// The LibTorch adapter (<swarmsgd/torch.hpp>): what it accepts and refuses, autograd after an
// averaging, the optimizer rule (decision 46: a torch optimizer's state is never averaged or
// reset), BatchNorm's running statistics averaged, the sum of the models preserved while torch
// optimizers step, an averaged module that still trains, and checkpoints of torch models.

#include "torch_doctest.hpp"  // LibTorch, then doctest (first: see there)

#include <swarmsgd/swarmsgd.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "error_text.hpp"

using namespace swarmsgd;
using test_support::contains;
using test_support::what_of;

namespace {

/// Runs `body(rank, node)` on n threads, each with its own node over one in_process_world;
/// every node then finish()es. Exceptions are collected and rethrown on the caller's thread.
template <class Model, class Body>
void on_threads(std::vector<Model>& models, const topology& g, const swarm_options& o, Body body) {
    const std::size_t n = models.size();
    in_process_world world(n);
    std::vector<std::string> errors(n);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            try {
                auto comm = world.endpoint_for(i);
                swarm_node node(models[i], comm, g, o);
                body(i, node);
                node.finish();
            } catch (const std::exception& e) {
                errors[i] = e.what();
                world.abort(e.what());
            }
        });
    for (auto& t : threads) t.join();
    for (std::size_t i = 0; i < n; ++i) {
        CAPTURE(i);
        CHECK(errors[i] == "");
    }
}

/// A small network with a BatchNorm (so with running statistics) for node `seed`.
struct netImpl : torch::nn::Module {
    explicit netImpl(std::uint64_t seed) {
        torch::manual_seed(seed);
        fc1 = register_module("fc1", torch::nn::Linear(4, 8));
        bn = register_module("bn", torch::nn::BatchNorm1d(8));
        fc2 = register_module("fc2", torch::nn::Linear(8, 1));
    }
    torch::Tensor forward(const torch::Tensor& x) {
        return fc2->forward(torch::relu(bn->forward(fc1->forward(x))));
    }
    torch::nn::Linear fc1{nullptr}, fc2{nullptr};
    torch::nn::BatchNorm1d bn{nullptr};
};
TORCH_MODULE(net);

/// Sum over nodes of every element, in the model's flat order (double accumulation).
template <class V>
std::vector<double> flat_sum(const std::vector<torch_model<V>>& models) {
    std::vector<double> sum(models.front().elements(), 0.0);
    std::vector<V> x(sum.size());
    for (const auto& m : models) {
        gather(m, std::span<V>(x));
        for (std::size_t k = 0; k < x.size(); ++k) sum[k] += x[k];
    }
    return sum;
}

std::vector<float> values_of(const torch_model<float>& m) {
    std::vector<float> x(m.elements());
    gather(m, std::span<float>(x));
    return x;
}

}  // namespace

TEST_CASE("torch_model: a module's parameters and floating-point buffers, no copy") {
    net a(1);
    const torch_model<float> with(*a);
    // fc1.weight, fc1.bias, bn.weight, bn.bias, fc2.weight, fc2.bias; bn.running_mean,
    // bn.running_var (num_batches_tracked is an integer counter: left to each node).
    REQUIRE(with.size() == 8);
    CHECK(with[0].name() == "fc1.weight");
    CHECK(with[6].name() == "bn.running_mean");
    CHECK(with[7].name() == "bn.running_var");
    CHECK(with.elements() == 4 * 8 + 8 + 8 + 8 + 8 + 1 + 8 + 8);
    // The tensors are the module's own memory.
    CHECK(with[0].tensor().data_ptr<float>() == a->fc1->weight.data_ptr<float>());
    CHECK(tensor_traits<torch_tensor<float>>::data(std::as_const(with[6])) ==
          a->bn->running_mean.data_ptr<float>());
    const torch_model<float> without(*a, torch_model_options{.buffers = false});
    CHECK(without.size() == 6);
    static_assert(model<torch_model<float>> && model<torch_model<double>>);
}

TEST_CASE("torch_model: refused tensors name the tensor and what is wrong") {
    auto refused = [](auto make) {
        try {
            make();
        } catch (const invalid_argument_error& e) {
            return std::string(e.what());
        } catch (const std::exception& e) {
            return std::string("wrong exception: ") + e.what();
        }
        return std::string("<no exception>");
    };
    const auto undefined = refused([] { torch_model<float>({torch::Tensor()}, {"w"}); });
    CHECK(contains(undefined, "torch tensor 0 ('w') is undefined"));

    const auto wrong_dtype = refused([] {
        torch_model<float>({torch::zeros({3}), torch::zeros({2}, torch::kFloat64)}, {"a", "b"});
    });
    CHECK(contains(wrong_dtype, "torch tensor 1 ('b') has dtype Double"));
    CHECK(contains(wrong_dtype, "value type is Float"));

    const auto strided = refused([] { torch_model<float>({torch::zeros({3, 4}).t()}); });
    CHECK(contains(strided, "torch tensor 0 is not contiguous"));
    CHECK(contains(strided, "[4, 3]"));

    // A tensor that is not on the CPU (the meta device stands in for CUDA here).
    const auto device = refused([] {
        torch_model<float>({torch::empty({3}, torch::TensorOptions().device(torch::kMeta))});
    });
    CHECK(contains(device, "torch tensor 0 is on meta"));
    CHECK(contains(device, "CPU tensors"));

    const auto integer = refused([] { torch_model<double>({torch::zeros({3}, torch::kInt64)}); });
    CHECK(contains(integer, "has dtype Long"));

    const auto empty = refused([] { torch_model<float>(std::vector<torch::Tensor>{}); });
    CHECK(contains(empty, "no tensor to average"));
    const auto names = refused([] { torch_model<float>({torch::zeros({3})}, {"a", "b"}); });
    CHECK(contains(names, "1 tensors but 2 names"));
}

TEST_CASE("torch_model: a tensor changed after the node was built is refused at the next access") {
    // Two nodes on one thread: node 0's request gathers its model and meets the change.
    std::vector<torch_model<float>> models;
    net a(1), b(2);
    models.emplace_back(*a);
    models.emplace_back(*b);
    in_process_world world(2);
    auto c0 = world.endpoint_for(0), c1 = world.endpoint_for(1);
    const auto g = topology::complete(2);
    swarm_options o;
    swarm_node n0(models[0], c0, g, o), n1(models[1], c1, g, o);
    {
        torch::NoGradGuard no_grad;
        a->fc2->bias.set_data(torch::zeros({3}));  // 1 element -> 3
    }
    const auto grown = what_of<size_mismatch_error>([&] { (void)n0.initiate(1); });
    CHECK(contains(grown, "torch tensor 5 ('fc2.bias') has 3 elements, but had 1"));
    {
        torch::NoGradGuard no_grad;
        a->fc2->bias.set_data(torch::zeros({1}, torch::kFloat64));
    }
    CHECK(contains(what_of<invalid_argument_error>([&] { (void)n0.initiate(1); }),
                   "('fc2.bias') has dtype Double"));
    {
        torch::NoGradGuard no_grad;
        a->fc2->bias.set_data(torch::zeros({1}));
        a->fc1->weight.set_data(torch::zeros({4, 8}).t());  // same size, not contiguous
    }
    CHECK(contains(what_of<invalid_argument_error>([&] { (void)n0.initiate(1); }),
                   "('fc1.weight') is not contiguous"));
    CHECK(n1.stats().interactions_served == 0);
    // A NaN in a parameter (a diverged optimizer) is never sent.
    {
        torch::NoGradGuard no_grad;
        a->fc1->weight.set_data(torch::zeros({8, 4}));
        a->fc1->weight[2][1] = std::nanf("");
    }
    CHECK(contains(what_of<non_finite_error>([&] { (void)n0.initiate(1); }),
                   "refusing to send a non-finite model to node 1"));
    n1.poll();
    CHECK(n1.stats().interactions_served == 0);
}

TEST_CASE("torch adapter: averaging keeps autograd and the optimizer working") {
    net a(1), b(2);
    std::vector<torch_model<float>> models;
    models.emplace_back(*a);
    models.emplace_back(*b);
    torch::optim::SGD opt_a(a->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
    const auto x = torch::randn({16, 4}), y = torch::randn({16, 1});
    auto step = [&](net& m, torch::optim::SGD& opt) {
        opt.zero_grad();
        auto loss = torch::mse_loss(m->forward(x), y);
        loss.backward();
        opt.step();
        return loss.item<double>();
    };
    step(a, opt_a);
    // Snapshot of the momentum buffers (decision 46: never averaged, never reset).
    std::vector<torch::Tensor> momentum;
    for (auto& p : a->parameters())
        momentum.push_back(static_cast<torch::optim::SGDParamState&>(
                               *opt_a.state().at(c10::guts::to_string(p.unsafeGetTensorImpl())))
                               .momentum_buffer()
                               .clone());

    in_process_world world(2);
    auto c0 = world.endpoint_for(0), c1 = world.endpoint_for(1);
    const auto g = topology::complete(2);
    swarm_options o;
    o.mode = averaging_mode::blocking;
    o.reply_timeout = std::chrono::seconds(10);
    o.optimizer = local_optimizer::external;
    swarm_node n0(models[0], c0, g, o), n1(models[1], c1, g, o);
    const auto before_a = values_of(models[0]), before_b = values_of(models[1]);
    std::atomic<bool> done{false};
    std::thread responder([&] {
        while (!done) {
            n1.poll();
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    });
    const bool started = n0.initiate(1);  // blocking: returns once the reply is applied
    REQUIRE(started);
    REQUIRE(n0.in_flight() == 0);
    const auto after_a = values_of(models[0]), after_b = values_of(models[1]);
    for (std::size_t k = 0; k < after_a.size(); ++k) {
        CHECK(after_a[k] == doctest::Approx((before_a[k] + before_b[k]) / 2).epsilon(1e-6));
        CHECK(after_b[k] == doctest::Approx(after_a[k]).epsilon(1e-6));
    }
    // The parameters are still leaves that require grad, with their gradients and momentum.
    std::size_t k = 0;
    for (auto& p : a->parameters()) {
        CHECK(p.is_leaf());
        CHECK(p.requires_grad());
        CHECK(p.grad().defined());
        const auto& state = static_cast<torch::optim::SGDParamState&>(
            *opt_a.state().at(c10::guts::to_string(p.unsafeGetTensorImpl())));
        CHECK(torch::equal(state.momentum_buffer(), momentum[k++]));
    }
    // Training goes on from the averaged values: the optimizer steps and the loss falls.
    double first = 0, last = 0;
    for (int t = 0; t < 60; ++t) {
        const double loss = step(a, opt_a);
        if (t == 0) first = loss;
        last = loss;
        n0.after_local_step();
    }
    CHECK(last < first);
    CHECK(n0.stats().interactions_completed == 61);  // one per step (local_steps::fixed(1))
    done = true;
    responder.join();
    // The node refuses to take the step itself.
    std::vector<float> grad(models[0].elements(), 0.f);
    CHECK(contains(what_of<invalid_argument_error>([&] { n0.apply_gradient(grad); }),
                   "local_optimizer::external"));
    swarm_options bad;
    bad.optimizer = static_cast<local_optimizer>(7);
    CHECK(contains(what_of<invalid_argument_error>([&] { bad.validate(); }),
                   "optimizer = 7 is not a local_optimizer"));
}

TEST_CASE("torch adapter: autograd refuses a backward whose saved tensors were averaged") {
    // Averaging between forward and backward changes values autograd saved: the version counter
    // the node bumps makes backward fail loudly instead of computing a wrong gradient.
    auto w = torch::ones({3}, torch::requires_grad());
    torch_model<float> m({w}, {"w"});
    auto loss = (w * w).sum();  // saves w
    {
        auto& part = m[0];
        float* p = tensor_traits<torch_tensor<float>>::data(part);  // a write access
        p[0] = 2.f;
    }
    bool refused = false;
    try {
        loss.backward();
    } catch (const c10::Error& e) {
        refused = contains(e.what(), "modified by an inplace operation");
    }
    CHECK(refused);
}

TEST_CASE("torch adapter: BatchNorm's running statistics are averaged with the parameters") {
    // Pure gossip (no step) on 4 nodes: every node's running mean reaches the mean of the
    // initial ones, as the weights do; with buffers = false they stay each node's own.
    for (const bool buffers : {true, false}) {
        CAPTURE(buffers);
        std::vector<net> nets;
        std::vector<torch_model<float>> models;
        for (std::uint64_t i = 0; i < 4; ++i) {
            nets.emplace_back(i + 1);
            torch::NoGradGuard no_grad;
            nets.back()->bn->running_mean.fill_(float(i));
            models.emplace_back(*nets.back(), torch_model_options{.buffers = buffers});
        }
        swarm_options o;
        o.mode = averaging_mode::blocking;
        o.optimizer = local_optimizer::external;
        on_threads(models, topology::complete(4), o, [](std::size_t, auto& node) {
            for (int t = 0; t < 300; ++t) node.after_local_step();
        });
        for (std::size_t i = 0; i < 4; ++i) {
            const auto mean = nets[i]->bn->running_mean;
            if (buffers)
                CHECK(torch::allclose(mean, torch::full({8}, 1.5f), 1e-4, 1e-4));
            else
                CHECK(torch::equal(mean, torch::full({8}, float(i))));
            // The integer counter is each node's own.
            CHECK(nets[i]->bn->num_batches_tracked.item<std::int64_t>() == 0);
        }
        // The weights reached consensus either way.
        CHECK(torch::allclose(nets[0]->fc1->weight, nets[3]->fc1->weight, 1e-4, 1e-4));
    }
}

TEST_CASE("torch adapter: the sum of the models is preserved while torch optimizers step") {
    // 4 nodes, non-blocking averaging with 2 interactions in flight, each node's own
    // torch::optim::SGD with momentum stepping on its own data. What the optimizers moved is
    // recorded step by step; averaging must add nothing: sum(final) = sum(initial) + sum(steps).
    at::set_num_threads(1);
    const std::size_t n = 4;
    std::vector<net> nets;
    std::vector<torch_model<float>> models;
    for (std::uint64_t i = 0; i < n; ++i) {
        nets.emplace_back(i + 10);
        models.emplace_back(*nets.back(), torch_model_options{.buffers = false});
    }
    const auto initial = flat_sum(models);
    std::vector<std::vector<double>> moved(n, std::vector<double>(initial.size(), 0.0));
    swarm_options o;
    o.optimizer = local_optimizer::external;
    o.max_in_flight = 2;
    o.steps = local_steps::geometric(2);
    std::atomic<std::uint64_t> interactions{0};
    on_threads(models, topology::ring(n), o, [&](std::size_t i, auto& node) {
        torch::manual_seed(100 + i);
        torch::optim::SGD opt(nets[i]->parameters(),
                              torch::optim::SGDOptions(0.02).momentum(0.9).weight_decay(1e-4));
        const auto x = torch::randn({32, 4}), y = torch::randn({32, 1}) + double(i);
        std::vector<float> before(models[i].elements()), after(before.size());
        for (int t = 0; t < 150; ++t) {
            opt.zero_grad();
            torch::mse_loss(nets[i]->forward(x), y).backward();
            // The optimizer's own move, measured around its step only (the node's thread is
            // the only one writing this model: averaging happens in node calls).
            gather(std::as_const(models[i]), std::span<float>(before));
            opt.step();
            gather(std::as_const(models[i]), std::span<float>(after));
            for (std::size_t k = 0; k < after.size(); ++k)
                moved[i][k] += double(after[k]) - before[k];
            node.after_local_step();
        }
        interactions += node.stats().interactions_completed;
    });
    CHECK(interactions.load() > 20);
    const auto final = flat_sum(models);
    double worst = 0;
    for (std::size_t k = 0; k < final.size(); ++k) {
        double expected = initial[k];
        for (std::size_t i = 0; i < n; ++i) expected += moved[i][k];
        worst = std::max(worst, std::abs(final[k] - expected) / (1 + std::abs(expected)));
    }
    MESSAGE("largest relative sum error ", worst, " over ", final.size(), " coordinates");
    CHECK(worst < 1e-4);  // float rounding of 150 steps and ~50 averagings, nothing systematic
}

TEST_CASE("torch adapter: the averaged modules still train (consensus on a shared target)") {
    // 4 nodes, each with its own samples of one linear problem and its own optimizer (a
    // network with BatchNorm, evaluated in eval mode with the averaged running statistics):
    // every node's averaged module fits the problem far better than where it started.
    at::set_num_threads(1);
    const std::size_t n = 4;
    torch::manual_seed(7);
    const auto w_true = torch::randn({4, 1});
    std::vector<net> nets;
    std::vector<torch_model<float>> models;
    for (std::uint64_t i = 0; i < n; ++i) {
        nets.emplace_back(20 + i);
        models.emplace_back(*nets.back());
    }
    const auto x_test = torch::randn({256, 4});
    const auto y_test = torch::mm(x_test, w_true);
    auto test_loss = [&](net& m) {
        torch::NoGradGuard no_grad;
        m->eval();
        const double l = torch::mse_loss(m->forward(x_test), y_test).item<double>();
        m->train();
        return l;
    };
    const double start = test_loss(nets[0]);
    swarm_options o;
    o.optimizer = local_optimizer::external;
    o.steps = local_steps::fixed(2);
    // A node that is done keeps training until every node is (a finished node only serves
    // averages, which on a loaded machine could pull it to partners that have barely started).
    // Each step also gives up the core for 100 us, as in tests/consumer/torch: a step of this
    // tiny network is so short that a thread could run all its steps in one time slice of a
    // loaded machine, get its replies hundreds of steps late and keep a stale half-difference
    // (seen in CI: a test loss of 0.95 against a bound of 0.71).
    std::atomic<std::size_t> done{0};
    on_threads(models, topology::ring(n), o, [&](std::size_t i, auto& node) {
        torch::manual_seed(200 + i);
        torch::optim::SGD opt(nets[i]->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
        for (int t = 0; t < 300 || done.load() < n; ++t) {
            if (t == 300) ++done;
            const auto x = torch::randn({32, 4});  // each node its own samples (own seed)
            opt.zero_grad();
            torch::mse_loss(nets[i]->forward(x), torch::mm(x, w_true)).backward();
            opt.step();
            node.after_local_step();
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    });
    for (std::size_t i = 0; i < n; ++i) {
        CAPTURE(i);
        const double l = test_loss(nets[i]);
        CHECK(l < 0.2 * start);
    }
}

TEST_CASE("torch adapter: a node's checkpoint restores the module's tensors") {
    const auto dir = std::filesystem::temp_directory_path() / "swarmsgd_torch_checkpoint";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    net a(1), b(2);
    torch_model<float> ma(*a), mb(*b);
    in_process_world world(1);
    auto c = world.endpoint_for(0);
    const auto g = topology::complete(1);
    swarm_options o;
    o.optimizer = local_optimizer::external;
    swarm_node na(ma, c, g, o);
    na.after_local_step();
    na.save_checkpoint(dir / "a.ckpt");
    in_process_world world_b(1);
    auto cb = world_b.endpoint_for(0);
    swarm_node nb(mb, cb, g, o);
    nb.restore_checkpoint(dir / "a.ckpt");
    CHECK(values_of(ma) == values_of(mb));
    CHECK(torch::equal(a->bn->running_var, b->bn->running_var));
    CHECK(nb.stats().local_steps == 1);
    std::filesystem::remove_all(dir);
}
