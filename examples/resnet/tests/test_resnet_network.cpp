// The whole ResNet: parameter counts, gradients against central finite differences (double),
// the batch-norm running statistics, errors that leave the parameters unchanged, threads, and
// a tiny batch it can overfit.
#include "gradient_check.hpp"

#include <resnet.hpp>

#include <doctest/doctest.h>
#include <swarmsgd/errors.hpp>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

namespace rn = swarmsgd::examples::resnet;
using resnet_test::check_gradient;
using resnet_test::random_vector;

TEST_CASE("resnet_config: parameter counts, and validate names the bad value") {
    // ResNet-20 with projection shortcuts, as torch counts it (tools/make_torch_fixtures.py).
    const rn::resnet net20(rn::resnet_config{}, 1);
    CHECK(net20.trainable_count() == 272474);
    // + running mean and var of 19 + 2 batch norms: 2 * (16 * 7 + 32 * 7 + 64 * 7)
    CHECK(net20.parameter_count() == 272474 + 2 * (16 * 7 + 32 * 7 + 64 * 7));
    const rn::resnet mnist(rn::resnet_config{.depth = 8, .in_channels = 1, .image_size = 28}, 1);
    CHECK(mnist.trainable_count() == 78042 - 3 * 16 * 9 + 1 * 16 * 9);

    CHECK_THROWS_WITH_AS(rn::resnet_config{.depth = 21}.validate(), doctest::Contains("21"),
                         swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS(rn::resnet_config{.depth = 2}.validate(), swarmsgd::invalid_argument_error);
    CHECK_THROWS_WITH_AS(rn::resnet_config{.in_channels = 0}.validate(),
                         doctest::Contains("in_channels"), swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS(rn::resnet_config{.image_size = 3}.validate(),
                    swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS(rn::resnet_config{.classes = 1}.validate(), swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS(rn::resnet_config{.base_width = 0}.validate(),
                    swarmsgd::invalid_argument_error);
    CHECK_THROWS_WITH_AS(rn::resnet(rn::resnet_config{}, 0), doctest::Contains("max_batch"),
                         swarmsgd::invalid_argument_error);
}

TEST_CASE("initialize: deterministic, He fan_out for convolutions, BN 1/0, running 0/1") {
    rn::resnet net(rn::resnet_config{}, 1);
    std::vector<float> a(net.parameter_count()), b(a.size()), c(a.size());
    net.initialize(a, 5);
    net.initialize(b, 5);
    net.initialize(c, 6);
    CHECK(a == b);
    CHECK(a != c);
    // stem conv: 16 x 3 x 3 x 3, std sqrt(2 / (16 * 9))
    double ss = 0;
    for (int i = 0; i < 432; ++i) ss += static_cast<double>(a[i]) * a[i];
    CHECK(std::sqrt(ss / 432) == doctest::Approx(std::sqrt(2.0 / 144)).epsilon(0.15));
    for (int i = 432; i < 448; ++i) REQUIRE(a[i] == 1.0F);  // gamma
    for (int i = 448; i < 464; ++i) REQUIRE(a[i] == 0.0F);  // beta
    // running stats: pairs (mean [C] zeros, var [C] ones) after the trainable prefix
    const float* run = a.data() + net.trainable_count();
    CHECK(run[0] == 0.0F);
    CHECK(run[16] == 1.0F);
    CHECK(a.back() == 1.0F);
    // fc weights in +-1/sqrt(64)
    for (std::size_t i = net.trainable_count() - 650; i < net.trainable_count(); ++i)
        REQUIRE(std::abs(a[i]) <= 0.125F);
    CHECK_THROWS_AS(net.initialize(std::span<float>(a.data(), a.size() - 1), 1),
                    swarmsgd::size_mismatch_error);
}

namespace {

struct tiny_problem {
    rn::resnet_config config;
    int batch;
    std::vector<double> images;
    std::vector<std::int32_t> labels;
};

/// Whole-network gradient check of every trainable parameter, double precision.
void check_network_gradient(const tiny_problem& p, int threads, bool all) {
    rn::basic_resnet<double> net(p.config, p.batch);
    net.set_threads(threads);
    std::vector<double> params(net.parameter_count()), grad(params.size());
    net.initialize(params, 3);
    // non-trivial gamma / beta / running statistics
    const auto noise = random_vector(params.size(), 40, -0.2, 0.2);
    for (std::size_t i = 0; i < params.size(); ++i) params[i] += noise[i];
    for (std::size_t i = net.trainable_count(); i < params.size(); ++i)
        params[i] = std::abs(params[i]) + 0.5;
    const std::vector<double> before = params;
    net.train_step(params, p.images.data(), p.labels.data(), p.batch, grad);
    for (std::size_t i = net.trainable_count(); i < grad.size(); ++i) REQUIRE(grad[i] == 0.0);
    std::vector<double> scratch_grad(grad.size());
    std::vector<double> x(before.begin(),
                          before.begin() + static_cast<std::ptrdiff_t>(net.trainable_count()));
    std::vector<double> analytic(grad.begin(),
                                 grad.begin() + static_cast<std::ptrdiff_t>(net.trainable_count()));
    std::vector<double> work = before;
    const auto loss = [&] {
        std::copy(x.begin(), x.end(), work.begin());
        return net.train_step(work, p.images.data(), p.labels.data(), p.batch, scratch_grad);
    };
    if (!all) {  // a deterministic sample of 300 parameters
        std::vector<double> xs, as;
        std::vector<std::size_t> picked;  // distinct indices, spread over the whole buffer
        for (std::size_t i = 0; i < x.size(); i += x.size() / 300) picked.push_back(i);
        for (auto i : picked) {
            xs.push_back(x[i]);
            as.push_back(analytic[i]);
        }
        const auto sample_loss = [&] {
            for (std::size_t k = 0; k < picked.size(); ++k) x[picked[k]] = xs[k];
            return loss();
        };
        const auto saved = x;
        check_gradient("sampled param", xs, as, sample_loss, 1e-6, 1e-5);
        x = saved;
        return;
    }
    check_gradient("param", x, analytic, loss, 1e-6, 1e-5);
}

tiny_problem tiny(int width) {
    tiny_problem p{
        rn::resnet_config{
            .depth = 8, .in_channels = 3, .image_size = 8, .classes = 10, .base_width = width},
        2,
        {},
        {3, 7}};
    p.images = random_vector(2 * 3 * 8 * 8, 41, -2.0, 2.0);
    return p;
}

}  // namespace

TEST_CASE("train_step: every gradient of a tiny network matches finite differences") {
    SUBCASE("depth 8, width 2, 2 images 3x8x8, every parameter") {
        check_network_gradient(tiny(2), 1, true);
    }
    SUBCASE("depth 8, width 16, 300 parameters, 2 threads") {
        check_network_gradient(tiny(16), 2, false);
    }
    SUBCASE("depth 14, one 7x7 channel, 3 images, 5 classes, width 2, 300 parameters") {
        tiny_problem p{
            rn::resnet_config{
                .depth = 14, .in_channels = 1, .image_size = 7, .classes = 5, .base_width = 2},
            3,
            random_vector(3 * 49, 42),
            {4, 0, 1}};
        check_network_gradient(p, 1, false);
    }
}

TEST_CASE("train_step: BN running statistics follow PyTorch's update") {
    // With a zero stem conv weight... use instead the stem's statistics computed by hand: the
    // stem conv of a 1x1-channel image with a single centered tap is the image itself.
    rn::basic_resnet<double> net(
        rn::resnet_config{
            .depth = 8, .in_channels = 1, .image_size = 4, .classes = 2, .base_width = 1},
        2);
    std::vector<double> params(net.parameter_count()), grad(params.size());
    net.initialize(params, 1);
    for (int i = 0; i < 9; ++i)
        params[static_cast<std::size_t>(i)] = i == 4 ? 2.0 : 0.0;  // stem: y = 2 x
    const std::size_t run = net.trainable_count();
    params[run] = 0.5;      // stem running mean
    params[run + 1] = 3.0;  // stem running var
    const auto images = random_vector(2 * 16, 50);
    const std::vector<std::int32_t> labels = {1, 0};
    net.train_step(params, images.data(), labels.data(), 2, grad);
    double m = 0, v = 0;
    for (double x : images) m += 2 * x;
    m /= 32;
    for (double x : images) v += (2 * x - m) * (2 * x - m);
    CHECK(params[run] == doctest::Approx(0.9 * 0.5 + 0.1 * m));
    CHECK(params[run + 1] == doctest::Approx(0.9 * 3.0 + 0.1 * v / 31));
}

TEST_CASE("train_step and predict: bad input throws and leaves the parameters unchanged") {
    rn::resnet net(rn::resnet_config{.depth = 8, .image_size = 8, .base_width = 4}, 4);
    std::vector<float> params(net.parameter_count()), grad(params.size(), 7.0F);
    net.initialize(params, 2);
    const std::vector<float> before = params;
    const auto images = random_vector<float>(4 * 3 * 64, 60);
    std::vector<std::int32_t> labels = {0, 9, 3, 1};
    std::vector<float> logits(40);

    CHECK_THROWS_WITH_AS(net.train_step(std::span<float>(params.data(), params.size() - 1),
                                        images.data(), labels.data(), 4, grad),
                         doctest::Contains(std::to_string(params.size() - 1).c_str()),
                         swarmsgd::size_mismatch_error);
    CHECK_THROWS_AS(
        net.train_step(params, images.data(), labels.data(), 4, std::span<float>(grad.data(), 3)),
        swarmsgd::size_mismatch_error);
    CHECK_THROWS_WITH_AS(net.train_step(params, images.data(), labels.data(), 5, grad),
                         doctest::Contains("batch 5"), swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS(net.train_step(params, images.data(), labels.data(), 0, grad),
                    swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS(net.train_step(params, nullptr, labels.data(), 4, grad),
                    swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS(net.train_step(params, images.data(), nullptr, 4, grad),
                    swarmsgd::invalid_argument_error);
    labels[2] = 10;
    CHECK_THROWS_WITH_AS(net.train_step(params, images.data(), labels.data(), 4, grad),
                         doctest::Contains("label 10 of image 2"),
                         swarmsgd::invalid_argument_error);
    labels[2] = -1;
    CHECK_THROWS_AS(net.train_step(params, images.data(), labels.data(), 4, grad),
                    swarmsgd::invalid_argument_error);
    CHECK(params == before);
    CHECK_THROWS_AS(
        net.predict(std::span<const float>(params.data(), 5), images.data(), 4, logits.data()),
        swarmsgd::size_mismatch_error);
    CHECK_THROWS_AS(net.predict(params, images.data(), 5, logits.data()),
                    swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS(net.add_weight_decay(params, std::span<float>(grad.data(), 1), 0.1F),
                    swarmsgd::size_mismatch_error);
    CHECK_THROWS_AS(net.set_threads(0), swarmsgd::invalid_argument_error);
    // one 4x4 image: the last stage has one value per channel, batch norm cannot train
    rn::resnet small(rn::resnet_config{.depth = 8, .image_size = 4, .base_width = 2}, 1);
    std::vector<float> sp(small.parameter_count()), sg(sp.size());
    labels[0] = 0;
    CHECK_THROWS_WITH_AS(small.train_step(sp, images.data(), labels.data(), 1, sg),
                         doctest::Contains("1 images of 4x4 give 1 in the last stage"),
                         swarmsgd::invalid_argument_error);
    CHECK(params == before);
}

TEST_CASE("add_weight_decay touches the trainable elements only") {
    rn::resnet net(rn::resnet_config{.depth = 8, .image_size = 8, .base_width = 2}, 1);
    std::vector<float> params(net.parameter_count()), grad(params.size(), 1.0F);
    net.initialize(params, 4);
    net.add_weight_decay(params, grad, 0.5F);
    for (std::size_t i = 0; i < params.size(); ++i)
        REQUIRE(grad[i] == (i < net.trainable_count() ? 1.0F + 0.5F * params[i] : 1.0F));
}

TEST_CASE("predict: images are independent in eval mode") {
    const rn::resnet_config config{.depth = 8, .image_size = 8, .base_width = 4};
    rn::resnet net(config, 5);
    std::vector<float> params(net.parameter_count()), grad(params.size());
    net.initialize(params, 8);
    const auto images = random_vector<float>(5 * 3 * 64, 70);
    const std::vector<std::int32_t> labels = {1, 2, 3, 4, 5};
    net.train_step(params, images.data(), labels.data(), 5, grad);  // non-trivial running stats
    std::vector<float> all(50), one(10);
    net.predict(params, images.data(), 5, all.data());
    for (int b = 0; b < 5; ++b) {
        net.predict(params, images.data() + b * 192, 1, one.data());
        for (int k = 0; k < 10; ++k)
            REQUIRE(one[k] == doctest::Approx(all[b * 10 + k]).epsilon(1e-5));
    }
}

TEST_CASE("train_step: the same bits for any thread count") {
    // 16x16 images: row lowering in stages 1-2, im2col in stage 3; 19 images: uneven tasks
    const rn::resnet_config config{.depth = 8, .image_size = 16, .base_width = 4};
    const int batch = 19;
    const auto images = random_vector<float>(batch * 3 * 256, 71);
    std::vector<std::int32_t> labels(batch);
    for (int b = 0; b < batch; ++b) labels[b] = b % 10;
    std::vector<float> reference_params, reference_grad, reference_logits;
    float reference_loss = 0;
    for (int threads : {1, 2, 3}) {
        CAPTURE(threads);
        rn::resnet net(config, batch);
        net.set_threads(threads);
        std::vector<float> params(net.parameter_count()), grad(params.size()), logits(batch * 10);
        net.initialize(params, 9);
        const float loss = net.train_step(params, images.data(), labels.data(), batch, grad);
        net.predict(params, images.data(), batch, logits.data());
        if (threads == 1) {
            reference_params = params;
            reference_grad = grad;
            reference_logits = logits;
            reference_loss = loss;
            continue;
        }
        CHECK(loss == reference_loss);
        CHECK(grad == reference_grad);
        CHECK(params == reference_params);  // running statistics
        CHECK(logits == reference_logits);
    }
}

TEST_CASE("train_step: SGD overfits a tiny fixed batch") {
    rn::resnet net(rn::resnet_config{.depth = 8, .image_size = 8, .base_width = 8}, 8);
    std::vector<float> params(net.parameter_count()), grad(params.size()), velocity(params.size());
    net.initialize(params, 11);
    const auto images = random_vector<float>(8 * 3 * 64, 80);
    const std::vector<std::int32_t> labels = {0, 1, 2, 3, 4, 5, 6, 7};
    float first = 0, last = 0;
    for (int step = 0; step < 40; ++step) {
        last = net.train_step(params, images.data(), labels.data(), 8, grad);
        if (step == 0) first = last;
        for (std::size_t i = 0; i < net.trainable_count(); ++i) {
            velocity[i] = 0.9F * velocity[i] + grad[i];
            params[i] -= 0.05F * velocity[i];
        }
    }
    MESSAGE("loss " << first << " -> " << last);
    CHECK(first > 1.5F);
    CHECK(last < 0.1F * first);
}
