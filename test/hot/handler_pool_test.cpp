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

// The last two blocks of a herd given back at the same moment on two threads: one of the two
// must see the pool idle and free the herd's chunks (in an earlier design each could see the
// other's block still out, and the memory stayed until some later give-back).
BOOST_AUTO_TEST_CASE(the_last_two_blocks_given_back_at_once_still_free_the_herds_chunks) {
    owned_pool p;
    constexpr std::size_t herd = handler_pool::chunk_blocks + 2;  // two chunks
    constexpr int rounds = 4'000;
    void* second_last = nullptr;
    std::atomic<int> started{0};  // rounds whose blocks are out
    std::atomic<int> given{0};    // rounds whose second-last block is back
    std::size_t memory_kept = 0;
    // This thread makes each round's herd and gives all but two blocks back; then it gives the last
    // one back while the other thread gives the second-last, after a delay that varies with the
    // round so that some rounds meet the other thread's give-back head on.
    std::jthread herd_maker([&] {
        std::vector<void*> blocks(herd);
        for (int r = 1; r <= rounds; ++r) {
            for (auto& block : blocks) {
                block = p.pool->allocate(64, alignof(std::max_align_t));
            }
            for (std::size_t i = 2; i < herd; ++i) {
                p.pool->deallocate(blocks[i], 64, alignof(std::max_align_t));
            }
            second_last = blocks[1];
            started.store(r, std::memory_order_release);
            for (int spin = r % 97; spin > 0; --spin) {
                given.load(std::memory_order_relaxed);  // a delay the compiler keeps
            }
            p.pool->deallocate(blocks[0], 64, alignof(std::max_align_t));
            while (given.load(std::memory_order_acquire) < r) {
            }
            memory_kept += p.pool->chunks() > 1 ? 1 : 0;
        }
    });
    for (int r = 1; r <= rounds; ++r) {
        while (started.load(std::memory_order_acquire) < r) {
        }
        p.pool->deallocate(second_last, 64, alignof(std::max_align_t));
        given.store(r, std::memory_order_release);
    }
    herd_maker.join();
    BOOST_TEST(p.pool->blocks_out() == 0u);
    BOOST_TEST(memory_kept == 0u);  // rounds that ended with the herd's chunks still held
}

BOOST_AUTO_TEST_SUITE_END()
