// Training throughput of the ResNet example (examples/resnet/resnet.hpp): images per second of
// train_step + an SGD-with-momentum update, on random CIFAR-shaped data, for each thread count.
// bench_resnet_throughput.py runs PyTorch on the same architecture in the same run and prints
// the ratio; this program alone prints only our figures:
//     threads=<t> img_s=<images per second> step_ms=<ms per step> cpu_ms=<CPU ms per step>
//     loss=<last loss> params=<trainable parameters>
//
// Usage: bench_resnet_throughput [--threads 1,2] [--batch 128] [--depth 20] [--size 32]
//                                [--channels 3] [--steps 20] [--warmup 3]
#include <resnet.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>

namespace rn = swarmsgd::examples::resnet;

namespace {

struct options {
    std::vector<int> threads = {1, 2};
    int batch = 128;
    int depth = 20;
    int size = 32;
    int channels = 3;
    int steps = 20;
    int warmup = 3;
};

[[noreturn]] void usage(const char* bad) {
    std::fprintf(stderr,
                 "bench_resnet_throughput: bad argument '%s'\nusage: bench_resnet_throughput "
                 "[--threads 1,2] [--batch 128] [--depth 20] [--size 32] [--channels 3] "
                 "[--steps 20] [--warmup 3]\n",
                 bad);
    std::exit(2);
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (i + 1 >= argc) usage(argv[i]);
        const char* value = argv[++i];
        const auto number = [&] {
            char* end = nullptr;
            const long v = std::strtol(value, &end, 10);
            if (end == value || *end != '\0' || v < 1 || v > 1000000) usage(value);
            return static_cast<int>(v);
        };
        if (arg == "--threads") {
            o.threads.clear();
            std::stringstream list(value);
            for (std::string item; std::getline(list, item, ',');) {
                value = item.c_str();
                o.threads.push_back(number());
            }
        } else if (arg == "--batch") {
            o.batch = number();
        } else if (arg == "--depth") {
            o.depth = number();
        } else if (arg == "--size") {
            o.size = number();
        } else if (arg == "--channels") {
            o.channels = number();
        } else if (arg == "--steps") {
            o.steps = number();
        } else if (arg == "--warmup") {
            o.warmup = number();
        } else {
            usage(argv[i - 1]);
        }
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    const rn::resnet_config config{.depth = o.depth,
                                   .in_channels = o.channels,
                                   .image_size = o.size,
                                   .classes = 10,
                                   .base_width = 16};
    swarmsgd::rng gen(1, 0);
    std::vector<float> images(static_cast<std::size_t>(o.batch) * o.channels * o.size * o.size);
    for (auto& x : images) x = static_cast<float>(2.0 * gen.uniform01() - 1.0);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(o.batch));
    for (auto& y : labels) y = static_cast<std::int32_t>(gen.uniform(10));

    for (const int t : o.threads) {
        rn::resnet net(config, o.batch);
        net.set_threads(t);
        std::vector<float> params(net.parameter_count()), grad(params.size()),
            velocity(params.size(), 0.0F);
        net.initialize(params, 1);
        const std::size_t trainable = net.trainable_count();
        float loss = 0;
        const auto step = [&] {
            loss = net.train_step(params, images.data(), labels.data(), o.batch, grad);
            net.add_weight_decay(params, grad, 5e-4F);
            for (std::size_t i = 0; i < trainable; ++i) {
                velocity[i] = 0.9F * velocity[i] + grad[i];
                params[i] -= 0.01F * velocity[i];
            }
        };
        for (int i = 0; i < o.warmup; ++i) step();
        const auto start = std::chrono::steady_clock::now();
        const std::clock_t cpu_start = std::clock();
        for (int i = 0; i < o.steps; ++i) step();
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double cpu_seconds = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
        // cpu_ms: process CPU time per step (all threads), a hint of how loaded the machine was
        std::printf("threads=%d img_s=%.1f step_ms=%.2f cpu_ms=%.2f loss=%.4f params=%zu\n",
                    net.threads(), o.steps * o.batch / seconds, 1e3 * seconds / o.steps,
                    1e3 * cpu_seconds / o.steps, static_cast<double>(loss), trainable);
        std::fflush(stdout);
    }
    return 0;
}
