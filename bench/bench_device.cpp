/// \file bench_device.cpp
/// Throughput of the Thrust back end (swarmsgd/thrust.hpp) in its memory system: the node's
/// averaging step and every quantizer's encode and decode, on float models of 2^20 .. 2^28
/// elements (2^20 .. 2^24 on the CPU systems; capped by free memory), against a copy of the
/// same buffer within the system measured in the same run: a device-to-device cudaMemcpy on a
/// GPU, std::memcpy on the CPU systems (CPP, OMP). See docs/thrust.md.
///
/// Built twice from this file: bench_device (host compiler, THRUST_DEVICE_SYSTEM_OMP, or CPP
/// without OpenMP; it also runs the CPP system) and bench_device_cuda (nvcc, CUDA system), when
/// nvcc is found. Usage: bench_device [--sizes=20,22,24] [--seconds=0.2] [--only=<quantizer>]
///
/// Operations (GB/s = 4 n bytes of fp32 model per second, median over repetitions):
///   copy      the baseline: n floats copied within the system
///   average   x += (r - o) / 2, the node's averaging step (add_half_difference)
///   encode    codec.encode(values, payload) in place (the reconstruction is re-encoded: same
///             code path and cost), payload left in the system
///   decode    codec.decode(payload, reference, out, payload_in_system): the payload validated
///             from host memory (as a received message is) and decoded from its copy already in
///             the system: the decode's own work, the figure the device-copy goal is about
///   decode_from_host  codec.decode(payload, reference, out): the whole receive, on a GPU
///             including the payload's upload from host memory
///   upload    that upload alone: the payload's bytes from host memory into the system (GB/s
///             still counted as 4 n bytes of model, so that it compares with decode)
/// Output: one `result` line per size, op and quantizer, then for the largest size
///   summary device=<name> op=<op> quantizer=<q> vs_copy=<ratio>
/// with ratio = copy time / op time (same n, same run); on a GPU also `transfer` lines and
///   summary device=<name> op=upload_from_block vs_pinned_cudaMemcpy=<ratio>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <swarmsgd/quantizers/bf16.hpp>
#include <swarmsgd/quantizers/fp16.hpp>
#include <swarmsgd/quantizers/identity.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/quantizers/min_max.hpp>
#include <swarmsgd/quantizers/qsgd.hpp>
#include <swarmsgd/thrust.hpp>
#include <vector>
#if defined(__CUDACC__)
#include <swarmsgd/cuda/cuda.hpp>
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace swarmsgd;

namespace {

struct options {
    std::vector<unsigned> sizes;
    double seconds = 0.2;  // time per measurement (at least 3 repetitions)
    std::string only;      // run only this quantizer (and the baselines)
};

/// Median wall time of f() (after one warm-up call), repeated for about `seconds`.
template <class S, class F>
double median_seconds(F&& f, double seconds) {
    using clock = std::chrono::steady_clock;
    f();
    detail::system_ops<S>::synchronize();
    std::vector<double> times;
    const auto start = clock::now();
    while (times.size() < 3 ||
           (std::chrono::duration<double>(clock::now() - start).count() < seconds &&
            times.size() < 1000)) {
        const auto t0 = clock::now();
        f();
        detail::system_ops<S>::synchronize();
        times.push_back(std::chrono::duration<double>(clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

struct measured {
    std::string op, quantizer;
    std::size_t n;
    double seconds, copy_seconds;
};

[[maybe_unused]] std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    return "unknown CPU";
}

[[maybe_unused]] std::string word(std::string s) {
    for (auto& c : s)
        if (c == ' ' || c == '=') c = '_';
    return s;
}

/// Encode/decode of quantizer q at size n in system S, with the copy baseline `copy_s`.
template <class S, class Q>
void bench_quantizer(const char* label, const Q& q, std::size_t n, const std::vector<float>& x,
                     const std::vector<float>& y, double copy_s, const options& o,
                     std::vector<measured>& out) {
    if (!o.only.empty() && o.only != label) return;
    system_codec<Q, S> codec;
    system_buffer<float, S> values(n), reference(n), decoded(n);
    copy_to_system<float, S>(std::span<const float>(x), values.span());
    copy_to_system<float, S>(std::span<const float>(y), reference.span());
    system_buffer<std::byte, S> payload(q.max_encoded_size(n));
    rng random(1);
    const std::size_t bytes = codec.encode(q, values.span(), payload.span(), random);
    std::vector<std::byte> host_payload(bytes);
    copy_to_host<std::byte, S>(system_span<const std::byte, S>(payload.data(), bytes),
                               std::span<std::byte>(host_payload));
    // The check that the measured decode is a successful one.
    const auto result =
        codec.decode(q, host_payload, std::as_const(reference).span(), decoded.span());
    if (!result.ok())
        std::printf("warning: %s decode at n = %zu failed in %zu elements\n", label, n,
                    result.failed_elements());
    const double enc = median_seconds<S>(
        [&] { (void)codec.encode(q, values.span(), payload.span(), random); }, o.seconds);
    // The payload's bytes in the system too, as after an upload: decode from there measures
    // the decode itself (host validation included); decode_from_host is the whole receive.
    system_buffer<std::byte, S> in_system(bytes);
    detail::system_ops<S>::to_system(host_payload.data(), bytes, in_system.data());
    const double dec = median_seconds<S>(
        [&] {
            (void)codec.decode(q, host_payload, std::as_const(reference).span(), decoded.span(),
                               in_system.data());
        },
        o.seconds);
    const double dec_host = median_seconds<S>(
        [&] {
            (void)codec.decode(q, host_payload, std::as_const(reference).span(), decoded.span());
        },
        o.seconds);
    system_buffer<std::byte, S> uploaded(bytes);
    const double upl = median_seconds<S>(
        [&] { detail::system_ops<S>::to_system(host_payload.data(), bytes, uploaded.data()); },
        o.seconds);
    out.push_back({"encode", label, n, enc, copy_s});
    out.push_back({"decode", label, n, dec, copy_s});
    out.push_back({"decode_from_host", label, n, dec_host, copy_s});
    out.push_back({"upload", label, n, upl, copy_s});
}

#if defined(__CUDACC__)
/// Host-to-GPU bandwidth of the ways a received payload can travel (real bytes per second, no
/// model scaling): cudaMemcpy from pageable memory (the driver stages it), from pinned memory
/// (the DMA alone), the library's upload from pageable memory (system_ops<cuda>::to_system:
/// copy into its pinned staging buffer, then DMA) and from a page-locked message block (one
/// DMA: how a CUDA node's received messages travel), with the block's ratio to the pinned
/// cudaMemcpy measured again right after it.
void bench_transfers(const std::string& device, std::size_t bytes, double seconds) {
    using S = thrust::cuda::tag;
    std::vector<std::byte> pageable(bytes, std::byte{1});
    pinned_buffer pinned(bytes);
    std::memset(pinned.data(), 1, bytes);
    system_buffer<std::byte, S> target(bytes);
    const auto report = [&](const char* kind, double s) {
        std::printf("transfer device=%s bytes=%zu kind=%s GBps=%.2f\n", device.c_str(), bytes, kind,
                    double(bytes) / s * 1e-9);
    };
    report("pageable_cudaMemcpy",
           median_seconds<S>(
               [&] {
                   detail::cuda_check(
                       cudaMemcpy(target.data(), pageable.data(), bytes, cudaMemcpyHostToDevice),
                       "bench: pageable copy");
               },
               seconds));
    report("pinned_cudaMemcpy",
           median_seconds<S>(
               [&] {
                   detail::cuda_check(
                       cudaMemcpy(target.data(), pinned.data(), bytes, cudaMemcpyHostToDevice),
                       "bench: pinned copy");
               },
               seconds));
    const double staged = median_seconds<S>(
        [&] { detail::system_ops<S>::to_system(pageable.data(), bytes, target.data()); }, seconds);
    report("swarmsgd_upload", staged);
    // A message received into a page-locked block of a node's pool (what a CUDA swarm_node
    // receives into): to_system sees page-locked memory and copies it with one DMA.
    message_block_pool<pinned_block_allocator> pool;
    const message_block block = pool.acquire(bytes);
    std::memset(block.data(), 1, bytes);
    const double from_block = median_seconds<S>(
        [&] { detail::system_ops<S>::to_system(block.data(), bytes, target.data()); }, seconds);
    report("swarmsgd_upload_from_block", from_block);
    const double pinned_copy = median_seconds<S>(
        [&] {
            detail::cuda_check(
                cudaMemcpy(target.data(), pinned.data(), bytes, cudaMemcpyHostToDevice),
                "bench: pinned copy");
        },
        seconds);
    std::printf(
        "summary device=%s op=upload_from_block vs_pinned_cudaMemcpy=%.3f "
        "(goal >= 0.8; pageable upload %.3f)\n",
        device.c_str(), pinned_copy / from_block, pinned_copy / staged);
}
#endif

template <class S>
void run_system(const std::string& device, const options& o) {
    std::vector<measured> results;
    for (unsigned lg : o.sizes) {
        const std::size_t n = std::size_t{1} << lg;
        std::vector<float> x(n), y(n);
        rng r(7);
        for (std::size_t k = 0; k < n; ++k) {
            x[k] = static_cast<float>(0.05 * (2 * r.uniform01() - 1));
            y[k] = x[k] + static_cast<float>(1e-3 * (2 * r.uniform01() - 1));
        }
        system_buffer<float, S> a(n), b(n), c(n);
        copy_to_system<float, S>(std::span<const float>(x), a.span());
        copy_to_system<float, S>(std::span<const float>(y), b.span());
        copy_to_system<float, S>(std::span<const float>(x), c.span());
        const double copy_s = median_seconds<S>(
            [&] { detail::system_ops<S>::within(a.data(), n, c.data()); }, o.seconds);
        results.push_back({"copy", "none", n, copy_s, copy_s});
        system_span<float, S> model(c.data(), n);
        const double avg_s = median_seconds<S>(
            [&] { add_half_difference(model, std::as_const(b).span(), std::as_const(a).span()); },
            o.seconds);
        results.push_back({"average", "none", n, avg_s, copy_s});

        lattice_options lo;
        lo.initial_distance = 2e-3;  // radius 4e-3 against differences up to 1e-3
        lattice_options lo4 = lo;
        lo4.bits = 4;
        bench_quantizer<S>("identity", identity_quantizer<float>{}, n, x, y, copy_s, o, results);
        bench_quantizer<S>("fp16", fp16_quantizer<float>{}, n, x, y, copy_s, o, results);
        bench_quantizer<S>("bf16", bf16_quantizer<float>{}, n, x, y, copy_s, o, results);
        bench_quantizer<S>("min_max8", min_max_quantizer<float>{}, n, x, y, copy_s, o, results);
        bench_quantizer<S>("min_max4", min_max_quantizer<float>({4, 512, false}), n, x, y, copy_s,
                           o, results);
        bench_quantizer<S>("qsgd8", qsgd_quantizer<float>{}, n, x, y, copy_s, o, results);
        bench_quantizer<S>("lattice8", lattice_quantizer<float>(lo), n, x, y, copy_s, o, results);
        bench_quantizer<S>("lattice4", lattice_quantizer<float>(lo4), n, x, y, copy_s, o, results);
        for (const auto& m : results)
            if (m.n == n)
                std::printf(
                    "result device=%s n=%zu op=%s quantizer=%s GBps=%.2f copy_GBps=%.2f "
                    "vs_copy=%.3f\n",
                    device.c_str(), n, m.op.c_str(), m.quantizer.c_str(),
                    4.0 * double(n) / m.seconds * 1e-9, 4.0 * double(n) / m.copy_seconds * 1e-9,
                    m.copy_seconds / m.seconds);
        std::fflush(stdout);
    }
    const std::size_t largest = std::size_t{1} << o.sizes.back();
    for (const auto& m : results)
        if (m.n == largest && m.op != "copy")
            std::printf("summary device=%s op=%s quantizer=%s vs_copy=%.3f\n", device.c_str(),
                        m.op.c_str(), m.quantizer.c_str(), m.copy_seconds / m.seconds);
}

/// Bytes of memory free for the buffers (7 model-sized float buffers at most at a time).
std::size_t available_bytes() {
#if defined(__CUDACC__)
    std::size_t free_bytes = 0, total = 0;
    if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) return 0;
    return free_bytes;
#else
    std::ifstream in("/proc/meminfo");
    std::string key;
    std::size_t kb = 0;
    std::string unit;
    while (in >> key >> kb >> unit)
        if (key == "MemAvailable:") return kb * 1024;
    return std::size_t{1} << 31;
#endif
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.rfind("--sizes=", 0) == 0) {
            std::string list = a.substr(8);
            std::size_t at = 0;
            while (at < list.size()) {
                const std::size_t comma = list.find(',', at);
                o.sizes.push_back(unsigned(std::stoul(list.substr(at, comma - at))));
                at = comma == std::string::npos ? list.size() : comma + 1;
            }
        } else if (a.rfind("--seconds=", 0) == 0) {
            o.seconds = std::stod(a.substr(10));
        } else if (a.rfind("--only=", 0) == 0) {
            o.only = a.substr(7);
        } else {
            std::fprintf(stderr, "usage: %s [--sizes=20,22,24] [--seconds=0.2] [--only=lattice8]\n",
                         argv[0]);
            return 2;
        }
    }
#if defined(__CUDACC__)
    const auto probe = probe_cuda_device();
    if (!probe.available) {
        std::printf("bench_device_cuda: no usable CUDA device: %s\n", probe.reason.c_str());
        return 77;
    }
    const std::string device = "cuda:" + word(probe.name);
    const unsigned max_lg = 28;
#else
    const unsigned max_lg = 24;
#endif
    if (o.sizes.empty())
        for (unsigned lg = 20; lg <= max_lg; lg += 2) o.sizes.push_back(lg);
    // 7 float buffers of n elements live at once (x, y, three system buffers, values, ...).
    while (o.sizes.size() > 1 && (std::size_t{7} << o.sizes.back()) * 4 > available_bytes())
        o.sizes.pop_back();
    std::sort(o.sizes.begin(), o.sizes.end());
#if defined(__CUDACC__)
    std::printf("bench_device: CUDA device %s, sizes 2^%u..2^%u\n", probe.name.c_str(),
                o.sizes.front(), o.sizes.back());
    run_system<thrust::cuda::tag>(device, o);
    bench_transfers(device, std::size_t{1} << o.sizes.back(), o.seconds);
#else
    const std::string cpu = cpu_model();
#if defined(_OPENMP)
    const int threads = omp_get_max_threads();
    std::printf(
        "bench_device: %s, OMP system with %d threads (the copy baseline is one memcpy), "
        "and the CPP system; sizes 2^%u..2^%u\n",
        cpu.c_str(), threads, o.sizes.front(), o.sizes.back());
    run_system<thrust::omp::tag>("omp-" + std::to_string(threads) + "threads", o);
#else
    std::printf("bench_device: %s, CPP system; sizes 2^%u..2^%u\n", cpu.c_str(), o.sizes.front(),
                o.sizes.back());
#endif
    run_system<thrust::cpp::tag>("cpp", o);
#endif
    return 0;
}
