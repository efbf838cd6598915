// The Thrust adapter (swarmsgd/thrust.hpp): Thrust vectors as tensors and models, and the
// model operations run in the vector's own system, checked against the CPU path on the same
// values. Built once per device system (CPP, OMP; CUDA when nvcc is found).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <span>
#include <swarmsgd/swarmsgd.hpp>
#include <swarmsgd/thrust.hpp>
#include <vector>

#include "thrust_support.hpp"

using namespace swarmsgd;
using namespace test_support::thrust_models;

namespace {
template <class V>
std::vector<V> values(std::size_t n, std::uint64_t seed, double scale = 1.0) {
    rng r(seed);
    std::vector<V> v(n);
    for (auto& x : v) x = static_cast<V>((r.uniform01() * 2 - 1) * scale);
    return v;
}
}  // namespace

TEST_CASE("thrust vectors: device vectors are system tensors, host vectors host tensors") {
    static_assert(system_tensor<thrust::device_vector<float>>);
    static_assert(!tensor<thrust::device_vector<float>>);  // never reaches a host loop
    static_assert(!model<thrust::device_vector<double>>);
    static_assert(system_model<thrust::device_vector<double>>);
    static_assert(system_model<std::vector<thrust::device_vector<float>>>);
    static_assert(any_model<std::vector<thrust::device_vector<float>>>);
    static_assert(
        std::is_same_v<model_system_t<thrust::device_vector<float>>, thrust::device_system_tag>);
    static_assert(std::is_same_v<model_system_t<thrust::cpp::vector<float>>, thrust::cpp::tag>);
    static_assert(
        std::is_same_v<model_value_t<std::vector<thrust::device_vector<double>>>, double>);
    static_assert(tensor<thrust::host_vector<float>>);
    static_assert(model<std::vector<thrust::host_vector<double>>>);
    static_assert(std::is_same_v<model_system_t<thrust::host_vector<float>>, host_memory>);
    static_assert(host_accessible_system_v<thrust::cpp::tag>);
    static_assert(!system_tensor<thrust::device_vector<int>>);

    thrust::host_vector<float> h(5, 1.5f);
    CHECK(model_size(h) == 5);
    CHECK(as_span(h)[4] == 1.5f);
    std::vector<float> g(5);
    gather(h, std::span<float>(g));
    CHECK(g[0] == 1.5f);
}

TEST_CASE_TEMPLATE("thrust model: size, host copies, gather and scatter", M,
                   SWARMSGD_THRUST_MODEL_TYPES) {
    using V = model_value_t<M>;
    using S = model_system_t<M>;
    for (std::size_t n : {0u, 1u, 8u, 309u, 1000u}) {
        CAPTURE(n);
        const auto x = values<V>(n, n + 1);
        M m = make_model<M>(x);
        CHECK(model_size(m) == n);
        CHECK(host_values(m) == x);

        system_buffer<V, S> flat(n);
        gather(m, flat.span());
        std::vector<V> back(n);
        copy_to_host<V, S>(std::as_const(flat).span(), std::span<V>(back));
        CHECK(back == x);

        const auto y = values<V>(n, n + 2);
        system_buffer<V, S> other(n);
        copy_to_system<V, S>(std::span<const V>(y), other.span());
        scatter(std::as_const(other).span(), m);
        CHECK(host_values(m) == y);

        system_buffer<V, S> copy = other;  // copies within the system
        std::vector<V> back2(n);
        copy_to_host<V, S>(std::as_const(copy).span(), std::span<V>(back2));
        CHECK(back2 == y);

        system_buffer<V, S> wrong(n + 1);
        CHECK_THROWS_AS(gather(m, wrong.span()), size_mismatch_error);
        CHECK_THROWS_AS(scatter(std::as_const(wrong).span(), m), size_mismatch_error);
    }
}

TEST_CASE_TEMPLATE("thrust model: operations match the CPU path bit for bit", M,
                   SWARMSGD_THRUST_MODEL_TYPES) {
    using V = model_value_t<M>;
    using S = model_system_t<M>;
    const std::size_t n = 1000;
    const auto a = values<V>(n, 11, 3.0), b = values<V>(n, 12, 3.0), c = values<V>(n, 13);
    M x = make_model<M>(a), y = make_model<M>(b);

    SUBCASE("axpby") {
        axpby(V(0.25), x, V(-2), y);
        std::vector<V> expected(n);
        for (std::size_t k = 0; k < n; ++k) expected[k] = V(0.25) * a[k] + V(-2) * b[k];
        CHECK(host_values(y) == expected);
        CHECK(host_values(x) == a);
    }
    SUBCASE("copy_model") {
        copy_model(x, y);
        CHECK(host_values(y) == a);
    }
    SUBCASE("add_half_difference: the node's update, as detail::add_half_difference") {
        system_buffer<V, S> r(n), o(n);
        copy_to_system<V, S>(std::span<const V>(b), r.span());
        copy_to_system<V, S>(std::span<const V>(c), o.span());
        add_half_difference(x, std::as_const(r).span(), std::as_const(o).span());
        auto expected = a;
        detail::add_half_difference(expected.data(), b.data(), c.data(), n);
        CHECK(host_values(x) == expected);
    }
    SUBCASE("average: both become the mean, the sum is kept") {
        average(x, y);
        const auto hx = host_values(x), hy = host_values(y);
        CHECK(hx == hy);
        for (std::size_t k = 0; k < n; ++k) CHECK(hx[k] == a[k] + (b[k] - a[k]) * V(0.5));
    }
    SUBCASE("squared distance and max |difference|") {
        double d2 = 0, dmax = 0;
        for (std::size_t k = 0; k < n; ++k) {
            const double d = double(a[k]) - double(b[k]);
            d2 += d * d;
            dmax = std::max(dmax, std::abs(d));
        }
        CHECK(squared_distance(x, y) == doctest::Approx(d2).epsilon(1e-12));
        CHECK(max_abs_difference(x, y) == dmax);
        CHECK(squared_distance(x, x) == 0);
    }
    SUBCASE("all-finite names the first non-finite element") {
        CHECK(all_finite(x));
        CHECK(first_non_finite(x) == n);
        for (V bad : {std::numeric_limits<V>::quiet_NaN(), std::numeric_limits<V>::infinity(),
                      -std::numeric_limits<V>::infinity()}) {
            auto h = a;
            h[700] = bad;
            h[900] = bad;
            M z = make_model<M>(h);
            CHECK_FALSE(all_finite(z));
            CHECK(first_non_finite(z) == 700);
            if (bad != bad) CHECK(std::isnan(max_abs_difference(z, y)));
        }
    }
    SUBCASE("layouts must match") {
        M small = make_model<M>(values<V>(n - 1, 3));
        CHECK_THROWS_AS(axpby(V(1), small, V(1), y), size_mismatch_error);
        CHECK_THROWS_AS((void)squared_distance(small, y), size_mismatch_error);
        CHECK_THROWS_AS(average(small, y), size_mismatch_error);
    }
}

TEST_CASE("thrust system: copies from and to a node's message blocks are exact") {
    // A node receives into blocks of its back end's pool (page-locked on CUDA, where
    // system_ops::to_system copies them with one DMA instead of staging them): the bytes that
    // arrive in the system are the block's, for sizes below, at and above the staging limit
    // and across several staging pieces; and a download into a block is exact as well.
    using S = model_system_t<thrust::device_vector<float>>;
    using ops = detail::system_ops<S>;
    message_block_pool<typename ops::block_allocator> pool;
    for (std::size_t bytes :
         {std::size_t{0}, std::size_t{1000}, std::size_t{64} << 10, std::size_t{9} << 20}) {
        const message_block block = pool.acquire(bytes);
        for (std::size_t k = 0; k < bytes; ++k) block.data()[k] = std::byte((k * 13 + 5) & 0xFF);
        system_buffer<std::byte, S> in_system(bytes);
        ops::to_system(block.data(), bytes, in_system.data());
        std::vector<std::byte> back(bytes);
        ops::to_host(in_system.data(), bytes, back.data());
        CHECK(std::equal(back.begin(), back.end(), block.data()));
        const message_block out = pool.acquire(bytes);
        ops::to_host(in_system.data(), bytes, out.data());
        CHECK(std::equal(back.begin(), back.end(), out.data()));
#if defined(__CUDACC__)
        if (bytes != 0) CHECK(ops::page_locked(block.data()));
        CHECK_FALSE(ops::page_locked(back.data()));
#endif
    }
}
