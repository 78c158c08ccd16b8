// The pool that parked callers' boxed handlers are allocated from: blocks reused, handed
// back from any thread, its memory given back once idle, and the pool itself outliving its cache
// while a handler still holds a block.
#include "cache/handler_pool.hpp"

#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/recycling_allocator.hpp>

#include <boost/test/unit_test.hpp>

#include <array>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <vector>

using namespace apollo_oauth;
using namespace apollo_oauth::detail;
namespace asio = boost::asio;

namespace {

/// The pool as its cache holds it: released (not deleted) at the end.
struct owned_pool {
    handler_pool* pool = handler_pool::create();
    ~owned_pool() { pool->release_owner(); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(handler_pool_blocks)

BOOST_AUTO_TEST_CASE(a_waiter_handler_too_large_to_hold_inline_comes_from_the_pool) {
    // What the cache's async_get does with a caller's handler: one too large for parked_handler's
    // inline bytes is boxed with the pool, not with the recycling allocator (glibc, for a herd).
    owned_pool p;
    int calls = 0;
    std::array<char, 56> ballast{};
    auto large = [&calls, ballast](error_code, access_token) { calls += 1 + ballast[0]; };
    static_assert(!access_token_handler::holds_inline<decltype(large)>());
    std::optional<access_token_handler> h;
    h.emplace(std::move(large), handler_allocator<void>(p.pool));
    BOOST_TEST(p.pool->blocks_out() == 1u);
    BOOST_TEST(p.pool->chunks() == 1u);
    std::move (*h)(error_code{}, access_token{});
    BOOST_TEST(calls == 1);
    BOOST_TEST(p.pool->blocks_out() == 0u);  // given back before the handler ran
}

BOOST_AUTO_TEST_CASE(a_handler_with_its_own_allocator_keeps_it) {
    owned_pool p;
    std::allocator<void> own;
    std::array<char, 56> ballast{};
    access_token_handler h(asio::bind_allocator(own, [ballast](error_code, access_token) { (void)ballast; }),
                           handler_allocator<void>(p.pool));
    BOOST_TEST(p.pool->blocks_out() == 0u);
}

BOOST_AUTO_TEST_CASE(blocks_are_reused_and_a_herds_chunks_freed_once_idle) {
    owned_pool p;
    void* first = p.pool->allocate(48, 8);
    p.pool->deallocate(first, 48, 8);
    void* again = p.pool->allocate(48, 8);
    BOOST_TEST(again == first);
    p.pool->deallocate(again, 48, 8);

    const std::size_t herd = handler_pool::chunk_blocks * 3 + 1;
    std::vector<void*> blocks;
    std::set<void*> distinct;
    for (std::size_t i = 0; i < herd; ++i) {
        blocks.push_back(p.pool->allocate(handler_pool::block_size, 16));
        distinct.insert(blocks.back());
    }
    BOOST_TEST(distinct.size() == herd);
    BOOST_TEST(p.pool->chunks() == 4u);
    BOOST_TEST(p.pool->blocks_out() == herd);
    for (auto* b : blocks) {
        p.pool->deallocate(b, handler_pool::block_size, 16);
    }
    BOOST_TEST(p.pool->blocks_out() == 0u);
    BOOST_TEST(p.pool->chunks() == 1u);  // the herd is over: its memory is not kept
    void* after = p.pool->allocate(8, 8);
    BOOST_TEST(after != nullptr);
    p.pool->deallocate(after, 8, 8);
}

BOOST_AUTO_TEST_CASE(large_or_over_aligned_requests_bypass_the_blocks) {
    owned_pool p;
    void* big = p.pool->allocate(handler_pool::block_size + 1, 8);
    void* aligned = p.pool->allocate(16, 64);
    BOOST_TEST(reinterpret_cast<std::uintptr_t>(aligned) % 64 == 0u);
    BOOST_TEST(p.pool->blocks_out() == 0u);
    BOOST_TEST(p.pool->chunks() == 0u);
    p.pool->deallocate(big, handler_pool::block_size + 1, 8);
    p.pool->deallocate(aligned, 16, 64);
}

BOOST_AUTO_TEST_CASE(a_block_outlives_the_pools_owner) {
    // A handler destroyed after its cache (its io_context torn down later) still gives its block
    // back; the pool goes with it (ASan: neither a leak nor a use after free).
    auto* pool = handler_pool::create();
    int calls = 0;
    std::optional<access_token_handler> h;
    std::array<char, 56> ballast{};
    h.emplace([&calls, ballast](error_code, access_token) { calls += 1 + ballast[0]; },
              handler_allocator<void>(pool));
    pool->release_owner();
    std::move (*h)(error_code{}, access_token{});
    BOOST_TEST(calls == 1);
}

BOOST_AUTO_TEST_CASE(blocks_taken_on_one_thread_are_given_back_on_another) {
    // The herd's shape: callers arrive on one thread, are woken on another, while more arrive.
    // Under TSan this is the check of the lock-free hand-back.
    owned_pool p;
    constexpr int rounds = 20'000;
    std::vector<void*> handed(rounds, nullptr);
    std::atomic<int> ready{0};
    std::thread taker([&] {
        for (int i = 0; i < rounds; ++i) {
            auto* b = static_cast<int*>(p.pool->allocate(sizeof(int) * 4, alignof(int)));
            b[0] = i;  // written here, read on the other thread
            handed[static_cast<std::size_t>(i)] = b;
            ready.store(i + 1, std::memory_order_release);
        }
    });
    std::thread giver([&] {
        for (int i = 0; i < rounds; ++i) {
            while (ready.load(std::memory_order_acquire) <= i) {
                std::this_thread::yield();
            }
            auto* b = static_cast<int*>(handed[static_cast<std::size_t>(i)]);
            BOOST_REQUIRE(b[0] == i);
            p.pool->deallocate(b, sizeof(int) * 4, alignof(int));
        }
    });
    taker.join();
    giver.join();
    BOOST_TEST(p.pool->blocks_out() == 0u);
    BOOST_TEST(p.pool->chunks() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
