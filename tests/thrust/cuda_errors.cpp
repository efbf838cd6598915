// CUDA failures as exceptions (swarmsgd/cuda/error.hpp, device.hpp), checked on any machine
// with nvcc, GPU or not: cuda_error carries the runtime's name and text of the error;
// probe_cuda_device() explains why no GPU can be used (never throws); require_cuda_device()
// throws that explanation as a cuda_error, or returns the device when there is one; a failing
// runtime call (an absurd allocation) becomes a cuda_error.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <string>
#include <swarmsgd/cuda/cuda.hpp>

namespace {
int failures = 0;
void expect(bool ok, const char* what) {
    if (!ok) {
        std::printf("FAILED: %s\n", what);
        ++failures;
    }
}
bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}
}  // namespace

int main() {
    const swarmsgd::cuda_error e(cudaErrorMemoryAllocation, "swarmsgd: test");
    const std::string text = e.what();
    expect(contains(text, "swarmsgd: test"), "cuda_error names what was done");
    expect(contains(text, cudaGetErrorName(cudaErrorMemoryAllocation)), "and the error's name");
    expect(contains(text, cudaGetErrorString(cudaErrorMemoryAllocation)), "and its text");
    expect(e.status() == cudaErrorMemoryAllocation, "status()");
    const swarmsgd::device_error& base = e;  // caught as device_error and swarmsgd::error
    expect(contains(base.what(), "test"), "a device_error");

    const auto probe = swarmsgd::probe_cuda_device();
    if (probe.available) {
        std::printf("device %d: %s\n", probe.device, probe.name.c_str());
        expect(probe.reason.empty(), "no reason when a device is found");
        expect(swarmsgd::require_cuda_device().name == probe.name, "require_cuda_device()");
        try {  // a runtime failure becomes a cuda_error naming the call
            swarmsgd::system_buffer<float, thrust::cuda::tag> huge(std::size_t{1} << 60);
            expect(false, "an exabyte allocation throws");
        } catch (const swarmsgd::device_error& err) {
            std::printf("allocation: %s\n", err.what());
            expect(contains(err.what(), "swarmsgd"), "the allocation error says what failed");
        }
    } else {
        std::printf("no GPU: %s\n", probe.reason.c_str());
        expect(!probe.reason.empty(), "a reason when no device is usable");
        try {
            (void)swarmsgd::require_cuda_device();
            expect(false, "require_cuda_device() throws without a device");
        } catch (const swarmsgd::cuda_error& err) {
            expect(contains(err.what(), probe.reason), "the error carries the reason");
        }
    }
    std::printf("cuda_errors: %s\n", failures == 0 ? "PASSED" : "FAILED");
    return failures == 0 ? 0 : 1;
}
