// The tensor and model concepts (tensor_traits.hpp, model.hpp) for the standard-library types,
// and the element-wise kernels of detail/kernels.hpp.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <swarmsgd/detail/kernels.hpp>
#include <swarmsgd/errors.hpp>
#include <swarmsgd/model.hpp>
#include <swarmsgd/tensor_traits.hpp>

using swarmsgd::model;
using swarmsgd::tensor;
using swarmsgd::tensor_list;

namespace {

struct not_a_tensor {};

// A user type with its own tensor_traits specialization (the documented customization point).
struct my_tensor {
    std::array<double, 5> values{};
};

std::size_t runtime_size(std::size_t n) {
    volatile std::size_t hidden = n;
    return hidden;
}

template <class Fn>
std::string message_of(Fn&& fn) {
    try {
        fn();
    } catch (const swarmsgd::size_mismatch_error& e) {
        return e.what();
    }
    return "<no size_mismatch_error>";
}

}  // namespace

template <>
struct swarmsgd::tensor_traits<my_tensor> {
    using value_type = double;
    static std::size_t size(const my_tensor& t) { return t.values.size(); }
    static double* data(my_tensor& t) { return t.values.data(); }
    static const double* data(const my_tensor& t) { return t.values.data(); }
};

// ------------------------------------------------------------------------------- the concepts

static_assert(tensor<std::vector<float>>);
static_assert(tensor<std::vector<double>>);
static_assert(tensor<std::span<float>>);
static_assert(tensor<std::span<double>>);
static_assert(tensor<my_tensor>);
static_assert(std::is_same_v<swarmsgd::tensor_value_t<std::vector<float>>, float>);
static_assert(std::is_same_v<swarmsgd::tensor_value_t<std::span<double>>, double>);

static_assert(!tensor<std::vector<int>>);
static_assert(!tensor<std::vector<long double>>);
static_assert(!tensor<std::vector<unsigned char>>);
static_assert(!tensor<std::span<int>>);
static_assert(!tensor<std::span<const float>>);  // read-only storage cannot be averaged into
static_assert(!tensor<std::span<float, 4>>);     // only dynamic extent
static_assert(!tensor<std::array<float, 4>>);    // no specialization
static_assert(!tensor<float>);
static_assert(!tensor<not_a_tensor>);
static_assert(!tensor<std::vector<std::vector<float>>>);

static_assert(model<std::vector<float>>);
static_assert(model<std::vector<double>>);
static_assert(model<std::span<float>>);
static_assert(model<std::vector<std::vector<float>>>);
static_assert(model<std::vector<std::vector<double>>>);
static_assert(model<std::vector<std::span<float>>>);
static_assert(model<std::vector<my_tensor>>);
static_assert(model<std::array<std::vector<float>, 3>>);
static_assert(tensor_list<std::vector<std::vector<float>>>);
static_assert(tensor_list<std::vector<std::span<double>>>);
static_assert(!tensor_list<std::vector<float>>);  // a tensor is not a list of tensors
static_assert(!model<std::vector<int>>);
static_assert(!model<std::vector<std::vector<int>>>);
static_assert(!model<std::vector<std::span<const float>>>);
static_assert(!model<not_a_tensor>);
static_assert(!model<std::vector<not_a_tensor>>);
static_assert(std::is_same_v<swarmsgd::model_value_t<std::vector<std::vector<double>>>, double>);
static_assert(std::is_same_v<swarmsgd::model_value_t<std::vector<std::span<float>>>, float>);
static_assert(std::is_same_v<swarmsgd::model_value_t<std::vector<float>>, float>);

TEST_CASE("as_span views the tensor's own storage") {
    std::vector<float> v{1, 2, 3};
    auto s = swarmsgd::as_span(v);
    static_assert(std::is_same_v<decltype(s), std::span<float>>);
    CHECK(s.data() == v.data());
    CHECK(s.size() == 3);
    s[1] = 20;
    CHECK(v[1] == 20);

    const std::vector<double> cv{4, 5};
    auto cs = swarmsgd::as_span(cv);
    static_assert(std::is_same_v<decltype(cs), std::span<const double>>);
    CHECK(cs.data() == cv.data());

    std::vector<double> buffer(6, 0.0);
    std::span<double> view(buffer.data() + 2, 3);
    auto vs = swarmsgd::as_span(view);
    CHECK(vs.data() == buffer.data() + 2);
    CHECK(vs.size() == 3);

    my_tensor t;
    CHECK(swarmsgd::as_span(t).size() == 5);
    CHECK(swarmsgd::as_span(t).data() == t.values.data());
}

// ---------------------------------------------------------------------- model_size and parts

TEST_CASE("model_size and for_each_part of single tensors") {
    std::vector<float> v(7, 1.0f);
    CHECK(swarmsgd::model_size(v) == 7);
    std::vector<std::size_t> offsets;
    swarmsgd::for_each_part(v, [&](auto part, std::size_t offset) {
        CHECK(part.size() == 7);
        CHECK(part.data() == v.data());
        offsets.push_back(offset);
    });
    CHECK(offsets == std::vector<std::size_t>{0});

    std::vector<double> empty;
    CHECK(swarmsgd::model_size(empty) == 0);
}

TEST_CASE("model_size and for_each_part offsets of a list of vectors") {
    std::vector<std::vector<float>> m{std::vector<float>(3), std::vector<float>(0),
                                      std::vector<float>(5), std::vector<float>(1)};
    CHECK(swarmsgd::model_size(m) == 9);
    std::vector<std::size_t> offsets, sizes;
    std::vector<const float*> data;
    swarmsgd::for_each_part(m, [&](std::span<float> part, std::size_t offset) {
        offsets.push_back(offset);
        sizes.push_back(part.size());
        data.push_back(part.data());
    });
    CHECK(offsets == std::vector<std::size_t>{0, 3, 3, 8});
    CHECK(sizes == std::vector<std::size_t>{3, 0, 5, 1});
    for (std::size_t i = 0; i < m.size(); ++i) CHECK(data[i] == m[i].data());

    // The const overload sees read-only parts with the same offsets.
    const auto& cm = m;
    std::vector<std::size_t> const_offsets;
    swarmsgd::for_each_part(cm, [&](auto part, std::size_t offset) {
        static_assert(std::is_same_v<decltype(part), std::span<const float>>);
        const_offsets.push_back(offset);
    });
    CHECK(const_offsets == offsets);

    std::vector<std::vector<double>> no_parts;
    CHECK(swarmsgd::model_size(no_parts) == 0);
}

TEST_CASE("a list of spans cut from one buffer is a model over that buffer") {
    std::vector<float> buffer(10);
    std::iota(buffer.begin(), buffer.end(), 0.0f);
    std::vector<std::span<float>> layers{std::span<float>(buffer).subspan(0, 4),
                                         std::span<float>(buffer).subspan(4, 2),
                                         std::span<float>(buffer).subspan(6, 4)};
    CHECK(swarmsgd::model_size(layers) == 10);
    swarmsgd::for_each_part(layers, [&](std::span<float> part, std::size_t offset) {
        // The part's offset in the concatenated model is its offset in the buffer.
        CHECK(part.data() == buffer.data() + offset);
    });

    std::vector<float> flat(10);
    swarmsgd::gather(layers, std::span<float>(flat));
    CHECK(flat == buffer);

    std::vector<float> replacement(10);
    std::iota(replacement.begin(), replacement.end(), 100.0f);
    swarmsgd::scatter(std::span<const float>(replacement), layers);
    CHECK(buffer == replacement);
}

// --------------------------------------------------------------------------- gather / scatter

TEST_CASE("gather and scatter round trip over a list of vectors") {
    std::vector<std::vector<double>> m{{1, 2, 3}, {}, {4, 5}, {6}};
    std::vector<double> flat(6);
    swarmsgd::gather(m, std::span<double>(flat));
    CHECK(flat == std::vector<double>{1, 2, 3, 4, 5, 6});

    std::vector<std::vector<double>> other{{0, 0, 0}, {}, {0, 0}, {0}};
    swarmsgd::scatter(std::span<const double>(flat), other);
    CHECK(other == m);

    // Single tensor.
    std::vector<float> v{7, 8, 9};
    std::vector<float> out(3);
    swarmsgd::gather(v, std::span<float>(out));
    CHECK(out == v);
    std::vector<float> back(3);
    swarmsgd::scatter(std::span<const float>(out), back);
    CHECK(back == v);

    // Empty model, empty buffer.
    std::vector<float> none;
    swarmsgd::gather(none, std::span<float>());
    swarmsgd::scatter(std::span<const float>(), none);
}

TEST_CASE("gather and scatter reject a buffer of the wrong size, naming both sizes") {
    std::vector<std::vector<float>> m{std::vector<float>(4), std::vector<float>(6)};
    const std::vector<float> before_part0 = m[0];

    std::vector<float> small(9), big(11);
    const auto g = message_of([&] { swarmsgd::gather(m, std::span<float>(small)); });
    CHECK(g.find("gather") != std::string::npos);
    CHECK(g.find("10") != std::string::npos);
    CHECK(g.find("9") != std::string::npos);

    std::vector<float> big_sentinel(11, -1.0f);
    const auto g2 = message_of([&] { swarmsgd::gather(m, std::span<float>(big_sentinel)); });
    CHECK(g2.find("10") != std::string::npos);
    CHECK(g2.find("11") != std::string::npos);
    CHECK(big_sentinel == std::vector<float>(11, -1.0f));  // untouched

    std::fill(big.begin(), big.end(), 5.0f);
    const auto s = message_of([&] { swarmsgd::scatter(std::span<const float>(big), m); });
    CHECK(s.find("scatter") != std::string::npos);
    CHECK(s.find("10") != std::string::npos);
    CHECK(s.find("11") != std::string::npos);
    CHECK(m[0] == before_part0);  // untouched

    // Sizes the optimizer cannot see: with constant sizes GCC 12 -O2 warns (-Warray-bounds)
    // about the copy on the path where the size check would not throw.
    std::vector<double> single(runtime_size(3));
    std::vector<double> two(runtime_size(2));
    CHECK_THROWS_AS(swarmsgd::gather(single, std::span<double>(two)),
                    swarmsgd::size_mismatch_error);
    CHECK_THROWS_AS(swarmsgd::scatter(std::span<const double>(two), single),
                    swarmsgd::size_mismatch_error);
    // size_mismatch_error is a swarmsgd::error and a std::runtime_error.
    CHECK_THROWS_AS(swarmsgd::gather(single, std::span<double>(two)), swarmsgd::error);
    CHECK_THROWS_AS(swarmsgd::gather(single, std::span<double>(two)), std::runtime_error);
}

TEST_CASE("the exact gather/scatter messages") {
    std::vector<std::vector<double>> m{std::vector<double>(2), std::vector<double>(3)};
    std::vector<double> buf(4);
    CHECK(message_of([&] { swarmsgd::gather(m, std::span<double>(buf)); }) ==
          "gather: model has 5 elements, buffer 4");
    CHECK(message_of([&] { swarmsgd::scatter(std::span<const double>(buf), m); }) ==
          "scatter: model has 5 elements, buffer 4");
}

// --------------------------------------------------------------------- detail::first_non_finite

TEST_CASE_TEMPLATE("first_non_finite finds NaN, +Inf and -Inf at any position", V, float, double) {
    constexpr std::size_t n = 3000;  // three scan blocks of 1024, the last one partial
    const V bad_values[] = {
        std::numeric_limits<V>::quiet_NaN(), std::numeric_limits<V>::signaling_NaN(),
        -std::numeric_limits<V>::quiet_NaN(), std::numeric_limits<V>::infinity(),
        -std::numeric_limits<V>::infinity()};
    std::vector<V> x(n);
    for (std::size_t k = 0; k < n; ++k) x[k] = static_cast<V>(k) * V(0.25) - V(100);

    SUBCASE("all finite: returns n") {
        CHECK(swarmsgd::detail::first_non_finite(x.data(), n) == n);
        CHECK(swarmsgd::detail::first_non_finite(x.data(), 0) == 0);
        CHECK(swarmsgd::detail::first_non_finite(x.data(), 1) == 1);
        // Extreme finite values are finite.
        std::vector<V> extremes{std::numeric_limits<V>::max(),
                                std::numeric_limits<V>::lowest(),
                                std::numeric_limits<V>::min(),
                                std::numeric_limits<V>::denorm_min(),
                                V(0),
                                -V(0)};
        CHECK(swarmsgd::detail::first_non_finite(extremes.data(), extremes.size()) ==
              extremes.size());
    }

    for (const V bad : bad_values) {
        for (const std::size_t pos :
             {std::size_t{0}, std::size_t{1}, std::size_t{1023}, std::size_t{1024},
              std::size_t{2047}, std::size_t{2048}, n - 1}) {
            CAPTURE(bad);
            CAPTURE(pos);
            std::vector<V> y = x;
            y[pos] = bad;
            CHECK(swarmsgd::detail::first_non_finite(y.data(), n) == pos);
            // Only the first one is reported.
            if (pos + 5 < n) {
                y[pos + 5] = std::numeric_limits<V>::infinity();
                CHECK(swarmsgd::detail::first_non_finite(y.data(), n) == pos);
            }
            // A bad value beyond the scanned length is not seen.
            CHECK(swarmsgd::detail::first_non_finite(y.data(), pos) == pos);
        }
    }

    SUBCASE("several bad values in one block: the smallest index wins") {
        std::vector<V> y = x;
        y[1500] = -std::numeric_limits<V>::infinity();
        y[1100] = std::numeric_limits<V>::quiet_NaN();
        y[2900] = std::numeric_limits<V>::infinity();
        CHECK(swarmsgd::detail::first_non_finite(y.data(), n) == 1100);
    }
}

// ----------------------------------------------------------- add_half_difference, distance

TEST_CASE_TEMPLATE("add_half_difference and squared_distance on odd sizes", V, float, double) {
    for (const std::size_t n :
         {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{17}, std::size_t{1001}}) {
        CAPTURE(n);
        std::vector<V> x(n), received(n), own(n);
        for (std::size_t k = 0; k < n; ++k) {
            x[k] = static_cast<V>(k % 13) - V(6);
            received[k] = static_cast<V>((k * 7) % 11) * V(0.5);
            own[k] = static_cast<V>((k * 3) % 5) - V(1.5);
        }
        std::vector<V> expected(n);
        double distance = 0;
        for (std::size_t k = 0; k < n; ++k) {
            expected[k] = x[k] + (received[k] - own[k]) / V(2);
            const double d = static_cast<double>(received[k]) - static_cast<double>(own[k]);
            distance += d * d;
        }
        CHECK(swarmsgd::detail::squared_distance(received.data(), own.data(), n) ==
              doctest::Approx(distance));
        CHECK(swarmsgd::detail::squared_distance(own.data(), received.data(), n) ==
              doctest::Approx(distance));
        CHECK(swarmsgd::detail::squared_distance(x.data(), x.data(), n) == 0.0);

        swarmsgd::detail::add_half_difference(x.data(), received.data(), own.data(), n);
        // All operands are small multiples of 1/2: the results are exact in float and double.
        CHECK(x == expected);
    }

    SUBCASE("averaging a pair with add_half_difference gives both the exact mean") {
        const std::size_t n = 9;
        std::vector<V> a(n), b(n);
        for (std::size_t k = 0; k < n; ++k) {
            a[k] = static_cast<V>(k);
            b[k] = static_cast<V>(3 * k) + V(1);
        }
        const std::vector<V> a0 = a, b0 = b;
        swarmsgd::detail::add_half_difference(a.data(), b0.data(), a0.data(), n);
        swarmsgd::detail::add_half_difference(b.data(), a0.data(), b0.data(), n);
        CHECK(a == b);
        for (std::size_t k = 0; k < n; ++k) CHECK(a[k] == (a0[k] + b0[k]) / V(2));
    }

    SUBCASE("squared_distance accumulates in double") {
        // 2^20 equal terms: a float accumulator would drift by about 1e-2 relative.
        const std::size_t n = std::size_t{1} << 20;
        std::vector<V> a(n, V(1)), b(n, V(1.1));
        const double d = static_cast<double>(b[0]) - 1.0;
        CHECK(swarmsgd::detail::squared_distance(a.data(), b.data(), n) ==
              doctest::Approx(static_cast<double>(n) * d * d).epsilon(1e-9));
    }
}

TEST_CASE_TEMPLATE("detail::copy copies n elements and tolerates n = 0", V, float, double) {
    std::vector<V> src{1, 2, 3, 4, 5}, dst(5, V(-1));
    swarmsgd::detail::copy(src.data(), dst.data(), 3);
    CHECK(dst == std::vector<V>{1, 2, 3, -1, -1});
    swarmsgd::detail::copy<V>(nullptr, nullptr, 0);  // no memcpy with null pointers
}
