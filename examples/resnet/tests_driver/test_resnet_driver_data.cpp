// The ResNet driver's data path and command line, without the network: CIFAR loaders on
// generated files, augmentation, normalization, batches, shards, options, schedule, plan.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "cifar_files.hpp"
#include "data/augmentation.hpp"
#include "data/batch_sampler.hpp"
#include "data/cifar.hpp"
#include "data/image_dataset.hpp"
#include "data/normalization.hpp"
#include "train/options.hpp"
#include "train/schedule.hpp"

namespace rn = swarmsgd::examples::resnet;
using rn::testing::cifar_record;
using rn::testing::temp_dir;
using rn::testing::write_cifar_file;

namespace {

cifar_record record10(int label, std::uint8_t base) {
    cifar_record r;
    r.labels = {static_cast<std::uint8_t>(label)};
    r.pixels.resize(3072);
    for (std::size_t k = 0; k < r.pixels.size(); ++k)
        r.pixels[k] = static_cast<std::uint8_t>(base + k * 7);
    return r;
}

cifar_record record100(int coarse, int fine, std::uint8_t base) {
    cifar_record r = record10(fine, base);
    r.labels = {static_cast<std::uint8_t>(coarse), static_cast<std::uint8_t>(fine)};
    return r;
}

void write_cifar10_set(const std::filesystem::path& dir) {
    int label = 0;
    for (int f = 1; f <= 5; ++f) {
        std::vector<cifar_record> records;
        for (int i = 0; i < 3; ++i, ++label)
            records.push_back(record10(label % 10, static_cast<std::uint8_t>(label)));
        write_cifar_file(dir / ("data_batch_" + std::to_string(f) + ".bin"), records);
    }
    write_cifar_file(dir / "test_batch.bin", {record10(9, 200), record10(0, 201)});
}

// The message of the data_error that `f` throws.
template <class F>
std::string data_error_of(F&& f) {
    try {
        f();
    } catch (const swarmsgd::data_error& e) {
        return e.what();
    }
    FAIL("no data_error thrown");
    return {};
}

rn::image_dataset numbered_set(std::size_t count, int channels, int side) {
    rn::image_dataset s;
    s.name = "numbered";
    s.channels = channels;
    s.height = side;
    s.width = side;
    s.classes = 1000;
    for (std::size_t i = 0; i < count; ++i) {
        for (std::size_t k = 0; k < s.image_bytes(); ++k)
            s.pixels.push_back(static_cast<std::uint8_t>(i));
        s.labels.push_back(static_cast<std::int32_t>(i));
    }
    return s;
}

}  // namespace

TEST_CASE("CIFAR-10: records are decoded in order, label byte then CHW pixels") {
    temp_dir dir("cifar10");
    write_cifar10_set(dir.path());
    const rn::image_dataset train = rn::load_cifar(dir.path(), rn::cifar_variant::cifar10, true);
    CHECK(train.count() == 15);
    CHECK(train.channels == 3);
    CHECK(train.height == 32);
    CHECK(train.width == 32);
    CHECK(train.classes == 10);
    CHECK(train.pixels.size() == 15 * 3072);
    for (std::size_t i = 0; i < 15; ++i) {
        CHECK(train.labels[i] == static_cast<int>(i % 10));
        const auto base = static_cast<std::uint8_t>(i);
        CHECK(train.image(i)[0] == base);
        CHECK(train.image(i)[1] == static_cast<std::uint8_t>(base + 7));
        CHECK(train.image(i)[3071] == static_cast<std::uint8_t>(base + 3071 * 7));
    }
    const rn::image_dataset test = rn::load_cifar(dir.path(), rn::cifar_variant::cifar10, false);
    REQUIRE(test.count() == 2);
    CHECK(test.labels == std::vector<std::int32_t>{9, 0});
    CHECK(test.image(1)[0] == 201);
}

TEST_CASE("CIFAR-10: the archive's subdirectory cifar-10-batches-bin is found") {
    temp_dir dir("cifar10sub");
    std::filesystem::create_directories(dir.path() / "cifar-10-batches-bin");
    write_cifar10_set(dir.path() / "cifar-10-batches-bin");
    CHECK(rn::load_cifar(dir.path(), rn::cifar_variant::cifar10, true).count() == 15);
}

TEST_CASE("CIFAR-100: the fine label is used, both labels are checked") {
    temp_dir dir("cifar100");
    write_cifar_file(dir.path() / "train.bin",
                     {record100(0, 99, 1), record100(19, 0, 2), record100(3, 42, 3)});
    write_cifar_file(dir.path() / "test.bin", {record100(5, 7, 4)});
    const auto train = rn::load_cifar(dir.path(), rn::cifar_variant::cifar100, true);
    CHECK(train.classes == 100);
    CHECK(train.labels == std::vector<std::int32_t>{99, 0, 42});
    CHECK(train.image(2)[0] == 3);
    CHECK(train.image(2)[1] == 10);
    CHECK(rn::load_cifar(dir.path(), rn::cifar_variant::cifar100, false).labels ==
          std::vector<std::int32_t>{7});

    write_cifar_file(dir.path() / "train.bin", {record100(0, 1, 1), record100(2, 100, 2)});
    std::string m =
        data_error_of([&] { (void)rn::load_cifar(dir.path(), rn::cifar_variant::cifar100, true); });
    CHECK(m.find((dir.path() / "train.bin").string()) != std::string::npos);
    CHECK(m.find("record 1 has fine label 100, expected 0..99") != std::string::npos);

    write_cifar_file(dir.path() / "train.bin", {record100(20, 1, 1)});
    m = data_error_of([&] { (void)rn::load_cifar(dir.path(), rn::cifar_variant::cifar100, true); });
    CHECK(m.find("record 0 has coarse label 20, expected 0..19") != std::string::npos);

    write_cifar_file(dir.path() / "train.bin", {record100(1, 1, 1)},
                     std::vector<std::uint8_t>(3073));
    m = data_error_of([&] { (void)rn::load_cifar(dir.path(), rn::cifar_variant::cifar100, true); });
    CHECK(m.find("not a multiple of the 3074-byte record") != std::string::npos);
}

TEST_CASE("CIFAR-10: missing, empty, truncated and corrupt files name the file and the fault") {
    temp_dir dir("cifar10bad");
    const auto load = [&] { (void)rn::load_cifar(dir.path(), rn::cifar_variant::cifar10, true); };
    std::string m = data_error_of(load);
    CHECK(m.find((dir.path() / "data_batch_1.bin").string()) != std::string::npos);
    CHECK(m.find("does not exist") != std::string::npos);
    CHECK(m.find("https://www.cs.toronto.edu/~kriz/cifar.html") != std::string::npos);

    write_cifar10_set(dir.path());
    std::filesystem::remove(dir.path() / "data_batch_4.bin");
    m = data_error_of(load);
    CHECK(m.find((dir.path() / "data_batch_4.bin").string()) != std::string::npos);

    write_cifar_file(dir.path() / "data_batch_4.bin", {});
    m = data_error_of(load);
    CHECK(m.find("data_batch_4.bin is empty") != std::string::npos);

    // Two records and 100 bytes of a third.
    write_cifar_file(dir.path() / "data_batch_4.bin", {record10(1, 0), record10(2, 0)},
                     std::vector<std::uint8_t>(100, 1));
    m = data_error_of(load);
    CHECK(m.find("data_batch_4.bin is truncated") != std::string::npos);
    CHECK(m.find("6246 bytes, is not a multiple of the 3073-byte record") != std::string::npos);
    CHECK(m.find("its last record has 100 bytes") != std::string::npos);

    write_cifar_file(dir.path() / "data_batch_4.bin", {record10(1, 0), record10(10, 0)});
    m = data_error_of(load);
    CHECK(m.find((dir.path() / "data_batch_4.bin").string() + " is corrupt: record 1 has label "
                                                              "10, expected 0..9") !=
          std::string::npos);

    write_cifar_file(dir.path() / "data_batch_4.bin", {record10(1, 0)});
    std::filesystem::remove(dir.path() / "test_batch.bin");
    m = data_error_of([&] { (void)rn::load_cifar(dir.path(), rn::cifar_variant::cifar10, false); });
    CHECK(m.find("test_batch.bin: it does not exist") != std::string::npos);
}

TEST_CASE("augmentation: the crop stays within the padding and every pixel is a shifted one or 0") {
    const int c = 2, h = 6, w = 5, pad = 4;
    std::vector<std::uint8_t> in(c * h * w), out(in.size());
    for (std::size_t k = 0; k < in.size(); ++k) in[k] = static_cast<std::uint8_t>(k + 1);  // no 0
    swarmsgd::rng random(3, 0);
    std::set<std::pair<int, int>> offsets;
    int flips = 0;
    for (int draw = 0; draw < 2000; ++draw) {
        const rn::crop_flip t = rn::draw_crop_flip(random, pad, true);
        REQUIRE(std::abs(t.dy) <= pad);
        REQUIRE(std::abs(t.dx) <= pad);
        offsets.insert({t.dy, t.dx});
        flips += t.flip ? 1 : 0;
        rn::apply_crop_flip(in.data(), c, h, w, t, out.data());
        for (int ch = 0; ch < c; ++ch)
            for (int y = 0; y < h; ++y)
                for (int x = 0; x < w; ++x) {
                    const int sy = y + t.dy, sx = (t.flip ? w - 1 - x : x) + t.dx;
                    const bool inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
                    const std::uint8_t expected = inside ? in[(ch * h + sy) * w + sx] : 0;
                    REQUIRE(out[(ch * h + y) * w + x] == expected);
                }
    }
    CHECK(offsets.size() == 81);  // every offset in [-4, 4]^2 occurs
    CHECK(flips > 800);
    CHECK(flips < 1200);
    const rn::crop_flip none = rn::draw_crop_flip(random, 0, false);
    CHECK(none.dy == 0);
    CHECK(none.dx == 0);
    CHECK_FALSE(none.flip);
}

TEST_CASE("augmentation: the flip is an involution, shifts compose back inside the image") {
    const int c = 3, h = 4, w = 7;
    std::vector<std::uint8_t> in(c * h * w), once(in.size()), twice(in.size());
    for (std::size_t k = 0; k < in.size(); ++k) in[k] = static_cast<std::uint8_t>(3 * k + 1);
    const rn::crop_flip flip{0, 0, true};
    rn::apply_crop_flip(in.data(), c, h, w, flip, once.data());
    CHECK(once != in);
    CHECK(once[0] == in[w - 1]);
    rn::apply_crop_flip(once.data(), c, h, w, flip, twice.data());
    CHECK(twice == in);
    rn::apply_crop_flip(in.data(), c, h, w, rn::crop_flip{0, 0, false}, once.data());
    CHECK(once == in);
}

TEST_CASE("augmentation and batches are deterministic per seed") {
    const rn::image_dataset set = numbered_set(10, 3, 8);
    const rn::channel_normalization norm{{0.1F, 0.2F, 0.3F}, {0.5F, 0.5F, 0.5F}};
    auto batches = [&](std::uint64_t seed) {
        rn::batch_sampler sampler(set, norm, true);
        swarmsgd::rng random(seed, 5);
        std::vector<float> images(4 * set.image_bytes() * 7);
        std::vector<std::int32_t> labels(4 * 7);
        for (int b = 0; b < 7; ++b)
            sampler.next(random, 4, images.data() + b * 4 * set.image_bytes(),
                         labels.data() + b * 4);
        return std::make_pair(images, labels);
    };
    CHECK(batches(1) == batches(1));
    CHECK(batches(1) != batches(2));
}

TEST_CASE("batches: each pass visits the shard once, pixels normalized per channel") {
    const rn::image_dataset set = numbered_set(5, 2, 3);
    const rn::channel_normalization norm{{0.0F, 0.5F}, {1.0F, 0.25F}};
    rn::batch_sampler sampler(set, norm, false);
    swarmsgd::rng random(9, 0);
    std::vector<float> images(15 * set.image_bytes());
    std::vector<std::int32_t> labels(15);
    sampler.next(random, 15, images.data(), labels.data());  // three passes of five
    for (int pass = 0; pass < 3; ++pass) {
        std::multiset<std::int32_t> seen(labels.begin() + pass * 5, labels.begin() + pass * 5 + 5);
        CHECK(seen == std::multiset<std::int32_t>{0, 1, 2, 3, 4});
    }
    for (std::size_t b = 0; b < 15; ++b) {
        const float byte = static_cast<float>(labels[b]);  // image i has every byte = i
        const float* img = images.data() + b * set.image_bytes();
        CHECK(img[0] == doctest::Approx(byte / 255.0F));
        CHECK(img[9 + 8] == doctest::Approx((byte / 255.0F - 0.5F) / 0.25F));
    }
    CHECK_THROWS_AS(rn::batch_sampler(numbered_set(0, 2, 3), norm, false),
                    swarmsgd::invalid_argument_error);
}

TEST_CASE("normalization: per-channel mean and standard deviation of the training set") {
    rn::image_dataset s;
    s.name = "two";
    s.channels = 2;
    s.height = 1;
    s.width = 2;
    s.pixels = {0, 255, 51, 51, 255, 0, 51, 51};  // channel 0: 0,255,255,0; channel 1: all 51
    s.labels = {0, 0};
    const auto n = rn::measure_normalization(s);
    CHECK(n.mean[0] == doctest::Approx(0.5));
    CHECK(n.std[0] == doctest::Approx(0.5));
    CHECK(n.mean[1] == doctest::Approx(0.2));
    CHECK(n.std[1] == 1.0F);  // constant channel
    CHECK(n.apply(0, 255) == doctest::Approx(1.0));
}

TEST_CASE("shards are disjoint, cover the set and are fixed by the seed; subsets too") {
    const rn::image_dataset set = numbered_set(23, 1, 2);
    std::multiset<std::int32_t> all;
    for (std::size_t i = 0; i < 4; ++i) {
        const auto shard = rn::node_shard(set, i, 4, 7);
        CHECK(shard.count() >= 5);
        CHECK(shard.count() <= 6);
        all.insert(shard.labels.begin(), shard.labels.end());
        CHECK(shard.labels == rn::node_shard(set, i, 4, 7).labels);
    }
    CHECK(all.size() == 23);
    CHECK(std::set<std::int32_t>(all.begin(), all.end()).size() == 23);
    const auto sub = rn::random_subset(set, 5, 1);
    CHECK(sub.count() == 5);
    CHECK(sub.labels == rn::random_subset(set, 5, 1).labels);
    CHECK(rn::random_subset(set, 0, 1).count() == 23);
    CHECK(rn::first_images(set, 3).labels == std::vector<std::int32_t>{0, 1, 2});
}

namespace {
std::string usage_error_of(std::vector<const char*> args, bool mpi = false) {
    args.insert(args.begin(), "resnet_swarm");
    try {
        (void)rn::parse_run_options(static_cast<int>(args.size()), args.data(), mpi);
    } catch (const rn::usage_error& e) {
        return e.what();
    }
    FAIL("no usage_error thrown");
    return {};
}
}  // namespace

TEST_CASE("options: defaults, values, and messages that name the bad value") {
    const char* none[] = {"resnet_swarm"};
    const rn::run_options d = rn::parse_run_options(1, none, false);
    CHECK(d.nodes == 8);
    CHECK(d.batch == 128);
    CHECK(d.momentum == 0.9);
    CHECK(d.weight_decay == 5e-4);
    CHECK(d.quantizer == "lattice8");
    const char* some[] = {"x",         "--dataset",   "cifar100",      "--nodes",
                          "3",         "--epochs",    "0.25",          "--quantizer",
                          "qsgd",      "--geometric", "--H",           "2.5",
                          "--augment", "--no-plot",   "--train-limit", "1000"};
    const rn::run_options o = rn::parse_run_options(16, some, false);
    CHECK(o.dataset == "cifar100");
    CHECK(o.nodes == 3);
    CHECK(o.epochs == 0.25);
    CHECK(o.quantizer == "qsgd");
    CHECK(o.geometric);
    CHECK(o.h == 2.5);
    CHECK(o.augment);
    CHECK(o.plot.empty());
    CHECK(o.train_limit == 1000);

    CHECK(usage_error_of({"--quantizer", "lattice3"}).find("unknown --quantizer 'lattice3'") !=
          std::string::npos);
    CHECK(usage_error_of({"--dataset", "mnist"}).find("unknown --dataset 'mnist'") !=
          std::string::npos);
    CHECK(usage_error_of({"--depth", "21"}).find("--depth 21 is not 6k+2") != std::string::npos);
    CHECK(usage_error_of({"--epochs", "0"}).find("--epochs needs a number > 0, got '0'") !=
          std::string::npos);
    CHECK(usage_error_of({"--batch", "1.5"}).find("--batch needs a whole number") !=
          std::string::npos);
    CHECK(usage_error_of({"--lr", "fast"}).find("got 'fast'") != std::string::npos);
    CHECK(usage_error_of({"--momentum", "1"}).find("--momentum needs a number in [0, 1)") !=
          std::string::npos);
    CHECK(usage_error_of({"--H", "2.5"}).find("--H 2.5 must be a whole number") !=
          std::string::npos);
    CHECK(usage_error_of({"--bogus"}).find("unknown option '--bogus'") != std::string::npos);
    CHECK(usage_error_of({"--nodes"}).find("option --nodes needs a value") != std::string::npos);
    CHECK(usage_error_of({"--nodes", "4"}, true).find("one node per rank") != std::string::npos);

    // The MPI driver's own options, refused in-process.
    const char* mpi[] = {
        "x",    "--algorithm",           "local",        "--period", "4", "--export-plan",
        "plan", "--deferred-evaluation", "--eval-every", "0.5"};
    const rn::run_options m = rn::parse_run_options(10, mpi, true);
    CHECK(m.algorithm == "local");
    CHECK(m.period == 4);
    CHECK(m.export_plan == "plan");
    CHECK(m.deferred_evaluation);
    CHECK(m.eval_every == 0.5);
    CHECK(d.algorithm == "swarm");
    CHECK(usage_error_of({"--algorithm", "ddp"}, true).find("unknown --algorithm 'ddp'") !=
          std::string::npos);
    CHECK(usage_error_of({"--period", "0"}, true).find("--period needs a whole number in [1") !=
          std::string::npos);
    CHECK(usage_error_of({"--algorithm", "local"}).find("unknown option '--algorithm'") !=
          std::string::npos);
    CHECK(usage_error_of({"--eval-every", "0"}).find("--eval-every needs a number in") !=
          std::string::npos);
}

TEST_CASE("schedule: linear warm-up, then cosine to 0 or steps at 50% and 75%") {
    const auto cosine = rn::make_schedule("cosine", 110, 10);
    CHECK(cosine(0, 1.0) == doctest::Approx(0.1));
    CHECK(cosine(9, 1.0) == doctest::Approx(1.0));
    CHECK(cosine(10, 1.0) == doctest::Approx(1.0));
    CHECK(cosine(60, 1.0) == doctest::Approx(0.5));
    CHECK(cosine(110, 1.0) == doctest::Approx(0.0));
    const auto step = rn::make_schedule("step", 100, 0);
    CHECK(step(0, 0.1) == doctest::Approx(0.1));
    CHECK(step(49, 0.1) == doctest::Approx(0.1));
    CHECK(step(50, 0.1) == doctest::Approx(0.01));
    CHECK(step(75, 0.1) == doctest::Approx(0.001));
    CHECK_THROWS_AS((void)rn::make_schedule("linear", 10, 0), swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS((void)rn::make_schedule("cosine", 10, 10), swarmsgd::invalid_argument_error);
}
