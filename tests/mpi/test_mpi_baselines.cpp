// The baselines (baselines/) over MPI, one node per rank. Run under mpiexec with a scenario:
//   test_mpi_baselines <allreduce_ring|allreduce_native|allreduce_fp16|local_sgd|dpsgd|
//                       dpsgd_lattice|nonfinite|size_mismatch|mixed|hang|hang_native|hang_dpsgd>
// Every rank checks its part; the ranks agree on the verdict with one allreduce, and rank 0
// prints "mpi <scenario> ranks=<n>: PASSED" (exit 0) or FAILED (exit 1). The hang scenarios end
// by MPI_Abort after a rank reported the silent peer (checked by expect_report.cmake).
#include <swarmsgd/baselines.hpp>
#include <swarmsgd/communicators/mpi.hpp>
#include <swarmsgd/quantizers/fp16.hpp>
#include <swarmsgd/quantizers/lattice.hpp>
#include <swarmsgd/swarmsgd.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "mpi_scenario.hpp"

using namespace swarmsgd;

static_assert(native_allreduce<mpi_communicator, float>);
static_assert(native_allreduce<mpi_communicator, double>);
static_assert(stepping_node<allreduce_sgd_node<std::vector<float>, mpi_communicator>>);
static_assert(stepping_node<dpsgd_node<std::vector<double>, mpi_communicator>>);

namespace {

using test_support::rank_of;
using test_support::size_of;

/// Node i pulls towards c_i[k] = i + k; the optimum of the sum is the mean of the c_i.
template <class V>
void quadratic_gradient(std::size_t node, const std::vector<V>& x, std::vector<V>& g) {
    for (std::size_t k = 0; k < x.size(); ++k) g[k] = x[k] - static_cast<V>(node + k);
}

template <class V>
std::vector<std::vector<V>> gather_all(const std::vector<V>& mine) {
    const auto n = static_cast<std::size_t>(size_of());
    const auto d = mine.size();
    std::vector<V> all(n * d);
    const MPI_Datatype t = sizeof(V) == 4 ? MPI_FLOAT : MPI_DOUBLE;
    MPI_Allgather(mine.data(), int(d), t, all.data(), int(d), t, MPI_COMM_WORLD);
    std::vector<std::vector<V>> out(n);
    for (std::size_t i = 0; i < n; ++i)
        out[i].assign(all.begin() + long(i * d), all.begin() + long((i + 1) * d));
    return out;
}

template <class V>
bool same_bits(const std::vector<V>& a, const std::vector<V>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(V)) == 0;
}

/// Trains `node` on the quadratic for `steps` steps with a short pause (other ranks share the
/// cores); returns the sum of the gradients this rank computed.
template <class Node, class V>
std::vector<double> train(Node& node, std::vector<V>& model, std::size_t steps,
                          std::chrono::microseconds pause = std::chrono::microseconds(50)) {
    std::vector<V> grad(model.size());
    std::vector<double> sums(model.size(), 0.0);
    for (std::size_t s = 0; s < steps; ++s) {
        quadratic_gradient(node.rank(), model, grad);
        for (std::size_t k = 0; k < grad.size(); ++k) sums[k] += static_cast<double>(grad[k]);
        node.step(std::span<const V>(grad));
        if (pause.count() > 0) std::this_thread::sleep_for(pause);
    }
    node.finish();
    return sums;
}

/// Checks that every rank holds the same model, bit for bit, and that it is the optimum.
template <class V>
void expect_equal_at_optimum(const std::vector<V>& model, double tolerance, bool& ok) {
    const auto all = gather_all(model);
    for (const auto& m : all) EXPECT(same_bits(m, all[0]));
    const double n = size_of();
    for (std::size_t k = 0; k < model.size(); ++k)
        EXPECT(std::abs(double(model[k]) - ((n - 1) / 2 + double(k))) < tolerance);
}

template <class Opt>
Opt with_timeouts(Opt o, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    o.timeout = timeout;
    o.shutdown_timeout = std::chrono::seconds(30);
    return o;
}

bool scenario(const std::string& name) {
    bool ok = true;
    const int rank = rank_of(), size = size_of();
    const auto n = static_cast<std::size_t>(size);
    const auto me = static_cast<std::size_t>(rank);
    if (name == "allreduce_ring" || name == "allreduce_native" || name == "allreduce_fp16") {
        mpi_communicator comm;
        const auto g = topology::complete(n);
        auto o = with_timeouts(allreduce_sgd_options{});
        o.sgd.learning_rate = 0.1;
        o.use_native_collective = name == "allreduce_native";
        std::vector<float> model(7, 0.5f);
        node_stats stats;
        if (name == "allreduce_fp16") {
            allreduce_sgd_node<std::vector<float>, mpi_communicator, fp16_quantizer<float>> node(
                model, comm, g, o);
            EXPECT(!node.engine().native());
            train(node, model, 150);
            stats = node.stats();
        } else {
            allreduce_sgd_node node(model, comm, g, o);
            EXPECT(node.engine().native() == (name == "allreduce_native"));
            train(node, model, 150);
            stats = node.stats();
        }
        expect_equal_at_optimum(model, name == "allreduce_fp16" ? 5e-3 : 1e-4, ok);
        EXPECT(stats.local_steps == 150);
        if (name == "allreduce_native")
            EXPECT(stats.messages_sent == 0);
        else
            EXPECT(stats.messages_sent == 150 * 2 * (n - 1));
    } else if (name == "local_sgd") {
        // Ring and native averaging, H = 4: equal models after 100 = 25 H steps, and the sum of
        // the models moved only by the SGD steps.
        for (const bool native : {false, true}) {
            mpi_communicator comm;
            const auto g = topology::complete(n);
            auto o = with_timeouts(local_sgd_options{});
            o.sgd.learning_rate = 0.05;
            o.period = 4;
            o.use_native_collective = native;
            std::vector<double> model(5), initial;
            for (std::size_t k = 0; k < model.size(); ++k) model[k] = double(me) * 0.7 - double(k);
            initial = model;
            local_sgd_node node(model, comm, g, o);
            EXPECT(node.engine().native() == native);
            const auto grads = train(node, model, 100);
            const auto all = gather_all(model);
            for (const auto& m : all) EXPECT(same_bits(m, all[0]));
            std::vector<double> sum(model.size()), start(model.size()), gsum(model.size());
            MPI_Allreduce(model.data(), sum.data(), int(model.size()), MPI_DOUBLE, MPI_SUM,
                          MPI_COMM_WORLD);
            MPI_Allreduce(initial.data(), start.data(), int(model.size()), MPI_DOUBLE, MPI_SUM,
                          MPI_COMM_WORLD);
            MPI_Allreduce(grads.data(), gsum.data(), int(model.size()), MPI_DOUBLE, MPI_SUM,
                          MPI_COMM_WORLD);
            for (std::size_t k = 0; k < model.size(); ++k) {
                const double expected = start[k] - o.sgd.learning_rate * gsum[k];
                EXPECT(std::abs(sum[k] - expected) < 1e-9 * (1 + std::abs(expected)));
            }
            EXPECT(node.stats().interactions_completed == 25);
        }
    } else if (name == "dpsgd" || name == "dpsgd_lattice") {
        mpi_communicator comm;
        const auto g = n <= 2 ? topology::complete(n) : topology::ring(n);
        auto o = with_timeouts(dpsgd_options{});
        o.sgd.learning_rate = 0.05;
        std::vector<double> model(6), initial;
        for (std::size_t k = 0; k < model.size(); ++k) model[k] = double(me) - 0.5 * double(k);
        initial = model;
        std::vector<double> grads;
        if (name == "dpsgd_lattice") {
            lattice_options lo;
            lo.initial_distance = 16;
            dpsgd_node<std::vector<double>, mpi_communicator, lattice_quantizer<double>> node(
                model, comm, g, o, lattice_quantizer<double>(lo));
            grads = train(node, model, 200);
            EXPECT(node.quantizer().distance_estimate() < 16);
        } else {
            dpsgd_node node(model, comm, g, o);
            grads = train(node, model, 200);
            EXPECT(node.stats().messages_sent == 200 * g.degree(me));
        }
        std::vector<double> sum(6), start(6), gsum(6);
        MPI_Allreduce(model.data(), sum.data(), 6, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(initial.data(), start.data(), 6, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(grads.data(), gsum.data(), 6, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        for (std::size_t k = 0; k < 6; ++k) {
            const double expected = start[k] - o.sgd.learning_rate * gsum[k];
            EXPECT(std::abs(sum[k] - expected) < 1e-9 * (1 + std::abs(expected)));
            // near the optimum (n - 1) / 2 + k, to the consensus error of a constant rate
            EXPECT(std::abs(model[k] - ((double(n) - 1) / 2 + double(k))) < 0.5);
        }
    } else if (name == "nonfinite") {
        // Rank 1 hands its nodes a NaN gradient once: the step is refused (nothing sent, model
        // unchanged), the rank retries with a good gradient and the run completes normally.
        for (int algorithm = 0; algorithm < 2; ++algorithm) {
            mpi_communicator comm;
            const auto g = topology::complete(n);
            std::vector<double> model(4, 1.0), grad(4, 0.5);
            auto run = [&](auto& node) {
                for (int s = 0; s < 20; ++s) {
                    if (rank == 1 && s == 7) {
                        std::vector<double> bad = grad;
                        bad[2] = std::numeric_limits<double>::quiet_NaN();
                        const auto before = model;
                        const auto sent = node.stats().messages_sent;
                        try {
                            node.step(std::span<const double>(bad));
                            EXPECT(false);
                        } catch (const non_finite_error& e) {
                            EXPECT(std::strstr(e.what(), "gradient element 2 is nan") != nullptr);
                        }
                        EXPECT(same_bits(model, before));
                        EXPECT(node.stats().messages_sent == sent);
                    }
                    node.step(std::span<const double>(grad));
                }
                node.finish();
            };
            if (algorithm == 0) {
                auto o = with_timeouts(allreduce_sgd_options{});
                o.use_native_collective = false;
                allreduce_sgd_node node(model, comm, g, o);
                run(node);
            } else {
                dpsgd_node node(model, comm, g, with_timeouts(dpsgd_options{}));
                run(node);
            }
            const auto all = gather_all(model);
            for (const auto& m : all) EXPECT(same_bits(m, all[0]));
            EXPECT(std::abs(model[0] - (1.0 - 20 * 0.01 * 0.5)) < 1e-12);
        }
    } else if (name == "size_mismatch") {
        mpi_communicator comm;
        std::vector<float> model(rank == 1 ? 11 : 10, 0.0f);
        const auto g = topology::complete(n);
        try {
            allreduce_sgd_node node(model, comm, g, with_timeouts(allreduce_sgd_options{}));
            EXPECT(false);
        } catch (const size_mismatch_error& e) {
            const std::string what = e.what();
            EXPECT(what.find("rank 1 has a model of 11 elements but rank 0 has 10") !=
                   std::string::npos);
        }
    } else if (name == "mixed") {
        // Rank 0 forces the ring, the others use MPI_Iallreduce: rank 0's first ring message
        // reaches rank 1, which names the mistake (message_error) instead of hanging; the
        // job then ends by MPI_Abort (the others' collective can never complete).
        auto o = with_timeouts(allreduce_sgd_options{}, std::chrono::seconds(5));
        o.use_native_collective = rank != 0;
        mpi_communicator comm;
        std::vector<float> model(4, 0.0f), grad(4, 1.0f);
        const auto g = topology::complete(n);
        allreduce_sgd_node node(model, comm, g, o);
        node.step(std::span<const float>(grad));
        EXPECT(false);
    } else if (name == "hang" || name == "hang_native" || name == "hang_dpsgd") {
        // The last rank stops (hung, not dead) after a few steps: the others must raise
        // peer_timeout_error naming it (or the native allreduce) within the timeout.
        mpi_communicator comm;
        std::vector<double> model(6, 1.0), grad(6, 0.0);
        const auto g = topology::ring(n);
        auto run = [&](auto& node) {
            for (int s = 0; s < 100000; ++s) {
                if (rank == size - 1 && s == 10) {
                    std::printf("  rank %d: hanging\n", rank);
                    std::fflush(stdout);
                    std::this_thread::sleep_for(std::chrono::seconds(60));
                }
                node.step(std::span<const double>(grad));
            }
        };
        if (name == "hang_dpsgd") {
            // The hung rank's neighbours wait on it directly; the others wait on those
            // neighbours, which stop sending once they are stuck. So that a neighbour (naming
            // the hung rank) times out first even when the scheduler delays it, the other
            // ranks wait twice as long. (With one timeout, rank 1 reported rank 0 first in
            // one MPICH run on the loaded CI machine, and aborted the job before them.)
            const bool waits_on_hung = rank == 0 || rank == size - 2;
            dpsgd_node node(
                model, comm, g,
                with_timeouts(dpsgd_options{}, std::chrono::seconds(waits_on_hung ? 2 : 4)));
            run(node);
        } else {
            auto o = with_timeouts(allreduce_sgd_options{}, std::chrono::seconds(2));
            o.use_native_collective = name == "hang_native";
            allreduce_sgd_node node(model, comm, g, o);
            run(node);
        }
        EXPECT(false);
    } else {
        std::fprintf(stderr, "unknown scenario '%s'\n", name.c_str());
        return false;
    }
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    return test_support::run_scenario_main(
        argc, argv, "allreduce_ring", scenario,
        [](const std::string& n) { return n.rfind("hang", 0) == 0 || n == "mixed"; });
}
