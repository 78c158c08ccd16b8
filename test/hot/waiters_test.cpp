// Waking waiters: one batch per executor, on that executor, never inline, every waiter told once;
// a cancelled waiter leaves the queue and is told by itself.
#include "cache/waiters.hpp"
#include "allocation_counter.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <boost/test/unit_test.hpp>

#include <memory>
#include <stdexcept>
#include <vector>

using namespace apollo_oauth;
using namespace apollo_oauth::detail;
namespace asio = boost::asio;

namespace {

struct outcome {
    int calls = 0;
    bool on_its_executor = true;
    error_code ec;
    std::string token;
    std::uint64_t generation = 0;
};

/// A waiter whose handler records what it got, and whether it ran on `ioc`'s thread.
waiter make_waiter(std::uint64_t id, asio::io_context& ioc, outcome& out) {
    auto handler = [&out, &ioc](error_code ec, access_token t) {
        ++out.calls;
        out.on_its_executor = out.on_its_executor && ioc.get_executor().running_in_this_thread();
        out.ec = ec;
        out.token = std::string(t.value.reveal());
        out.generation = t.generation;
    };
    auto ex = asio::any_io_executor(ioc.get_executor());
    return waiter{id, ex, access_token_handler(asio::bind_executor(ioc.get_executor(), std::move(handler)))};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(waking_waiters)

// Out of memory for a group's copy of a long token (past secret_string's inline buffer), its
// callers are told operation_aborted, every group of them: they used to be dropped (the queue
// lost the groups after the one that failed), and then the process was ended for it.
BOOST_AUTO_TEST_CASE(no_memory_for_the_tokens_copy_tells_every_group_operation_aborted) {
    if (!apollo_oauth::test::allocation_counter_active()) {
        BOOST_TEST_MESSAGE("skipped: the sanitizer's allocator ignores failing_allocations");
        return;
    }
    const std::string long_token(secret_string::inline_capacity + 1, 't');
    asio::io_context first, second;
    outcome o1, o2;
    waiter_queue queue;
    queue.push(make_waiter(1, first, o1));
    queue.push(make_waiter(2, second, o2));
    const access_token token{secret_string(long_token), 2};
    {
        // Asio's own operations come from aligned_alloc, which the counter does not replace: the
        // copies of the token are what fails.
        const apollo_oauth::test::failing_allocations no_memory;
        queue.complete_all({}, token);
    }
    BOOST_TEST(queue.empty());
    first.run();
    second.run();
    for (const auto* o : {&o1, &o2}) {
        BOOST_TEST(o->calls == 1);
        BOOST_TEST(o->on_its_executor);
        BOOST_TEST((o->ec == asio::error::operation_aborted));
        BOOST_TEST(o->token.empty());
    }
}

BOOST_AUTO_TEST_CASE(a_herd_on_one_executor_is_woken_by_one_handler) {
    asio::io_context ioc;
    std::vector<outcome> outcomes(10'000);  // past the first 4,088 (blocks of 8 ... 2,048), into 4,096s
    waiter_queue queue;
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        queue.push(make_waiter(i, ioc, outcomes[i]));
    }
    BOOST_TEST(queue.size() == outcomes.size());
    queue.complete_all({}, access_token{secret_string("tok-43-characters-0123456789abcdefghijklmno"), 5});
    BOOST_TEST(queue.empty());
    BOOST_TEST(outcomes[0].calls == 0);  // never inline
    const auto handlers_run = ioc.run();
    BOOST_TEST(handlers_run == 1u);  // one batch, not one post per waiter
    for (const auto& o : outcomes) {
        BOOST_TEST_REQUIRE(o.calls == 1);
        BOOST_TEST_REQUIRE(o.on_its_executor);
        BOOST_TEST_REQUIRE(o.token == "tok-43-characters-0123456789abcdefghijklmno");
        BOOST_TEST_REQUIRE(o.generation == 5u);
        BOOST_TEST_REQUIRE(!o.ec);
    }
}

// A handler that throws leaves the callers after it queued, not destroyed uncalled: the exception
// leaves run() (as from any handler), and the next run tells the rest, each once.
BOOST_AUTO_TEST_CASE(a_throwing_handler_leaves_the_callers_after_it_queued) {
    asio::io_context ioc;
    std::vector<outcome> outcomes(4);
    waiter_queue queue;
    queue.push(make_waiter(0, ioc, outcomes[0]));
    auto thrower = [&outcomes](error_code, access_token) {
        ++outcomes[1].calls;
        throw std::runtime_error("the handler's own failure");
    };
    queue.push(waiter{1, asio::any_io_executor(ioc.get_executor()),
                      access_token_handler(asio::bind_executor(ioc.get_executor(), thrower))});
    queue.push(make_waiter(2, ioc, outcomes[2]));
    queue.push(make_waiter(3, ioc, outcomes[3]));
    queue.complete_all({}, access_token{secret_string("tok-43-characters-0123456789abcdefghijklmno"), 5});
    BOOST_CHECK_THROW(ioc.run(), std::runtime_error);
    BOOST_TEST(outcomes[0].calls == 1);
    BOOST_TEST(outcomes[1].calls == 1);
    BOOST_TEST(outcomes[2].calls == 0);  // not yet: queued again
    BOOST_TEST(ioc.run() == 1u);         // the rest, as one operation
    for (const auto& o : outcomes) {
        BOOST_TEST(o.calls == 1);
    }
    BOOST_TEST(outcomes[3].token == "tok-43-characters-0123456789abcdefghijklmno");
    BOOST_TEST(outcomes[3].on_its_executor);
}

BOOST_AUTO_TEST_CASE(waiters_of_several_executors_are_woken_on_their_own) {
    asio::io_context a, b;
    std::vector<outcome> outcomes(10);
    waiter_queue queue;
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        queue.push(make_waiter(i, i % 2 == 0 ? a : b, outcomes[i]));  // interleaved
    }
    queue.complete_all(errc::shutting_down, {});
    BOOST_TEST(a.run() == 1u);  // one batch per executor
    BOOST_TEST(b.run() == 1u);
    for (const auto& o : outcomes) {
        BOOST_TEST(o.calls == 1);
        BOOST_TEST(o.on_its_executor);
        BOOST_TEST((o.ec == errc::shutting_down));
    }
}

BOOST_AUTO_TEST_CASE(the_cancellation_slot_is_cleared_before_the_handler_runs) {
    asio::io_context ioc;
    asio::cancellation_signal signal;
    bool cancelled = false;
    bool ran = false;
    auto handler = asio::bind_cancellation_slot(signal.slot(), [&](error_code, access_token) { ran = true; });
    waiter w{1, asio::any_io_executor(ioc.get_executor()), access_token_handler(std::move(handler))};
    w.slot().assign([&](asio::cancellation_type) { cancelled = true; });
    BOOST_TEST_REQUIRE(w.slot().is_connected());
    waiter_queue queue;
    queue.push(std::move(w));
    queue.complete_all({}, {});
    ioc.run();
    BOOST_TEST(ran);
    signal.emit(asio::cancellation_type::terminal);  // the canceller went when the waiter woke
    BOOST_TEST(!cancelled);
}

BOOST_AUTO_TEST_CASE(a_removed_waiter_is_handed_back_and_not_woken_with_the_rest) {
    asio::io_context a, b;
    std::vector<outcome> outcomes(6);
    waiter_queue queue;
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        queue.push(make_waiter(i + 1, i < 3 ? a : b, outcomes[i]));
    }
    auto leaving = queue.remove(2);
    BOOST_TEST_REQUIRE(leaving.has_value());
    BOOST_TEST(leaving->id == 2u);
    BOOST_TEST(!queue.remove(2).has_value());   // gone already
    BOOST_TEST(!queue.remove(99).has_value());  // never here
    BOOST_TEST(queue.size() == 5u);
    complete_one(std::move(*leaving), asio::error::operation_aborted, {});
    queue.complete_all({}, access_token{secret_string("t"), 3});
    a.run();
    b.run();
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        BOOST_TEST(outcomes[i].calls == 1);  // once each: the removed one only by complete_one
        BOOST_TEST(outcomes[i].on_its_executor);
        BOOST_TEST((outcomes[i].ec == (i == 1 ? error_code(asio::error::operation_aborted) : error_code())));
    }
}

BOOST_AUTO_TEST_CASE(a_queue_most_callers_left_keeps_everyone_still_in_it_in_order) {
    asio::io_context ioc;
    std::vector<outcome> outcomes(1000);
    std::vector<std::size_t> order;
    waiter_queue queue;
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        auto handler = [&, i](error_code ec, access_token) {
            ++outcomes[i].calls;
            outcomes[i].ec = ec;
            order.push_back(i);
        };
        queue.push(
            waiter{i, asio::any_io_executor(ioc.get_executor()), access_token_handler(std::move(handler))});
    }
    std::size_t removed = 0;
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        if (i % 10 != 0) {  // 90% leave: the queue compacts along the way
            auto w = queue.remove(i);
            BOOST_TEST_REQUIRE(w.has_value());
            ++removed;
        }
    }
    BOOST_TEST(queue.size() == outcomes.size() - removed);
    queue.complete_all({}, {});
    ioc.run();
    BOOST_TEST_REQUIRE(order.size() == outcomes.size() / 10);
    for (std::size_t k = 0; k < order.size(); ++k) {
        BOOST_TEST_REQUIRE(order[k] == k * 10);  // arrival order kept through compaction
    }
}

BOOST_AUTO_TEST_CASE(a_group_whose_last_caller_left_no_longer_keeps_its_io_context_running) {
    asio::io_context cache_side, caller_side;
    waiter_queue queue;
    outcome stays;
    queue.push(make_waiter(1, cache_side, stays));  // someone else still waits on the account
    bool told = false;
    // Untracked, as async_get passes it: the queue tracks the caller's io_context for it.
    queue.push(waiter{2, asio::any_io_executor(caller_side.get_executor()),
                      access_token_handler([&](error_code, access_token) { told = true; })});
    auto leaving = queue.remove(2);  // the caller on caller_side was cancelled
    BOOST_TEST_REQUIRE(leaving.has_value());
    complete_one(std::move(*leaving), asio::error::operation_aborted, {});
    caller_side.poll();
    BOOST_TEST(told);  // the leaver kept caller_side's work until its completion was posted there
    BOOST_TEST(caller_side.stopped());  // no work of ours left there while the refresh goes on
    BOOST_TEST(queue.size() == 1u);
    queue.complete_all({}, {});
    cache_side.run();
    BOOST_TEST(stays.calls == 1);
}

BOOST_AUTO_TEST_CASE(a_parked_callers_io_context_keeps_running_until_the_caller_is_woken) {
    // The caller's executor comes untracked (as async_get passes it): the group tracks it.
    asio::io_context caller_side;
    waiter_queue queue;
    outcome o;
    queue.push(make_waiter(1, caller_side, o));
    BOOST_TEST(caller_side.poll() == 0u);
    BOOST_TEST(!caller_side.stopped());  // our work is there: its run() would wait for the caller
    queue.complete_all({}, access_token{secret_string("x"), 2});
    caller_side.run();
    BOOST_TEST(o.calls == 1);
    BOOST_TEST(caller_side.stopped());
}

BOOST_AUTO_TEST_CASE(complete_one_posts_to_the_waiters_executor) {
    asio::io_context ioc;
    outcome o;
    complete_one(make_waiter(1, ioc, o), {}, access_token{secret_string("x"), 2});
    BOOST_TEST(o.calls == 0);
    ioc.run();
    BOOST_TEST(o.calls == 1);
    BOOST_TEST(o.on_its_executor);
    BOOST_TEST(o.generation == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
