/// \file bench_averaging.cpp
/// Cost of ONE non-blocking averaging interaction of a float model (2^16, 2^20, 2^24 elements)
/// with the identity quantizer over the in-process communicator, against a memcpy of the same
/// model measured in the same run (see docs/performance.md and shared/design/performance.md).
///
/// Benchmarks (argument = model size in floats):
///   BM_memcpy/N            std::memcpy of N floats between two preallocated buffers (baseline)
///   BM_interaction/N       node0.initiate(1); node1.poll(); node0.poll(): one full interaction,
///                          both sides, driven from one thread; counters give each side's time
///   BM_initiator_side/N    the same interaction, timed (manual time) over node0's calls only
///   BM_responder_side/N    the same interaction, timed (manual time) over node1's call only
///   BM_phase_<p>/N         each step swarm_node performs, alone, with the same library
///                          primitives: gather, check_finite, encode, decode, apply, message
///   BM_fused_sketch/N      NOT the library: the same interaction with fused passes (what
///                          swarm_node could do for an identity quantizer); bit-identical
///                          results, checked at start-up
///
/// After the runs it prints, per N,
///   summary bench=averaging quantizer=identity n=<floats> interaction_vs_memcpy=<ratio>
///           per_side_vs_memcpy=<ratio> bytes_per_interaction=<bytes>
/// (wall-clock ratios), then `summary_cpu` (the same ratios on CPU time, robust when other
/// processes share the cores), `detail` (absolute times), `breakdown` (the phases each side
/// executes, from BM_phase_*) and `sketch` (the fused sketch against memcpy and the library).
/// Google benchmark flags work (filter, repetitions: medians are used, out/out_format);
/// the display is always the console reporter. Recommended on shared machines:
///   bench_averaging --benchmark_min_time=0.2 --benchmark_repetitions=5
///                   --benchmark_enable_random_interleaving=true
///                   --benchmark_display_aggregates_only=true
/// (benchmark 1.7 takes --benchmark_min_time in seconds without a suffix; 1.8 also "0.2s").
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
#include <utility>
#include <vector>

#include <time.h>  // clock_gettime, CLOCK_THREAD_CPUTIME_ID (POSIX)

#if __has_include(<unistd.h>)
#include <unistd.h>
#define SWARMSGD_BENCH_HAVE_ISATTY 1
#endif

#include <swarmsgd/communicators/in_process.hpp>
#include <swarmsgd/detail/kernels.hpp>
#include <swarmsgd/message.hpp>
#include <swarmsgd/model.hpp>
#include <swarmsgd/quantizers/identity.hpp>
#include <swarmsgd/random.hpp>
#include <swarmsgd/swarm_node.hpp>
#include <swarmsgd/swarm_options.hpp>
#include <swarmsgd/topology.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
using node_type = swarmsgd::swarm_node<std::vector<float>, swarmsgd::in_process_communicator>;

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
/// (non-blocking averaging, identity quantizer). Not movable: the nodes keep references.
struct node_pair {
    explicit node_pair(std::size_t n, std::vector<float> a = {}, std::vector<float> b = {})
        : world(2),
          comm0(world.endpoint_for(0)),
          comm1(world.endpoint_for(1)),
          graph(swarmsgd::topology::complete(2)),
          model0(a.empty() ? random_model(n, 1) : std::move(a)),
          model1(b.empty() ? random_model(n, 2) : std::move(b)),
          node0(model0, comm0, graph, swarmsgd::swarm_options{}),
          node1(model1, comm1, graph, swarmsgd::swarm_options{}) {}
    node_pair(const node_pair&) = delete;
    node_pair& operator=(const node_pair&) = delete;

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

std::size_t arg_size(const benchmark::State& state) {
    return static_cast<std::size_t>(state.range(0));
}

void set_model_bytes(benchmark::State& state, std::size_t n) {
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(n * sizeof(float)));
}

/// Reports an interaction that did not complete (the benchmark would be meaningless).
bool check_completed(benchmark::State& state, const node_pair& p, std::uint64_t expected) {
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

void BM_interaction(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    node_pair p(n);
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
// The phases of an interaction, one at a time, with the primitives swarm_node calls.
//   initiator: initiate = gather + check_finite + encode (+ message), then
//              complete = decode + check_finite + apply
//   responder: gather + decode + check_finite (received) + check_finite (own) + encode +
//              apply (+ message)
// Each runs on its own warm buffers, so at sizes near the cache size the sum of the phases
// underestimates the interaction, whose working set is about 10 model-sized buffers.
// ------------------------------------------------------------------------------------------

constexpr std::size_t wire_bytes(std::size_t n) {
    return swarmsgd::envelope_size + swarmsgd::payload_header_size + n * sizeof(float);
}

void BM_phase_gather(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    const std::vector<float> model = random_model(n, 1);
    std::vector<float> snapshot(n);
    for (auto _ : state) {
        swarmsgd::gather(model, std::span<float>(snapshot));
        benchmark::DoNotOptimize(snapshot.data());
        benchmark::ClobberMemory();
    }
    set_model_bytes(state, n);
}

void BM_phase_check_finite(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    const std::vector<float> values = random_model(n, 1);
    for (auto _ : state) {
        auto k = swarmsgd::detail::first_non_finite(values.data(), n);
        benchmark::DoNotOptimize(k);
    }
    set_model_bytes(state, n);
}

void BM_phase_encode(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    std::vector<float> values = random_model(n, 1);
    std::vector<std::byte> bytes(wire_bytes(n));
    swarmsgd::identity_quantizer<float> q;
    swarmsgd::rng gen(0, 0);
    for (auto _ : state) {
        const auto payload =
            q.encode(std::span<float>(values),
                     std::span<std::byte>(bytes).subspan(swarmsgd::envelope_size), gen);
        swarmsgd::write_envelope(
            bytes, {swarmsgd::message_kind::request, 0, 0, static_cast<std::uint32_t>(payload)});
        benchmark::DoNotOptimize(bytes.data());
        benchmark::ClobberMemory();
    }
    set_model_bytes(state, n);
}

void BM_phase_decode(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    std::vector<float> values = random_model(n, 1);
    std::vector<std::byte> bytes(wire_bytes(n));
    swarmsgd::identity_quantizer<float> q;
    swarmsgd::rng gen(0, 0);
    (void)q.encode(std::span<float>(values),
                   std::span<std::byte>(bytes).subspan(swarmsgd::envelope_size), gen);
    const std::vector<float> reference = random_model(n, 2);
    std::vector<float> out(n);
    const auto payload = std::span<const std::byte>(bytes).subspan(swarmsgd::envelope_size);
    for (auto _ : state) {
        auto result = q.decode(payload, reference, std::span<float>(out));
        benchmark::DoNotOptimize(result);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    set_model_bytes(state, n);
}

void BM_phase_apply(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    std::vector<float> x = random_model(n, 1);
    const std::vector<float> received = random_model(n, 2);
    const std::vector<float> own = random_model(n, 3);
    for (auto _ : state) {
        swarmsgd::detail::add_half_difference(x.data(), received.data(), own.data(), n);
        benchmark::DoNotOptimize(x.data());
        benchmark::ClobberMemory();
    }
    set_model_bytes(state, n);
}

/// One message through the in-process communicator: envelope written, moved into the peer's
/// inbox, taken out, envelope read and validated (the bytes are moved, never copied).
void BM_phase_message(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    swarmsgd::in_process_world world(2);
    auto comm0 = world.endpoint_for(0);
    auto comm1 = world.endpoint_for(1);
    std::vector<std::byte> bytes(wire_bytes(n));
    for (auto _ : state) {
        swarmsgd::write_envelope(
            bytes, {swarmsgd::message_kind::request, 0, 0,
                    static_cast<std::uint32_t>(bytes.size() - swarmsgd::envelope_size)});
        (void)comm0.isend(1, std::move(bytes));
        auto m = comm1.try_receive();
        if (!m) {
            state.SkipWithError("in-process message lost");
            break;
        }
        const auto e = swarmsgd::read_envelope(m->bytes, m->source);
        benchmark::DoNotOptimize(e);
        bytes = std::move(m->bytes);
    }
    set_model_bytes(state, n);
}

// ------------------------------------------------------------------------------------------
// Sketch (NOT the library): the same interaction with fused passes, as swarm_node could run
// it when the quantizer's reconstruction equals its input (identity). Same wire format, same
// checks (nothing is sent or changed when a value is non-finite), same arithmetic:
//   initiate : one pass  model -> wire payload + snapshot, finiteness checked on the way
//              (1 read, 2 writes; library: gather + check + encode = 3 reads, 2 writes)
//   respond  : one pass, block by block: check model and request payload for finiteness,
//              then model -> reply payload, x += (r - x) / 2 (2 reads, 2 writes; a non-finite
//              value restores the updated blocks exactly from the reply)
//              (library: gather + decode + 2 checks + encode + apply = 8 reads, 4 writes)
//   complete : scan reply payload (1 read), then x += (r - snapshot) / 2 reading the payload
//              in place (3 reads, 1 write) (library: decode + check + apply = 5 reads, 2 writes)
// ------------------------------------------------------------------------------------------

constexpr std::uint32_t float_exponent = 0x7F800000u;
constexpr std::size_t block = 1024;

inline float load_float(const std::byte* p, std::size_t k) noexcept {
    float v;
    std::memcpy(&v, p + k * sizeof(float), sizeof(float));
    return v;
}
inline void store_float(std::byte* p, std::size_t k, float v) noexcept {
    std::memcpy(p + k * sizeof(float), &v, sizeof(float));
}
inline std::uint32_t is_non_finite(float v) noexcept {
    return static_cast<std::uint32_t>((std::bit_cast<std::uint32_t>(v) & float_exponent) ==
                                      float_exponent);
}

/// snapshot[k] = wire[k] = x[k]; false when some x[k] is non-finite.
bool copy_twice_checked(const float* __restrict x, float* __restrict snapshot,
                        std::byte* __restrict wire, std::size_t n) noexcept {
    std::uint32_t bad = 0;
    for (std::size_t start = 0; start < n; start += block) {
        const std::size_t end = std::min(start + block, n);
        for (std::size_t k = start; k < end; ++k) {
            const float v = x[k];
            snapshot[k] = v;
            store_float(wire, k, v);
            bad |= is_non_finite(v);
        }
        if (bad != 0) return false;
    }
    return true;
}

/// True when every float of the byte range is finite.
bool all_finite(const std::byte* __restrict p, std::size_t n) noexcept {
    std::uint32_t bad = 0;
    for (std::size_t k = 0; k < n; ++k) bad |= is_non_finite(load_float(p, k));
    return bad == 0;
}

/// reply[k] = x[k]; x[k] += (request[k] - x[k]) / 2 (the responder's snapshot is x itself:
/// nothing runs between its gather and its apply). Block by block: copy x to the reply while
/// checking x and request for finiteness, then update the block from the reply (in L1 now).
/// On a non-finite value it restores the blocks already updated from the reply (which holds
/// their old values, so the restore is exact) and returns false: the model is unchanged, as
/// in the library. One pass over memory: 2 reads, 2 writes. (Checking in a separate loop
/// before the copy measured ~1.2x slower at 2^24 on AVX-512; this order costs ~nothing.)
bool reply_and_average_checked(float* __restrict x, const std::byte* __restrict request,
                               std::byte* __restrict reply, std::size_t n) noexcept {
    for (std::size_t start = 0; start < n; start += block) {
        const std::size_t end = std::min(start + block, n);
        std::uint32_t bad = 0;
        for (std::size_t k = start; k < end; ++k) {
            const float own = x[k];
            store_float(reply, k, own);
            bad |= is_non_finite(own) | is_non_finite(load_float(request, k));
        }
        if (bad != 0) {
            for (std::size_t k = 0; k < start; ++k) x[k] = load_float(reply, k);
            return false;
        }
        for (std::size_t k = start; k < end; ++k) {
            const float own = load_float(reply, k);
            x[k] = own + (load_float(request, k) - own) * 0.5f;
        }
    }
    return true;
}

/// x[k] += (reply[k] - snapshot[k]) / 2
void average_from_wire(float* __restrict x, const std::byte* __restrict reply,
                       const float* __restrict snapshot, std::size_t n) noexcept {
    for (std::size_t k = 0; k < n; ++k) x[k] += (load_float(reply, k) - snapshot[k]) * 0.5f;
}

struct fused_pair {
    fused_pair(std::vector<float> a, std::vector<float> b)
        : x0(std::move(a)),
          x1(std::move(b)),
          snapshot(x0.size()),
          request(wire_bytes(x0.size())),
          reply(wire_bytes(x0.size())) {}

    static constexpr std::size_t data_offset =
        swarmsgd::envelope_size + swarmsgd::payload_header_size;

    void write_headers(std::vector<std::byte>& bytes, swarmsgd::message_kind kind,
                       std::uint32_t sender) const {
        const auto n = x0.size();
        swarmsgd::write_envelope(
            bytes,
            {kind, sender, id, static_cast<std::uint32_t>(bytes.size() - swarmsgd::envelope_size)});
        swarmsgd::write_payload_header(
            std::span<std::byte>(bytes).subspan(swarmsgd::envelope_size),
            {swarmsgd::identity_quantizer<float>::format_id, sizeof(float), n});
    }
    void read_headers(const std::vector<std::byte>& bytes, std::size_t source) const {
        (void)swarmsgd::read_envelope(bytes, source);
        (void)swarmsgd::read_payload_header(
            std::span<const std::byte>(bytes).subspan(swarmsgd::envelope_size),
            swarmsgd::identity_quantizer<float>::format_id, "identity", sizeof(float), x0.size());
    }

    void initiate() {
        const auto n = x0.size();
        if (!copy_twice_checked(x0.data(), snapshot.data(), request.data() + data_offset, n))
            throw std::runtime_error("non-finite model");
        write_headers(request, swarmsgd::message_kind::request, 0);
    }
    void respond() {
        const auto n = x1.size();
        read_headers(request, 0);
        if (!reply_and_average_checked(x1.data(), request.data() + data_offset,
                                       reply.data() + data_offset, n))
            throw std::runtime_error("non-finite value");
        write_headers(reply, swarmsgd::message_kind::reply, 1);
    }
    void complete() {
        const auto n = x0.size();
        read_headers(reply, 1);
        if (!all_finite(reply.data() + data_offset, n))
            throw std::runtime_error("non-finite value");
        average_from_wire(x0.data(), reply.data() + data_offset, snapshot.data(), n);
        ++id;
    }

    std::vector<float> x0, x1, snapshot;
    std::vector<std::byte> request, reply;
    std::uint64_t id = 0;
};

void BM_fused_sketch(benchmark::State& state) {
    const std::size_t n = arg_size(state);
    fused_pair p(random_model(n, 1), random_model(n, 2));
    p.initiate();
    p.respond();
    p.complete();
    double initiator = 0, responder = 0;
    for (auto _ : state) {
        const auto t0 = clock_type::now();
        p.initiate();
        const auto t1 = clock_type::now();
        p.respond();
        const auto t2 = clock_type::now();
        p.complete();
        const auto t3 = clock_type::now();
        initiator += seconds_between(t0, t1) + seconds_between(t2, t3);
        responder += seconds_between(t1, t2);
    }
    using benchmark::Counter;
    state.counters["initiator_us"] = Counter(initiator * 1e6, Counter::kAvgIterations);
    state.counters["responder_us"] = Counter(responder * 1e6, Counter::kAvgIterations);
    state.counters["per_side_us"] =
        Counter((initiator + responder) * 0.5e6, Counter::kAvgIterations);
    set_model_bytes(state, n);
}

/// The sketch must compute exactly what the library computes; checked once at start-up on an
/// odd size (vector tails included), over a few interactions.
bool fused_sketch_matches_library() {
    constexpr std::size_t n = 4099;
    node_pair lib(n);
    fused_pair sketch(random_model(n, 1), random_model(n, 2));
    for (int i = 0; i < 3; ++i) {
        lib.interact();
        sketch.initiate();
        sketch.respond();
        sketch.complete();
        // a "local step" between interactions so that the models stay distinct
        for (std::size_t k = 0; k < n; k += 7) {
            lib.model0[k] += 0.25f;
            sketch.x0[k] += 0.25f;
        }
    }
    const bool same = std::memcmp(lib.model0.data(), sketch.x0.data(), n * sizeof(float)) == 0 &&
                      std::memcmp(lib.model1.data(), sketch.x1.data(), n * sizeof(float)) == 0;
    // A non-finite value late in the request: refused, and the model restored bit for bit.
    const std::vector<float> before = sketch.x1;
    sketch.initiate();
    store_float(sketch.request.data() + fused_pair::data_offset, n - 5,
                std::numeric_limits<float>::quiet_NaN());
    bool refused = false;
    try {
        sketch.respond();
    } catch (const std::runtime_error&) {
        refused = true;
    }
    return same && refused && std::memcmp(before.data(), sketch.x1.data(), n * sizeof(float)) == 0;
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
BENCHMARK(BM_phase_gather)->Apply(sizes);
BENCHMARK(BM_phase_check_finite)->Apply(sizes);
BENCHMARK(BM_phase_encode)->Apply(sizes);
BENCHMARK(BM_phase_decode)->Apply(sizes);
BENCHMARK(BM_phase_apply)->Apply(sizes);
BENCHMARK(BM_phase_message)->Apply(sizes);
BENCHMARK(BM_fused_sketch)->Apply(sizes);

// ------------------------------------------------------------------------------------------
// Reporter that prints as usual and keeps each run's time per iteration (seconds) and
// counters, keyed by (function name, model size). With repetitions, medians are used.
// ------------------------------------------------------------------------------------------

class collecting_reporter : public benchmark::ConsoleReporter {
public:
    using benchmark::ConsoleReporter::ConsoleReporter;

    void ReportRuns(const std::vector<Run>& runs) override {
        benchmark::ConsoleReporter::ReportRuns(runs);
        for (const auto& r : runs) {
            if (r.error_occurred) continue;
            // Every repetition is kept; with --benchmark_display_aggregates_only only the
            // aggregates arrive here, and then the "median" aggregate is used.
            auto* table = &runs_;
            if (r.run_type == Run::RT_Aggregate) {
                if (r.aggregate_name != "median") continue;
                table = &medians_;
            } else if (r.iterations <= 0) {
                continue;
            }
            std::size_t n = 0;
            try {
                n = static_cast<std::size_t>(std::stoull(r.run_name.args));
            } catch (const std::exception&) {
                continue;
            }
            const double to_seconds = 1.0 / benchmark::GetTimeUnitMultiplier(r.time_unit);
            auto& e = (*table)[{r.run_name.function_name, n}];
            e.seconds.push_back(r.GetAdjustedRealTime() * to_seconds);
            e.cpu_seconds.push_back(r.GetAdjustedCPUTime() * to_seconds);
            for (const auto& [name, counter] : r.counters)
                e.counters[name].push_back(counter.value);
        }
    }

    /// Median seconds per iteration of `name` at size n, or a negative value when not run.
    [[nodiscard]] double seconds(const std::string& name, std::size_t n) const {
        const entry* e = find(name, n);
        return e == nullptr ? -1.0 : median(e->seconds);
    }
    /// Median CPU seconds per iteration (meaningless for the manual-time benchmarks).
    [[nodiscard]] double cpu_seconds(const std::string& name, std::size_t n) const {
        const entry* e = find(name, n);
        return e == nullptr ? -1.0 : median(e->cpu_seconds);
    }
    /// Median of a counter, or a negative value when absent.
    [[nodiscard]] double counter(const std::string& name, std::size_t n,
                                 const std::string& counter_name) const {
        const entry* e = find(name, n);
        if (e == nullptr) return -1.0;
        const auto c = e->counters.find(counter_name);
        return c == e->counters.end() ? -1.0 : median(c->second);
    }
    /// Model sizes that have a memcpy baseline.
    [[nodiscard]] std::vector<std::size_t> sizes_run() const {
        std::vector<std::size_t> out;
        for (const auto* table : {&runs_, &medians_})
            for (const auto& [key, value] : *table)
                if (key.first == "BM_memcpy" &&
                    std::find(out.begin(), out.end(), key.second) == out.end())
                    out.push_back(key.second);
        std::sort(out.begin(), out.end());
        return out;
    }

private:
    struct entry {
        std::vector<double> seconds;
        std::vector<double> cpu_seconds;
        std::map<std::string, std::vector<double>> counters;
    };
    static double median(std::vector<double> v) {
        if (v.empty()) return -1.0;
        std::sort(v.begin(), v.end());
        const std::size_t m = v.size() / 2;
        return v.size() % 2 == 1 ? v[m] : 0.5 * (v[m - 1] + v[m]);
    }
    using table_type = std::map<std::pair<std::string, std::size_t>, entry>;
    [[nodiscard]] const entry* find(const std::string& name, std::size_t n) const {
        for (const auto* table : {&runs_, &medians_}) {
            const auto it = table->find({name, n});
            if (it != table->end()) return &it->second;
        }
        return nullptr;
    }
    table_type runs_;     // one entry per repetition
    table_type medians_;  // "median" aggregates (only used when repetitions are not shown)
};

/// Prints, per model size with a memcpy baseline:
///   summary      the ratios on wall-clock time (what the issue asks for)
///   summary_cpu  the same ratios on CPU time (robust when other processes share the cores)
///   detail       the absolute times behind them
///   breakdown    the phases each side runs, alone, on CPU time, against the measured side
///   sketch       the fused-pass sketch against memcpy and against the library
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

        const double gather = rep.cpu_seconds("BM_phase_gather", n);
        const double check = rep.cpu_seconds("BM_phase_check_finite", n);
        const double encode = rep.cpu_seconds("BM_phase_encode", n);
        const double decode = rep.cpu_seconds("BM_phase_decode", n);
        const double apply = rep.cpu_seconds("BM_phase_apply", n);
        const double message = rep.cpu_seconds("BM_phase_message", n);
        if (gather > 0 && check > 0 && encode > 0 && decode > 0 && apply > 0 && message > 0) {
            // initiator: gather + check + encode + message, then decode + check + apply
            // responder: gather + decode + check (received) + check (own) + encode + apply
            const double sum = gather + 2 * check + encode + decode + apply + message;
            const auto side_line = [&](const char* side, double measured) {
                std::printf(
                    "breakdown n=%zu clock=cpu side=%s measured_us=%.1f phases_sum_us=%.1f "
                    "gather=%.1f check_finite=2x%.1f encode=%.1f decode=%.1f apply=%.1f "
                    "message=%.2f\n",
                    n, side, measured * 1e6, sum * 1e6, gather * 1e6, check * 1e6, encode * 1e6,
                    decode * 1e6, apply * 1e6, message * 1e6);
            };
            side_line("initiator", initiator_cpu);
            side_line("responder", responder_cpu);
            std::printf(
                "breakdown n=%zu clock=cpu phase_vs_memcpy gather=%.2f check_finite=%.2f "
                "encode=%.2f decode=%.2f apply=%.2f message=%.4f\n",
                n, gather / memcpy_cpu, check / memcpy_cpu, encode / memcpy_cpu,
                decode / memcpy_cpu, apply / memcpy_cpu, message / memcpy_cpu);
        }
        const double fused_s = rep.seconds("BM_fused_sketch", n);
        const double fused_cpu = rep.cpu_seconds("BM_fused_sketch", n);
        if (fused_s > 0) {
            const double init = rep.counter("BM_fused_sketch", n, "initiator_us") * 1e-6;
            const double resp = rep.counter("BM_fused_sketch", n, "responder_us") * 1e-6;
            std::printf(
                "sketch n=%zu wall: interaction_vs_memcpy=%.2f per_side_vs_memcpy=%.2f "
                "initiator_vs_memcpy=%.2f responder_vs_memcpy=%.2f speedup_vs_library=%.2f | "
                "cpu: interaction_vs_memcpy=%.2f speedup_vs_library=%.2f\n",
                n, fused_s / memcpy_s, 0.5 * (init + resp) / memcpy_s, init / memcpy_s,
                resp / memcpy_s, interaction_s / fused_s, fused_cpu / memcpy_cpu,
                interaction_cpu / fused_cpu);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

    const bool sketch_ok = fused_sketch_matches_library();
    std::printf("check fused_sketch_bit_identical_to_swarm_node=%s\n", sketch_ok ? "yes" : "NO");

    auto options = benchmark::ConsoleReporter::OO_Tabular;
#ifdef SWARMSGD_BENCH_HAVE_ISATTY
    if (isatty(fileno(stdout)) != 0) options = benchmark::ConsoleReporter::OO_ColorTabular;
#endif
    collecting_reporter reporter(options);
    benchmark::RunSpecifiedBenchmarks(&reporter);
    std::fflush(stdout);
    print_summary(reporter);
    benchmark::Shutdown();
    return sketch_ok ? 0 : 1;
}
