// A short Swarm SGD run of the ResNet driver on generated CIFAR-10-format data (the same code
// path as resnet_swarm: files -> loader -> shards -> batches -> run_in_process -> epoch
// evaluation): the training loss must fall. Also the epoch plan.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cifar_files.hpp"
#include "train/in_process_training.hpp"
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
