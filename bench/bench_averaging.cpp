/// \file bench_averaging.cpp
/// Cost of ONE non-blocking averaging interaction of a float model (2^16, 2^20, 2^24 elements)
/// with the identity quantizer over the in-process communicator, against a memcpy of the same
/// model measured in the same run (see docs/performance.md and shared/design/performance.md).
///
/// Benchmarks (argument = model size in floats):
///   BM_memcpy/N              std::memcpy of N floats between two preallocated buffers (baseline)
///   BM_interaction/N         node0.initiate(1); node1.poll(); node0.poll(): one full interaction,
///                            both sides, driven from one thread; counters give each side's time.
///                            identity_quantizer has the exact_reconstruction capability, so this
///                            is swarm_node's fused path
///   BM_initiator_side/N      the same interaction, timed (manual time) over node0's calls only
///   BM_responder_side/N      the same interaction, timed (manual time) over node1's call only
///   BM_interaction_general/N the same interaction through swarm_node's general path (any
///                            quantizer): identity wrapped so that it lacks the capability. Same
///                            wire bytes; this is what BM_interaction measured before the fused
///                            path existed, in the same run
///   BM_kernel_<k>/N          each fused kernel the fast path runs, alone, on warm buffers laid
///                            out like the real ones (payload 8-byte aligned after 40 bytes):
///                            copy_out (initiate), exchange (responder), check_raw + apply_raw
///                            (initiator completing)
///
/// After the runs it prints, per N,
///   summary bench=averaging quantizer=identity n=<floats> interaction_vs_memcpy=<ratio>
///           per_side_vs_memcpy=<ratio> bytes_per_interaction=<bytes>
/// (wall-clock ratios), then `summary_cpu` (the same ratios on CPU time, robust when other
/// processes share the cores), `detail` (absolute times), `general` (the general path against
/// memcpy and the speed-up of the fused path) and `breakdown` (the kernels each side runs).
/// Google benchmark flags work (filter, repetitions: medians are used, out/out_format);
/// the display is always the console reporter. Recommended on shared machines:
///   bench_averaging --benchmark_min_time=0.2 --benchmark_repetitions=5
///                   --benchmark_enable_random_interleaving=true
///                   --benchmark_display_aggregates_only=true
/// (benchmark 1.7 takes --benchmark_min_time in seconds without a suffix; 1.8 also "0.2s").
/// At start-up it checks that the fused and the general path give bit-identical models, bytes
/// and errors (exit status 1 otherwise).
/// Where the time goes inside one interaction: bench/perf_phases.py (perf record).

#include <benchmark/benchmark.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <map>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <time.h>  // clock_gettime, CLOCK_THREAD_CPUTIME_ID (POSIX)

#if __has_include(<unistd.h>)
#include <unistd.h>
#define SWARMSGD_BENCH_HAVE_ISATTY 1
#endif

#include <swarmsgd/communicators/in_process.hpp>
#include <swarmsgd/detail/kernels.hpp>
#include <swarmsgd/errors.hpp>
#include <swarmsgd/message.hpp>
#include <swarmsgd/model.hpp>
#include <swarmsgd/quantizer.hpp>
#include <swarmsgd/quantizers/identity.hpp>
#include <swarmsgd/random.hpp>
#include <swarmsgd/swarm_node.hpp>
#include <swarmsgd/swarm_options.hpp>
#include <swarmsgd/topology.hpp>

#include "collecting_reporter.hpp"
#include "general_identity.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

/// identity_quantizer<float> without the exact_reconstruction capability: swarm_node takes its
/// general path (gather, encode, decode, apply through its own buffers). Same wire bytes
/// (tests/support/general_identity.hpp, shared with tests/unit/test_exact_path.cpp).
using general_identity = test_support::general_identity<float>;
static_assert(swarmsgd::exact_quantizer_for<swarmsgd::identity_quantizer<float>, float>);
static_assert(swarmsgd::quantizer_for<general_identity, float> &&
              !swarmsgd::exact_quantizer_for<general_identity, float>);

constexpr std::int64_t n_small = std::int64_t{1} << 16;
constexpr std::int64_t n_main = std::int64_t{1} << 20;
constexpr std::int64_t n_large = std::int64_t{1} << 24;

double seconds_between(clock_type::time_point a, clock_type::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

/// CPU time of the calling thread: unlike the wall clock it does not count the time the
/// thread waits while other processes hold the core (these machines are shared).
double thread_cpu_seconds() {
#if defined(CLOCK_THREAD_CPUTIME_ID)
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
#else
    return static_cast<double>(std::clock()) / CLOCKS_PER_SEC;
#endif
}

/// Uniform values in [-1, 1), deterministic per seed.
std::vector<float> random_model(std::size_t n, std::uint32_t seed) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(gen);
    return v;
}

/// Two nodes in one in-process world of 2 with the complete graph and default options
/// (non-blocking averaging) and quantizer Q. Not movable: the nodes keep references.
template <class Q>
struct basic_node_pair {
    using node_type =
        swarmsgd::swarm_node<std::vector<float>, swarmsgd::in_process_communicator, Q>;

    explicit basic_node_pair(std::size_t n, std::vector<float> a = {}, std::vector<float> b = {})
        : world(2),
          comm0(world.endpoint_for(0)),
          comm1(world.endpoint_for(1)),
          graph(swarmsgd::topology::complete(2)),
          model0(a.empty() ? random_model(n, 1) : std::move(a)),
          model1(b.empty() ? random_model(n, 2) : std::move(b)),
          node0(model0, comm0, graph, swarmsgd::swarm_options{}),
          node1(model1, comm1, graph, swarmsgd::swarm_options{}) {}
    basic_node_pair(const basic_node_pair&) = delete;
    basic_node_pair& operator=(const basic_node_pair&) = delete;

    /// One full interaction, both sides, from this thread.
    void interact() {
        node0.initiate(1);
        node1.poll();
        node0.poll();
    }

    [[nodiscard]] std::uint64_t bytes_sent() const {
        return node0.stats().bytes_sent + node1.stats().bytes_sent;
    }
    [[nodiscard]] std::uint64_t completed() const { return node0.stats().interactions_completed; }

    swarmsgd::in_process_world world;
    swarmsgd::in_process_communicator comm0;
    swarmsgd::in_process_communicator comm1;
    swarmsgd::topology graph;
    std::vector<float> model0;
    std::vector<float> model1;
    node_type node0;
    node_type node1;
};

using node_pair = basic_node_pair<swarmsgd::identity_quantizer<float>>;  // the fused path
using general_pair = basic_node_pair<general_identity>;                  // the general path

std::size_t arg_size(const benchmark::State& state) {
    return static_cast<std::size_t>(state.range(0));
}

void set_model_bytes(benchmark::State& state, std::size_t n) {
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(n * sizeof(float)));
}

/// Reports an interaction that did not complete (the benchmark would be meaningless).
template <class Pair>
bool check_completed(benchmark::State& state, const Pair& p, std::uint64_t expected) {
    if (p.completed() != expected || p.node0.in_flight() != 0 ||
        p.node1.stats().interactions_served != expected) {
        state.SkipWithError("an interaction did not complete within its iteration");
        return false;
    }
    return true;
}

// ------------------------------------------------------------------------------------------
// Baseline
// ------------------------------------------------------------------------------------------

void BM_memcpy(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    const std::vector<float> src = random_model(n, 1);
    std::vector<float> dst(n, 0.0f);
    for (auto _ : state) {
        std::memcpy(dst.data(), src.data(), n * sizeof(float));
        benchmark::DoNotOptimize(dst.data());
        benchmark::ClobberMemory();
    }
    set_model_bytes(state, n);
}

// ------------------------------------------------------------------------------------------
// The library: one interaction through two swarm_nodes
// ------------------------------------------------------------------------------------------

template <class Pair>
void interaction(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    Pair p(n);
    p.interact();  // warm-up: allocates the node's buffers once (they are recycled afterwards)
    const std::uint64_t bytes0 = p.bytes_sent();
    const std::uint64_t done0 = p.completed();
    double initiate = 0, respond = 0, complete = 0;
    for (auto _ : state) {
        const auto t0 = clock_type::now();
        p.node0.initiate(1);
        const auto t1 = clock_type::now();
        p.node1.poll();
        const auto t2 = clock_type::now();
        p.node0.poll();
        const auto t3 = clock_type::now();
        initiate += seconds_between(t0, t1);
        respond += seconds_between(t1, t2);
        complete += seconds_between(t2, t3);
    }
    const auto iterations = static_cast<std::uint64_t>(state.iterations());
    if (!check_completed(state, p, done0 + iterations)) return;
    using benchmark::Counter;
    state.counters["initiator_us"] = Counter((initiate + complete) * 1e6, Counter::kAvgIterations);
    state.counters["responder_us"] = Counter(respond * 1e6, Counter::kAvgIterations);
    state.counters["per_side_us"] =
        Counter((initiate + complete + respond) * 0.5e6, Counter::kAvgIterations);
    state.counters["initiate_us"] = Counter(initiate * 1e6, Counter::kAvgIterations);
    state.counters["complete_us"] = Counter(complete * 1e6, Counter::kAvgIterations);
    state.counters["bytes_per_interaction"] =
        Counter(static_cast<double>(p.bytes_sent() - bytes0), Counter::kAvgIterations);
    set_model_bytes(state, n);
}

void BM_interaction(benchmark::State& state) { interaction<node_pair>(state); }
void BM_interaction_general(benchmark::State& state) { interaction<general_pair>(state); }

/// The wall time of the initiator's calls (initiate + the poll that applies the reply) is the
/// manual time; the thread CPU time of the same calls is the counter cpu_us.
void BM_initiator_side(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    node_pair p(n);
    p.interact();
    const std::uint64_t done0 = p.completed();
    double cpu = 0;
    for (auto _ : state) {
        const double c0 = thread_cpu_seconds();
        const auto t0 = clock_type::now();
        p.node0.initiate(1);
        const auto t1 = clock_type::now();
        const double c1 = thread_cpu_seconds();
        p.node1.poll();
        const double c2 = thread_cpu_seconds();
        const auto t2 = clock_type::now();
        p.node0.poll();
        const auto t3 = clock_type::now();
        const double c3 = thread_cpu_seconds();
        state.SetIterationTime(seconds_between(t0, t1) + seconds_between(t2, t3));
        cpu += (c1 - c0) + (c3 - c2);
    }
    if (!check_completed(state, p, done0 + static_cast<std::uint64_t>(state.iterations()))) return;
    state.counters["cpu_us"] = benchmark::Counter(cpu * 1e6, benchmark::Counter::kAvgIterations);
    set_model_bytes(state, n);
}

/// The wall time of the responder's call (the poll that serves the request) is the manual
/// time; its thread CPU time is the counter cpu_us.
void BM_responder_side(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    node_pair p(n);
    p.interact();
    const std::uint64_t done0 = p.completed();
    double cpu = 0;
    for (auto _ : state) {
        p.node0.initiate(1);
        const double c1 = thread_cpu_seconds();
        const auto t1 = clock_type::now();
        p.node1.poll();
        const auto t2 = clock_type::now();
        const double c2 = thread_cpu_seconds();
        p.node0.poll();
        state.SetIterationTime(seconds_between(t1, t2));
        cpu += c2 - c1;
    }
    if (!check_completed(state, p, done0 + static_cast<std::uint64_t>(state.iterations()))) return;
    state.counters["cpu_us"] = benchmark::Counter(cpu * 1e6, benchmark::Counter::kAvgIterations);
    set_model_bytes(state, n);
}

// ------------------------------------------------------------------------------------------
// The fused kernels of the fast path, one at a time, on warm buffers laid out like the real
// ones: the model a std::vector<float>, the payload inside a std::vector<std::byte> message
// after the 24-byte envelope and the 16-byte payload header (so only 8-byte aligned).
//   initiator: initiate = copy_out (model -> snapshot + payload, checked), then
//              complete = check_raw (reply payload) + apply_raw (x += (r - snapshot) / 2)
//   responder: exchange (payload <-> model in place, x += (r - x) / 2, checked)
// At sizes near the cache sizes their sum underestimates an interaction, whose working set is
// 4 model-sized buffers (two models, the snapshot, one message).
// ------------------------------------------------------------------------------------------

constexpr std::size_t wire_bytes(std::size_t n) {
    return swarmsgd::envelope_size + swarmsgd::payload_header_size + n * sizeof(float);
}
constexpr std::size_t data_offset = swarmsgd::envelope_size + swarmsgd::payload_header_size;

/// A message buffer holding the values of `values` as its payload.
std::vector<std::byte> message_of(const std::vector<float>& values) {
    std::vector<std::byte> bytes(wire_bytes(values.size()));
    std::memcpy(bytes.data() + data_offset, values.data(), values.size() * sizeof(float));
    return bytes;
}

void BM_kernel_copy_out(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    const std::vector<float> x = random_model(n, 1);
    std::vector<float> snapshot(n);
    std::vector<std::byte> bytes(wire_bytes(n));
    for (auto _ : state) {
        auto k = swarmsgd::detail::copy_out_checked(x.data(), snapshot.data(),
                                                    bytes.data() + data_offset, n);
        benchmark::DoNotOptimize(k);
        benchmark::ClobberMemory();
    }
    set_model_bytes(state, n);
}

void BM_kernel_exchange(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    std::vector<float> x = random_model(n, 1);
    std::vector<std::byte> bytes = message_of(random_model(n, 2));
    for (auto _ : state) {  // each call swaps: the payload gets x, x moves halfway to it
        auto k = swarmsgd::detail::exchange_and_average(x.data(), bytes.data() + data_offset, n);
        benchmark::DoNotOptimize(k);
        benchmark::ClobberMemory();
    }
    set_model_bytes(state, n);
}

void BM_kernel_check_raw(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    const std::vector<std::byte> bytes = message_of(random_model(n, 2));
    for (auto _ : state) {
        auto k = swarmsgd::detail::first_non_finite_raw<float>(bytes.data() + data_offset, n);
        benchmark::DoNotOptimize(k);
    }
    set_model_bytes(state, n);
}

void BM_kernel_apply_raw(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    std::vector<float> x = random_model(n, 1);
    const std::vector<std::byte> bytes = message_of(random_model(n, 2));
    const std::vector<float> snapshot = random_model(n, 3);
    for (auto _ : state) {
        swarmsgd::detail::add_half_difference_raw(x.data(), bytes.data() + data_offset,
                                                  snapshot.data(), n);
        benchmark::DoNotOptimize(x.data());
        benchmark::ClobberMemory();
    }
    set_model_bytes(state, n);
}

// ------------------------------------------------------------------------------------------
// Start-up check: the fused path computes exactly what the general path computes.
// ------------------------------------------------------------------------------------------

/// Runs the same interactions (with local changes in between) through both paths on an odd
/// size (vector tails, several blocks) and compares models and bytes sent bit for bit; then a
/// non-finite value late in the responder's model: both refuse with the same error text and
/// leave the model unchanged.
bool fast_path_matches_general() {
    constexpr std::size_t n = 4099;
    node_pair fast(n);
    general_pair general(n);
    for (int i = 0; i < 3; ++i) {
        fast.interact();
        general.interact();
        for (std::size_t k = 0; k < n; k += 7) {  // a "local step" so the models stay distinct
            fast.model0[k] += 0.25f;
            general.model0[k] += 0.25f;
        }
    }
    bool same = std::memcmp(fast.model0.data(), general.model0.data(), n * sizeof(float)) == 0 &&
                std::memcmp(fast.model1.data(), general.model1.data(), n * sizeof(float)) == 0 &&
                fast.bytes_sent() == general.bytes_sent();
    const auto refusal = [](auto& pair) -> std::string {
        pair.model1[n - 5] = std::numeric_limits<float>::quiet_NaN();
        const std::vector<float> before = pair.model1;
        pair.node0.initiate(1);
        std::string what;
        try {
            pair.node1.poll();
        } catch (const swarmsgd::non_finite_error& e) {
            what = e.what();
        }
        if (std::memcmp(before.data(), pair.model1.data(), n * sizeof(float)) != 0) return {};
        try {
            pair.node0.poll();  // the failure reply
        } catch (const swarmsgd::non_finite_error& e) {
            what += std::string(" | ") + e.what();
        }
        return what;
    };
    const std::string a = refusal(fast);
    const std::string b = refusal(general);
    same = same && !a.empty() && a == b;
    return same;
}

// ------------------------------------------------------------------------------------------
// Registration
// ------------------------------------------------------------------------------------------

void sizes(benchmark::internal::Benchmark* b) {
    b->Arg(n_small)->Arg(n_main)->Arg(n_large)->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_memcpy)->Apply(sizes);
BENCHMARK(BM_interaction)->Apply(sizes);
BENCHMARK(BM_initiator_side)->Apply(sizes)->UseManualTime();
BENCHMARK(BM_responder_side)->Apply(sizes)->UseManualTime();
BENCHMARK(BM_interaction_general)->Apply(sizes);
BENCHMARK(BM_kernel_copy_out)->Apply(sizes);
BENCHMARK(BM_kernel_exchange)->Apply(sizes);
BENCHMARK(BM_kernel_check_raw)->Apply(sizes);
BENCHMARK(BM_kernel_apply_raw)->Apply(sizes);

/// Prints, per model size with a memcpy baseline:
///   summary      the ratios on wall-clock time (what the issue asks for)
///   summary_cpu  the same ratios on CPU time (robust when other processes share the cores)
///   detail       the absolute times behind them
///   general      the general path (any quantizer) against memcpy and the fused path
///   breakdown    the fused kernels each side runs, alone, on CPU time, against the measured side
void print_summary(const collecting_reporter& rep) {
    std::printf("\n");
    for (const std::size_t n : rep.sizes_run()) {
        const double memcpy_s = rep.seconds("BM_memcpy", n);
        const double interaction_s = rep.seconds("BM_interaction", n);
        if (memcpy_s <= 0 || interaction_s <= 0) continue;
        const double memcpy_cpu = rep.cpu_seconds("BM_memcpy", n);
        const double interaction_cpu = rep.cpu_seconds("BM_interaction", n);
        // Per side: the manual-time side benchmarks when run, else the in-loop counters.
        double initiator_s = rep.seconds("BM_initiator_side", n);
        double responder_s = rep.seconds("BM_responder_side", n);
        double initiator_cpu = rep.counter("BM_initiator_side", n, "cpu_us") * 1e-6;
        double responder_cpu = rep.counter("BM_responder_side", n, "cpu_us") * 1e-6;
        if (initiator_s <= 0 || responder_s <= 0) {
            initiator_s = rep.counter("BM_interaction", n, "initiator_us") * 1e-6;
            responder_s = rep.counter("BM_interaction", n, "responder_us") * 1e-6;
        }
        const bool have_side_cpu = initiator_cpu > 0 && responder_cpu > 0;
        if (!have_side_cpu) {  // split the interaction's CPU time like its wall time
            initiator_cpu = interaction_cpu * initiator_s / (initiator_s + responder_s);
            responder_cpu = interaction_cpu - initiator_cpu;
        }
        const double per_side_s = 0.5 * (initiator_s + responder_s);
        const double per_side_cpu = 0.5 * (initiator_cpu + responder_cpu);
        const double bytes = rep.counter("BM_interaction", n, "bytes_per_interaction");
        std::printf(
            "summary bench=averaging quantizer=identity n=%zu interaction_vs_memcpy=%.2f "
            "per_side_vs_memcpy=%.2f bytes_per_interaction=%.0f\n",
            n, interaction_s / memcpy_s, per_side_s / memcpy_s, bytes);
        std::printf(
            "summary_cpu bench=averaging quantizer=identity n=%zu interaction_vs_memcpy=%.2f "
            "per_side_vs_memcpy=%.2f initiator_vs_memcpy=%.2f responder_vs_memcpy=%.2f%s\n",
            n, interaction_cpu / memcpy_cpu, per_side_cpu / memcpy_cpu, initiator_cpu / memcpy_cpu,
            responder_cpu / memcpy_cpu, have_side_cpu ? "" : " (sides estimated)");
        std::printf(
            "detail n=%zu wall_us: memcpy=%.1f interaction=%.1f initiator=%.1f responder=%.1f | "
            "cpu_us: memcpy=%.1f interaction=%.1f initiator=%.1f responder=%.1f\n",
            n, memcpy_s * 1e6, interaction_s * 1e6, initiator_s * 1e6, responder_s * 1e6,
            memcpy_cpu * 1e6, interaction_cpu * 1e6, initiator_cpu * 1e6, responder_cpu * 1e6);

        const double general_s = rep.seconds("BM_interaction_general", n);
        const double general_cpu = rep.cpu_seconds("BM_interaction_general", n);
        if (general_s > 0) {
            const double init = rep.counter("BM_interaction_general", n, "initiator_us") * 1e-6;
            const double resp = rep.counter("BM_interaction_general", n, "responder_us") * 1e-6;
            std::printf(
                "general n=%zu wall: interaction_vs_memcpy=%.2f per_side_vs_memcpy=%.2f "
                "initiator_vs_memcpy=%.2f responder_vs_memcpy=%.2f fused_speedup=%.2f | "
                "cpu: interaction_vs_memcpy=%.2f fused_speedup=%.2f\n",
                n, general_s / memcpy_s, 0.5 * (init + resp) / memcpy_s, init / memcpy_s,
                resp / memcpy_s, general_s / interaction_s, general_cpu / memcpy_cpu,
                general_cpu / interaction_cpu);
        }

        const double copy_out = rep.cpu_seconds("BM_kernel_copy_out", n);
        const double exchange = rep.cpu_seconds("BM_kernel_exchange", n);
        const double check = rep.cpu_seconds("BM_kernel_check_raw", n);
        const double apply = rep.cpu_seconds("BM_kernel_apply_raw", n);
        if (copy_out > 0 && exchange > 0 && check > 0 && apply > 0) {
            std::printf(
                "breakdown n=%zu clock=cpu side=initiator measured_us=%.1f kernels_sum_us=%.1f "
                "copy_out=%.1f check_raw=%.1f apply_raw=%.1f\n",
                n, initiator_cpu * 1e6, (copy_out + check + apply) * 1e6, copy_out * 1e6,
                check * 1e6, apply * 1e6);
            std::printf(
                "breakdown n=%zu clock=cpu side=responder measured_us=%.1f kernels_sum_us=%.1f "
                "exchange=%.1f\n",
                n, responder_cpu * 1e6, exchange * 1e6, exchange * 1e6);
            std::printf(
                "breakdown n=%zu clock=cpu kernel_vs_memcpy copy_out=%.2f exchange=%.2f "
                "check_raw=%.2f apply_raw=%.2f\n",
                n, copy_out / memcpy_cpu, exchange / memcpy_cpu, check / memcpy_cpu,
                apply / memcpy_cpu);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

    const bool check_ok = fast_path_matches_general();
    std::printf("check fused_path_bit_identical_to_general_path=%s\n", check_ok ? "yes" : "NO");

    auto options = benchmark::ConsoleReporter::OO_Tabular;
#ifdef SWARMSGD_BENCH_HAVE_ISATTY
    if (isatty(fileno(stdout)) != 0) options = benchmark::ConsoleReporter::OO_ColorTabular;
#endif
    collecting_reporter reporter(options);
    benchmark::RunSpecifiedBenchmarks(&reporter);
    std::fflush(stdout);
    print_summary(reporter);
    benchmark::Shutdown();
    return check_ok ? 0 : 1;
}
