// The ResNet against PyTorch 1.13: fixtures/*.txt were written by
// tools/make_torch_fixtures.py (torch in float64, the same architecture and buffer order). The
// double network must agree to ~1e-8, the float one to ~1e-4 (relative to each tensor's scale).
#include <resnet.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace rn = swarmsgd::examples::resnet;

namespace {

/// A fixture: named arrays of numbers ("name count" then count values; '#' lines are comments).
std::map<std::string, std::vector<double>> load(const std::string& file) {
    std::ifstream in(std::string(SWARMSGD_RESNET_FIXTURES) + "/" + file);
    REQUIRE_MESSAGE(in.good(), "cannot open fixture " << file);
    std::map<std::string, std::vector<double>> arrays;
    std::string name;
    while (in >> name) {
        if (name[0] == '#') {
            std::getline(in, name);
            continue;
        }
        std::size_t count = 0;
        in >> count;
        std::vector<double>& values = arrays[name];
        values.resize(count);
        for (auto& v : values) in >> v;
        REQUIRE_MESSAGE(!in.fail(), "fixture " << file << ": array " << name << " is truncated");
    }
    return arrays;
}

/// |ours - ref| <= rtol * (|ref| + max |ref|) elementwise, reporting the worst element.
template <class T>
void compare(const char* what, const T* ours, const std::vector<double>& ref, double rtol) {
    double scale = 0;
    for (double r : ref) scale = std::max(scale, std::abs(r));
    double worst = 0;
    std::size_t worst_at = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
        const double err =
            std::abs(static_cast<double>(ours[i]) - ref[i]) / (std::abs(ref[i]) + scale);
        if (err > worst) {
            worst = err;
            worst_at = i;
        }
    }
    INFO(std::string(what), ": worst relative error ", worst, " at ", worst_at, " (ours ",
         static_cast<double>(ours[worst_at]), ", torch ", ref[worst_at], ")");
    CHECK(worst <= rtol);
}

template <class T>
void check_against_torch(const std::string& file, double rtol) {
    auto f = load(file);
    const auto& c = f.at("config");
    REQUIRE(c.size() == 6);
    const rn::resnet_config config{.depth = static_cast<int>(c[0]),
                                   .in_channels = static_cast<int>(c[1]),
                                   .image_size = static_cast<int>(c[2]),
                                   .classes = static_cast<int>(c[3]),
                                   .base_width = static_cast<int>(c[4])};
    const int batch = static_cast<int>(c[5]);
    rn::basic_resnet<T> net(config, batch);
    REQUIRE(f.at("params").size() == net.parameter_count());
    REQUIRE(f.at("grad").size() == net.trainable_count());
    std::vector<T> params(f.at("params").begin(), f.at("params").end());
    std::vector<T> images(f.at("images").begin(), f.at("images").end());
    std::vector<std::int32_t> labels(f.at("labels").begin(), f.at("labels").end());
    std::vector<T> grad(params.size());

    const T loss = net.train_step(params, images.data(), labels.data(), batch, grad);
    compare("loss", &loss, f.at("loss"), rtol);
    compare("grad", grad.data(), f.at("grad"), rtol);
    compare("running statistics", params.data() + net.trainable_count(), f.at("running"), rtol);
    std::vector<T> logits(static_cast<std::size_t>(batch * config.classes));
    net.predict(params, images.data(), batch, logits.data());
    compare("eval logits", logits.data(), f.at("eval_logits"), rtol);
    CHECK(rn::resnet(rn::resnet_config{}, 1).trainable_count() == f.at("resnet20_trainable").at(0));
}

}  // namespace

TEST_CASE("PyTorch: depth 8, width 4, 2 images 3x8x8, 10 classes") {
    SUBCASE("double") { check_against_torch<double>("resnet8_w4_3x8x8.txt", 1e-8); }
    SUBCASE("float") { check_against_torch<float>("resnet8_w4_3x8x8.txt", 1e-4); }
}

TEST_CASE("PyTorch: depth 14, width 2, 3 images 1x7x7 (odd sizes), 5 classes") {
    SUBCASE("double") { check_against_torch<double>("resnet14_w2_1x7x7.txt", 1e-8); }
    SUBCASE("float") { check_against_torch<float>("resnet14_w2_1x7x7.txt", 1e-4); }
}
