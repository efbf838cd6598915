// main() of the CUDA test programs (compiled by nvcc): without a usable GPU the program says why
// and exits with 77, which CTest reports as skipped (SKIP_RETURN_CODE), never as passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <swarmsgd/cuda/device.hpp>

int main(int argc, char** argv) {
    const auto probe = swarmsgd::probe_cuda_device();
    if (!probe.available) {
        std::printf("SKIPPED: this test needs a CUDA GPU and found none: %s\n",
                    probe.reason.c_str());
        return 77;
    }
    std::printf("CUDA device %d: %s (%d visible)\n", probe.device, probe.name.c_str(), probe.count);
    doctest::Context context(argc, argv);
    return context.run();
}
