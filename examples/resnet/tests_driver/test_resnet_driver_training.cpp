// A short Swarm SGD run of the ResNet driver on generated CIFAR-10-format data (the same code
// path as resnet_swarm: files -> loader -> shards -> batches -> run_in_process -> epoch
// evaluation): the training loss must fall. Also the epoch plan.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "cifar_files.hpp"
#include "train/in_process_training.hpp"
#include "train/plan_export.hpp"
#include "train/quantizer_choice.hpp"
#include "train/training_setup.hpp"

namespace rn = swarmsgd::examples::resnet;

TEST_CASE("plan: an epoch is one pass by all nodes; boundaries at whole epochs and at the end") {
    rn::run_options o;
    o.batch = 10;
    o.epochs = 2.5;
    const rn::training_plan p = rn::make_plan(o, 400, 4);  // 10 steps per node and epoch
    CHECK(p.steps_per_epoch == doctest::Approx(10));
    CHECK(p.steps_per_node == 25);
    CHECK(p.boundaries == std::vector<std::size_t>{10, 20, 25});
    CHECK(p.epochs == std::vector<double>{1, 2, 2.5});
    o.epochs = 2;
    CHECK(rn::make_plan(o, 400, 4).boundaries == std::vector<std::size_t>{10, 20});
    o.epochs = 0.01;
    CHECK(rn::make_plan(o, 400, 4).boundaries == std::vector<std::size_t>{1});
    o.epochs = 1;
    o.warmup_epochs = 1;
    CHECK_THROWS_AS((void)rn::make_plan(o, 400, 4), rn::usage_error);
    // --eval-every: an evaluation every quarter epoch, the last at the end of the run.
    o.warmup_epochs = 0;
    o.epochs = 1.1;
    o.eval_every = 0.25;
    const rn::training_plan q = rn::make_plan(o, 400, 4);
    CHECK(q.boundaries == std::vector<std::size_t>{3, 5, 8, 10, 11});  // llround(2.5) = 3
    CHECK(q.epochs == std::vector<double>{0.25, 0.5, 0.75, 1.0, 1.1});
}

TEST_CASE("a short swarm run on CIFAR-10-format files: the loss falls, the mean model learns") {
    rn::testing::temp_dir dir("resnet_training");
    rn::testing::write_synthetic_cifar10(dir.path(), 128, 200);  // 640 training images
    rn::run_options o;
    o.dataset = "cifar10";
    o.data = dir.path().string();
    o.nodes = 4;
    o.depth = 8;
    o.width = 8;
    o.batch = 16;
    o.epochs = 5;
    o.lr = 0.1;
    o.quantizer = "lattice8";
    const rn::training_data d = rn::load_training_data(o);
    REQUIRE(d.train.count() == 640);
    REQUIRE(d.test.count() == 200);
    const rn::training_result r = rn::with_quantizer(
        o.quantizer, [&](auto q) { return rn::train_in_process(o, d, std::move(q)); });
    REQUIRE(r.epochs.size() == 5);
    for (const auto& e : r.epochs) MESSAGE(rn::describe(e));
    CHECK(r.epochs[0].epoch == 1);
    CHECK(r.epochs[4].epoch == 5);
    CHECK(r.epochs[4].train_loss < 0.7 * r.epochs[0].train_loss);
    CHECK(r.acc_mean > 0.3);  // chance is 0.1
    CHECK(r.epochs[4].acc_mean == r.acc_mean);
    CHECK(r.report.total().local_steps == 4 * r.plan.steps_per_node);
    CHECK(r.report.total().interactions_completed > 0);
    CHECK(r.epochs[1].bytes_sent > r.epochs[0].bytes_sent);
    CHECK(r.epochs[0].gamma > 0);
}

TEST_CASE("--export-plan writes what the driver trains on: shards, batch order, model, test set") {
    rn::testing::temp_dir dir("resnet_plan");
    rn::testing::write_synthetic_cifar10(dir.path(), 16, 12);  // 80 training images
    rn::run_options o;
    o.dataset = "cifar10";
    o.data = dir.path().string();
    o.depth = 8;
    o.width = 4;
    o.batch = 8;
    o.epochs = 1.5;
    o.eval_every = 0.5;
    o.export_plan = (dir.path() / "plan").string();
    constexpr std::size_t n = 2;
    const rn::training_data d = rn::load_training_data(o);
    const rn::resnet_config config = rn::make_resnet_config(o, d.train);
    const rn::training_plan plan = rn::make_plan(o, d.train.count(), n);
    const rn::resnet net(config, o.batch);
    std::vector<float> initial(net.parameter_count());
    net.initialize(std::span<float>(initial), o.seed);
    for (std::size_t rank = 0; rank < n; ++rank)
        rn::export_plan(o, d, config, plan, rank, n, initial, net.trainable_count());

    auto read = [](const std::filesystem::path& p) {
        std::ifstream in(p, std::ios::binary);
        REQUIRE(in);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    const std::filesystem::path plan_dir(o.export_plan);
    const std::string meta = read(plan_dir / "meta.txt");
    CHECK(meta.find("ranks=2\n") != std::string::npos);
    CHECK(meta.find("batch=8\n") != std::string::npos);
    CHECK(meta.find("steps_per_node=8\n") != std::string::npos);  // 1.5 x 80 / 16 = 7.5 -> 8
    CHECK(meta.find("boundaries=3,5,8\n") != std::string::npos);
    CHECK(meta.find("params=" + std::to_string(initial.size()) + "\n") != std::string::npos);
    const std::string init = read(plan_dir / "init.f32");
    REQUIRE(init.size() == initial.size() * sizeof(float));
    CHECK(std::memcmp(init.data(), initial.data(), init.size()) == 0);
    CHECK(read(plan_dir / "test.labels.i32").size() == d.test.count() * 4);

    // Replaying rank 1's order on its shard gives exactly the batches its sampler draws.
    const rn::image_dataset shard = rn::node_shard(d.train, 1, n, o.seed);
    CHECK(read(plan_dir / "shard.rank1.u8").size() == shard.pixels.size());
    const std::string order_bytes = read(plan_dir / "order.rank1.u32");
    REQUIRE(order_bytes.size() == plan.steps_per_node * 8 * 4);
    std::vector<std::uint32_t> order(plan.steps_per_node * 8);
    std::memcpy(order.data(), order_bytes.data(), order_bytes.size());
    rn::batch_sampler sampler(shard, d.norm, false);
    swarmsgd::rng data(o.seed, n + 1);  // the driver's stream of rank 1
    std::vector<float> images(8 * shard.image_bytes()), expected(shard.image_bytes());
    std::vector<std::int32_t> labels(8);
    for (std::size_t step = 0; step < plan.steps_per_node; ++step) {
        sampler.next(data, 8, images.data(), labels.data());
        for (std::size_t b = 0; b < 8; ++b) {
            const std::uint32_t i = order[step * 8 + b];
            REQUIRE(i < shard.count());
            CHECK(labels[b] == shard.labels[i]);
            rn::normalize_image(shard, shard.image(i), d.norm, expected.data());
            CHECK(std::equal(expected.begin(), expected.end(),
                             images.begin() + static_cast<long>(b * shard.image_bytes())));
        }
    }
    o.augment = true;  // its crops share the order's random stream: refused
    CHECK_THROWS_AS(rn::export_plan(o, d, config, plan, 0, n, initial, net.trainable_count()),
                    rn::usage_error);
}
