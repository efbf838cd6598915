// Plugging in your own communicator: any type with the members of swarmsgd::communicator can
// carry a swarm_node's messages (sockets, MPI, a message queue, ...). Here a user's wrapper
// around the in-process endpoint counts the bytes it sends; 4 threads train a quadratic with
// swarm_node in a hand-written loop, and the sum of the models must change only by the SGD
// updates (averaging preserves the mean). See docs/architecture.md, "Your own communicator".
#include <swarmsgd/swarmsgd.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <thread>
#include <vector>

class counting_communicator {
public:
    explicit counting_communicator(swarmsgd::in_process_communicator inner) : inner_(inner) {}

    std::size_t rank() const { return inner_.rank(); }
    std::size_t size() const { return inner_.size(); }
    // Non-blocking send; returns a send_request (here the inner one: complete at once).
    auto isend(std::size_t dest, std::vector<std::byte> bytes) {
        bytes_sent += bytes.size();
        return inner_.isend(dest, std::move(bytes));
    }
    std::optional<swarmsgd::received_message> try_receive() { return inner_.try_receive(); }
    bool wait_for_message(std::chrono::nanoseconds timeout) {
        return inner_.wait_for_message(timeout);
    }
    void announce_done() { inner_.announce_done(); }  // shutdown protocol
    bool all_done() const { return inner_.all_done(); }

    std::uint64_t bytes_sent = 0;

private:
    swarmsgd::in_process_communicator inner_;
};
static_assert(swarmsgd::communicator<counting_communicator>);

int main() {
    constexpr std::size_t n = 4, dim = 6, steps = 2000;
    constexpr double lr = 0.02;
    std::vector<std::vector<double>> models(n, std::vector<double>(dim, 0.0));
    std::vector<std::vector<double>> applied(n, std::vector<double>(dim, 0.0));  // -lr * sum(g)
    std::vector<std::exception_ptr> errors(n);
    std::atomic<bool> bytes_match = true;  // written by the node threads

    swarmsgd::swarm_options options;  // non-blocking snapshot averaging, H = 1
    options.sgd.learning_rate = lr;
    options.max_in_flight = 2;
    const auto graph = swarmsgd::topology::complete(n);
    swarmsgd::in_process_world world(n);
    {
        std::vector<std::jthread> threads;
        for (std::size_t i = 0; i < n; ++i)
            threads.emplace_back([&, i] {
                try {
                    counting_communicator comm(world.endpoint_for(i));
                    swarmsgd::swarm_node node(models[i], comm, graph, options);
                    std::vector<double> grad(dim);
                    for (std::size_t s = 0; s < steps; ++s) {
                        // Your framework's gradient: node i pulls toward c_i[k] = i + k.
                        for (std::size_t k = 0; k < dim; ++k) {
                            grad[k] = models[i][k] - static_cast<double>(i + k);
                            applied[i][k] -= lr * grad[k];
                        }
                        std::this_thread::sleep_for(std::chrono::microseconds(20));  // "compute"
                        node.apply_gradient(grad);  // plain SGD: x -= lr * grad
                        node.after_local_step();    // serves the inbox, averages when due
                    }
                    node.finish();  // loses nothing, bounded by the timeouts
                    if (comm.bytes_sent != node.stats().bytes_sent) bytes_match = false;
                } catch (...) {
                    errors[i] = std::current_exception();
                    world.abort("node failed");  // wakes and stops the other threads
                }
            });
    }
    for (const auto& e : errors)
        if (e) std::rethrow_exception(e);

    // sum_i X_i(T) = sum_i X_i(0) + every SGD update: averaging changed nothing in the sum.
    double drift = 0;
    const auto sum = swarmsgd::sum_model(models);
    for (std::size_t k = 0; k < dim; ++k) {
        double expected = 0;
        for (const auto& a : applied) expected += a[k];
        drift = std::fmax(drift, std::fabs(sum[k] - expected));
    }
    std::printf("custom_communicator: %zu threads, sum drift %.3g, Gamma %.3g, bytes counted %s\n",
                n, drift, swarmsgd::consensus_distance(models),
                bytes_match.load() ? "match" : "DIFFER");
    return drift < 1e-9 && bytes_match ? 0 : 1;
}
