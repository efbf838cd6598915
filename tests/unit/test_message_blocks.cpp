// Message blocks: the pool's reuse and lifetime rules, and the block capability's fallback over
// communicators without it (block_receiver, send_block): the same messages in the same order,
// and nothing lost when the block source fails. MPI's native capability: tests/mpi (blocks).
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>
#include <swarmsgd/block_communicator.hpp>
#include <swarmsgd/communicators/in_process.hpp>
#include <swarmsgd/communicators/simulated.hpp>
#include <swarmsgd/message_block_pool.hpp>
#include <thread>
#include <vector>

#include "error_text.hpp"

using namespace swarmsgd;

namespace {

/// Counts what the pool allocates and frees.
struct counting_allocator {
    std::atomic<int>* live;
    std::byte* allocate(std::size_t bytes) {
        ++*live;
        return host_block_allocator{}.allocate(bytes);
    }
    void deallocate(std::byte* p, std::size_t bytes) noexcept {
        --*live;
        host_block_allocator{}.deallocate(p, bytes);
    }
};
static_assert(block_allocator<counting_allocator>);
static_assert(block_allocator<host_block_allocator>);

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    for (std::size_t k = 0; k < n; ++k) v[k] = std::byte((k * 31 + seed) & 0xFF);
    return v;
}

/// A source that fails on demand: throws, or gives a block too small.
struct flaky_source final : message_block_source {
    message_block_pool<> pool;
    int throw_next = 0;
    int short_next = 0;
    message_block acquire(std::size_t bytes) override {
        if (throw_next > 0) {
            --throw_next;
            throw std::runtime_error("no pinned memory left");
        }
        if (short_next > 0 && bytes > 1) {
            --short_next;
            auto b = pool.acquire(bytes);
            return {std::shared_ptr<std::byte>(b.data(), [b](std::byte*) {}), bytes - 1};
        }
        return pool.acquire(bytes);
    }
};

}  // namespace

TEST_CASE("message_block_pool: blocks are reused, best fit, and outlive the pool safely") {
    std::atomic<int> live{0};
    {
        message_block_pool<counting_allocator> pool(counting_allocator{&live}, 2);
        auto a = pool.acquire(100);
        CHECK(a.capacity() == message_block_pool<>::granule);
        CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % 64 == 0);
        auto big = pool.acquire(3 * 4096 + 1);
        CHECK(big.capacity() == 4 * 4096);
        CHECK(live == 2);
        std::byte* const small_memory = a.data();
        std::byte* const big_memory = big.data();
        a = {};
        big = {};
        CHECK(pool.cached() == 2);
        // The smallest free block that fits, not the first.
        auto again = pool.acquire(10);
        CHECK(again.data() == small_memory);
        auto again_big = pool.acquire(5000);
        CHECK(again_big.data() == big_memory);
        CHECK(pool.allocations() == 2);
        CHECK(pool.reuses() == 2);
        CHECK(live == 2);
        // A copy of the handle keeps the block: it returns when the last one goes.
        message_block copy = again;
        again = {};
        CHECK(pool.cached() == 0);
        copy = {};
        CHECK(pool.cached() == 1);
        // At most max_cached = 2 free blocks are kept.
        auto x = pool.acquire(10);
        auto y = pool.acquire(10);
        auto z = pool.acquire(10);
        x = {};
        y = {};
        z = {};
        again_big = {};
        CHECK(pool.cached() == 2);
        CHECK(live == 2);
        // A block still held when the pool goes is freed when released, not recycled.
        x = pool.acquire(10);
        CHECK(live == 2);
        { message_block_pool<counting_allocator> gone = std::move(pool); }
        CHECK(live == 1);
        std::memset(x.data(), 7, x.capacity());  // still valid memory
        x = {};
        CHECK(live == 0);
    }
    CHECK(live == 0);
}

TEST_CASE("message_block_pool: blocks acquired and released from several threads") {
    std::atomic<int> live{0};
    {
        message_block_pool<counting_allocator> pool(counting_allocator{&live}, 4);
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < 4; ++t)
            threads.emplace_back([&pool, t] {
                for (unsigned i = 0; i < 2000; ++i) {
                    auto b = pool.acquire(64 + (i % 7) * 1000);
                    std::memset(b.data(), int(t), b.capacity());
                    CHECK(b.data()[b.capacity() - 1] == std::byte(t));
                }
            });
        for (auto& th : threads) th.join();
        CHECK(pool.cached() <= 4);
        CHECK(pool.allocations() + pool.reuses() == 8000);
    }
    CHECK(live == 0);
}

TEST_CASE("block_receiver and send_block over communicators without the capability") {
    static_assert(!block_communicator<in_process_communicator>);
    in_process_world world(3);
    auto a = world.endpoint_for(0);
    auto b = world.endpoint_for(1);
    auto c = world.endpoint_for(2);
    message_block_pool<> pool;
    const std::vector<std::size_t> sizes{0, 1, 40, 4096, 4097, 100000};
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        auto block = pool.acquire(sizes[i]);
        const auto bytes = pattern(sizes[i], unsigned(i));
        std::copy(bytes.begin(), bytes.end(), block.data());
        (void)c.isend(1, pattern(7, 100 + unsigned(i)));
        auto request = send_block(a, 1, block, sizes[i]);
        CHECK(request.test());
    }
    block_receiver<in_process_communicator> receiver;
    flaky_source source;
    std::size_t from_a = 0, from_c = 0;
    source.throw_next = 1;
    CHECK_THROWS_WITH_AS((void)receiver.try_receive(b, source), "no pinned memory left",
                         std::runtime_error);
    CHECK(receiver.holding());  // the message waits for the next call
    source.short_next = 1;
    CHECK(test_support::what_of<invalid_argument_error>(
              [&] { (void)receiver.try_receive(b, source); }) ==
          "block_receiver, message from node 2: the message has 7 bytes but the block "
          "holds only 6");
    CHECK(receiver.holding());
    while (auto m = receiver.try_receive(b, source)) {
        if (m->source == 0) {
            REQUIRE(from_a < sizes.size());
            CHECK(m->size == sizes[from_a]);
            const auto expect = pattern(sizes[from_a], unsigned(from_a));
            CHECK(std::equal(expect.begin(), expect.end(), m->bytes().begin(), m->bytes().end()));
            ++from_a;
        } else {
            CHECK(m->source == 2);
            const auto expect = pattern(7, 100 + unsigned(from_c));
            CHECK(std::equal(expect.begin(), expect.end(), m->bytes().begin(), m->bytes().end()));
            ++from_c;
        }
    }
    CHECK(from_a == sizes.size());
    CHECK(from_c == sizes.size());
    CHECK_FALSE(receiver.holding());

    auto small = pool.acquire(10);
    CHECK(test_support::what_of<invalid_argument_error>([&] {
              (void)send_block(a, 1, small, small.capacity() + 1);
          }) == "send_block to node 1: the message has 4097 bytes but the block holds only 4096");
}

TEST_CASE("block_receiver over the simulated network keeps the order of each sender") {
    simulated_network net(2, 2, 2, 42);
    auto a = net.endpoint_for(0);
    auto b = net.endpoint_for(1);
    for (unsigned i = 0; i < 50; ++i) (void)a.isend(1, pattern(10 + i * 97, i));
    net.advance_to(10);
    block_receiver<simulated_network::endpoint> receiver;
    message_block_pool<> pool;
    unsigned i = 0;
    while (auto m = receiver.try_receive(b, pool)) {
        const auto expect = pattern(10 + i * 97, i);
        CHECK(std::equal(expect.begin(), expect.end(), m->bytes().begin(), m->bytes().end()));
        ++i;
    }
    CHECK(i == 50);
    CHECK(pool.allocations() <= 2);  // the blocks of messages handled are reused
}
