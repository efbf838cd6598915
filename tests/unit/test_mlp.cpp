// Tests of examples/fashion_mnist/mlp.hpp: layout, initialization, gradient (against finite
// differences), training progress and accuracy.

#include "fashion_mnist/mlp.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

using swarmsgd::examples::image_set;
using swarmsgd::examples::mlp_layout;
using swarmsgd::examples::workspace;

namespace {

/// A random batch: `batch` images of `inputs` pixels in [0, 1) and labels below `classes`.
struct batch_data {
    std::vector<float> images;
    std::vector<std::uint8_t> labels;
};

batch_data random_batch(std::size_t inputs, std::size_t classes, std::size_t batch,
                        std::uint64_t seed) {
    swarmsgd::rng gen(seed, 1);
    batch_data out;
    out.images.resize(inputs * batch);
    for (auto& x : out.images) x = static_cast<float>(gen.uniform01());
    out.labels.resize(batch);
    for (auto& y : out.labels) y = static_cast<std::uint8_t>(gen.uniform(classes));
    return out;
}

/// init_params, then small random biases (init_params zeroes them) so that the bias terms
/// are exercised by the gradient check.
std::vector<float> random_params(const mlp_layout& layout, std::uint64_t seed) {
    std::vector<float> params(layout.parameter_count());
    swarmsgd::examples::init_params(layout, params, seed);
    swarmsgd::rng gen(seed, 2);
    for (std::size_t i = 0; i < layout.hidden; ++i) {
        params[layout.b1_offset + i] = static_cast<float>(0.2 * gen.uniform01() - 0.1);
    }
    for (std::size_t i = 0; i < layout.classes; ++i) {
        params[layout.b2_offset + i] = static_cast<float>(0.2 * gen.uniform01() - 0.1);
    }
    return params;
}

/// Straightforward double-precision reference of the model's mean loss, with loops instead of
/// Eigen. `active` (if not null) receives the relu pattern (hidden x batch), so that a test
/// can tell whether a finite-difference step crosses a relu kink.
double reference_loss(const mlp_layout& layout, const std::vector<double>& p,
                      const batch_data& data, std::vector<char>* active = nullptr) {
    const std::size_t batch = data.labels.size();
    if (active != nullptr) active->assign(layout.hidden * batch, 0);
    double total = 0.0;
    std::vector<double> h(layout.fan_in());
    std::vector<double> logits(layout.classes);
    for (std::size_t b = 0; b < batch; ++b) {
        const float* x = data.images.data() + b * layout.inputs;
        if (layout.hidden > 0) {
            for (std::size_t j = 0; j < layout.hidden; ++j) {
                double z = p[layout.b1_offset + j];
                for (std::size_t i = 0; i < layout.inputs; ++i) {
                    z += p[layout.w1_offset + j * layout.inputs + i] * x[i];
                }
                h[j] = std::max(z, 0.0);
                if (active != nullptr) (*active)[j * batch + b] = z > 0.0 ? 1 : 0;
            }
        } else {
            for (std::size_t i = 0; i < layout.inputs; ++i) h[i] = x[i];
        }
        for (std::size_t c = 0; c < layout.classes; ++c) {
            double z = p[layout.b2_offset + c];
            for (std::size_t j = 0; j < layout.fan_in(); ++j) {
                z += p[layout.w2_offset + c * layout.fan_in() + j] * h[j];
            }
            logits[c] = z;
        }
        const double max = *std::max_element(logits.begin(), logits.end());
        double sum = 0.0;
        for (const double z : logits) sum += std::exp(z - max);
        total += std::log(sum) + max - logits[data.labels[b]];
    }
    return total / static_cast<double>(batch);
}

/// ~`n` distinct coordinates of the parameter buffer, at least a few from every tensor.
std::vector<std::size_t> sample_coordinates(const mlp_layout& layout, std::size_t n,
                                            std::uint64_t seed) {
    std::vector<std::size_t> all(layout.parameter_count());
    std::iota(all.begin(), all.end(), std::size_t{0});
    swarmsgd::rng gen(seed, 3);
    for (std::size_t i = all.size() - 1; i > 0; --i) {
        std::swap(all[i], all[static_cast<std::size_t>(gen.uniform(i + 1))]);
    }
    std::vector<std::size_t> picked(
        all.begin(), all.begin() + static_cast<std::ptrdiff_t>(std::min(n, all.size())));
    // Always include the first and last entry of every non-empty tensor.
    for (const std::size_t edge :
         {layout.w1_offset, layout.b1_offset - 1, layout.b1_offset, layout.w2_offset - 1,
          layout.w2_offset, layout.b2_offset - 1, layout.b2_offset, layout.total - 1}) {
        if (edge < layout.total) picked.push_back(edge);
    }
    std::sort(picked.begin(), picked.end());
    picked.erase(std::unique(picked.begin(), picked.end()), picked.end());
    return picked;
}

/// The gradient check of one model configuration.
void check_gradient(std::size_t inputs, std::size_t hidden, std::size_t classes, std::size_t batch,
                    bool float_differences) {
    CAPTURE(inputs);
    CAPTURE(hidden);
    CAPTURE(classes);
    CAPTURE(batch);
    const mlp_layout layout(inputs, hidden, classes);
    const std::vector<float> params = random_params(layout, 5);
    const batch_data data = random_batch(inputs, classes, batch, 6);
    std::vector<float> grad(layout.parameter_count(), 123.0F);  // must be overwritten
    workspace ws;
    const float loss = swarmsgd::examples::loss_and_gradient(layout, params, data.images.data(),
                                                             data.labels.data(), batch, grad, ws);

    const std::vector<double> params_d(params.begin(), params.end());
    const double ref = reference_loss(layout, params_d, data);
    CHECK(static_cast<double>(loss) == doctest::Approx(ref).epsilon(1e-5));

    // 1. Central differences of the double-precision reference: step 1e-6, tight tolerance.
    //    Tests the analytic gradient against an independent implementation of the loss.
    std::vector<char> active_plus;
    std::vector<char> active_minus;
    double err2 = 0.0;
    double norm2 = 0.0;
    std::size_t checked = 0;
    for (const std::size_t k : sample_coordinates(layout, 50, 7)) {
        CAPTURE(k);
        const double step = 1e-6;
        std::vector<double> plus = params_d;
        std::vector<double> minus = params_d;
        plus[k] += step;
        minus[k] -= step;
        const double lp = reference_loss(layout, plus, data, &active_plus);
        const double lm = reference_loss(layout, minus, data, &active_minus);
        if (active_plus != active_minus) continue;  // the step crosses a relu kink
        const double numeric = (lp - lm) / (2.0 * step);
        const double analytic = grad[k];
        CHECK(std::abs(numeric - analytic) <=
              1e-3 * std::max(std::abs(numeric), std::abs(analytic)) + 2e-6);
        err2 += (numeric - analytic) * (numeric - analytic);
        norm2 += numeric * numeric;
        ++checked;
    }
    CHECK(checked >= std::min<std::size_t>(40, layout.parameter_count() * 3 / 4));
    CHECK(std::sqrt(err2 / norm2) < 1e-4);

    if (!float_differences) return;

    // 2. Central differences of loss_and_gradient's own float loss, in double, with the step
    //    actually taken by the float parameter; looser tolerance because of float rounding.
    std::vector<float> scratch(layout.parameter_count());
    err2 = 0.0;
    norm2 = 0.0;
    checked = 0;
    for (const std::size_t k : sample_coordinates(layout, 50, 8)) {
        CAPTURE(k);
        std::vector<float> plus = params;
        std::vector<float> minus = params;
        plus[k] = static_cast<float>(static_cast<double>(params[k]) + 1e-2);
        minus[k] = static_cast<float>(static_cast<double>(params[k]) - 1e-2);
        const std::vector<double> plus_d(plus.begin(), plus.end());
        const std::vector<double> minus_d(minus.begin(), minus.end());
        (void)reference_loss(layout, plus_d, data, &active_plus);
        (void)reference_loss(layout, minus_d, data, &active_minus);
        if (active_plus != active_minus) continue;  // the step crosses a relu kink
        const double lp = swarmsgd::examples::loss_and_gradient(
            layout, plus, data.images.data(), data.labels.data(), batch, scratch, ws);
        const double lm = swarmsgd::examples::loss_and_gradient(
            layout, minus, data.images.data(), data.labels.data(), batch, scratch, ws);
        const double numeric =
            (lp - lm) / (static_cast<double>(plus[k]) - static_cast<double>(minus[k]));
        const double analytic = grad[k];
        CHECK(std::abs(numeric - analytic) <=
              2e-2 * std::max(std::abs(numeric), std::abs(analytic)) + 2e-4);
        err2 += (numeric - analytic) * (numeric - analytic);
        norm2 += numeric * numeric;
        ++checked;
    }
    CHECK(checked >= std::min<std::size_t>(40, layout.parameter_count() * 3 / 4));
    CHECK(std::sqrt(err2 / norm2) < 2e-3);
}

/// Plain SGD steps on one fixed batch; returns the loss before every step and after the last.
std::vector<float> sgd_losses(const mlp_layout& layout, std::vector<float>& params,
                              const batch_data& data, float learning_rate, int steps) {
    std::vector<float> grad(layout.parameter_count());
    workspace ws;
    std::vector<float> losses;
    for (int s = 0; s <= steps; ++s) {
        losses.push_back(swarmsgd::examples::loss_and_gradient(
            layout, params, data.images.data(), data.labels.data(), data.labels.size(), grad, ws));
        for (std::size_t i = 0; i < params.size(); ++i) params[i] -= learning_rate * grad[i];
    }
    return losses;
}

/// `count` examples of `classes` noisy prototypes: class c is prototype c (random pixels in
/// [0, 1)) plus uniform noise of amplitude `noise`, clamped to [0, 1].
image_set prototype_set(std::size_t side, std::size_t classes, std::size_t count, double noise,
                        std::uint64_t seed) {
    swarmsgd::rng proto_gen(99, 0);  // same prototypes for every seed
    std::vector<float> prototypes(classes * side * side);
    for (auto& x : prototypes) x = static_cast<float>(proto_gen.uniform01());
    swarmsgd::rng gen(seed, 4);
    image_set set;
    set.count = count;
    set.rows = side;
    set.cols = side;
    for (std::size_t i = 0; i < count; ++i) {
        const auto label = static_cast<std::uint8_t>(gen.uniform(classes));
        set.labels.push_back(label);
        for (std::size_t p = 0; p < side * side; ++p) {
            const double x =
                prototypes[label * side * side + p] + noise * (2.0 * gen.uniform01() - 1.0);
            set.pixels.push_back(static_cast<float>(std::clamp(x, 0.0, 1.0)));
        }
    }
    return set;
}

}  // namespace

TEST_CASE("mlp: layout offsets and parameter count") {
    const mlp_layout mlp(784, 128, 10);
    CHECK(mlp.parameter_count() == 784 * 128 + 128 + 10 * 128 + 10);
    CHECK(mlp.w1_offset == 0);
    CHECK(mlp.b1_offset == 784 * 128);
    CHECK(mlp.w2_offset == 784 * 128 + 128);
    CHECK(mlp.b2_offset == 784 * 128 + 128 + 10 * 128);
    CHECK(mlp.fan_in() == 128);

    const mlp_layout softmax(784, 0, 10);
    CHECK(softmax.parameter_count() == 7850);
    CHECK(softmax.b1_offset == 0);
    CHECK(softmax.w2_offset == 0);
    CHECK(softmax.b2_offset == 7840);
    CHECK(softmax.fan_in() == 784);

    // Views alias the buffer: element (r, c) of a row-major weight is at offset + r * cols + c.
    std::vector<float> buffer(mlp.parameter_count(), 0.0F);
    auto view = mlp.view(buffer);
    view.w1(2, 3) = 1.0F;
    view.b1(5) = 2.0F;
    view.w2(9, 127) = 3.0F;
    view.b2(0) = 4.0F;
    CHECK(buffer[2 * 784 + 3] == 1.0F);
    CHECK(buffer[mlp.b1_offset + 5] == 2.0F);
    CHECK(buffer[mlp.w2_offset + 9 * 128 + 127] == 3.0F);
    CHECK(buffer[mlp.b2_offset] == 4.0F);
    const auto const_view = mlp.const_view(buffer);
    CHECK(const_view.w1.rows() == 128);
    CHECK(const_view.w1.cols() == 784);
    CHECK(const_view.w2(9, 127) == 3.0F);
    CHECK(softmax.const_view(std::vector<float>(7850)).w1.size() == 0);

    std::vector<float> wrong(10);
    CHECK_THROWS_AS((void)mlp.view(wrong), swarmsgd::size_mismatch_error);
    CHECK_THROWS_AS(mlp_layout(0, 10, 10), swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS(mlp_layout(10, 10, 1), swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS(mlp_layout(10, 10, 257), swarmsgd::invalid_argument_error);
}

TEST_CASE("mlp: init_params is deterministic, bounded and zeroes the biases") {
    const mlp_layout layout(784, 64, 10);
    std::vector<float> a(layout.parameter_count(), 7.0F);
    std::vector<float> b(layout.parameter_count());
    std::vector<float> c(layout.parameter_count());
    swarmsgd::examples::init_params(layout, a, 1);
    swarmsgd::examples::init_params(layout, b, 1);
    swarmsgd::examples::init_params(layout, c, 2);
    CHECK(a == b);
    CHECK(a != c);

    const auto v = layout.const_view(a);
    const float w1_bound = std::sqrt(6.0F / 784.0F);
    const float w2_bound = std::sqrt(6.0F / (64.0F + 10.0F));
    CHECK(v.w1.cwiseAbs().maxCoeff() <= w1_bound);
    CHECK(v.w1.cwiseAbs().maxCoeff() > 0.9F * w1_bound);
    CHECK(std::abs(v.w1.mean()) < 0.01F * w1_bound * 10.0F);
    CHECK(v.w2.cwiseAbs().maxCoeff() <= w2_bound);
    CHECK(v.b1.cwiseAbs().maxCoeff() == 0.0F);
    CHECK(v.b2.cwiseAbs().maxCoeff() == 0.0F);
    // Uniform(-a, a) has standard deviation a / sqrt(3).
    const double var = v.w1.cwiseProduct(v.w1).mean();
    CHECK(std::sqrt(var) == doctest::Approx(w1_bound / std::sqrt(3.0)).epsilon(0.02));

    std::vector<float> wrong(layout.parameter_count() + 1);
    CHECK_THROWS_AS(swarmsgd::examples::init_params(layout, wrong, 1),
                    swarmsgd::size_mismatch_error);
}

TEST_CASE("mlp: gradient matches finite differences, softmax regression (hidden = 0)") {
    check_gradient(12, 0, 4, 5, true);
    check_gradient(784, 0, 10, 3, false);
}

TEST_CASE("mlp: gradient matches finite differences, one hidden layer") {
    check_gradient(12, 7, 4, 5, true);
    check_gradient(784, 32, 10, 8, false);
    check_gradient(3, 1, 2, 1, true);
}

TEST_CASE("mlp: forward returns the same loss and probabilities sum to one") {
    const mlp_layout layout(20, 9, 6);
    const std::vector<float> params = random_params(layout, 3);
    const batch_data data = random_batch(20, 6, 11, 4);
    workspace ws;
    std::vector<float> grad(layout.parameter_count());
    const float loss =
        swarmsgd::examples::forward(layout, params, data.images.data(), data.labels.data(), 11, ws);
    for (std::size_t j = 0; j < 11; ++j) {
        double sum = 0.0;
        for (std::size_t c = 0; c < 6; ++c) sum += ws.logits[j * 6 + c];
        CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
    }
    CHECK(loss == swarmsgd::examples::loss_and_gradient(layout, params, data.images.data(),
                                                        data.labels.data(), 11, grad, ws));
}

TEST_CASE("mlp: a workspace reused across batch sizes gives the same results as a fresh one") {
    const mlp_layout layout(30, 8, 5);
    const std::vector<float> params = random_params(layout, 8);
    const batch_data big = random_batch(30, 5, 40, 9);
    const batch_data small = random_batch(30, 5, 3, 10);
    workspace reused;
    std::vector<float> g1(layout.parameter_count());
    std::vector<float> g2(layout.parameter_count());
    (void)swarmsgd::examples::loss_and_gradient(layout, params, big.images.data(),
                                                big.labels.data(), 40, g1, reused);
    const float l1 = swarmsgd::examples::loss_and_gradient(layout, params, small.images.data(),
                                                           small.labels.data(), 3, g1, reused);
    workspace fresh;
    const float l2 = swarmsgd::examples::loss_and_gradient(layout, params, small.images.data(),
                                                           small.labels.data(), 3, g2, fresh);
    CHECK(l1 == l2);
    CHECK(g1 == g2);
}

TEST_CASE("mlp: extreme logits give a finite loss") {
    const mlp_layout layout(2, 0, 3);
    std::vector<float> params(layout.parameter_count(), 0.0F);
    auto v = layout.view(params);
    v.w2(0, 0) = 1000.0F;  // class 0 gets logit 1000, the label's class gets 0
    const std::vector<float> image{1.0F, 0.0F};
    const std::vector<std::uint8_t> label{2};
    std::vector<float> grad(layout.parameter_count());
    workspace ws;
    const float loss = swarmsgd::examples::loss_and_gradient(layout, params, image.data(),
                                                             label.data(), 1, grad, ws);
    CHECK(loss == doctest::Approx(1000.0));
    CHECK(std::all_of(grad.begin(), grad.end(), [](float g) { return std::isfinite(g); }));
}

TEST_CASE("mlp: bad arguments are rejected") {
    const mlp_layout layout(4, 3, 2);
    std::vector<float> params(layout.parameter_count());
    std::vector<float> grad(layout.parameter_count());
    const std::vector<float> images(8, 0.5F);
    const std::vector<std::uint8_t> labels{1, 2};  // 2 is not a class
    workspace ws;
    CHECK_THROWS_AS((void)swarmsgd::examples::loss_and_gradient(layout, params, images.data(),
                                                                labels.data(), 2, grad, ws),
                    swarmsgd::invalid_argument_error);
    CHECK_THROWS_AS((void)swarmsgd::examples::loss_and_gradient(layout, params, images.data(),
                                                                labels.data(), 0, grad, ws),
                    swarmsgd::invalid_argument_error);
    std::vector<float> short_grad(layout.parameter_count() - 1);
    CHECK_THROWS_AS((void)swarmsgd::examples::loss_and_gradient(layout, params, images.data(),
                                                                labels.data(), 1, short_grad, ws),
                    swarmsgd::size_mismatch_error);
    std::vector<float> long_params(layout.parameter_count() + 1);
    CHECK_THROWS_AS((void)swarmsgd::examples::loss_and_gradient(layout, long_params, images.data(),
                                                                labels.data(), 1, grad, ws),
                    swarmsgd::size_mismatch_error);

    image_set set;
    set.count = 1;
    set.rows = 3;
    set.cols = 3;
    set.pixels.assign(9, 0.0F);
    set.labels.assign(1, 0);
    CHECK_THROWS_AS((void)swarmsgd::examples::accuracy(layout, params, set),
                    swarmsgd::size_mismatch_error);
}

TEST_CASE("mlp: plain SGD on a fixed batch decreases the loss") {
    for (const std::size_t hidden : {0U, 32U}) {
        CAPTURE(hidden);
        const mlp_layout layout(784, hidden, 10);
        std::vector<float> params(layout.parameter_count());
        swarmsgd::examples::init_params(layout, params, 11);
        const batch_data data = random_batch(784, 10, 32, 12);
        const std::vector<float> losses = sgd_losses(layout, params, data, 0.05F, 40);
        for (std::size_t s = 1; s < losses.size(); ++s) {
            CAPTURE(s);
            CHECK(std::isfinite(losses[s]));
            CHECK(losses[s] < losses[s - 1]);  // small steps: gradient descent is monotone
        }
        CHECK(losses.back() < 0.5F * losses.front());
    }
}

TEST_CASE("mlp: accuracy of a hand-made model is exact, whatever the chunk size") {
    // Softmax regression with W = 10 I, b = 0 predicts argmax(x). Image i is one-hot at
    // k = i % 4; the label is k except for every 4th image (label k + 1): 75% accuracy.
    const mlp_layout layout(4, 0, 4);
    std::vector<float> params(layout.parameter_count(), 0.0F);
    auto v = layout.view(params);
    for (Eigen::Index k = 0; k < 4; ++k) v.w2(k, k) = 10.0F;
    image_set set;
    set.count = 2500;  // spans several 1024-example chunks
    set.rows = 2;
    set.cols = 2;
    for (std::size_t i = 0; i < set.count; ++i) {
        const std::size_t k = i % 4;
        for (std::size_t p = 0; p < 4; ++p) set.pixels.push_back(p == k ? 1.0F : 0.0F);
        set.labels.push_back(static_cast<std::uint8_t>(i % 4 == 3 ? (k + 1) % 4 : k));
    }
    // 1875 right, 625 wrong.
    const double right = std::log(std::exp(10.0) + 3.0) - 10.0;
    const double wrong = std::log(std::exp(10.0) + 3.0);
    const double expected_loss = (1875.0 * right + 625.0 * wrong) / 2500.0;
    for (const std::size_t chunk : {1U, 7U, 1024U, 5000U}) {
        CAPTURE(chunk);
        const auto result = swarmsgd::examples::evaluate(layout, params, set, chunk);
        CHECK(result.count == 2500);
        CHECK(result.correct == 1875);
        CHECK(result.accuracy == 0.75);
        CHECK(result.loss == doctest::Approx(expected_loss).epsilon(1e-5));
    }
    CHECK(swarmsgd::examples::accuracy(layout, params, set) == 0.75);
}

TEST_CASE("mlp: training on a small synthetic set reaches high accuracy") {
    const image_set train = prototype_set(6, 5, 600, 0.6, 1);
    const image_set test = prototype_set(6, 5, 300, 0.6, 2);
    for (const std::size_t hidden : {0U, 16U}) {
        CAPTURE(hidden);
        const mlp_layout layout(36, hidden, 5);
        std::vector<float> params(layout.parameter_count());
        swarmsgd::examples::init_params(layout, params, 3);
        const double before = swarmsgd::examples::accuracy(layout, params, test);
        std::vector<float> grad(layout.parameter_count());
        workspace ws;
        const std::size_t batch = 20;
        for (int epoch = 0; epoch < 10; ++epoch) {
            for (std::size_t first = 0; first + batch <= train.count; first += batch) {
                (void)swarmsgd::examples::loss_and_gradient(layout, params, train.image(first),
                                                            train.labels.data() + first, batch,
                                                            grad, ws);
                for (std::size_t i = 0; i < params.size(); ++i) params[i] -= 0.1F * grad[i];
            }
        }
        const auto after = swarmsgd::examples::evaluate(layout, params, test);
        CHECK(before < 0.6);
        CHECK(after.accuracy > 0.95);
        CHECK(after.loss < 0.3);
    }
}
