// Swarm SGD over MPI, one node per rank. Run under mpiexec with a scenario name:
//   test_mpi_swarm <semantics|semantics_general|semantics_recovering|mean|blocking|crossed|
//                   straggler|size_mismatch|disagree_mode|disagree_topology|disagree_quantizer|
//                   single|fault|hang|rendezvous|teardown|teardown_tcp|blocks>
// `semantics` runs the shared suite (tests/support/semantics.hpp: mean preservation with a
// straggler, gossip to consensus, convergence on a convex problem) through the exact exchange
// (identity); `semantics_general` through the general one (general_identity: identity's bytes
// without the fused path), `semantics_recovering` through the recovering one (lattice). Every rank
// checks its part; the ranks agree on the verdict with one allreduce, and rank 0 prints "mpi
// <scenario> ranks=<n>: PASSED" (exit 0) or FAILED (exit 1).
#include <swarmsgd/communicators/mpi.hpp>
#include <swarmsgd/message_block_pool.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/quantizers/min_max.hpp>
#include <swarmsgd/swarmsgd.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "general_identity.hpp"
#include "mpi_scenario.hpp"
#include "mpi_semantics.hpp"
#include "semantics.hpp"

using namespace swarmsgd;
namespace sem = test_support::semantics;

namespace {

using test_support::rank_of;
using test_support::size_of;

/// Node i pulls towards c_i[k] = i + k; the swarm optimum is the mean of the c_i.
struct quadratic {
    double gradient(std::size_t node, const std::vector<double>& x, std::span<double> g) const {
        double loss = 0;
        for (std::size_t k = 0; k < x.size(); ++k) {
            g[k] = x[k] - static_cast<double>(node + k);
            loss += 0.5 * g[k] * g[k];
        }
        return loss;
    }
};

struct run_result {
    std::vector<double> model, initial, gradient_sum;
    node_stats stats;
};

/// Trains this rank's node for `steps` local steps; `pause` is this rank's compute time.
run_result train_on(mpi_communicator& comm, const swarm_options& o, std::size_t steps,
                    std::chrono::microseconds pause, std::size_t dim = 6) {
    const auto n = comm.size();
    const auto g = n == 1 ? topology::complete(1) : topology::complete(n);
    run_result r;
    rng init(99, comm.rank());
    r.model.resize(dim);
    for (auto& v : r.model) v = init.uniform01() * 10 - 5;
    r.initial = r.model;
    r.gradient_sum.assign(dim, 0.0);
    swarm_node node(r.model, comm, g, o);
    quadratic q;
    std::vector<double> grad(dim);
    for (std::size_t s = 0; s < steps; ++s) {
        q.gradient(comm.rank(), r.model, grad);
        for (std::size_t k = 0; k < dim; ++k) r.gradient_sum[k] += grad[k];
        node.apply_gradient(grad);
        std::this_thread::sleep_for(pause);
        node.after_local_step();
    }
    node.finish();
    r.stats = node.stats();
    return r;
}

run_result train(const swarm_options& o, std::size_t steps, std::chrono::microseconds pause,
                 std::size_t dim = 6) {
    mpi_communicator comm;
    return train_on(comm, o, steps, pause, dim);
}

/// Whether `f` throws mpi_error whose text contains `part`.
template <class F>
bool throws_mpi_error(F&& f, const std::string& part) {
    try {
        f();
    } catch (const mpi_error& e) {
        return std::string(e.what()).find(part) != std::string::npos;
    }
    return false;
}

std::vector<double> allreduce_sum(const std::vector<double>& v) {
    std::vector<double> out(v.size());
    MPI_Allreduce(v.data(), out.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_SUM,
                  MPI_COMM_WORLD);
    return out;
}

bool mean_preserved(const run_result& r, double lr, bool& ok) {
    const auto after = allreduce_sum(r.model), before = allreduce_sum(r.initial),
               grads = allreduce_sum(r.gradient_sum);
    for (std::size_t k = 0; k < after.size(); ++k) {
        const double expected = before[k] - lr * grads[k];
        EXPECT(std::abs(after[k] - expected) <= 1e-9 * (1 + std::abs(expected)));
    }
    return ok;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

/// Milliseconds on the monotonic clock, which every process of one machine shares.
long long monotonic_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

/// Writes `text` to $SWARMSGD_MPI_REPORT_DIR/rank<r> (tests/mpi/expect_survivors.cmake).
void write_report(const std::string& text) {
    if (const char* dir = std::getenv("SWARMSGD_MPI_REPORT_DIR")) {
        const std::string path = std::string(dir) + "/rank" + std::to_string(rank_of());
        if (std::FILE* f = std::fopen(path.c_str(), "w")) {
            std::fputs(text.c_str(), f);
            std::fclose(f);
        }
    }
    std::printf("rank %d: %s", rank_of(), text.c_str());
    std::fflush(stdout);
}

/// The options of the scenarios with faults (chaos_*, kill_large): failure_policy::exclude,
/// reply_timeout 1.5 s (tests/CMakeLists.txt passes the same to expect_survivors.cmake).
swarm_options fault_options() {
    swarm_options o;
    o.failure = failure_policy::exclude;
    o.reply_timeout = std::chrono::milliseconds(1500);
    o.shutdown_timeout = std::chrono::seconds(60);
    o.send_linger = std::chrono::milliseconds(300);
    return o;
}

/// The chaos scenarios' objective: node i of n pulls towards c_i[k] = 1 + k + 0.05 i / n (data
/// that differ a little from node to node, as shards of one data set do).
double chaos_target(std::size_t i, std::size_t n, std::size_t k) {
    return 1.0 + static_cast<double>(k) + 0.05 * static_cast<double>(i) / static_cast<double>(n);
}

/// Relative distance of x from the optimum of the objective of the nodes not in `dead`.
double distance_to_optimum(const std::vector<double>& x, std::size_t n,
                           const std::vector<std::size_t>& dead) {
    double num = 0, den = 0;
    for (std::size_t k = 0; k < x.size(); ++k) {
        double c = 0, live = 0;
        for (std::size_t i = 0; i < n; ++i) {
            if (std::find(dead.begin(), dead.end(), i) != dead.end()) continue;
            c += chaos_target(i, n, k);
            live += 1;
        }
        c /= live;
        num += (x[k] - c) * (x[k] - c);
        den += c * c;
    }
    return std::sqrt(num / den);
}

/// failure_policy::exclude under faults (chaos_kill1, chaos_kill2, chaos_stop): a clean run
/// first (the reference), then the same training where one or two ranks, drawn from
/// $SWARMSGD_CHAOS_SEED, SIGKILL themselves at a random step, or one rank stops (no MPI) for
/// 1.5 x reply_timeout. Each rank writes its report (the fault's time; or when it finished,
/// whom it excluded and its distance to the optimum in both runs; or the error it got), and
/// tests/mpi/expect_survivors.cmake checks them: no collective can include a dead rank, so
/// the ranks cannot agree on a verdict themselves. Needs a runtime that keeps the job alive.
[[noreturn]] void chaos(const std::string& fault) {
    const int rank = rank_of(), size = size_of();
    const auto n = static_cast<std::size_t>(size);
    const char* seed_text = std::getenv("SWARMSGD_CHAOS_SEED");
    const std::uint64_t seed = seed_text != nullptr ? std::strtoull(seed_text, nullptr, 10) : 1;
    rng pick(seed, 4242);  // the same draws on every rank
    std::vector<std::size_t> faulty{1 + static_cast<std::size_t>(pick.uniform(n - 1))};
    if (fault == "kill2") {
        std::size_t second = faulty[0];
        while (second == faulty[0]) second = 1 + static_cast<std::size_t>(pick.uniform(n - 1));
        faulty.push_back(second);
    }
    constexpr std::size_t steps = 600, dim = 8;
    const std::size_t fault_step = 300 + static_cast<std::size_t>(pick.uniform(200));
    const bool is_faulty =
        std::find(faulty.begin(), faulty.end(), static_cast<std::size_t>(rank)) != faulty.end();

    swarm_options o = fault_options();
    o.sgd.learning_rate = 0.02;
    o.seed = seed;
    const auto g = topology::ring(n);
    long long fault_at = 0;
    const auto run = [&](bool with_fault) {
        mpi_communicator comm;
        std::vector<double> model(dim, 0.0), grad(dim);
        swarm_node node(model, comm, g, o);
        for (std::size_t s = 0; s < steps; ++s) {
            for (std::size_t k = 0; k < dim; ++k)
                grad[k] = model[k] - chaos_target(comm.rank(), n, k);
            node.apply_gradient(grad);
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
            if (with_fault && is_faulty && s == fault_step) {
                fault_at = monotonic_ms();
                if (fault != "stop") {
                    write_report(detail::concat("fault_at_ms=", fault_at, " killed\n"));
                    std::raise(SIGKILL);
                }
                std::this_thread::sleep_for(o.reply_timeout * 3 / 2);  // stopped: no MPI
            }
            node.after_local_step();
        }
        node.finish();
        std::vector<std::size_t> named;
        for (const auto& x : node.exclusions()) named.push_back(x.peer);
        std::sort(named.begin(), named.end());
        return std::pair{model, named};
    };
    const auto clean = run(false);
    MPI_Barrier(MPI_COMM_WORLD);  // the last collective: after it, ranks may die
    const double clean_error = distance_to_optimum(clean.first, n, {});
    try {
        const auto faulted = run(true);
        // The survivors' accuracy: their distance to the optimum of the survivors' objective,
        // against the clean run's distance to the whole swarm's; within 0.01 (the goal's "1
        // point").
        const double error = distance_to_optimum(faulted.first, n, faulty);
        write_report(detail::concat("fault_at_ms=", fault_at, " finished_at_ms=", monotonic_ms(),
                                    " excluded=", detail::join(faulted.second),
                                    " clean_error=", clean_error, " error=", error,
                                    " accuracy_ok=", error <= clean_error + 0.01 ? 1 : 0, "\n"));
    } catch (const std::exception& e) {
        const bool told = dynamic_cast<const excluded_error*>(&e) != nullptr;
        write_report(detail::concat("fault_at_ms=", fault_at, " ", told ? "told" : "error",
                                    "_at_ms=", monotonic_ms(), " what=", e.what(), "\n"));
    }
    // MPI_Finalize would wait for the dead ranks (Open MPI's finalize synchronizes with every
    // process of the job), so the survivors leave without it once their report is written.
    std::_Exit(0);
}

/// failure_policy::exclude with a rank killed in the middle of a large message: the last rank
/// starts a request of 16 MiB (far above any eager limit, so the transfer needs the sender)
/// and SIGKILLs itself at once. The receiver's matched receive never completes; it must not
/// block anything (MPI_Imrecv, tested with a bound), the survivors exclude the dead rank (by a
/// timeout or a liveness probe in finish()) and finish. Reports as chaos() (no accuracy here).
[[noreturn]] void kill_large() {
    const int rank = rank_of(), size = size_of();
    const auto n = static_cast<std::size_t>(size);
    const swarm_options o = fault_options();
    const auto g = topology::complete(n);
    try {
        mpi_communicator comm;
        std::vector<double> model(std::size_t{2} << 20, 1.0 + rank), grad(model.size(), 0.0);
        swarm_node node(model, comm, g, o);
        MPI_Barrier(MPI_COMM_WORLD);  // the last collective: after it, a rank dies
        if (rank == size - 1) {
            (void)node.initiate(0);
            const long long at = monotonic_ms();
            write_report(detail::concat("fault_at_ms=", at, " killed\n"));
            std::raise(SIGKILL);
        }
        for (int s = 0; s < 20; ++s) {
            node.apply_gradient(grad);
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            node.after_local_step();
        }
        node.finish();
        std::vector<std::size_t> named;
        for (const auto& x : node.exclusions()) named.push_back(x.peer);
        write_report(detail::concat("fault_at_ms=0 finished_at_ms=", monotonic_ms(),
                                    " excluded=", detail::join(named), "\n"));
    } catch (const std::exception& e) {
        write_report(
            detail::concat("fault_at_ms=0 error_at_ms=", monotonic_ms(), " what=", e.what(), "\n"));
    }
    std::_Exit(0);
}

bool scenario(const std::string& name) {
    bool ok = true;
    const int rank = rank_of(), size = size_of();
    swarm_options o;
    o.sgd.learning_rate = 0.01;
    o.reply_timeout = std::chrono::seconds(60);
    if (name == "mean" || name == "blocking" || name == "crossed" || name == "straggler") {
        if (name == "blocking") o.mode = averaging_mode::blocking;
        if (name == "crossed") {  // many requests in flight from everyone: they cross
            o.max_in_flight = 4;
            o.steps = local_steps::fixed(1);
        } else {
            o.steps = local_steps::geometric(2);
        }
        // A straggler 10x slower than the others (rank 0).
        const auto pause = std::chrono::microseconds(name == "straggler" && rank == 0 ? 2000 : 200);
        const auto r = train(o, 300, pause);
        if (size > 1) EXPECT(r.stats.interactions_completed + r.stats.interactions_served > 0);
        const double completed = static_cast<double>(r.stats.interactions_completed),
                     served = static_cast<double>(r.stats.interactions_served);
        double totals[2] = {completed, served}, sums[2];
        MPI_Allreduce(totals, sums, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        EXPECT(sums[0] == sums[1]);  // every interaction completed on both sides
        mean_preserved(r, o.sgd.learning_rate, ok);
        if (rank == 0)
            std::printf("  interactions %.0f, bytes sent by rank 0 %llu, averaging %.3f s\n",
                        sums[0], static_cast<unsigned long long>(r.stats.bytes_sent),
                        r.stats.seconds_averaging);
    } else if (name == "moved") {
        // mpi_communicator moves (into a container, as a framework holds its parts): a node
        // bound to the object moved to trains as usual; the moved-from object refuses every
        // member that communicates, naming what happened.
        mpi_communicator first;
        std::vector<mpi_communicator> comms;
        comms.push_back(std::move(first));
        EXPECT(first.native_handle() == MPI_COMM_NULL);
        EXPECT(first.rank() == static_cast<std::size_t>(rank));
        EXPECT(first.size() == static_cast<std::size_t>(size));
        EXPECT(throws_mpi_error([&] { (void)first.try_receive(); }, "was moved from"));
        EXPECT(throws_mpi_error([&] { (void)first.isend(0, {}); }, "mpi_communicator::isend"));
        EXPECT(throws_mpi_error([&] { first.announce_done(); }, "was moved from"));
        EXPECT(throws_mpi_error([&] { (void)first.all_done(); }, "was moved from"));
        EXPECT(throws_mpi_error([&] { (void)first.wait_for_message(std::chrono::seconds(0)); },
                                "was moved from"));
        // Move assignment releases the target's own communicator first (collectively, as
        // every rank does the same) and leaves the source empty.
        mpi_communicator second;
        second = std::move(comms.back());
        EXPECT(comms.back().native_handle() == MPI_COMM_NULL);
        o.steps = local_steps::geometric(2);
        const auto r = train_on(second, o, 200, std::chrono::microseconds(200));
        if (size > 1) EXPECT(r.stats.interactions_completed + r.stats.interactions_served > 0);
        mean_preserved(r, o.sgd.learning_rate, ok);
        // A node bound to an object that is then moved from fails with that error, not a crash.
        mpi_communicator bound;
        std::vector<double> model(6, 1.0), grad(6, 0.5);
        const auto g = topology::complete(static_cast<std::size_t>(size));
        swarm_node node(model, bound, g, o);
        mpi_communicator taken(std::move(bound));
        node.apply_gradient(grad);
        EXPECT(throws_mpi_error([&] { node.after_local_step(); }, "was moved from"));
    } else if (name == "size_mismatch") {
        mpi_communicator comm;
        std::vector<double> model(rank == 1 ? 11 : 10, 0.0);
        const auto g = topology::complete(static_cast<std::size_t>(size));
        try {
            swarm_node node(model, comm, g, o);
            for (int s = 0; s < 50; ++s) node.after_local_step();
            node.finish();
            EXPECT(false);  // must not get here
        } catch (const size_mismatch_error& e) {
            const std::string what = e.what();
            std::printf("  rank %d: size_mismatch_error: %s\n", rank, e.what());
            EXPECT(what.find("11") != std::string::npos && what.find("10") != std::string::npos);
            EXPECT(what.find("rank 1") != std::string::npos);
        }
    } else if (name == "disagree_mode" || name == "disagree_topology" ||
               name == "disagree_quantizer") {
        // Rank 1 differs in one thing that must match: every rank refuses at start-up with the
        // same error naming rank 1, before any message is exchanged.
        mpi_communicator comm;
        std::vector<double> model(10, 0.0);
        const auto n = static_cast<std::size_t>(size);
        const bool odd = rank == 1;
        if (name == "disagree_mode" && odd) o.mode = averaging_mode::pull;
        const auto g =
            name == "disagree_topology" && odd ? topology::ring(n) : topology::complete(n);
        std::string what;
        try {
            if (name == "disagree_quantizer" && odd) {
                min_max_options mo;
                mo.bits = 4;
                swarm_node node(model, comm, g, o, min_max_quantizer<double>(mo));
            } else if (name == "disagree_quantizer") {
                swarm_node node(model, comm, g, o, min_max_quantizer<double>{});
            } else {
                swarm_node node(model, comm, g, o);
            }
        } catch (const error& e) {
            what = e.what();
        }
        std::printf("  rank %d: %s\n", rank, what.c_str());
        EXPECT(what.find("rank 1") != std::string::npos);
        if (name == "disagree_mode")
            EXPECT(what.find("averages in pull mode") != std::string::npos);
        if (name == "disagree_topology")
            EXPECT(what.find("built another topology") != std::string::npos);
        if (name == "disagree_quantizer")
            EXPECT(what.find("has other parameters") != std::string::npos);
    } else if (name == "semantics") {
        sem::run_mpi_semantics(sem::mpi_harness<identity_quantizer<double>>{}, size, ok);
    } else if (name == "semantics_general") {
        sem::run_mpi_semantics(sem::mpi_harness<test_support::general_identity<double>>{}, size,
                               ok);
    } else if (name == "semantics_recovering") {
        sem::run_mpi_semantics(sem::mpi_harness<lattice_quantizer<double>>{}, size, ok);
    } else if (name == "single") {
        const auto r = train(o, 100, std::chrono::microseconds(0));
        EXPECT(r.stats.interactions_initiated == 0);
    } else if (name == "fault") {
        // The last rank dies without a word after a few steps; the others must report it
        // (peer_timeout_error naming it) instead of hanging. The MPI runtime may also tear the
        // job down first: either way the run ends, and CTest's timeout proves no hang.
        o.reply_timeout = std::chrono::seconds(2);
        o.shutdown_timeout = std::chrono::seconds(4);
        mpi_communicator comm;
        std::vector<double> model(6, 1.0), grad(6, 0.0);
        const auto g = topology::complete(static_cast<std::size_t>(size));
        swarm_node node(model, comm, g, o);
        for (int s = 0; s < 100000; ++s) {
            if (rank == size - 1 && s == 20) {
                std::printf("  rank %d: exiting abruptly\n", rank);
                std::fflush(stdout);
                std::_Exit(3);  // a crash: non-zero, no MPI_Finalize
            }
            node.apply_gradient(grad);
            std::this_thread::sleep_for(std::chrono::microseconds(500));
            node.after_local_step();
        }
        node.finish();
        EXPECT(false);  // must not get here: the dead rank can never be done
    } else if (name == "rendezvous") {
        // A message far above any eager limit (8 MiB) whose sender then computes for 2 s
        // without entering MPI: the receiver's try_receive() must not wait for the transfer
        // (its data moves only while the sender is inside MPI); the message arrives intact
        // once the sender progresses it again.
        mpi_communicator comm;
        constexpr std::size_t bytes = std::size_t{8} << 20;
        if (rank == 1) {
            std::vector<std::byte> payload(bytes);
            for (std::size_t i = 0; i < bytes; ++i) payload[i] = static_cast<std::byte>(i * 7);
            auto request = comm.isend(0, std::move(payload));
            MPI_Barrier(MPI_COMM_WORLD);                           // rank 0 has started polling
            std::this_thread::sleep_for(std::chrono::seconds(2));  // "computing", no MPI
            while (!request.test()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        } else if (rank == 0) {
            MPI_Barrier(MPI_COMM_WORLD);
            double slowest = 0;
            std::optional<received_message> m;
            const auto start = std::chrono::steady_clock::now();
            while (!m && std::chrono::steady_clock::now() - start < std::chrono::seconds(30)) {
                const auto before = std::chrono::steady_clock::now();
                m = comm.try_receive();
                slowest = std::max(slowest, std::chrono::duration<double>(
                                                std::chrono::steady_clock::now() - before)
                                                .count());
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            std::printf("  slowest try_receive %.3f s; message %s\n", slowest,
                        m ? "received" : "missing");
            EXPECT(slowest < 0.5);  // the sender's 2 s of computing are not spent in here
            EXPECT(m && m->source == 1 && m->bytes.size() == bytes);
            bool intact = m.has_value();
            for (std::size_t i = 0; intact && i < bytes; ++i)
                intact = m->bytes[i] == static_cast<std::byte>(i * 7);
            EXPECT(intact);
        } else {
            MPI_Barrier(MPI_COMM_WORLD);
        }
    } else if (name == "teardown" || name == "teardown_tcp") {  // _tcp: run over TCP only
        // Rank 1 stops (no MPI at all) while rank 0's 16 MiB request to it is in flight, far
        // above any eager limit, so the send cannot complete. Rank 0 reports the partner within
        // reply_timeout, and destroying its node returns within send_linger (the send is
        // detached, its buffer kept for MPI), not after a wait per unfinished send.
        o.reply_timeout = std::chrono::milliseconds(500);
        o.send_linger = std::chrono::milliseconds(300);
        mpi_communicator comm;
        std::vector<double> model(std::size_t{2} << 20, 1.0);
        const auto g = topology::complete(static_cast<std::size_t>(size));
        {
            std::optional<swarm_node<std::vector<double>, mpi_communicator>> node;
            node.emplace(model, comm, g, o);
            if (rank == 0) {
                const auto start = std::chrono::steady_clock::now();
                (void)node->initiate(1);
                std::string what;
                try {
                    while (std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
                        node->poll();
                        std::this_thread::sleep_for(std::chrono::milliseconds(1));
                    }
                } catch (const peer_timeout_error& e) {
                    what = e.what();
                }
                const double reported = seconds_since(start);
                const auto destroying = std::chrono::steady_clock::now();
                node.reset();
                const double destroyed = seconds_since(destroying);
                std::printf("  rank 0: reported after %.3f s (%s); node destroyed in %.3f s\n",
                            reported, what.c_str(), destroyed);
                EXPECT(what.find("no reply from node 1") != std::string::npos);
                EXPECT(reported < 2.0);
                EXPECT(destroyed < 0.3 + 0.5);
            } else if (rank == 1) {
                std::this_thread::sleep_for(std::chrono::seconds(3));  // stopped: no MPI
            }
        }
        // Rank 1 takes the request its stopped node never served, so that every send completes
        // and both ranks finalize cleanly.
        if (rank == 1) {
            const auto start = std::chrono::steady_clock::now();
            std::optional<received_message> m;
            while (!m && std::chrono::steady_clock::now() - start < std::chrono::seconds(30)) {
                m = comm.try_receive();
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            EXPECT(m.has_value());
        }
        MPI_Barrier(MPI_COMM_WORLD);
    } else if (name == "resume") {
        // Checkpoint and resume over MPI: a run stopped after 150 of 300 steps (every rank
        // saving every 50 steps on its own schedule, and once more after finish(): then no
        // node changes any more, so the files are a consistent cut), its nodes destroyed, its
        // models overwritten, and fresh nodes (on a fresh communicator) restored from the files
        // to train the steps left. Each node goes on from step 150, and the sum invariant holds
        // across the interruption (sum = initial sum - lr x every gradient of both parts),
        // which it cannot if a model, or a reply in flight at a save, were lost.
        o.steps = local_steps::geometric(2);
        o.sgd.learning_rate = 0.05;
        const auto pause = std::chrono::microseconds(200);
        const std::string file = "/tmp/swarmsgd_mpi_resume_rank" + std::to_string(rank) + ".ckpt";
        mpi_communicator comm;
        const auto n = static_cast<std::size_t>(size);
        const auto g = topology::complete(n);
        rng init(99, comm.rank());
        std::vector<double> model(6), initial, grad(6), gradient_sum(6, 0.0);
        for (auto& v : model) v = init.uniform01() * 10 - 5;
        initial = model;
        quadratic q;
        const auto run = [&](swarm_node<std::vector<double>, mpi_communicator>& node,
                             std::size_t from, std::size_t to) {
            for (std::size_t s = from; s < to; ++s) {
                q.gradient(comm.rank(), model, grad);
                for (std::size_t k = 0; k < grad.size(); ++k) gradient_sum[k] += grad[k];
                node.apply_gradient(grad);
                std::this_thread::sleep_for(pause);
                node.after_local_step();
                if ((s + 1) % 50 == 0) node.save_checkpoint(file);
            }
            node.finish();
            node.save_checkpoint(file);  // after finish(): what every peer applied is in it
        };
        {
            swarm_node node(model, comm, g, o);
            run(node, 0, 150);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        std::fill(model.begin(), model.end(), 1e3);  // the checkpoint must bring it back
        std::size_t resumed_at = 0;
        node_stats stats;
        {
            mpi_communicator again;
            swarm_node node(model, again, g, o);
            node.restore_checkpoint(file);
            resumed_at = static_cast<std::size_t>(node.stats().local_steps);
            EXPECT(resumed_at == 150);
            run(node, resumed_at, 300);
            stats = node.stats();
        }
        EXPECT(stats.local_steps == 300);
        run_result r;
        r.model = model;
        r.initial = initial;
        r.gradient_sum = gradient_sum;
        mean_preserved(r, o.sgd.learning_rate, ok);
        std::remove(file.c_str());
    } else if (name == "kill_large") {
        kill_large();
    } else if (name.rfind("chaos_", 0) == 0) {
        chaos(name.substr(6));
    } else if (name == "hang") {
        // The last rank stops answering (hung, not dead): the others must raise
        // peer_timeout_error naming it within reply_timeout, never wait forever.
        o.reply_timeout = std::chrono::seconds(2);
        mpi_communicator comm;
        std::vector<double> model(6, 1.0), grad(6, 0.0);
        const auto g = topology::complete(static_cast<std::size_t>(size));
        swarm_node node(model, comm, g, o);
        for (int s = 0; s < 100000; ++s) {
            if (rank == size - 1 && s == 20) {
                std::printf("  rank %d: hanging\n", rank);
                std::fflush(stdout);
                std::this_thread::sleep_for(std::chrono::seconds(60));
            }
            node.apply_gradient(grad);
            std::this_thread::sleep_for(std::chrono::microseconds(500));
            node.after_local_step();
        }
        EXPECT(false);
    } else if (name == "blocks") {
        // The block capability (block_communicator.hpp): every rank sends every other rank
        // messages from empty to 3 MiB (eager and rendezvous), alternately with isend_block and
        // isend; the receiver takes them with try_receive_block (first until one arrives, with
        // a source that throws once and then gives a block too small once), then alternately
        // with try_receive. Every message arrives once, intact, in its sender's order.
        mpi_communicator comm;
        const std::size_t n = comm.size(), me = comm.rank();
        const std::vector<std::size_t> sizes{0, 1, 40, 4096, 70000, std::size_t{3} << 20};
        const auto content = [](std::size_t from, std::size_t to, std::size_t k, std::size_t i) {
            return static_cast<std::byte>((from * 131 + to * 17 + k * 7 + i) & 0xFF);
        };
        struct flaky_source final : message_block_source {
            message_block_pool<> pool;
            bool threw = false, gave_short = false;
            message_block acquire(std::size_t bytes) override {
                if (!threw) {
                    threw = true;
                    throw std::runtime_error("no pinned memory left");
                }
                if (!gave_short && bytes > 1) {  // one byte short (no block is short for 0)
                    gave_short = true;
                    return {std::shared_ptr<std::byte>(new std::byte[bytes - 1],
                                                       std::default_delete<std::byte[]>()),
                            bytes - 1};
                }
                return pool.acquire(bytes);
            }
        } source;
        message_block_pool<> send_pool;
        std::vector<mpi_send_request> sends;
        for (std::size_t k = 0; k < sizes.size(); ++k)
            for (std::size_t dest = 0; dest < n; ++dest) {
                if (dest == me) continue;
                if (k % 2 == 0) {
                    auto block = send_pool.acquire(sizes[k]);
                    for (std::size_t i = 0; i < sizes[k]; ++i)
                        block.data()[i] = content(me, dest, k, i);
                    sends.push_back(comm.isend_block(dest, std::move(block), sizes[k]));
                } else {
                    std::vector<std::byte> bytes(sizes[k]);
                    for (std::size_t i = 0; i < sizes[k]; ++i) bytes[i] = content(me, dest, k, i);
                    sends.push_back(comm.isend(dest, std::move(bytes)));
                }
            }
        std::vector<std::size_t> next(n, 0);
        std::size_t received = 0, thrown = 0, too_small = 0, by_block = 0;
        const auto check = [&](std::size_t from, std::span<const std::byte> bytes) {
            EXPECT(from < n && from != me && next[from] < sizes.size());
            if (from >= n || next[from] >= sizes.size()) return;
            const std::size_t k = next[from]++;
            EXPECT(bytes.size() == sizes[k]);
            bool intact = bytes.size() == sizes[k];
            for (std::size_t i = 0; intact && i < bytes.size(); ++i)
                intact = bytes[i] == content(from, me, k, i);
            EXPECT(intact);
            ++received;
        };
        const std::size_t total = (n - 1) * sizes.size();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        for (std::size_t call = 0; received < total && std::chrono::steady_clock::now() < deadline;
             ++call) {
            for (auto& r : sends) (void)r.test();  // progress our rendezvous sends
            if (by_block == 0 || call % 2 == 0) {
                try {
                    if (auto m = comm.try_receive_block(source)) {
                        EXPECT(m->block.capacity() >= m->size);
                        check(m->source, m->bytes());
                        ++by_block;
                    }
                } catch (const invalid_argument_error& e) {
                    ++too_small;
                    EXPECT(std::string(e.what()).find("but the block holds only") !=
                           std::string::npos);
                } catch (const std::runtime_error& e) {
                    ++thrown;
                    EXPECT(std::string(e.what()) == "no pinned memory left");
                }
            } else if (auto m = comm.try_receive()) {
                check(m->source, m->bytes);
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        std::printf("  rank %zu: %zu of %zu messages, %zu into blocks\n", me, received, total,
                    by_block);
        EXPECT(received == total);
        EXPECT(thrown == 1 && too_small == 1);
        EXPECT(by_block >= 1);
        for (auto& r : sends) EXPECT(r.wait(std::chrono::seconds(30)));
        MPI_Barrier(MPI_COMM_WORLD);
        EXPECT(!comm.try_receive());  // nothing arrived twice
    } else {
        std::fprintf(stderr, "unknown scenario '%s'\n", name.c_str());
        return false;
    }
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    return test_support::run_scenario_main(argc, argv, "mean", scenario, [](const std::string& n) {
        return n == "fault" || n == "hang";
    });
}
