// nn::gemm (nn/gemm.hpp) against a double-precision reference, on both of its paths: the
// AVX-512 kernel (when this test is compiled with it) and the portable Eigen product.
#include <nn/conv2d.hpp>
#include <nn/gemm.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace nn = swarmsgd::examples::resnet::nn;

namespace {

struct problem {
    int m, n, k, segments;
    bool a_column_major;  // A's rows adjacent (m_stride 1) rather than its columns
    bool accumulate;
    bool masked = false;  // B read through a random mask per segment and 16 columns
};

/// Runs gemm<T, Simd> on random operands with padded strides and checks every element of C
/// against a double reference, and that the padding of C is untouched.
template <class T, bool Simd>
void check(const problem& p, std::mt19937& gen) {
    CAPTURE(p.m);
    CAPTURE(p.n);
    CAPTURE(p.k);
    CAPTURE(p.segments);
    CAPTURE(p.a_column_major);
    CAPTURE(p.accumulate);
    CAPTURE(p.masked);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    // A: segments of m x k, padded: m_stride / k_stride leave gaps, segments are apart.
    const std::ptrdiff_t a_m = p.a_column_major ? 1 : p.k + 3;
    const std::ptrdiff_t a_k = p.a_column_major ? p.m + 2 : 1;
    const std::ptrdiff_t a_seg = (p.a_column_major ? a_k * p.k : a_m * p.m) + 5;
    std::vector<T> a(static_cast<std::size_t>(a_seg * p.segments + 1));
    // B: the segments are overlapping views of one matrix (like the row lowering's kernel rows),
    // rows of n + 7, each segment 2 columns further.
    const std::ptrdiff_t ldb = p.n + 7;
    std::vector<std::ptrdiff_t> offsets(static_cast<std::size_t>(p.segments));
    for (int s = 0; s < p.segments; ++s) offsets[static_cast<std::size_t>(s)] = 2 * s;
    std::vector<T> b(static_cast<std::size_t>(ldb * p.k + 2 * p.segments + 1));
    const std::ptrdiff_t ldc = p.n + 3;
    std::vector<T> c(static_cast<std::size_t>(ldc * p.m + 1));
    for (auto* v : {&a, &b, &c})
        for (auto& x : *v) x = static_cast<T>(u(gen));
    const std::vector<T> c0 = c;
    const std::ptrdiff_t mask_stride = (p.n + 15) / 16 + 1;
    std::vector<std::uint16_t> mask(static_cast<std::size_t>(mask_stride * p.segments + 1));
    for (auto& x : mask) x = static_cast<std::uint16_t>(gen());
    const auto is_read = [&](int s, int j) {
        return !p.masked ||
               ((mask[static_cast<std::size_t>(s * mask_stride + j / 16)] >> (j % 16)) & 1u) != 0;
    };

    nn::gemm<T, Simd>(p.m, p.n, p.k, p.segments, nn::gemm_lhs<T>{a.data(), a_m, a_k, a_seg},
                      nn::gemm_rhs<T>{b.data(), ldb, offsets.data(),
                                      p.masked ? mask.data() : nullptr, mask_stride},
                      c.data(), ldc, p.accumulate);

    const double eps = std::is_same_v<T, float> ? 1e-6 : 1e-14;
    for (int i = 0; i < p.m; ++i) {
        for (int j = 0; j < ldc; ++j) {
            const auto at = static_cast<std::size_t>(i * ldc + j);
            if (j >= p.n) {  // padding: untouched
                REQUIRE(c[at] == c0[at]);
                continue;
            }
            double sum = p.accumulate ? static_cast<double>(c0[at]) : 0.0;
            double magnitude = std::abs(sum);
            for (int s = 0; s < p.segments; ++s) {
                if (!is_read(s, j)) continue;
                for (int r = 0; r < p.k; ++r) {
                    const double term =
                        static_cast<double>(
                            a[static_cast<std::size_t>(i * a_m + r * a_k + s * a_seg)]) *
                        static_cast<double>(b[static_cast<std::size_t>(
                            offsets[static_cast<std::size_t>(s)] + r * ldb + j)]);
                    sum += term;
                    magnitude += std::abs(term);
                }
            }
            CAPTURE(i);
            CAPTURE(j);
            REQUIRE(std::abs(static_cast<double>(c[at]) - sum) <= eps * (magnitude + 1.0));
        }
    }
    REQUIRE(c.back() == c0.back());  // after the last row
}

template <class T, bool Simd>
void check_all() {
    std::mt19937 gen(7);
    for (int m : {1, 2, 3, 4, 5, 7, 8, 9, 16, 17})
        for (int n : {1, 5, 15, 16, 17, 31, 33, 48, 63, 64, 65, 100, 129})
            for (int k : {0, 1, 2, 9, 33})
                for (int segments : {0, 1, 3})
                    for (bool column_major : {false, true})
                        for (bool accumulate : {false, true})
                            for (bool masked : {false, true})
                                check<T, Simd>(
                                    {m, n, k, segments, column_major, accumulate, masked}, gen);
}

}  // namespace

TEST_CASE("gemm: float, the AVX-512 kernel where this build has it") {
    INFO("AVX-512 kernel compiled in: ", nn::gemm_has_simd);
    check_all<float, true>();
}

TEST_CASE("gemm: float, the portable path") { check_all<float, false>(); }

TEST_CASE("gemm: double (always the portable path)") { check_all<double, true>(); }

TEST_CASE("gemm: zero rows or columns touch nothing") {
    std::vector<float> a(8, 1.0F), b(8, 1.0F), c(8, 5.0F);
    nn::gemm<float>(0, 4, 2, 1, nn::gemm_lhs<float>{a.data(), 2, 1, 0},
                    nn::gemm_rhs<float>{b.data(), 4, nullptr}, c.data(), 4, false);
    nn::gemm<float>(2, 0, 2, 1, nn::gemm_lhs<float>{a.data(), 2, 1, 0},
                    nn::gemm_rhs<float>{b.data(), 4, nullptr}, c.data(), 4, false);
    for (float x : c) CHECK(x == 5.0F);
    // k = 0 without accumulate: C = 0; single segment without offsets
    nn::gemm<float>(2, 4, 0, 1, nn::gemm_lhs<float>{a.data(), 2, 1, 0},
                    nn::gemm_rhs<float>{b.data(), 4, nullptr}, c.data(), 4, false);
    for (float x : c) CHECK(x == 0.0F);
    nn::gemm<float>(2, 4, 2, 1, nn::gemm_lhs<float>{a.data(), 2, 1, 0},
                    nn::gemm_rhs<float>{b.data(), 4, nullptr}, c.data(), 4, true);
    for (float x : c) CHECK(x == 2.0F);
}

template <class T, bool Simd>
void check_transpose() {
    std::mt19937 gen(3);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    for (std::size_t rows : {0, 1, 5, 16, 17, 32, 40})
        for (std::size_t cols : {0, 1, 15, 16, 33, 64, 100}) {
            CAPTURE(rows);
            CAPTURE(cols);
            const std::size_t ld = cols + 3;
            std::vector<T> src(rows * ld + 1), dst(rows * cols + 1, T(7));
            for (auto& x : src) x = static_cast<T>(u(gen));
            nn::transpose<T, Simd>(rows, cols, src.data(), ld, dst.data());
            for (std::size_t i = 0; i < rows; ++i)
                for (std::size_t j = 0; j < cols; ++j)
                    REQUIRE(dst[j * rows + i] == src[i * ld + j]);
            REQUIRE(dst.back() == T(7));
        }
}

TEST_CASE("transpose: both paths, blocks and edges") {
    check_transpose<float, true>();
    check_transpose<float, false>();
    check_transpose<double, true>();
}

namespace {

/// conv2d in float (direct or row-lowered where the shape allows) against conv2d in double
/// (the portable products): forward, and backward with dx written and accumulated.
void check_conv_float(const nn::conv2d_shape& s, int batch, int threads) {
    CAPTURE(s.in_channels);
    CAPTURE(s.out_channels);
    CAPTURE(s.kernel);
    CAPTURE(s.stride);
    CAPTURE(s.in_h);
    CAPTURE(s.in_w);
    CAPTURE(batch);
    std::mt19937 gen(11);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    const auto random = [&](std::size_t n) {
        std::vector<double> v(n);
        for (auto& x : v) x = u(gen);
        return v;
    };
    const auto to_float = [](const std::vector<double>& v) {
        return std::vector<float>(v.begin(), v.end());
    };
    const std::size_t in = static_cast<std::size_t>(s.in_channels) * batch * s.in_plane();
    const std::size_t out = static_cast<std::size_t>(s.out_channels) * batch * s.out_plane();
    const auto w = random(s.weight_count()), x = random(in), dy = random(out), dx0 = random(in);
    const auto wf = to_float(w), xf = to_float(x), dyf = to_float(dy);

    nn::scratch<double> wsd;
    nn::scratch<float> wsf;
    wsd.row_lowering_min_plane = wsf.row_lowering_min_plane = 1;
    wsd.reserve(1, 0, 0);
    wsf.reserve(threads, 0, 0);
    std::vector<double> y(out), dw(s.weight_count());
    std::vector<float> yf(out), dwf(s.weight_count());
    nn::conv2d_forward(s, batch, w.data(), x.data(), y.data(), wsd);
    nn::conv2d_forward(s, batch, wf.data(), xf.data(), yf.data(), wsf);
    for (std::size_t i = 0; i < out; ++i) REQUIRE(std::abs(yf[i] - y[i]) < 1e-4);
    for (bool accumulate : {false, true}) {
        CAPTURE(accumulate);
        std::vector<double> dx = dx0;
        std::vector<float> dxf = to_float(dx0);
        nn::conv2d_backward(s, batch, w.data(), x.data(), dy.data(), dw.data(), dx.data(),
                            accumulate, wsd);
        nn::conv2d_backward(s, batch, wf.data(), xf.data(), dyf.data(), dwf.data(), dxf.data(),
                            accumulate, wsf);
        for (std::size_t i = 0; i < in; ++i) REQUIRE(std::abs(dxf[i] - dx[i]) < 1e-4);
        for (std::size_t i = 0; i < dw.size(); ++i) REQUIRE(std::abs(dwf[i] - dw[i]) < 1e-3);
    }
}

}  // namespace

TEST_CASE("conv2d in float (direct where AVX-512) matches conv2d in double") {
    INFO("direct path compiled in: ", nn::gemm_has_simd);
    for (int threads : {1, 2}) {
        check_conv_float(nn::conv2d_shape::make(16, 16, 3, 1, 32, 32), 3, threads);
        check_conv_float(nn::conv2d_shape::make(3, 16, 3, 1, 8, 8), 2, threads);
        check_conv_float(nn::conv2d_shape::make(5, 7, 3, 1, 9, 11), 3, threads);
        check_conv_float(nn::conv2d_shape::make(4, 6, 5, 1, 7, 6), 2, threads);
        check_conv_float(nn::conv2d_shape::make(6, 8, 3, 2, 9, 10), 2, threads);
        check_conv_float(nn::conv2d_shape::make(1, 3, 3, 1, 1, 17), 2, threads);
    }
}
