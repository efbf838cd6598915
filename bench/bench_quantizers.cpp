/// \file bench_quantizers.cpp
/// Encode and decode throughput of every quantizer of swarmsgd, one thread, on float models of
/// 2^16 .. 2^26 elements, against a memcpy of the same buffer measured in the same run; wire
/// bytes; and the error of the AVERAGED model on a pair of models at a realistic distance.
/// See docs/quantizers.md (results, how to read them) and shared/design/performance.md.
///
/// Quantizers (summary name, bits):
///   identity 32 | fp16 16 | bf16 16 | min_max 8, 4, 2 (nearest rounding, bucket 512) |
///   min_max_stochastic 8 | qsgd 8 (s = 127), 4 (s = 7) (bucket 512) |
///   lattice 8, 4, 16 (nearest rounding, checksum bucket 256) | lattice_stochastic 8
///
/// The model pair (make_dataset below; the same recipe at every size, seed fixed):
///   x_k = 0.05 g_k, except with probability 1/100 (a "large entry": biases, norm scales)
///         x_k = 0.5 g_k;                       g ~ N(0, 1) i.i.d.
///   y_k = float(x_k + delta_k),  delta_k = s h_k,  h ~ N(0, 1) i.i.d. independent of g,
///         s chosen so that ||delta||_2 = 1e-2 ||x||_2 exactly (before rounding y to float).
///   x is the sender's model, y the receiver's own model (the decode reference).
///
/// Benchmarks (argument = n floats; every one SetBytesProcessed(n * 4): GB/s of fp32 model):
///   BM_memcpy/n            std::memcpy of x into a work buffer (the baseline)
///   BM_encode_<q>/n        q.encode(work, payload), in place: encode overwrites its input with
///                          the reconstruction D(Q(x)), so after one untimed encode of x every
///                          timed call re-encodes D(Q(x)) (same code path and cost, see
///                          bench_encode)
///   BM_decode_<q>/n        q.decode(payload, y, out): the receiver's decode against its own
///                          model, out of place (as swarm_node does)
/// The buffers of each size are allocated and filled once, before the benchmarks run.
/// The lattice quantizers encode with the step a running node would use at this distance: the
/// distance estimate D is the steady state of observe_distance(max_k |x_k - y_k|) repeated
/// (decay 0.9 from the default initial estimate 1.0; the bench checks it reached D = that
/// distance), so eps = 2 * 2 * D / (2^b - 1), decoding radius 2 D.
///
/// Before the benchmarks, for every quantizer and size: encode x, decode against y, check that
/// the decoded values equal the sender's reconstruction bit for bit (outside failed buckets),
/// count failed lattice buckets, and at n = 2^20 compute the error of the averaged model:
///   avg_rel_error = ||(D(Q(x)) + y)/2 - (x + y)/2||_2 / ||(x + y)/2||_2      (in double)
/// Failed lattice buckets (there should be none) are counted and, as swarm_node would, taken at
/// full precision (zero error there, fallback-section bytes added to the wire bytes).
///
/// After the runs it prints one line per quantizer, bits and n:
///   summary quantizer=<name> bits=<b> n=<floats> encode_vs_memcpy=<ratio>
///           decode_vs_memcpy=<ratio> bytes_vs_fp32=<ratio> avg_rel_error=<e> [failed=<k>]
/// ratio = throughput / memcpy throughput = memcpy time / encode (decode) time, medians over
/// repetitions of wall-clock times, same n and same run; bytes_vs_fp32 = (envelope (24 bytes)
/// + payload with every header, parameter, metadata and checksum byte) / (4 n); failed (lattice
/// only) = failed buckets of the check decode at that n, of the 2^20 error decode and of every
/// timed decode at that n.
/// Then `summary_cpu` lines: the same fields with the ratios on thread CPU time (robust when
/// other processes share the cores: descheduled time is not counted), `detail` lines: the
/// absolute GB/s on both clocks, and `error` lines: the error at 2^20 in other units. Counters of
/// every benchmark: wire_bytes (envelope + payload; 4n for memcpy) and failed (lattice buckets that
/// failed to decode, summed over the iterations).
///
/// Options: --sizes=16,20,22,24,26 (log2 of the model sizes, 4..28; default 16,20,22,24 and 26
/// when /proc/meminfo says enough memory is available, about 1.8 GiB) and the google benchmark
/// flags. Recommended on shared machines (benchmark 1.7 takes --benchmark_min_time in seconds
/// without a suffix):
///   bench_quantizers --benchmark_min_time=0.2 --benchmark_repetitions=3
///                    --benchmark_enable_random_interleaving=true
/// (2.5 to 4 minutes on a shared 2-core machine, all five sizes; --sizes=16,20,24 for less).
/// Exit status 1 when a decode differed from the sender's reconstruction.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#if __has_include(<unistd.h>)
#include <unistd.h>
#define SWARMSGD_BENCH_HAVE_ISATTY 1
#endif

#include <swarmsgd/message.hpp>
#include <swarmsgd/quantizer.hpp>
#include <swarmsgd/quantizers/bf16.hpp>
#include <swarmsgd/quantizers/fp16.hpp>
#include <swarmsgd/quantizers/identity.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/quantizers/min_max.hpp>
#include <swarmsgd/quantizers/qsgd.hpp>
#include <swarmsgd/random.hpp>

#include "collecting_reporter.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

/// Model size of the error measurement.
constexpr std::size_t error_n = std::size_t{1} << 20;
/// ||x - y|| / ||x|| of the model pair.
constexpr double relative_distance = 1e-2;

// ------------------------------------------------------------------------------------------
// The model pair and the buffers of one size
// ------------------------------------------------------------------------------------------

/// Portable standard normals: SplitMix64 counter stream, Box-Muller in double (no
/// std::normal_distribution, whose output differs between standard libraries).
class normal_source {
public:
    explicit normal_source(std::uint64_t seed) : state_(seed) {}
    [[nodiscard]] double uniform() {  // in [0, 1), 53 bits
        return static_cast<double>(swarmsgd::splitmix64(state_) >> 11) * 0x1.0p-53;
    }
    [[nodiscard]] double normal() {
        if (have_spare_) {
            have_spare_ = false;
            return spare_;
        }
        const double u1 = 1.0 - uniform();  // (0, 1]
        const double u2 = uniform();
        const double r = std::sqrt(-2.0 * std::log(u1));
        constexpr double two_pi = 6.283185307179586476925286766559;
        spare_ = r * std::sin(two_pi * u2);
        have_spare_ = true;
        return r * std::cos(two_pi * u2);
    }

private:
    std::uint64_t state_;
    double spare_ = 0;
    bool have_spare_ = false;
};

/// Everything the benchmarks of one size use: the pair and the work buffers.
struct dataset {
    std::size_t n = 0;
    std::vector<float> x;     // sender's model
    std::vector<float> y;     // receiver's model (decode reference)
    std::vector<float> work;  // encode input/output (the reconstruction)
    std::vector<float> out;   // decode output
    std::vector<std::byte> payload;
    double linf = 0;    // max_k |x_k - y_k|
    double rel_l2 = 0;  // ||x - y|| / ||x|| (after rounding y to float)
};

std::unique_ptr<dataset> make_dataset(std::size_t n) {
    auto d = std::make_unique<dataset>();
    d->n = n;
    d->x.resize(n);
    d->y.resize(n);
    normal_source model(0x5EED0001u), noise(0x5EED0002u);
    std::vector<double> delta(n);
    double xx = 0, dd = 0;
    for (std::size_t k = 0; k < n; ++k) {
        const bool large = model.uniform() < 0.01;
        const double g = model.normal();
        d->x[k] = static_cast<float>((large ? 0.5 : 0.05) * g);
        delta[k] = noise.normal();
        xx += double(d->x[k]) * double(d->x[k]);
        dd += delta[k] * delta[k];
    }
    const double s = relative_distance * std::sqrt(xx / dd);
    double diff2 = 0, linf = 0;
    for (std::size_t k = 0; k < n; ++k) {
        d->y[k] = static_cast<float>(double(d->x[k]) + s * delta[k]);
        const double e = double(d->y[k]) - double(d->x[k]);
        diff2 += e * e;
        linf = std::max(linf, std::fabs(e));
    }
    d->linf = linf;
    d->rel_l2 = std::sqrt(diff2 / xx);
    d->work.assign(n, 0.0f);
    d->out.assign(n, 0.0f);
    d->payload.assign(swarmsgd::payload_header_size + 64 + n * sizeof(float), std::byte{0});
    return d;
}

std::map<std::size_t, std::unique_ptr<dataset>>& datasets() {
    static std::map<std::size_t, std::unique_ptr<dataset>> all;
    return all;
}

dataset& data_for(std::size_t n) {
    auto& slot = datasets()[n];
    if (!slot) slot = make_dataset(n);
    return *slot;
}

// ------------------------------------------------------------------------------------------
// The quantizers, type-erased into what the benchmarks and the checks need
// ------------------------------------------------------------------------------------------

struct check_result {
    std::size_t payload_bytes = 0;
    std::size_t failed_buckets = 0;
    std::size_t failed_elements = 0;
    std::size_t fallback_bytes = 0;  // what swarm_node would add for the failed buckets
    std::size_t mismatches = 0;      // decoded != sender's reconstruction (outside failures)
    double avg_rel_error = 0;        // ||(D + y)/2 - (x + y)/2|| / ||(x + y)/2||
    double model_rel_error = 0;      // ||D - x|| / ||x||
    double error_vs_distance = 0;    // ||D - x|| / ||x - y||
    double max_abs_error = 0;        // max_k |D_k - x_k|
};

struct quantizer_entry {
    std::string name;  // summary name
    unsigned bits = 0;
    std::string label;  // benchmark name suffix
    bool can_fail = false;
    std::function<void(benchmark::State&)> encode_bench;
    std::function<void(benchmark::State&)> decode_bench;
    std::function<check_result(dataset&)> check;
    std::function<std::string(const dataset&)> describe;  // parameters used at this size
};

/// Bytes of the fallback section (plus the 8-byte length of the quantized part) swarm_node
/// appends to a reply for these failed ranges (detail/fallback.hpp).
std::size_t fallback_bytes_of(const swarmsgd::decode_result& r) {
    if (r.ok()) return 0;
    return 4 + 17 * r.failed.size() + r.failed_elements() * sizeof(float) + 8;
}

/// Counters every benchmark sets (one table header): wire bytes (envelope + payload) and failed
/// lattice buckets (summed over the iterations).
void set_counters(benchmark::State& state, std::size_t n, double wire_bytes, double failed) {
    state.counters["wire_bytes"] = wire_bytes;
    state.counters["failed"] = failed;
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(n * sizeof(float)));
}

/// Encode in place, again and again: encode leaves the reconstruction in its input, so the
/// first (untimed) encode turns the work buffer into D(Q(x)) and every timed one re-encodes
/// that. The kernels are branch-free and take the same path for x and for D(Q(x)) (same
/// ranges, same lattice indices), so the cost is that of encoding x; refreshing the buffer
/// from x before every call instead (manual timing around the encode only) gave the same
/// ratios within the noise, see docs/quantizers.md.
template <class Make>
void bench_encode(benchmark::State& state, const Make& make) {
    dataset& d = data_for(static_cast<std::size_t>(state.range(0)));
    const auto q = make(d);
    swarmsgd::rng random(42);
    const std::span<float> work(d.work);
    const std::span<std::byte> payload(d.payload);
    std::memcpy(d.work.data(), d.x.data(), d.n * sizeof(float));
    std::size_t bytes = q.encode(work, payload, random);
    for (auto _ : state) {
        bytes = q.encode(work, payload, random);
        benchmark::DoNotOptimize(bytes);
        benchmark::ClobberMemory();
    }
    set_counters(state, d.n, double(swarmsgd::envelope_size + bytes), 0);
}

template <class Make>
void bench_decode(benchmark::State& state, const Make& make) {
    dataset& d = data_for(static_cast<std::size_t>(state.range(0)));
    const auto q = make(d);
    swarmsgd::rng random(42);
    std::memcpy(d.work.data(), d.x.data(), d.n * sizeof(float));
    const std::size_t bytes =
        q.encode(std::span<float>(d.work), std::span<std::byte>(d.payload), random);
    const std::span<const std::byte> payload(d.payload.data(), bytes);
    const std::span<const float> reference(d.y);
    const std::span<float> out(d.out);
    std::size_t failed = 0;
    for (auto _ : state) {
        const swarmsgd::decode_result r = q.decode(payload, reference, out);
        failed += r.failed.size();
        benchmark::DoNotOptimize(d.out.data());
        benchmark::ClobberMemory();
    }
    set_counters(state, d.n, double(swarmsgd::envelope_size + bytes), double(failed));
}

template <class Make>
check_result check_quantizer(dataset& d, const Make& make) {
    const auto q = make(d);
    swarmsgd::rng random(7);
    check_result c;
    std::memcpy(d.work.data(), d.x.data(), d.n * sizeof(float));
    c.payload_bytes = q.encode(std::span<float>(d.work), std::span<std::byte>(d.payload), random);
    if (c.payload_bytes != q.max_encoded_size(d.n))
        ++c.mismatches;  // the wire size is documented as exact
    std::fill(d.out.begin(), d.out.end(), 0.0f);
    const swarmsgd::decode_result r =
        q.decode(std::span<const std::byte>(d.payload.data(), c.payload_bytes),
                 std::span<const float>(d.y), std::span<float>(d.out));
    c.failed_buckets = r.failed.size();
    c.failed_elements = r.failed_elements();
    c.fallback_bytes = fallback_bytes_of(r);
    std::vector<char> failed(r.ok() ? 0 : d.n, 0);
    for (const auto& range : r.failed)
        for (std::size_t k = range.begin; k < range.end; ++k) failed[k] = 1;
    double num = 0, den = 0, err2 = 0, xx = 0, dist2 = 0, max_err = 0;
    for (std::size_t k = 0; k < d.n; ++k) {
        // swarm_node takes failed buckets at full precision: the partner's exact value.
        const bool lost = !failed.empty() && failed[k] != 0;
        const double decoded = lost ? double(d.x[k]) : double(d.out[k]);
        if (!lost && std::memcmp(&d.out[k], &d.work[k], sizeof(float)) != 0) ++c.mismatches;
        const double x = d.x[k], y = d.y[k];
        const double e = (decoded + y) / 2 - (x + y) / 2;
        num += e * e;
        den += (x + y) / 2 * ((x + y) / 2);
        err2 += (decoded - x) * (decoded - x);
        xx += x * x;
        dist2 += (x - y) * (x - y);
        max_err = std::max(max_err, std::fabs(decoded - x));
    }
    c.avg_rel_error = std::sqrt(num / den);
    c.model_rel_error = std::sqrt(err2 / xx);
    c.error_vs_distance = std::sqrt(err2 / dist2);
    c.max_abs_error = max_err;
    return c;
}

template <class Make>
quantizer_entry entry(std::string name, unsigned bits, bool can_fail, Make make,
                      std::function<std::string(const dataset&)> describe) {
    quantizer_entry e;
    e.name = std::move(name);
    e.bits = bits;
    e.label = e.name + "_b" + std::to_string(bits);
    e.can_fail = can_fail;
    e.encode_bench = [make](benchmark::State& s) { bench_encode(s, make); };
    e.decode_bench = [make](benchmark::State& s) { bench_decode(s, make); };
    e.check = [make](dataset& d) { return check_quantizer(d, make); };
    e.describe = std::move(describe);
    return e;
}

/// Number of observe_distance(d) calls a node with default options needs to reach D = d (the
/// steady state when every interaction sees distance d), or -1 if it never does.
int observations_to_steady_state(swarmsgd::lattice_quantizer<float>& q, double d) {
    for (int i = 1; i <= 100000; ++i) {
        q.observe_distance(d);
        if (q.distance_estimate() == d) return i;
    }
    return -1;
}

swarmsgd::lattice_quantizer<float> lattice_for(const dataset& d, unsigned bits, bool stochastic) {
    swarmsgd::lattice_options o;  // bucket 256, safety margin 2, decay 0.9, initial 1.0
    o.bits = bits;
    o.stochastic = stochastic;
    swarmsgd::lattice_quantizer<float> q(o);
    if (observations_to_steady_state(q, d.linf) < 0)
        throw std::runtime_error("lattice distance estimate did not converge");
    return q;
}

std::vector<quantizer_entry> all_quantizers() {
    using namespace swarmsgd;
    const auto none = [](const dataset&) { return std::string(); };
    std::vector<quantizer_entry> v;
    v.push_back(entry(
        "identity", 32, false, [](const dataset&) { return identity_quantizer<float>{}; }, none));
    v.push_back(entry(
        "fp16", 16, false, [](const dataset&) { return fp16_quantizer<float>{}; }, none));
    v.push_back(entry(
        "bf16", 16, false, [](const dataset&) { return bf16_quantizer<float>{}; }, none));
    for (const unsigned b : {8u, 4u, 2u})
        v.push_back(entry(
            "min_max", b, false,
            [b](const dataset&) {
                return min_max_quantizer<float>(min_max_options{b, 512, false});
            },
            [](const dataset&) { return std::string("bucket=512"); }));
    v.push_back(entry(
        "min_max_stochastic", 8, false,
        [](const dataset&) {
            return min_max_quantizer<float>(min_max_options{8, 512, true});
        },
        [](const dataset&) { return std::string("bucket=512"); }));
    for (const unsigned s : {127u, 7u}) {
        const unsigned b = qsgd_quantizer<float>(qsgd_options{s, 512}).code_bits();
        v.push_back(entry(
            "qsgd", b, false,
            [s](const dataset&) {
                return qsgd_quantizer<float>(qsgd_options{s, 512});
            },
            [s](const dataset&) { return "levels=" + std::to_string(s) + " bucket=512"; }));
    }
    const auto lattice_description = [](unsigned b, bool st) {
        return [b, st](const dataset& d) {
            const auto q = lattice_for(d, b, st);
            std::ostringstream os;
            os << "bucket=256 D=" << q.distance_estimate() << " eps=" << q.step()
               << " radius=" << q.radius();
            return os.str();
        };
    };
    for (const unsigned b : {8u, 4u, 16u})
        v.push_back(entry(
            "lattice", b, true, [b](const dataset& d) { return lattice_for(d, b, false); },
            lattice_description(b, false)));
    v.push_back(entry(
        "lattice_stochastic", 8, true, [](const dataset& d) { return lattice_for(d, 8, true); },
        lattice_description(8, true)));
    return v;
}

// ------------------------------------------------------------------------------------------
// Sizes
// ------------------------------------------------------------------------------------------

/// MemAvailable from /proc/meminfo in bytes, or 0 when unknown.
std::size_t available_memory() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    std::size_t value = 0;
    std::string unit;
    while (in >> key >> value) {
        std::getline(in, unit);
        if (key == "MemAvailable:") return value * 1024;
    }
    return 0;
}

/// Bytes the buffers of one size take: x, y, work, out (4 floats each) and a payload of
/// about one float per element.
constexpr std::size_t bytes_for(std::size_t n) { return 5 * n * sizeof(float) + 1024; }

/// Removes --sizes=... from argv (before google benchmark sees it) and returns the sizes;
/// empty when absent. Throws on a malformed list.
std::vector<std::size_t> take_sizes_option(int& argc, char** argv) {
    std::vector<std::size_t> sizes;
    const std::string prefix = "--sizes=";
    int w = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.rfind(prefix, 0) != 0) {
            argv[w++] = argv[i];
            continue;
        }
        std::stringstream list(a.substr(prefix.size()));
        std::string item;
        while (std::getline(list, item, ',')) {
            std::size_t used = 0;
            const unsigned long e = std::stoul(item, &used);
            if (used != item.size() || e < 4 || e > 28)
                throw std::runtime_error("--sizes: '" + item + "' is not a log2 size in 4..28");
            sizes.push_back(std::size_t{1} << e);
        }
    }
    argc = w;
    argv[argc] = nullptr;
    std::sort(sizes.begin(), sizes.end());
    sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
    return sizes;
}

std::string log2_text(std::size_t n) {
    int e = 0;
    while ((std::size_t{1} << e) < n) ++e;
    return "2^" + std::to_string(e);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::size_t> sizes;
    try {
        sizes = take_sizes_option(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_quantizers: %s\n", e.what());
        return 1;
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

    const std::size_t available = available_memory();
    if (sizes.empty()) {
        sizes = {std::size_t{1} << 16, std::size_t{1} << 20, std::size_t{1} << 22,
                 std::size_t{1} << 24};
        std::size_t need = bytes_for(std::size_t{1} << 26);
        for (const std::size_t n : sizes) need += bytes_for(n);
        // Room for the buffers, twice over (the system and other processes need some too).
        if (available == 0 || available >= 2 * need) sizes.push_back(std::size_t{1} << 26);
    }
    std::size_t need = 0;
    for (const std::size_t n : sizes) need += bytes_for(n);
    if (std::find(sizes.begin(), sizes.end(), error_n) == sizes.end()) need += bytes_for(error_n);
    std::printf("config sizes=");
    for (std::size_t i = 0; i < sizes.size(); ++i)
        std::printf("%s%s", i == 0 ? "" : ",", log2_text(sizes[i]).c_str());
    std::printf(" buffers_MiB=%.0f mem_available_MiB=%.0f\n", double(need) / 1048576.0,
                double(available) / 1048576.0);

    // Data, once per size (the error pair at 2^20 too).
    const auto t0 = clock_type::now();
    for (const std::size_t n : sizes) (void)data_for(n);
    (void)data_for(error_n);
    for (const auto& [n, d] : datasets())
        std::printf("pair n=%zu rel_l2_distance=%.4g linf_distance=%.4g\n", n, d->rel_l2, d->linf);

    // Checks and errors, before any timing.
    const std::vector<quantizer_entry> quantizers = all_quantizers();
    std::map<std::pair<std::size_t, std::size_t>, check_result> checks;  // (quantizer, n)
    bool ok = true;
    try {
        for (std::size_t qi = 0; qi < quantizers.size(); ++qi) {
            const auto& q = quantizers[qi];
            for (const auto& [n, d] : datasets()) {
                const check_result c = q.check(*d);
                checks[{qi, n}] = c;
                if (c.mismatches != 0) ok = false;
                std::printf(
                    "check quantizer=%s bits=%u n=%zu payload_bytes=%zu failed_buckets=%zu "
                    "mismatches=%zu %s\n",
                    q.name.c_str(), q.bits, n, c.payload_bytes, c.failed_buckets, c.mismatches,
                    q.describe(*d).c_str());
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_quantizers: check failed: %s\n", e.what());
        return 1;
    }
    std::printf("check decoded_equals_sender_reconstruction=%s (setup %.1f s)\n", ok ? "yes" : "NO",
                std::chrono::duration<double>(clock_type::now() - t0).count());
    std::fflush(stdout);

    // Registration (sizes are known only now).
    const auto apply_sizes = [&](benchmark::internal::Benchmark* b) {
        for (const std::size_t n : sizes) b->Arg(static_cast<std::int64_t>(n));
        b->Unit(benchmark::kMicrosecond);
    };
    apply_sizes(benchmark::RegisterBenchmark("BM_memcpy", [](benchmark::State& state) {
        dataset& d = data_for(static_cast<std::size_t>(state.range(0)));
        for (auto _ : state) {
            std::memcpy(d.work.data(), d.x.data(), d.n * sizeof(float));
            benchmark::DoNotOptimize(d.work.data());
            benchmark::ClobberMemory();
        }
        set_counters(state, d.n, double(d.n * sizeof(float)), 0);
    }));
    for (const auto& q : quantizers) {
        apply_sizes(benchmark::RegisterBenchmark(("BM_encode_" + q.label).c_str(), q.encode_bench));
        apply_sizes(benchmark::RegisterBenchmark(("BM_decode_" + q.label).c_str(), q.decode_bench));
    }

    auto options = benchmark::ConsoleReporter::OO_Tabular;
#ifdef SWARMSGD_BENCH_HAVE_ISATTY
    if (isatty(fileno(stdout)) != 0) options = benchmark::ConsoleReporter::OO_ColorTabular;
#endif
    collecting_reporter rep(options);
    benchmark::RunSpecifiedBenchmarks(&rep);
    std::fflush(stdout);

    // One line per quantizer, bits and n: `summary` on wall-clock time, `summary_cpu` on the
    // thread CPU time of the same runs; a ratio is "nan" when its benchmark was filtered out.
    const auto ratio = [](double baseline, double t) {
        return baseline > 0 && t > 0 ? baseline / t : std::nan("");
    };
    for (const bool cpu : {false, true}) {
        std::printf("\n");
        for (std::size_t qi = 0; qi < quantizers.size(); ++qi) {
            const auto& q = quantizers[qi];
            const check_result& err = checks.at({qi, error_n});
            for (const std::size_t n : sizes) {
                const auto time = [&](const std::string& name) {
                    return cpu ? rep.cpu_seconds(name, n) : rep.seconds(name, n);
                };
                const double memcpy_s = time("BM_memcpy");
                const double enc_s = time("BM_encode_" + q.label);
                const double dec_s = time("BM_decode_" + q.label);
                if (memcpy_s <= 0 || (enc_s <= 0 && dec_s <= 0)) continue;  // filtered out
                const check_result& c = checks.at({qi, n});
                const double bytes =
                    double(swarmsgd::envelope_size + c.payload_bytes + c.fallback_bytes) /
                    (4.0 * double(n));
                std::string extra;
                if (q.can_fail) {
                    const double timed = rep.counter_sum("BM_decode_" + q.label, n, "failed");
                    std::size_t failed = c.failed_buckets + (n == error_n ? 0 : err.failed_buckets);
                    if (timed > 0) failed += static_cast<std::size_t>(timed);
                    extra = " failed=" + std::to_string(failed);
                }
                std::printf(
                    "%s quantizer=%s bits=%u n=%zu encode_vs_memcpy=%.2f decode_vs_memcpy=%.2f "
                    "bytes_vs_fp32=%.4f avg_rel_error=%.3e%s\n",
                    cpu ? "summary_cpu" : "summary", q.name.c_str(), q.bits, n,
                    ratio(memcpy_s, enc_s), ratio(memcpy_s, dec_s), bytes, err.avg_rel_error,
                    extra.c_str());
            }
        }
    }
    // Absolute throughputs (GB/s of fp32 model) behind the ratios.
    std::printf("\n");
    for (const std::size_t n : sizes) {
        const double gb = 4.0 * double(n) * 1e-9;
        const auto gbps = [gb](double t) { return t > 0 ? gb / t : std::nan(""); };
        std::printf("detail quantizer=memcpy n=%zu wall_GBps=%.2f cpu_GBps=%.2f\n", n,
                    gbps(rep.seconds("BM_memcpy", n)), gbps(rep.cpu_seconds("BM_memcpy", n)));
        for (const auto& q : quantizers) {
            const std::string e = "BM_encode_" + q.label, d = "BM_decode_" + q.label;
            std::printf(
                "detail quantizer=%s bits=%u n=%zu encode_wall_GBps=%.2f encode_cpu_GBps=%.2f "
                "decode_wall_GBps=%.2f decode_cpu_GBps=%.2f\n",
                q.name.c_str(), q.bits, n, gbps(rep.seconds(e, n)), gbps(rep.cpu_seconds(e, n)),
                gbps(rep.seconds(d, n)), gbps(rep.cpu_seconds(d, n)));
        }
    }
    std::printf("\n");
    for (std::size_t qi = 0; qi < quantizers.size(); ++qi) {
        const auto& q = quantizers[qi];
        const check_result& c = checks.at({qi, error_n});
        std::printf(
            "error quantizer=%s bits=%u n=%zu avg_rel_error=%.3e model_rel_error=%.3e "
            "error_over_distance=%.3e max_abs_error=%.3e failed_buckets=%zu\n",
            q.name.c_str(), q.bits, error_n, c.avg_rel_error, c.model_rel_error,
            c.error_vs_distance, c.max_abs_error, c.failed_buckets);
    }
    benchmark::Shutdown();
    return ok ? 0 : 1;
}
