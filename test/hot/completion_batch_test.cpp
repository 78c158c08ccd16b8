// The hot-path completions one handler makes run as one operation after it, in the order they were
// made; one that completes again starts the next batch; a completion for another io_context is not
// joined; a batch is closed by its operation on whichever thread runs or destroys it, and outlives
// its thread while that operation is queued; a throwing completion leaves the rest for the next run.
#include <apollo_oauth/detail/completion_batch.hpp>
#include <apollo_oauth/detail/handler_allocator.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <new>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

#include "allocation_counter.hpp"
#include "cache/handler_pool.hpp"

using namespace apollo_oauth::detail;
namespace asio = boost::asio;

namespace {

boost::test_tools::assertion_result counting(boost::unit_test::test_unit_id) {
    return apollo_oauth::test::allocation_counter_active();
}

const auto std_alloc = [] { return std::allocator<void>(); };

/// Hands out blocks of a buffer the test owns, never calling operator new (for a test that makes
/// operator new throw); frees nothing.
template <class T>
struct test_arena_allocator {
    using value_type = T;
    std::vector<std::byte>* bytes;
    std::size_t* used;
    test_arena_allocator(std::vector<std::byte>* b, std::size_t* u) noexcept : bytes(b), used(u) {}
    template <class U>
    test_arena_allocator(const test_arena_allocator<U>& other) noexcept
        : bytes(other.bytes), used(other.used) {}
    T* allocate(std::size_t n) {
        const std::size_t size =
            (n * sizeof(T) + alignof(std::max_align_t) - 1) & ~(alignof(std::max_align_t) - 1);
        if (*used + size > bytes->size()) {
            throw std::bad_alloc();
        }
        auto* p = bytes->data() + *used;
        *used += size;
        return reinterpret_cast<T*>(p);
    }
    void deallocate(T*, std::size_t) noexcept {}
    template <class U>
    bool operator==(const test_arena_allocator<U>& other) const noexcept {
        return bytes == other.bytes;
    }
};

/// Records its id when called; `alive` counts the completions not yet destroyed.
struct recorded {
    std::vector<int>* log;
    int id;
    std::shared_ptr<int> alive;
    bool throws = false;
    void operator()() {
        log->push_back(id);
        if (throws) {
            throw std::runtime_error("a completion threw");
        }
    }
};

struct fixture {
    asio::io_context ioc;
    std::vector<int> log;
    std::shared_ptr<int> alive = std::make_shared<int>(0);

    recorded completion(int id, bool throws = false) { return recorded{&log, id, alive, throws}; }
    long live_completions() const { return alive.use_count() - 1; }

    /// Posts one handler that makes completions `first` .. `last` on `ioc`, and runs only it.
    void make_in_one_handler(int first, int last, int throwing = -1) {
        ioc.restart();  // an io_context that ran out of work stays stopped until restarted
        asio::post(ioc, [this, first, last, throwing] {
            for (int id = first; id <= last; ++id) {
                defer_in_batch(ioc.get_executor(), completion(id, id == throwing), std_alloc);
            }
        });
        const auto before = log.size();
        BOOST_TEST_REQUIRE(ioc.poll_one() == 1u);
        BOOST_TEST_REQUIRE(log.size() == before);  // never inline
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(completion_batches)

BOOST_FIXTURE_TEST_CASE(one_handlers_completions_run_in_one_operation_in_order, fixture) {
    make_in_one_handler(1, 1000);
    BOOST_TEST(ioc.poll_one() == 1u);  // one operation, not one per completion
    BOOST_TEST_REQUIRE(log.size() == 1000u);
    for (int i = 0; i < 1000; ++i) {
        BOOST_TEST_REQUIRE(log[static_cast<std::size_t>(i)] == i + 1);
    }
    BOOST_TEST(ioc.poll() == 0u);
    BOOST_TEST(live_completions() == 0);
}

BOOST_FIXTURE_TEST_CASE(a_completion_made_by_a_completion_starts_the_next_batch, fixture) {
    // A coroutine that gets in a loop: each turn's completion must wait for the next operation,
    // or one operation would run the loop without end.
    int turns = 0;
    struct again {
        fixture* f;
        int* turns;
        void operator()() {
            if (++*turns < 3) {
                defer_in_batch(f->ioc.get_executor(), again{f, turns}, std_alloc);
            }
        }
    };
    asio::post(ioc, [&] { defer_in_batch(ioc.get_executor(), again{this, &turns}, std_alloc); });
    BOOST_TEST(ioc.poll_one() == 1u);
    BOOST_TEST(turns == 0);
    BOOST_TEST(ioc.poll_one() == 1u);
    BOOST_TEST(turns == 1);
    BOOST_TEST(ioc.poll_one() == 1u);
    BOOST_TEST(turns == 2);
    BOOST_TEST(ioc.poll_one() == 1u);
    BOOST_TEST(turns == 3);
    BOOST_TEST(ioc.poll() == 0u);
}

BOOST_FIXTURE_TEST_CASE(a_completion_for_another_io_context_is_not_joined, fixture) {
    // Both runs made from this same frame, one after the other: Asio's record of each run sits at
    // the same stack address, so only the io_context tells the batch (still open, its operation
    // queued on ioc) from one that `other`'s completion may join.
    asio::io_context other;
    asio::post(ioc, [&] { defer_in_batch(ioc.get_executor(), completion(1), std_alloc); });
    asio::post(other, [&] { defer_in_batch(other.get_executor(), completion(2), std_alloc); });
    BOOST_TEST(ioc.poll_one() == 1u);    // ioc's batch stays open until its operation runs
    BOOST_TEST(other.poll_one() == 1u);  // (the same call, so the same stack address for the run)
    BOOST_TEST(other.poll_one() == 1u);  // queued on `other`, not joined to ioc's batch
    BOOST_TEST((log == std::vector<int>{2}));
    BOOST_TEST(ioc.poll_one() == 1u);
    BOOST_TEST((log == std::vector<int>{2, 1}));
}

BOOST_FIXTURE_TEST_CASE(a_completion_made_in_another_io_contexts_nested_run_is_queued_there, fixture) {
    asio::io_context other;
    asio::post(ioc, [&] {
        defer_in_batch(ioc.get_executor(), completion(1), std_alloc);  // opens the batch for ioc
        asio::post(other, [&] { defer_in_batch(other.get_executor(), completion(2), std_alloc); });
        other.poll();  // runs `other` nested: its completion is queued there, not in ioc's batch
        BOOST_TEST((log == std::vector<int>{2}));
        defer_in_batch(ioc.get_executor(), completion(3), std_alloc);
    });
    BOOST_TEST(ioc.poll_one() == 1u);
    BOOST_TEST(ioc.poll_one() == 1u);
    BOOST_TEST((log == std::vector<int>{2, 1, 3}));
}

BOOST_FIXTURE_TEST_CASE(a_completion_whose_move_may_throw_is_queued_on_its_own, fixture) {
    // Asio moves an operation out before running it: a throw there would lose a whole batch.
    struct may_throw_on_move {
        recorded inner;
        explicit may_throw_on_move(recorded r) : inner(std::move(r)) {}
        may_throw_on_move(may_throw_on_move&& other) noexcept(false) : inner(std::move(other.inner)) {}
        void operator()() { inner(); }
    };
    asio::post(ioc, [&] {
        defer_in_batch(ioc.get_executor(), completion(1), std_alloc);  // opens the batch
        defer_in_batch(ioc.get_executor(), may_throw_on_move(completion(2)), std_alloc);
        defer_in_batch(ioc.get_executor(), completion(3), std_alloc);  // joins
    });
    BOOST_TEST(ioc.poll_one() == 1u);
    BOOST_TEST(ioc.poll_one() == 1u);
    BOOST_TEST((log == std::vector<int>{1, 3}));  // the batch
    BOOST_TEST(ioc.poll_one() == 1u);
    BOOST_TEST((log == std::vector<int>{1, 3, 2}));  // on its own
}

BOOST_AUTO_TEST_CASE(an_operation_destroyed_unrun_destroys_its_completions_and_closes_the_batch) {
    std::vector<int> log;
    auto alive = std::make_shared<int>(0);
    {
        asio::io_context ioc;
        asio::post(ioc, [&] {
            for (int id = 1; id <= 3; ++id) {
                defer_in_batch(ioc.get_executor(), recorded{&log, id, alive}, std_alloc);
            }
        });
        BOOST_TEST_REQUIRE(ioc.poll_one() == 1u);
        BOOST_TEST(alive.use_count() == 4);
    }  // the io_context's shutdown destroys the queued operation
    BOOST_TEST(alive.use_count() == 1);
    BOOST_TEST(log.empty());
    // The batch is closed again: the next io_context's handler opens it anew, in one operation.
    fixture next;
    next.make_in_one_handler(1, 2);
    BOOST_TEST(next.ioc.poll_one() == 1u);
    BOOST_TEST((next.log == std::vector<int>{1, 2}));
}

BOOST_FIXTURE_TEST_CASE(a_throwing_completion_leaves_the_rest_for_the_next_run, fixture) {
    make_in_one_handler(1, 5, 2);
    BOOST_CHECK_THROW(ioc.poll(), std::runtime_error);
    BOOST_TEST((log == std::vector<int>{1, 2}));
    ioc.restart();
    ioc.poll();
    BOOST_TEST((log == std::vector<int>{1, 2, 3, 4, 5}));
    BOOST_TEST(live_completions() == 0);
}

BOOST_FIXTURE_TEST_CASE(a_throwing_first_completion_leaves_the_rest_for_the_next_run, fixture) {
    make_in_one_handler(1, 3, 1);  // the first is held by the operation itself, not in a node
    BOOST_CHECK_THROW(ioc.poll(), std::runtime_error);
    BOOST_TEST((log == std::vector<int>{1}));
    ioc.restart();
    ioc.poll();
    BOOST_TEST((log == std::vector<int>{1, 2, 3}));
    BOOST_TEST(live_completions() == 0);
}

BOOST_FIXTURE_TEST_CASE(another_thread_runs_the_operation_and_the_owner_opens_the_next_batch, fixture) {
    // The owner thread makes a batch; another thread runs its operation (closing it through the
    // atomic exchange); the owner then opens its batch again. Boost.Test is not thread-safe, so
    // the threads only count, and this thread checks after each join.
    const auto batches_before = completion_batch::alive();
    const auto make = [&](int first, int last) {
        ioc.restart();
        asio::post(ioc, [&, first, last] {
            for (int id = first; id <= last; ++id) {
                defer_in_batch(ioc.get_executor(), completion(id), std_alloc);
            }
        });
        return ioc.poll_one();
    };
    std::size_t owner_ran = 0, runner_ran = 0;
    std::thread owner([&] { owner_ran = make(1, 100); });
    owner.join();
    BOOST_TEST(owner_ran == 1u);
    BOOST_TEST(log.empty());
    BOOST_TEST(completion_batch::alive() == batches_before + 1);  // kept for its queued operation
    // The owner thread has exited with its batch open: this one runs the operation, which frees
    // the ownerless batch.
    std::thread runner([&] { runner_ran = ioc.poll_one(); });
    runner.join();
    BOOST_TEST(runner_ran == 1u);
    BOOST_TEST(log.size() == 100u);
    BOOST_TEST(completion_batch::alive() == batches_before);  // (the runner never made one)

    std::size_t ran[4] = {};
    std::thread owner_again([&] {
        ran[0] = make(101, 200);  // opens this thread's batch
        std::thread other([&] { ran[1] = ioc.poll_one(); });
        other.join();             // closed by another thread while its owner lives
        ran[2] = make(201, 300);  // so it opens again
        ran[3] = ioc.poll_one();
    });
    owner_again.join();
    BOOST_TEST((ran[0] == 1u && ran[1] == 1u && ran[2] == 1u && ran[3] == 1u));
    BOOST_TEST(log.size() == 300u);
    BOOST_TEST(completion_batch::alive() == batches_before);  // a closed one is freed at its thread's exit
    BOOST_TEST(live_completions() == 0);
}

BOOST_AUTO_TEST_CASE(a_batch_whose_thread_exited_is_freed_when_its_operation_is_destroyed) {
    std::vector<int> log;
    auto alive = std::make_shared<int>(0);
    const auto batches_before = completion_batch::alive();
    {
        asio::io_context ioc;
        std::size_t ran = 0;
        std::thread owner([&] {
            asio::post(ioc, [&] {
                for (int id = 1; id <= 3; ++id) {
                    defer_in_batch(ioc.get_executor(), recorded{&log, id, alive}, std_alloc);
                }
            });
            ran = ioc.poll_one();
        });
        owner.join();
        BOOST_TEST(ran == 1u);
        BOOST_TEST(completion_batch::alive() == batches_before + 1);
    }  // the shutdown destroys the operation on this thread, which frees the ownerless batch
    BOOST_TEST(completion_batch::alive() == batches_before);
    BOOST_TEST(alive.use_count() == 1);
    BOOST_TEST(log.empty());
}

namespace {
/// Two threads run the io_context and two chains of handlers: each handler posts the next one
/// first (straight to the shared queue), then makes `per_round` completions. Its batch's operation
/// reaches the queue after that next handler, so one thread adds to its batch (and takes chunks
/// from it) in that handler while the other thread runs (closes) the operation: every completion
/// must run once, whether it joined in time, went in a chunk, or was queued on its own. Returns
/// the completions that did not run exactly once.
int completions_not_run_once(int rounds, int per_round) {
    asio::io_context ioc;
    constexpr int chains = 2;
    std::vector<std::atomic<int>> runs(static_cast<std::size_t>(chains * rounds * per_round));
    struct counted {
        std::atomic<int>* runs;
        void operator()() { runs->fetch_add(1, std::memory_order_relaxed); }
    };
    std::function<void(int, int)> round = [&](int chain, int r) {
        if (r + 1 < rounds) {
            asio::post(ioc, [&round, chain, r] { round(chain, r + 1); });
        }
        for (int k = 0; k < per_round; ++k) {
            const auto id = static_cast<std::size_t>((chain * rounds + r) * per_round + k);
            defer_in_batch(ioc.get_executor(), counted{&runs[id]}, std_alloc);
        }
    };
    for (int chain = 0; chain < chains; ++chain) {
        asio::post(ioc, [&round, chain] { round(chain, 0); });
    }
    {
        std::jthread second([&] { ioc.run(); });
        ioc.run();
    }
    int wrong = 0;
    for (const auto& r : runs) {
        wrong += r.load() == 1 ? 0 : 1;
    }
    return wrong;
}
}  // namespace

BOOST_AUTO_TEST_CASE(adds_racing_the_operation_on_another_thread_run_each_completion_once) {
    BOOST_TEST(completions_not_run_once(3000, 40) == 0);
}

BOOST_AUTO_TEST_CASE(chunks_taken_while_the_operation_closes_on_another_thread_run_each_completion_once) {
    BOOST_TEST(completions_not_run_once(60, 2 * static_cast<int>(batch_chunk) + 40) == 0);
}

BOOST_FIXTURE_TEST_CASE(a_herds_completions_are_posted_in_chunks_of_their_own, fixture) {
    // One handler resuming a herd: each batch_chunk completions joined go out as an operation of
    // their own, and what joined after the last chunk stays with the batch's operation.
    const int n = 2 * static_cast<int>(batch_chunk) + 10;
    make_in_one_handler(1, n);
    std::size_t operations = 0;
    while (ioc.poll_one() == 1u) {
        ++operations;
    }
    BOOST_TEST(operations == 3u);
    std::vector<int> ran = log;
    std::sort(ran.begin(), ran.end());
    std::vector<int> each_once(static_cast<std::size_t>(n));
    std::iota(each_once.begin(), each_once.end(), 1);
    BOOST_TEST(ran == each_once);
    BOOST_TEST(live_completions() == 0);
}

BOOST_AUTO_TEST_CASE(another_thread_runs_a_chunk_while_the_handler_making_the_herd_goes_on) {
    // The point of chunks: with two threads on the io_context, the idle one resumes the first
    // callers while the handler is still letting the rest in. Here the handler, after making one
    // chunk's worth, waits for a completion of that chunk to have run; left in the batch, it would
    // run only after the handler returns, and the wait would time out.
    asio::io_context ioc;
    auto work = asio::make_work_guard(ioc);
    std::promise<void> chunk_ran;
    std::atomic<int> ran{0};
    struct signalling {
        std::promise<void>* first_of_chunk;
        std::atomic<int>* ran;
        int id;
        void operator()() {
            ran->fetch_add(1, std::memory_order_relaxed);
            if (id == 2) {  // the first joined: the first of the first chunk
                first_of_chunk->set_value();
            }
        }
    };
    bool seen_while_making = false;
    asio::post(ioc, [&] {
        for (int id = 1; id <= static_cast<int>(batch_chunk) + 1; ++id) {
            defer_in_batch(ioc.get_executor(), signalling{&chunk_ran, &ran, id}, std_alloc);
        }
        seen_while_making =
            chunk_ran.get_future().wait_for(std::chrono::seconds(30)) == std::future_status::ready;
        work.reset();
    });
    {
        std::jthread second([&] { ioc.run(); });
        ioc.run();
    }
    BOOST_TEST(seen_while_making);
    BOOST_TEST(ran.load() == static_cast<int>(batch_chunk) + 1);
}

BOOST_FIXTURE_TEST_CASE(a_chunk_without_memory_for_its_operation_stays_in_the_batch, fixture,
                        *boost::unit_test::precondition(counting)) {
    // The chunk's operation memory is taken before the chunk: when there is none, the caller whose
    // completion has just joined must not see a throw (its handler is in the batch), and every
    // completion still runs once, with the batch's operation.
    std::vector<std::byte> arena(2 * batch_chunk * thread_node_cache::block_size);
    std::size_t used = 0;
    const auto from_arena = [&] { return test_arena_allocator<void>(&arena, &used); };
    bool threw = false;
    asio::post(ioc, [&] {
        for (int id = 1; id <= static_cast<int>(batch_chunk); ++id) {
            defer_in_batch(ioc.get_executor(), completion(id), from_arena);
        }
        // Empty this thread's node cache, so that the chunk's block must come from operator new.
        std::vector<void*> drained;
        for (std::size_t i = 0; i <= thread_node_cache::capacity; ++i) {
            drained.push_back(thread_node_cache::allocate());
        }
        try {
            const apollo_oauth::test::failing_allocations no_memory;
            defer_in_batch(ioc.get_executor(), completion(static_cast<int>(batch_chunk) + 1), from_arena);
        } catch (...) {
            threw = true;
        }
        for (auto* block : drained) {
            thread_node_cache::deallocate(block);
        }
    });
    BOOST_TEST_REQUIRE(ioc.poll_one() == 1u);
    BOOST_TEST(!threw);
    BOOST_TEST(ioc.poll_one() == 1u);  // the batch's operation, with the whole herd
    BOOST_TEST(log.size() == batch_chunk + 1);
    BOOST_TEST(ioc.poll() == 0u);
    BOOST_TEST(live_completions() == 0);
}

BOOST_FIXTURE_TEST_CASE(a_completion_made_in_a_nested_run_is_not_joined_to_the_outer_batch, fixture) {
    // A handler that runs its own io_context until something completes (Asio allows it, warning
    // of deadlock): a completion made in the nested run must be runnable by it, not joined to the
    // batch whose operation waits in the outer run's queue until this handler returns.
    bool nested_saw_it = false;
    asio::post(ioc, [&] {
        defer_in_batch(ioc.get_executor(), completion(1), std_alloc);  // opens the batch in the outer run
        asio::post(ioc, [&] { defer_in_batch(ioc.get_executor(), completion(2), std_alloc); });
        for (int i = 0; i < 10 && !nested_saw_it; ++i) {
            ioc.poll_one();
            nested_saw_it = log == std::vector<int>{2};
        }
    });
    BOOST_TEST(ioc.poll_one() == 1u);
    BOOST_TEST(nested_saw_it);
    ioc.poll();
    BOOST_TEST((log == std::vector<int>{2, 1}));
}

BOOST_FIXTURE_TEST_CASE(a_completion_whose_move_throws_leaves_the_batch_closed, fixture) {
    struct throwing_move {
        bool* armed;
        recorded inner;
        throwing_move(bool* a, recorded r) : armed(a), inner(std::move(r)) {}
        throwing_move(throwing_move&& other) : armed(other.armed), inner(std::move(other.inner)) {
            if (*armed) {
                throw std::runtime_error("move");
            }
        }
        void operator()() { inner(); }
    };
    bool armed = true;
    bool threw = false;
    asio::post(ioc, [&] {
        try {
            defer_in_batch(ioc.get_executor(), throwing_move(&armed, completion(1)), std_alloc);
        } catch (const std::runtime_error&) {
            threw = true;
        }
        armed = false;
        defer_in_batch(ioc.get_executor(), completion(2), std_alloc);  // must open a batch that will run
    });
    BOOST_TEST(ioc.poll_one() == 1u);
    BOOST_TEST(threw);
    BOOST_TEST(ioc.poll_one() == 1u);
    BOOST_TEST((log == std::vector<int>{2}));
    BOOST_TEST(ioc.poll() == 0u);
}

BOOST_FIXTURE_TEST_CASE(a_handler_run_before_the_operation_joins_it, fixture) {
    // The operation is queued behind the handlers already waiting; a completion that one of them
    // makes would be queued after the operation, so it joins it and runs with it.
    asio::post(ioc, [this] {
        asio::post(ioc, [this] { defer_in_batch(ioc.get_executor(), completion(2), std_alloc); });
        defer_in_batch(ioc.get_executor(), completion(1),
                       std_alloc);  // the operation, queued after that post
    });
    BOOST_TEST(ioc.poll_one() == 1u);
    BOOST_TEST(ioc.poll_one() == 1u);  // the inner post: completion 2 joins the queued batch
    BOOST_TEST(log.empty());
    BOOST_TEST(ioc.poll_one() == 1u);  // the operation runs both
    BOOST_TEST((log == std::vector<int>{1, 2}));
    BOOST_TEST(ioc.poll() == 0u);
}

BOOST_FIXTURE_TEST_CASE(a_herds_completions_past_the_first_are_made_with_the_given_allocator, fixture) {
    // The cache passes its handler pool: a herd's nodes never reach glibc (handler_pool.hpp).
    auto* pool = handler_pool::create();
    const auto from_pool = [pool] { return handler_allocator<void>(pool); };
    asio::post(ioc, [&] {
        for (int id = 1; id <= 100; ++id) {
            defer_in_batch(ioc.get_executor(), completion(id), from_pool);
        }
    });
    BOOST_TEST(ioc.poll_one() == 1u);
    // The first is held by the operation itself, the next small_batch come from the thread's
    // node cache, the rest from the pool.
    BOOST_TEST(pool->blocks_out() == 99u - small_batch);
    BOOST_TEST(ioc.poll_one() == 1u);
    BOOST_TEST(log.size() == 100u);
    BOOST_TEST(pool->blocks_out() == 0u);
    pool->release_owner();
}

BOOST_FIXTURE_TEST_CASE(a_threads_few_joined_completions_allocate_nothing_once_warm, fixture,
                        *boost::unit_test::precondition(counting)) {
    // A server thread's coroutines in flight join its batch on every turn: their nodes come from
    // the thread's node cache, not from a shared pool (a mutex per node, shared by every thread)
    // and not from the heap.
    std::size_t joins_allocated = 0;
    const auto turn = [&] {
        asio::post(ioc, [&] {
            const auto not_the_pool = [] {
                BOOST_FAIL("a small batch took a node from the caller's allocator");
                return std::allocator<void>();
            };
            defer_in_batch(ioc.get_executor(), completion(0), not_the_pool);  // opens: Asio's operation
            joins_allocated = apollo_oauth::test::allocations_during([&] {
                for (int id = 1; id < 50; ++id) {
                    defer_in_batch(ioc.get_executor(), completion(id), not_the_pool);
                }
            });
        });
        ioc.poll();
        ioc.restart();
    };
    turn();  // warms the node cache (earlier cases on this thread may have)
    turn();
    BOOST_TEST(joins_allocated == 0u);
    BOOST_TEST(log.size() == 100u);
}

BOOST_AUTO_TEST_SUITE_END()
