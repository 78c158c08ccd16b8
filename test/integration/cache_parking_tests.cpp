// The herd's way in: the first caller that misses an account's snapshot opens the account's
// parking lot and goes to the machine; every caller behind it parks in the lot under one short
// lock, without a post to the account's strand, and gets the outcome the machine gives (the
// refreshed token, the refresh's error, shutting_down), or leaves when cancelled. Against the
// emulator over loopback TLS, like the cache's other invariants.
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/test/unit_test.hpp>

#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "cache/cache_impl.hpp"
#include "cache_fixture.hpp"

using namespace apollo_oauth;
using apollo_oauth::test::cache_fixture;
namespace asio = boost::asio;
using kind = emulator::fault::kind;

namespace {

struct outcomes {
    std::mutex mutex;
    int served = 0;
    std::set<std::string> tokens;
    std::map<error_code, int> errors;

    auto recorder() {
        return [this](error_code ec, access_token token) {
            const std::lock_guard lock{mutex};
            if (ec) {
                ++errors[ec];
            } else {
                ++served;
                tokens.insert(std::string{token.value.reveal()});
            }
        };
    }
};

/// Starts `n` gets of "acme" here, on this thread: each initiation is done when this returns.
void start_gets(token_cache& cache, int n, outcomes& into) {
    for (int i = 0; i < n; ++i) {
        cache.async_get("acme", into.recorder());
    }
}

std::uint64_t parked_in_lot(const token_cache& cache) {
    return detail::impl_of(cache)->parked_in_lot("acme");
}

}  // namespace

/// A cache with a pair stored for "acme": where every case here starts.
struct seeded_cache : cache_fixture {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    token_set original = seed(c, cache, "acme");
};

BOOST_FIXTURE_TEST_SUITE(herd_parking, seeded_cache)

BOOST_AUTO_TEST_CASE(callers_on_another_io_context_keep_it_running_until_their_token_comes) {
    // The cache runs on ioc; the callers' handlers on caller_side, where nothing else is queued.
    // Only the work the cache holds for them keeps caller_side from running out of work (its
    // run() would return before their tokens come): at each place a caller waits in turn.
    expire_everything();
    server.inject(
        {.what = kind::latency, .where = emulator::route::token, .delay = std::chrono::milliseconds(200)});
    asio::io_context caller_side;
    outcomes seen;
    cache.async_get("acme", asio::bind_executor(caller_side, seen.recorder()));
    caller_side.poll();
    BOOST_TEST(!caller_side.stopped());  // its get is on its way to the account's strand
    ioc.poll();                          // the machine queues it and starts the refresh
    BOOST_TEST(server.stats().refresh_token_grants + detail::impl_of(cache)->refreshes_in_flight() >= 1u);
    caller_side.poll();
    BOOST_TEST(!caller_side.stopped());  // it waits for the machine
    cache.async_get("acme", asio::bind_executor(caller_side, seen.recorder()));
    BOOST_TEST(parked_in_lot(cache) == 1u);
    caller_side.poll();
    BOOST_TEST(!caller_side.stopped());
    std::thread cache_thread([this] { ioc.run(); });
    caller_side.run();  // until both are answered
    cache_thread.join();
    BOOST_TEST(seen.served == 2);
    BOOST_TEST(seen.tokens.size() == 1u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
}

BOOST_AUTO_TEST_CASE(a_diagnostics_caller_on_another_io_context_keeps_it_running_too) {
    expire_everything();
    server.inject(
        {.what = kind::latency, .where = emulator::route::token, .delay = std::chrono::milliseconds(200)});
    asio::io_context caller_side;
    outcomes seen;
    diagnostics diag;
    cache.async_get("acme", diag, asio::bind_executor(caller_side, seen.recorder()));
    ioc.poll();  // the machine keeps it apart from the plain waiters, to tell it what the server said
    caller_side.poll();
    BOOST_TEST(!caller_side.stopped());
    std::thread cache_thread([this] { ioc.run(); });
    caller_side.run();
    cache_thread.join();
    BOOST_TEST(seen.served == 1);
}

BOOST_AUTO_TEST_CASE(a_cancelled_diagnostics_caller_on_another_io_context_is_still_told) {
    // The caller leaves the diagnostics callers: caller_side must not run out of work (and stop
    // for good) before the cancellation's completion is posted there.
    expire_everything();
    server.inject(
        {.what = kind::latency, .where = emulator::route::token, .delay = std::chrono::milliseconds(200)});
    asio::io_context caller_side;
    asio::cancellation_signal cancel;
    outcomes seen;
    diagnostics diag;
    cache.async_get(
        "acme", diag,
        asio::bind_cancellation_slot(cancel.slot(), asio::bind_executor(caller_side, seen.recorder())));
    ioc.poll();  // queued among the diagnostics callers, the refresh on its way
    cancel.emit(asio::cancellation_type::terminal);
    ioc.poll();  // the cancellation reaches the machine's strand
    caller_side.run();
    BOOST_TEST(seen.errors[asio::error::operation_aborted] == 1);
    ioc.run();
}

BOOST_AUTO_TEST_CASE(callers_behind_the_first_miss_park_without_reaching_the_machine) {
    expire_everything();
    constexpr int callers = 1'000;
    outcomes seen;
    // Initiated here, before the io_context runs: the first one opens the lot and is on its way
    // to the machine; each later one finds the lot open.
    start_gets(cache, callers, seen);
    BOOST_TEST(parked_in_lot(cache) == static_cast<std::uint64_t>(callers - 1));
    ioc.run();
    BOOST_TEST(seen.served == callers);
    BOOST_TEST(seen.tokens.size() == 1u);
    BOOST_TEST(seen.tokens.count(std::string{original.access_token.reveal()}) == 0u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    BOOST_TEST(cache.metrics().waiting_now == 0u);
}

BOOST_AUTO_TEST_CASE(the_lot_closes_with_the_wake_up_and_later_callers_are_served_from_memory) {
    expire_everything();
    outcomes first;
    start_gets(cache, 10, first);
    ioc.run();
    ioc.restart();
    BOOST_TEST(first.served == 10);
    const auto parked = parked_in_lot(cache);
    outcomes later;
    start_gets(cache, 10, later);
    BOOST_TEST(parked_in_lot(cache) == parked);  // a valid token: nobody parks
    ioc.run();
    BOOST_TEST(later.served == 10);
    BOOST_TEST(later.tokens == first.tokens);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
}

BOOST_AUTO_TEST_CASE(callers_parked_behind_a_get_that_fails_at_once_share_its_error) {
    expire_everything();
    server.inject({.what = kind::http_status, .where = emulator::route::token, .status = 503});
    outcomes refresh;
    cache.async_get("acme", refresh.recorder());
    ioc.run();
    ioc.restart();
    BOOST_TEST_REQUIRE(refresh.errors.size() == 1u);
    const auto refresh_error = refresh.errors.begin()->first;

    // Within the backoff the machine fails the lot's opener at once, without a request: the
    // callers parked behind it get the same error, not a wait.
    const auto parked = parked_in_lot(cache);
    outcomes during_backoff;
    start_gets(cache, 20, during_backoff);
    BOOST_TEST(parked_in_lot(cache) - parked == 19u);
    ioc.run();
    BOOST_TEST(during_backoff.errors[refresh_error] == 20);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    BOOST_TEST(cache.metrics().waiting_now == 0u);
}

BOOST_AUTO_TEST_CASE(a_cancelled_caller_leaves_the_lot_and_the_rest_get_the_token) {
    expire_everything();
    constexpr int callers = 100;
    std::vector<asio::cancellation_signal> signals(callers);
    outcomes seen;
    for (int i = 0; i < callers; ++i) {
        cache.async_get("acme", asio::bind_cancellation_slot(signals[i].slot(), seen.recorder()));
    }
    BOOST_TEST(parked_in_lot(cache) == static_cast<std::uint64_t>(callers - 1));
    for (int i = 1; i < callers; i += 2) {  // parked ones only: the opener (0) stays
        signals[i].emit(asio::cancellation_type::terminal);
    }
    ioc.run();
    BOOST_TEST(seen.errors[asio::error::operation_aborted] == callers / 2);
    BOOST_TEST(seen.served == callers / 2);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    BOOST_TEST(cache.metrics().waiting_now == 0u);
}

// A 401 marks its token rejected at once and tells the machine through a posted event. A caller
// whose get reached the machine before that event, with the mark already set, must not be served
// the rejected token, nor may the callers parked behind it (the 401's own retry among them).
BOOST_AUTO_TEST_CASE(a_rejected_token_is_not_served_to_the_lot_before_the_machine_hears_the_401) {
    const auto current = cache.try_get("acme");
    BOOST_TEST_REQUIRE(current.has_value());
    detail::impl_of(cache)->reject_without_telling_the_machine("acme", current->generation);
    outcomes seen;
    start_gets(cache, 20, seen);
    BOOST_TEST(parked_in_lot(cache) == 19u);
    ioc.run();
    BOOST_TEST(seen.served == 20);
    BOOST_TEST(seen.tokens.size() == 1u);
    BOOST_TEST(seen.tokens.count(std::string{original.access_token.reveal()}) == 0u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
}

BOOST_AUTO_TEST_CASE(stop_completes_the_callers_parked_in_the_lot) {
    expire_everything();
    outcomes seen;
    start_gets(cache, 50, seen);
    BOOST_TEST(parked_in_lot(cache) == 49u);
    cache.stop();  // reaches the account's strand after the opener's get: the machine has queued it
    ioc.run();
    BOOST_TEST(seen.errors[errc::shutting_down] == 50);
    BOOST_TEST(seen.served == 0);
    BOOST_TEST(cache.metrics().waiting_now == 0u);
}

// Callers park from four threads while the refresh completes on one of them: each is completed
// exactly once, with the one rotated token (a caller that finds the lot closed goes to the
// machine, which serves it). Run under ThreadSanitizer in CI.
BOOST_AUTO_TEST_CASE(callers_park_from_several_threads_while_the_lot_closes) {
    expire_everything();
    constexpr int threads = 4;
    constexpr int per_thread = 2'000;
    outcomes seen;
    auto work = asio::make_work_guard(ioc);
    std::vector<std::thread> runners;
    for (int t = 0; t < threads; ++t) {
        runners.emplace_back([&] { ioc.run(); });
    }
    std::vector<std::thread> callers;
    for (int t = 0; t < threads; ++t) {
        callers.emplace_back([&] {
            for (int i = 0; i < per_thread; ++i) {
                cache.async_get("acme", seen.recorder());
            }
        });
    }
    for (auto& t : callers) {
        t.join();
    }
    work.reset();
    for (auto& t : runners) {
        t.join();
    }
    BOOST_TEST(seen.served == threads * per_thread);
    BOOST_TEST(seen.tokens.size() == 1u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    BOOST_TEST(cache.metrics().waiting_now == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
