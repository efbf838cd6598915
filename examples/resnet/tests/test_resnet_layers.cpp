// Every layer of the ResNet example against central finite differences (double precision),
// and the fused batch-norm epilogues against the unfused layers.
#include "gradient_check.hpp"

#include <nn/batch_norm.hpp>
#include <nn/conv2d.hpp>
#include <nn/global_avg_pool.hpp>
#include <nn/linear.hpp>
#include <nn/relu.hpp>
#include <nn/residual_add.hpp>
#include <nn/softmax_cross_entropy.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace nn = swarmsgd::examples::resnet::nn;
using resnet_test::check_gradient;
using resnet_test::dot;
using resnet_test::random_vector;

namespace {

/// Direct convolution, the definition: y[o][b][oh][ow] = sum w[o][c][kh][kw] x[c][b][ih][iw].
std::vector<double> naive_conv(const nn::conv2d_shape& s, int batch, const std::vector<double>& w,
                               const std::vector<double>& x) {
    std::vector<double> y(static_cast<std::size_t>(s.out_channels) * batch * s.out_plane(), 0.0);
    for (int o = 0; o < s.out_channels; ++o)
        for (int b = 0; b < batch; ++b)
            for (int oh = 0; oh < s.out_h; ++oh)
                for (int ow = 0; ow < s.out_w; ++ow) {
                    double acc = 0;
                    for (int c = 0; c < s.in_channels; ++c)
                        for (int kh = 0; kh < s.kernel; ++kh)
                            for (int kw = 0; kw < s.kernel; ++kw) {
                                const int ih = oh * s.stride + kh - s.pad;
                                const int iw = ow * s.stride + kw - s.pad;
                                if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
                                acc += w[((static_cast<std::size_t>(o) * s.in_channels + c) *
                                              s.kernel +
                                          kh) *
                                             s.kernel +
                                         kw] *
                                       x[((static_cast<std::size_t>(c) * batch + b) * s.in_h + ih) *
                                             s.in_w +
                                         iw];
                            }
                    y[((static_cast<std::size_t>(o) * batch + b) * s.out_h + oh) * s.out_w + ow] =
                        acc;
                }
    return y;
}

}  // namespace

TEST_CASE("conv2d: forward is the definition, backward matches finite differences") {
    struct config {
        int in, out, kernel, stride, h, w;
    };
    const config configs[] = {{3, 4, 3, 1, 5, 6},
                              {2, 3, 3, 2, 5, 5},
                              {3, 2, 3, 2, 6, 4},
                              {4, 3, 1, 2, 5, 6},
                              {3, 5, 1, 1, 4, 3}};
    const int batch = 3;
    for (const auto& cfg : configs) {
        const auto s =
            nn::conv2d_shape::make(cfg.in, cfg.out, cfg.kernel, cfg.stride, cfg.h, cfg.w);
        CAPTURE(cfg.kernel);
        CAPTURE(cfg.stride);
        CAPTURE(cfg.h);
        for (int threads : {1, 2}) {
            // im2col with 1 image per group (budget 1 byte) or the whole batch (1 MiB), then
            // the row lowering (stride-1 "same" convolutions only; the others stay im2col)
            for (int lowering = 0; lowering < 3; ++lowering) {
                const std::size_t budget = lowering == 0 ? 1 : std::size_t{1} << 20;
                CAPTURE(threads);
                CAPTURE(lowering);
                nn::scratch<double> ws;
                ws.threads = nn::usable_threads(threads);
                ws.col_budget = budget;
                ws.row_lowering_min_plane = lowering == 2 ? 0 : static_cast<std::size_t>(-1);
                auto w = random_vector(s.weight_count(), 1);
                auto x = random_vector(
                    static_cast<std::size_t>(s.in_channels) * batch * s.in_plane(), 2);
                const auto r = random_vector(
                    static_cast<std::size_t>(s.out_channels) * batch * s.out_plane(), 3);
                std::vector<double> y(r.size());
                nn::conv2d_forward(s, batch, w.data(), x.data(), y.data(), ws);
                const auto expected = naive_conv(s, batch, w, x);
                for (std::size_t i = 0; i < y.size(); ++i)
                    REQUIRE(y[i] == doctest::Approx(expected[i]).epsilon(1e-12));

                // L = <r, y>: dL/dy = r.
                std::vector<double> dw(w.size()), dx(x.size(), 0.5);
                nn::conv2d_backward(s, batch, w.data(), x.data(), r.data(), dw.data(), dx.data(),
                                    false, ws);
                const auto loss = [&] { return dot(r, naive_conv(s, batch, w, x)); };
                check_gradient("dw", w, dw, loss);
                check_gradient("dx", x, dx, loss);

                // accumulate adds to what dx held; a null dx skips it and leaves dw the same.
                std::vector<double> dx_acc(x.size(), 0.5), dw2(w.size());
                nn::conv2d_backward(s, batch, w.data(), x.data(), r.data(), dw2.data(),
                                    dx_acc.data(), true, ws);
                for (std::size_t i = 0; i < dx.size(); ++i)
                    REQUIRE(dx_acc[i] == doctest::Approx(dx[i] + 0.5));
                nn::conv2d_backward(s, batch, w.data(), x.data(), r.data(), dw2.data(),
                                    static_cast<double*>(nullptr), false, ws);
                for (std::size_t i = 0; i < dw.size(); ++i)
                    REQUIRE(dw2[i] == doctest::Approx(dw[i]));
            }
        }
    }
}

TEST_CASE("conv2d: the row lowering's view of kernel row kh is im2col's row (c, kh, kw)") {
    for (const auto& s :
         {nn::conv2d_shape::make(2, 3, 3, 1, 6, 5), nn::conv2d_shape::make(3, 1, 5, 1, 4, 7),
          nn::conv2d_shape::make(2, 3, 3, 2, 7, 6), nn::conv2d_shape::make(1, 2, 5, 3, 9, 8)}) {
        CAPTURE(s.kernel);
        CAPTURE(s.stride);
        const int batch = 3;
        const auto x =
            random_vector(static_cast<std::size_t>(s.in_channels) * batch * s.in_plane(), 6);
        std::vector<double> xr(nn::row_lowered_size(s), 9.0), col(s.col_rows() * s.out_plane());
        nn::lower_rows(s, batch, x.data(), 1, xr.data());
        nn::im2col(s, batch, x.data(), 1, 1, col.data());
        const std::size_t cols = nn::row_lowered_cols(s);
        for (int c = 0; c < s.in_channels; ++c)
            for (int kh = 0; kh < s.kernel; ++kh)
                for (int kw = 0; kw < s.kernel; ++kw)
                    for (std::size_t j = 0; j < s.out_plane(); ++j)
                        REQUIRE(
                            xr[(static_cast<std::size_t>(c) * s.kernel + kw) * cols +
                               nn::row_view(s, kh) + j] ==
                            col[((static_cast<std::size_t>(c) * s.kernel + kh) * s.kernel + kw) *
                                    s.out_plane() +
                                j]);
        // raise_rows is the adjoint of lower_rows: <lower(x), r> = <x, raise(r)>
        const auto r = random_vector(xr.size(), 8);
        std::vector<double> back(x.size(), 0.0);
        nn::raise_rows(s, batch, r.data(), 1, back.data(), false);
        CHECK(dot(xr, r) == doctest::Approx(dot(x, back)).epsilon(1e-12));
    }
}

TEST_CASE("conv2d: col2im is the adjoint of im2col") {
    // stride 2 (generic path), 3x3 and 5x5 "same" stride 1 (shift path)
    for (const auto& s :
         {nn::conv2d_shape::make(2, 3, 3, 2, 7, 5), nn::conv2d_shape::make(2, 3, 3, 1, 6, 5),
          nn::conv2d_shape::make(2, 3, 5, 1, 4, 6)}) {
        CAPTURE(s.kernel);
        CAPTURE(s.stride);
        const int batch = 4;
        const int b0 = 1;
        const int images = 2;
        const auto x =
            random_vector(static_cast<std::size_t>(s.in_channels) * batch * s.in_plane(), 4);
        const auto c = random_vector(s.col_rows() * images * s.out_plane(), 5);
        std::vector<double> col(c.size(), 9.0), back(x.size(), 0.0), scratch_c = c;
        nn::im2col(s, batch, x.data(), b0, images, col.data());
        nn::col2im(s, batch, scratch_c.data(), b0, images, back.data());
        CHECK(dot(col, c) == doctest::Approx(dot(x, back)).epsilon(1e-12));
        // col2im touches only the images of the group
        for (int ch = 0; ch < s.in_channels; ++ch)
            for (int b = 0; b < batch; ++b)
                if (b < b0 || b >= b0 + images)
                    for (std::size_t p = 0; p < s.in_plane(); ++p)
                        REQUIRE(
                            back[(static_cast<std::size_t>(ch) * batch + b) * s.in_plane() + p] ==
                            0.0);
    }
}

TEST_CASE("batch_norm: statistics, running update, eval, and backward by finite differences") {
    const int channels = 3;
    const std::size_t n = 4 * 5;  // B * H * W
    const double eps = 1e-5;
    auto x = random_vector(channels * n, 10, -2.0, 3.0);
    auto gamma = random_vector(channels, 11, 0.5, 1.5);
    auto beta = random_vector(channels, 12);
    auto residual = random_vector(channels * n, 13);
    const auto r = random_vector(channels * n, 14);

    std::vector<double> y(x.size()), mean(channels), var(channels), invstd(channels);
    const auto forward = [&](nn::batch_norm_epilogue<double> e) {
        nn::batch_norm_forward_train(channels, n, x.data(), gamma.data(), beta.data(), eps, e,
                                     y.data(), mean.data(), var.data(), invstd.data(), 2);
        return dot(r, y);
    };

    SUBCASE("statistics and running estimates are PyTorch's") {
        forward({});
        for (int c = 0; c < channels; ++c) {
            double m = 0, v = 0;
            for (std::size_t i = 0; i < n; ++i) m += x[c * n + i];
            m /= n;
            for (std::size_t i = 0; i < n; ++i) v += (x[c * n + i] - m) * (x[c * n + i] - m);
            CHECK(mean[c] == doctest::Approx(m));
            CHECK(var[c] == doctest::Approx(v / n));
            for (std::size_t i = 0; i < n; ++i)
                REQUIRE(y[c * n + i] ==
                        doctest::Approx(gamma[c] * (x[c * n + i] - m) / std::sqrt(v / n + eps) +
                                        beta[c]));
            double rm = 0.25, rv = 2.0;
            nn::batch_norm_update_running(1, n, &mean[c], &var[c], 0.1, &rm, &rv);
            CHECK(rm == doctest::Approx(0.9 * 0.25 + 0.1 * m));
            CHECK(rv == doctest::Approx(0.9 * 2.0 + 0.1 * v / (n - 1)));  // unbiased
        }
    }
    SUBCASE("eval uses the running estimates; fused epilogues equal the separate layers") {
        const std::vector<double> rm = {0.1, -0.2, 0.3}, rv = {1.5, 0.5, 2.0};
        std::vector<double> plain(x.size()), fused(x.size()), expected(x.size());
        nn::batch_norm_forward_eval(channels, n, x.data(), gamma.data(), beta.data(), rm.data(),
                                    rv.data(), eps, {}, plain.data(), 1);
        for (int c = 0; c < channels; ++c)
            for (std::size_t i = 0; i < n; ++i)
                REQUIRE(plain[c * n + i] ==
                        doctest::Approx(gamma[c] * (x[c * n + i] - rm[c]) / std::sqrt(rv[c] + eps) +
                                        beta[c]));
        // A running variance pushed below 0 (lossy averaging) counts as 0: finite output.
        const std::vector<double> negative = {-0.01, 0.5, -3.0};
        std::vector<double> clamped(x.size());
        nn::batch_norm_forward_eval(channels, n, x.data(), gamma.data(), beta.data(), rm.data(),
                                    negative.data(), eps, {}, clamped.data(), 1);
        for (std::size_t i = 0; i < n; ++i) {
            REQUIRE(clamped[i] ==
                    doctest::Approx(gamma[0] * (x[i] - rm[0]) / std::sqrt(eps) + beta[0]));
            REQUIRE(std::isfinite(clamped[2 * n + i]));
        }
        nn::batch_norm_forward_eval(channels, n, x.data(), gamma.data(), beta.data(), rm.data(),
                                    rv.data(), eps, {residual.data(), true}, fused.data(), 2);
        nn::residual_add_forward(x.size(), plain.data(), residual.data(), expected.data());
        nn::relu_forward(x.size(), expected.data(), expected.data());
        for (std::size_t i = 0; i < x.size(); ++i)
            REQUIRE(fused[i] == doctest::Approx(expected[i]));

        forward({});
        plain = y;
        forward({residual.data(), true});
        nn::residual_add_forward(x.size(), plain.data(), residual.data(), expected.data());
        nn::relu_forward(x.size(), expected.data(), expected.data());
        for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(y[i] == doctest::Approx(expected[i]));
    }
    SUBCASE("backward, no epilogue") {
        forward({});
        std::vector<double> dx(x.size()), dgamma(channels), dbeta(channels);
        nn::batch_norm_backward(channels, n, x.data(), gamma.data(), mean.data(), invstd.data(),
                                static_cast<const double*>(nullptr), r.data(), dx.data(),
                                dgamma.data(), dbeta.data(), 2);
        const auto loss = [&] { return forward({}); };
        check_gradient("dx", x, dx, loss, 1e-6, 1e-6);
        check_gradient("dgamma", gamma, dgamma, loss);
        check_gradient("dbeta", beta, dbeta, loss);
    }
    SUBCASE("backward, fused relu (mask from the output), dx aliasing dy") {
        forward({nullptr, true});
        std::vector<double> dx = r, dgamma(channels), dbeta(channels);
        nn::batch_norm_backward(channels, n, x.data(), gamma.data(), mean.data(), invstd.data(),
                                y.data(), dx.data(), dx.data(), dgamma.data(), dbeta.data(), 1);
        const auto loss = [&] { return forward({nullptr, true}); };
        check_gradient("dx", x, dx, loss);
        check_gradient("dgamma", gamma, dgamma, loss);
        check_gradient("dbeta", beta, dbeta, loss);
    }
    SUBCASE("backward, fused residual + relu: relu_backward first, the residual gets its output") {
        const auto loss = [&] { return forward({residual.data(), true}); };
        loss();
        std::vector<double> g(x.size()), dx(x.size()), dgamma(channels), dbeta(channels);
        nn::relu_backward(x.size(), y.data(), r.data(), g.data());
        nn::batch_norm_backward(channels, n, x.data(), gamma.data(), mean.data(), invstd.data(),
                                static_cast<const double*>(nullptr), g.data(), dx.data(),
                                dgamma.data(), dbeta.data(), 2);
        check_gradient("dx", x, dx, loss);
        check_gradient("dgamma", gamma, dgamma, loss);
        check_gradient("dbeta", beta, dbeta, loss);
        check_gradient("dresidual", residual, g, loss);
    }
}

TEST_CASE("batch_norm: statistics over several chunks, float, large mean") {
    // 5000 values per channel (3 chunks of the one-pass merge), mean 1000 >> std 1: the merged
    // float statistics stay close to the exact double ones.
    const int channels = 2;
    const std::size_t n = 5000;
    const auto noise = random_vector(channels * n, 15);
    std::vector<float> x(noise.size()), y(noise.size()), mean(channels), var(channels),
        invstd(channels);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(1000.0 + noise[i]);
    const std::vector<float> gamma = {1.0F, 2.0F}, beta = {0.0F, 1.0F};
    nn::batch_norm_forward_train(channels, n, x.data(), gamma.data(), beta.data(), 1e-5F, {},
                                 y.data(), mean.data(), var.data(), invstd.data(), 1);
    for (int c = 0; c < channels; ++c) {
        double m = 0, v = 0;
        for (std::size_t i = 0; i < n; ++i) m += x[c * n + i];
        m /= n;
        for (std::size_t i = 0; i < n; ++i) v += (x[c * n + i] - m) * (x[c * n + i] - m);
        v /= n;
        CHECK(mean[c] == doctest::Approx(m).epsilon(1e-6));
        CHECK(var[c] == doctest::Approx(v).epsilon(1e-4));
    }
}

TEST_CASE("relu and residual_add: backward matches finite differences") {
    auto x = random_vector(50, 20);
    auto b = random_vector(50, 21);
    const auto r = random_vector(50, 22);
    std::vector<double> y(50), dx(50), db(50);
    const auto relu_loss = [&] {
        nn::relu_forward(x.size(), x.data(), y.data());
        return dot(r, y);
    };
    relu_loss();
    nn::relu_backward(x.size(), y.data(), r.data(), dx.data());
    check_gradient("relu dx", x, dx, relu_loss);

    const auto add_loss = [&] {
        nn::residual_add_forward(x.size(), x.data(), b.data(), y.data());
        return dot(r, y);
    };
    nn::residual_add_backward(x.size(), r.data(), dx.data(), db.data());
    check_gradient("add da", x, dx, add_loss);
    check_gradient("add db", b, db, add_loss);
}

TEST_CASE("global_avg_pool, linear, softmax cross-entropy: backward matches finite differences") {
    const int channels = 3, batch = 4, classes = 5;
    const std::size_t plane = 6;
    auto x = random_vector(channels * batch * plane, 30);
    auto w = random_vector(classes * channels, 31);
    auto bias = random_vector(classes, 32);
    const std::vector<std::int32_t> labels = {0, 4, 2, 2};
    std::vector<double> pooled(channels * batch), logits(batch * classes), probs(batch * classes);

    const auto loss = [&] {
        nn::global_avg_pool_forward(channels, batch, plane, x.data(), pooled.data());
        nn::linear_forward(channels, classes, batch, w.data(), bias.data(), pooled.data(),
                           logits.data());
        return nn::softmax_cross_entropy_forward(batch, classes, logits.data(), labels.data(),
                                                 probs.data());
    };
    const double l = loss();
    // the definition: mean over the images of -log softmax(logits)[label]
    double expected = 0;
    for (int b = 0; b < batch; ++b) {
        double s = 0;
        for (int k = 0; k < classes; ++k) s += std::exp(logits[b * classes + k]);
        expected += std::log(s) - logits[b * classes + labels[b]];
    }
    CHECK(l == doctest::Approx(expected / batch));
    CHECK(pooled[1] == doctest::Approx((x[6] + x[7] + x[8] + x[9] + x[10] + x[11]) / 6));

    std::vector<double> dlogits(logits.size()), dw(w.size()), dbias(bias.size()),
        dpooled(pooled.size()), dx(x.size());
    nn::softmax_cross_entropy_backward(batch, classes, probs.data(), labels.data(), dlogits.data());
    nn::linear_backward(channels, classes, batch, w.data(), pooled.data(), dlogits.data(),
                        dw.data(), dbias.data(), dpooled.data());
    nn::global_avg_pool_backward(channels, batch, plane, dpooled.data(), dx.data());
    check_gradient("fc dw", w, dw, loss);
    check_gradient("fc dbias", bias, dbias, loss);
    check_gradient("pool dx", x, dx, loss);

    // huge logits do not overflow (the max is subtracted)
    std::vector<double> big = {1000.0, 0.0, -1000.0, 999.0, 1.0};
    const std::int32_t label = 3;
    std::vector<double> p(5);
    const double big_loss = nn::softmax_cross_entropy_forward(1, 5, big.data(), &label, p.data());
    CHECK(std::isfinite(big_loss));
    CHECK(big_loss == doctest::Approx(1.0 + std::log1p(std::exp(-1.0))));
}
