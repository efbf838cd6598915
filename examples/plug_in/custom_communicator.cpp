// Plugging in your own communicator: any type with the members of swarmsgd::communicator can
// carry a swarm_node's messages (sockets, MPI, a message queue, ...), and any set of endpoints
// with the members of swarmsgd::thread_world can be driven by run_in_process, one thread per
// node, with its abort-and-rethrow handling. Here a user's wrapper around the in-process
// endpoints counts the bytes each node sends; 4 threads train a quadratic, and the sum of the
// models must change only by the SGD updates (averaging preserves the mean), and the bytes
// counted must be those the nodes report. See docs/architecture.md, "Your own communicator".
#include <swarmsgd/swarmsgd.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

class counting_communicator {
public:
    counting_communicator(swarmsgd::in_process_communicator inner, std::atomic<std::uint64_t>& sent)
        : inner_(inner), sent_(&sent) {}

    std::size_t rank() const { return inner_.rank(); }
    std::size_t size() const { return inner_.size(); }
    // Non-blocking send; returns a send_request (here the inner one: complete at once).
    auto isend(std::size_t dest, std::vector<std::byte> bytes) {
        *sent_ += bytes.size();
        return inner_.isend(dest, std::move(bytes));
    }
    std::optional<swarmsgd::received_message> try_receive() { return inner_.try_receive(); }
    bool wait_for_message(std::chrono::nanoseconds timeout) {
        return inner_.wait_for_message(timeout);
    }
    void announce_done() { inner_.announce_done(); }  // shutdown protocol
    bool all_done() const { return inner_.all_done(); }

private:
    swarmsgd::in_process_communicator inner_;
    std::atomic<std::uint64_t>* sent_;
};
static_assert(swarmsgd::communicator<counting_communicator>);

// The endpoints run_in_process drives: one counting_communicator per node. abort() must make
// the other endpoints' waits throw swarmsgd::aborted_error (the inner world's do).
class counting_world {
public:
    explicit counting_world(std::size_t n) : inner_(n), sent_(n) {}

    std::size_t size() const { return inner_.size(); }
    counting_communicator endpoint_for(std::size_t i) {
        return counting_communicator(inner_.endpoint_for(i), sent_[i]);
    }
    void abort(const std::string& reason) { inner_.abort(reason); }

    std::uint64_t bytes_sent(std::size_t i) const { return sent_[i].load(); }

private:
    swarmsgd::in_process_world inner_;
    std::vector<std::atomic<std::uint64_t>> sent_;
};
static_assert(swarmsgd::thread_world<counting_world>);

// Your framework's gradient: node i pulls toward c_i[k] = i + k. It also records -lr * sum(g)
// per node (each node's thread writes only its own row).
struct pull_to_targets {
    double lr;
    std::vector<std::vector<double>> applied;

    double gradient(std::size_t node, const std::vector<double>& x, std::span<double> g,
                    swarmsgd::rng& /*data*/) {
        for (std::size_t k = 0; k < g.size(); ++k) {
            g[k] = x[k] - static_cast<double>(node + k);
            applied[node][k] -= lr * g[k];
        }
        std::this_thread::sleep_for(std::chrono::microseconds(20));  // "compute"
        return 0.0;
    }
};

int main() {
    constexpr std::size_t n = 4, dim = 6, steps = 2000;
    constexpr double lr = 0.02;
    std::vector<std::vector<double>> models(n, std::vector<double>(dim, 0.0));
    pull_to_targets problem{lr, std::vector<std::vector<double>>(n, std::vector<double>(dim))};

    swarmsgd::swarm_options options;  // non-blocking snapshot averaging, H = 1
    options.sgd.learning_rate = lr;
    options.max_in_flight = 2;
    const auto graph = swarmsgd::topology::complete(n);
    counting_world world(n);
    // One thread per node; if one fails, world.abort stops the others and its error is
    // rethrown here.
    const auto report = swarmsgd::run_in_process(world, models, graph, problem, steps, options);

    bool bytes_match = true;
    for (std::size_t i = 0; i < n; ++i)
        bytes_match = bytes_match && world.bytes_sent(i) == report.nodes[i].bytes_sent;
    // sum_i X_i(T) = sum_i X_i(0) + every SGD update: averaging changed nothing in the sum.
    double drift = 0;
    const auto sum = swarmsgd::sum_model(models);
    for (std::size_t k = 0; k < dim; ++k) {
        double expected = 0;
        for (const auto& a : problem.applied) expected += a[k];
        drift = std::fmax(drift, std::fabs(sum[k] - expected));
    }
    std::printf(
        "custom_communicator: %zu threads, %llu interactions, sum drift %.3g, Gamma %.3g, "
        "bytes counted %s\n",
        n, static_cast<unsigned long long>(report.total().interactions_completed), drift,
        swarmsgd::consensus_distance(models), bytes_match ? "match" : "DIFFER");
    return drift < 1e-9 && bytes_match && report.total().interactions_completed > 0 ? 0 : 1;
}
