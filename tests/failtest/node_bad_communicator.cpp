// expect: does not satisfy swarmsgd::communicator
// A communicator without try_receive(): swarm_node must name the concept it misses.
// Written with deduction; the corrected variant (complete) is compiled by failtest_*_corrected.
#include <chrono>
#include <cstddef>
#include <optional>
#include <swarmsgd/swarm_node.hpp>
#include <vector>

struct incomplete_communicator {
    [[nodiscard]] std::size_t rank() const { return 0; }
    [[nodiscard]] std::size_t size() const { return 1; }
    swarmsgd::completed_request isend(std::size_t, std::vector<std::byte>) { return {}; }
#ifdef SWARMSGD_FAILTEST_CORRECTED
    std::optional<swarmsgd::received_message> try_receive() { return std::nullopt; }
#endif
    bool wait_for_message(std::chrono::nanoseconds) { return false; }
    void announce_done() {}
    [[nodiscard]] bool all_done() const { return true; }
};

int main() {
    std::vector<float> model(3);
    incomplete_communicator comm;
    const auto graph = swarmsgd::topology::complete(1);
    swarmsgd::swarm_node node(model, comm, graph, {});
    return static_cast<int>(node.size()) - 3;
}
