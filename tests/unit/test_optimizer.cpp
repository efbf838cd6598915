// The local optimizer (sgd.hpp), the local-step policy (local_steps.hpp) and option validation
// (swarm_options.hpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <swarmsgd/errors.hpp>
#include <swarmsgd/local_steps.hpp>
#include <swarmsgd/random.hpp>
#include <swarmsgd/sgd.hpp>
#include <swarmsgd/swarm_options.hpp>

using swarmsgd::invalid_argument_error;
using swarmsgd::local_steps;
using swarmsgd::sgd_options;

namespace {

template <class Fn>
std::string invalid_argument_message(Fn&& fn) {
    try {
        fn();
    } catch (const invalid_argument_error& e) {
        return e.what();
    }
    return "<no invalid_argument_error>";
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// Three gradients for a two-element model x0 = (1, -2).
const std::vector<std::vector<double>> gradients{{0.5, -1.0}, {2.0, 0.25}, {-1.5, 1.0}};

/// PyTorch's documented rule, written out independently of the library:
///   g' = g + wd * x;  v = mu * v + g';  d = nesterov ? g' + mu * v : v;  x -= lr * d
/// (no momentum: d = g').
std::vector<std::vector<double>> reference(double lr, double mu, bool nesterov, double wd) {
    std::vector<double> x{1.0, -2.0}, v{0.0, 0.0};
    std::vector<std::vector<double>> after;
    for (const auto& g : gradients) {
        for (std::size_t k = 0; k < 2; ++k) {
            const double gp = g[k] + wd * x[k];
            double d = gp;
            if (mu > 0) {
                v[k] = mu * v[k] + gp;
                d = nesterov ? gp + mu * v[k] : v[k];
            }
            x[k] -= lr * d;
        }
        after.push_back(x);
    }
    return after;
}

struct case_t {
    const char* name;
    double momentum;
    bool nesterov;
    double weight_decay;
    std::vector<std::vector<double>> expected;  // hand-computed x after steps 1, 2, 3
};

// lr = 0.1 throughout. Worked by hand, e.g. momentum, element 0:
//   v = 0.5,                 x = 1 - 0.1 * 0.5       = 0.95
//   v = 0.9 * 0.5 + 2 = 2.45, x = 0.95 - 0.1 * 2.45   = 0.705
//   v = 0.9 * 2.45 - 1.5 = 0.705, x = 0.705 - 0.0705 = 0.6345
// and Nesterov, element 0, step 1: v = 0.5, d = 0.5 + 0.9 * 0.5 = 0.95, x = 1 - 0.095 = 0.905.
const std::vector<case_t> cases{
    {"plain", 0.0, false, 0.0, {{0.95, -1.9}, {0.75, -1.925}, {0.9, -2.025}}},
    {"momentum", 0.9, false, 0.0, {{0.95, -1.9}, {0.705, -1.835}, {0.6345, -1.8765}}},
    {"nesterov", 0.9, true, 0.0, {{0.905, -1.81}, {0.4845, -1.7765}, {0.57105, -1.91385}}},
    {"weight decay",
     0.0,
     false,
     0.01,
     {{0.949, -1.898}, {0.748051, -1.921102}, {0.897302949, -2.019180898}}},
    {"momentum + weight decay",
     0.9,
     false,
     0.01,
     {{0.949, -1.898}, {0.702151, -1.829302}, {0.629284749, -1.865644498}}},
    {"nesterov + weight decay",
     0.9,
     true,
     0.01,
     {{0.9031, -1.8062}, {0.48007411, -1.76764822}, {0.564251458191, -1.898718666382}}},
};

}  // namespace

// ------------------------------------------------------------------------------------- steps

TEST_CASE("sgd steps match hand-computed values and PyTorch's rule (double)") {
    for (const auto& c : cases) {
        CAPTURE(c.name);
        sgd_options o;
        o.learning_rate = 0.1;
        o.momentum = c.momentum;
        o.nesterov = c.nesterov;
        o.weight_decay = c.weight_decay;
        const auto ref = reference(0.1, c.momentum, c.nesterov, c.weight_decay);

        std::vector<double> x{1.0, -2.0};
        swarmsgd::sgd<double> opt(o, x.size());
        for (std::size_t s = 0; s < 3; ++s) {
            CAPTURE(s);
            opt.step(x, std::span<const double>(gradients[s]));
            for (std::size_t k = 0; k < 2; ++k) {
                CHECK(x[k] == doctest::Approx(c.expected[s][k]).epsilon(1e-12));
                CHECK(x[k] == doctest::Approx(ref[s][k]).epsilon(1e-12));
            }
            CHECK(opt.steps() == s + 1);
            CHECK(opt.last_rate() == 0.1);
        }
    }
}

TEST_CASE("sgd steps on a list model keep one velocity per element (offsets)") {
    for (const auto& c : cases) {
        CAPTURE(c.name);
        sgd_options o;
        o.learning_rate = 0.1;
        o.momentum = c.momentum;
        o.nesterov = c.nesterov;
        o.weight_decay = c.weight_decay;
        // The same two elements, in two parts.
        std::vector<std::vector<double>> x{{1.0}, {-2.0}};
        swarmsgd::sgd<double> opt(o, 2);
        for (std::size_t s = 0; s < 3; ++s) opt.step(x, std::span<const double>(gradients[s]));
        CHECK(x[0][0] == doctest::Approx(c.expected[2][0]).epsilon(1e-12));
        CHECK(x[1][0] == doctest::Approx(c.expected[2][1]).epsilon(1e-12));
    }
}

TEST_CASE("sgd steps in float follow the same rule") {
    for (const auto& c : cases) {
        CAPTURE(c.name);
        sgd_options o;
        o.learning_rate = 0.1;
        o.momentum = c.momentum;
        o.nesterov = c.nesterov;
        o.weight_decay = c.weight_decay;
        std::vector<float> x{1.0f, -2.0f};
        swarmsgd::sgd<float> opt(o, 2);
        for (std::size_t s = 0; s < 3; ++s) {
            const std::vector<float> g{static_cast<float>(gradients[s][0]),
                                       static_cast<float>(gradients[s][1])};
            opt.step(x, std::span<const float>(g));
        }
        CHECK(x[0] == doctest::Approx(c.expected[2][0]).epsilon(1e-6));
        CHECK(x[1] == doctest::Approx(c.expected[2][1]).epsilon(1e-6));
    }
}

TEST_CASE("learning rate 0 leaves the model unchanged, also with weight decay") {
    sgd_options o;
    o.learning_rate = 0.0;
    o.momentum = 0.5;
    o.weight_decay = 0.1;
    std::vector<double> x{3.0, 4.0};
    swarmsgd::sgd<double> opt(o, 2);
    opt.step(x, std::span<const double>(gradients[0]));
    CHECK(x == std::vector<double>{3.0, 4.0});
}

// ------------------------------------------------------------------------------- schedules

TEST_CASE("step_decay multiplies by the factor at each milestone") {
    const auto schedule = swarmsgd::step_decay({2, 4}, 0.1);
    CHECK(schedule(0, 1.0) == 1.0);
    CHECK(schedule(1, 1.0) == 1.0);
    CHECK(schedule(2, 1.0) == doctest::Approx(0.1));
    CHECK(schedule(3, 1.0) == doctest::Approx(0.1));
    CHECK(schedule(4, 1.0) == doctest::Approx(0.01));
    CHECK(schedule(1000, 1.0) == doctest::Approx(0.01));
    CHECK(schedule(4, 0.5) == doctest::Approx(0.005));
    const auto none = swarmsgd::step_decay({}, 0.1);
    CHECK(none(100, 0.3) == 0.3);
}

TEST_CASE("the optimizer calls the schedule once per step with the step index") {
    sgd_options o;
    o.learning_rate = 1.0;
    o.schedule = swarmsgd::step_decay({2, 4}, 0.5);
    std::vector<double> x{0.0};
    swarmsgd::sgd<double> opt(o, 1);
    const std::vector<double> g{1.0};
    const double expected_rates[] = {1.0, 1.0, 0.5, 0.5, 0.25, 0.25};
    double expected_x = 0.0;
    for (const double rate : expected_rates) {
        opt.step(x, std::span<const double>(g));
        expected_x -= rate;
        CHECK(opt.last_rate() == rate);
        CHECK(x[0] == doctest::Approx(expected_x));
    }
    CHECK(opt.steps() == 6);

    std::vector<std::size_t> seen;
    sgd_options recorded;
    recorded.learning_rate = 0.2;
    recorded.schedule = [&](std::size_t step, double base) {
        seen.push_back(step);
        CHECK(base == 0.2);
        return base;
    };
    swarmsgd::sgd<double> opt2(recorded, 1);
    for (int s = 0; s < 3; ++s) opt2.step(x, std::span<const double>(g));
    CHECK(seen == std::vector<std::size_t>{0, 1, 2});
}

TEST_CASE("a schedule returning a negative or non-finite rate throws and changes nothing") {
    for (const double bad : {-1.0, -1e-9, std::numeric_limits<double>::quiet_NaN(),
                             std::numeric_limits<double>::infinity()}) {
        CAPTURE(bad);
        sgd_options o;
        o.learning_rate = 0.1;
        o.momentum = 0.9;
        o.schedule = [bad](std::size_t step, double base) { return step < 2 ? base : bad; };
        std::vector<double> x{1.0, -2.0};
        swarmsgd::sgd<double> opt(o, 2);
        opt.step(x, std::span<const double>(gradients[0]));
        opt.step(x, std::span<const double>(gradients[1]));
        const auto before = x;
        const auto m =
            invalid_argument_message([&] { opt.step(x, std::span<const double>(gradients[2])); });
        CHECK(contains(m, "schedule"));
        CHECK(contains(m, "step 2"));
        if (bad == -1.0) CHECK(contains(m, "-1"));
        CHECK(x == before);
        CHECK(opt.steps() == 2);
    }
}

// ------------------------------------------------------------------------------ validation

TEST_CASE("sgd_options::validate names the offending value") {
    CHECK_NOTHROW(sgd_options{}.validate());
    {
        sgd_options o;
        o.momentum = 0.99;
        o.nesterov = true;
        o.weight_decay = 5e-4;
        o.learning_rate = 0;
        CHECK_NOTHROW(o.validate());
    }
    SUBCASE("negative learning rate") {
        sgd_options o;
        o.learning_rate = -0.5;
        const auto m = invalid_argument_message([&] { o.validate(); });
        CHECK(contains(m, "learning_rate = -0.5"));
    }
    SUBCASE("NaN and infinite learning rate") {
        sgd_options o;
        o.learning_rate = std::numeric_limits<double>::quiet_NaN();
        const auto m = invalid_argument_message([&] { o.validate(); });
        CHECK(contains(m, "learning_rate = "));
        CHECK(contains(m, "nan"));
        o.learning_rate = std::numeric_limits<double>::infinity();
        CHECK(contains(invalid_argument_message([&] { o.validate(); }), "inf"));
    }
    SUBCASE("momentum 1 and negative momentum") {
        sgd_options o;
        o.momentum = 1.0;
        CHECK(contains(invalid_argument_message([&] { o.validate(); }), "momentum = 1"));
        o.momentum = -0.25;
        CHECK(contains(invalid_argument_message([&] { o.validate(); }), "momentum = -0.25"));
    }
    SUBCASE("nesterov without momentum") {
        sgd_options o;
        o.nesterov = true;
        const auto m = invalid_argument_message([&] { o.validate(); });
        CHECK(contains(m, "nesterov"));
        CHECK(contains(m, "got 0"));
    }
    SUBCASE("negative weight decay") {
        sgd_options o;
        o.weight_decay = -0.1;
        CHECK(contains(invalid_argument_message([&] { o.validate(); }), "weight_decay = -0.1"));
    }
    SUBCASE("the optimizer validates on construction") {
        sgd_options o;
        o.learning_rate = -3;
        CHECK_THROWS_AS(swarmsgd::sgd<float>(o, 4), invalid_argument_error);
    }
}

// ----------------------------------------------------------------------------- local steps

TEST_CASE("local_steps::fixed") {
    const auto m = invalid_argument_message([] { (void)local_steps::fixed(0); });
    CHECK(contains(m, "H = 0"));

    const auto three = local_steps::fixed(3);
    CHECK_FALSE(three.is_geometric());
    CHECK(three.mean() == 3.0);
    CHECK(three.describe() == "fixed(3)");
    swarmsgd::rng r(1);
    for (int i = 0; i < 1000; ++i) CHECK(three.draw(r) == 3);
    const auto one = local_steps::fixed(1);
    for (int i = 0; i < 100; ++i) CHECK(one.draw(r) == 1);
}

TEST_CASE("local_steps::geometric validation") {
    const auto m = invalid_argument_message([] { (void)local_steps::geometric(0.5); });
    CHECK(contains(m, "0.5"));
    CHECK_THROWS_AS((void)local_steps::geometric(0.0), invalid_argument_error);
    CHECK_THROWS_AS((void)local_steps::geometric(-2.0), invalid_argument_error);
    CHECK_THROWS_AS((void)local_steps::geometric(std::numeric_limits<double>::quiet_NaN()),
                    invalid_argument_error);
    CHECK_THROWS_AS((void)local_steps::geometric(std::numeric_limits<double>::infinity()),
                    invalid_argument_error);
    // Mean 1: always one step.
    const auto one = local_steps::geometric(1.0);
    swarmsgd::rng r(2);
    for (int i = 0; i < 100; ++i) CHECK(one.draw(r) == 1);
    CHECK(local_steps::geometric(2.5).describe() == "geometric(2.5)");
}

TEST_CASE("local_steps::geometric(4) draws have mean 4, minimum 1, P(1) = 1/4") {
    const auto policy = local_steps::geometric(4.0);
    CHECK(policy.is_geometric());
    CHECK(policy.mean() == 4.0);
    swarmsgd::rng r(12345);
    constexpr std::size_t draws = 100'000;
    double sum = 0;
    std::size_t smallest = std::numeric_limits<std::size_t>::max();
    std::size_t ones = 0;
    for (std::size_t i = 0; i < draws; ++i) {
        const std::size_t h = policy.draw(r);
        sum += static_cast<double>(h);
        smallest = std::min(smallest, h);
        ones += h == 1 ? 1 : 0;
    }
    const double mean = sum / static_cast<double>(draws);
    CHECK(std::abs(mean - 4.0) < 0.05);
    CHECK(smallest == 1);
    CHECK(static_cast<double>(ones) / draws == doctest::Approx(0.25).epsilon(0.04));

    // Same seed, same draws.
    swarmsgd::rng a(9), b(9);
    for (int i = 0; i < 100; ++i) CHECK(policy.draw(a) == policy.draw(b));
}

// ------------------------------------------------------------------------- swarm_options

TEST_CASE("swarm_options::validate") {
    CHECK_NOTHROW(swarmsgd::swarm_options{}.validate());
    SUBCASE("max_in_flight 0") {
        swarmsgd::swarm_options o;
        o.max_in_flight = 0;
        CHECK(contains(invalid_argument_message([&] { o.validate(); }), "max_in_flight = 0"));
    }
    SUBCASE("reply_timeout 0 and negative") {
        swarmsgd::swarm_options o;
        o.reply_timeout = std::chrono::milliseconds(0);
        CHECK(contains(invalid_argument_message([&] { o.validate(); }), "reply_timeout = 0 ms"));
        o.reply_timeout = std::chrono::milliseconds(-5);
        CHECK(contains(invalid_argument_message([&] { o.validate(); }), "reply_timeout = -5 ms"));
    }
    SUBCASE("shutdown_timeout 0") {
        swarmsgd::swarm_options o;
        o.shutdown_timeout = std::chrono::milliseconds(0);
        CHECK(contains(invalid_argument_message([&] { o.validate(); }), "shutdown_timeout = 0"));
    }
    SUBCASE("distance_guard below 1, negative or not finite (0 is off)") {
        swarmsgd::swarm_options o;
        o.distance_guard = 0;
        CHECK_NOTHROW(o.validate());
        o.distance_guard = 10;
        CHECK_NOTHROW(o.validate());
        o.distance_guard = 0.5;
        CHECK(contains(invalid_argument_message([&] { o.validate(); }), "distance_guard = 0.5"));
        o.distance_guard = -1;
        CHECK(contains(invalid_argument_message([&] { o.validate(); }), "distance_guard = -1"));
        o.distance_guard = std::numeric_limits<double>::infinity();
        CHECK(contains(invalid_argument_message([&] { o.validate(); }), "distance_guard = inf"));
    }
    SUBCASE("send_linger negative (0 is fine: detach at once)") {
        swarmsgd::swarm_options o;
        o.send_linger = std::chrono::milliseconds(0);
        CHECK_NOTHROW(o.validate());
        o.send_linger = std::chrono::milliseconds(-1);
        CHECK(contains(invalid_argument_message([&] { o.validate(); }), "send_linger = -1 ms"));
    }
    SUBCASE("the optimizer options are validated too") {
        swarmsgd::swarm_options o;
        o.sgd.momentum = 1.5;
        CHECK(contains(invalid_argument_message([&] { o.validate(); }), "momentum = 1.5"));
    }
}

TEST_CASE("averaging mode names") {
    CHECK(std::string(swarmsgd::to_string(swarmsgd::averaging_mode::nonblocking)) == "nonblocking");
    CHECK(std::string(swarmsgd::to_string(swarmsgd::averaging_mode::blocking)) == "blocking");
    CHECK(std::string(swarmsgd::to_string(swarmsgd::averaging_mode::pull)) == "pull");
}
