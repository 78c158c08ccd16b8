// The token cache's invariants, each against the emulator over loopback TLS.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/test/unit_test.hpp>

#include <set>
#include <thread>

#include "cache_fixture.hpp"

using namespace apollo_oauth;
using apollo_oauth::test::cache_fixture;
namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using kind = emulator::fault::kind;

namespace {

struct herd_result {
    std::atomic<int> ok{0};
    std::atomic<int> failed{0};
    std::mutex mutex;
    std::set<std::string> tokens;
    std::map<std::string, int> errors;
};

// Starts `n` coroutines that each call async_get once, then runs the io_context on `threads`.
void run_herd(asio::io_context& ioc, token_cache& cache, const std::string& account, int n, int threads,
              herd_result& out) {
    for (int i = 0; i < n; ++i) {
        asio::co_spawn(
            ioc,
            [&]() -> awaitable<void> {
                auto [ec, token] = co_await cache.async_get(account, asio::as_tuple(use_awaitable));
                std::lock_guard lock{out.mutex};
                if (ec) {
                    ++out.failed;
                    ++out.errors[ec.message()];
                } else {
                    ++out.ok;
                    out.tokens.insert(std::string{token.value.reveal()});
                }
            },
            asio::detached);
    }
    apollo_oauth::test::run_on_threads(ioc, threads);
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(token_cache_invariants, cache_fixture)

BOOST_AUTO_TEST_CASE(ten_thousand_callers_one_refresh_one_thread) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    const auto original = seed(c, cache, "acme");
    expire_everything();
    herd_result herd;
    run_herd(ioc, cache, "acme", 10'000, 1, herd);
    BOOST_TEST(herd.ok.load() == 10'000);
    BOOST_TEST(herd.tokens.size() == 1u);
    BOOST_TEST(herd.tokens.count(std::string{original.access_token.reveal()}) == 0u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
}

BOOST_AUTO_TEST_CASE(ten_thousand_callers_one_refresh_four_threads) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    seed(c, cache, "acme");
    expire_everything();
    herd_result herd;
    run_herd(ioc, cache, "acme", 10'000, 4, herd);
    BOOST_TEST(herd.ok.load() == 10'000);
    BOOST_TEST(herd.tokens.size() == 1u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    BOOST_TEST(server.stats().max_refreshes_in_flight == 1u);
}

BOOST_AUTO_TEST_CASE(a_valid_token_needs_no_network_and_no_wait) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    const auto original = seed(c, cache, "acme");
    const auto before = server.stats();
    auto fast = cache.try_get("acme");
    BOOST_REQUIRE(fast.has_value());
    BOOST_TEST(fast->value == original.access_token);
    herd_result herd;
    run_herd(ioc, cache, "acme", 100, 1, herd);
    BOOST_TEST(herd.ok.load() == 100);
    BOOST_TEST(server.stats().token_requests == before.token_requests);
    BOOST_TEST(server.stats().connections_accepted == before.connections_accepted);
    BOOST_TEST(store->saves.load() == 1);  // the seed only
}

[[gnu::noinline]] std::uintptr_t stack_position() {
    return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
}

// The hot path completes the caller's concrete handler through the executor, never from inside
// async_get: inline completions would nest coroutine resumptions until the stack overflows.
BOOST_AUTO_TEST_CASE(back_to_back_gets_of_a_valid_token_keep_the_stack_flat) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    seed(c, cache, "acme");
    auto strand = asio::make_strand(ioc);
    constexpr int gets = 200'000;
    std::uintptr_t lowest = ~std::uintptr_t{0}, highest = 0;
    bool always_on_the_strand = true;
    const auto failures = run([&]() -> awaitable<int> {
        co_return co_await asio::co_spawn(
            strand,
            [&]() -> awaitable<int> {
                int failed = 0;
                for (int i = 0; i < gets; ++i) {
                    auto [ec, token] = co_await cache.async_get("acme", asio::as_tuple(asio::deferred));
                    failed += ec ? 1 : 0;
                    always_on_the_strand = always_on_the_strand && strand.running_in_this_thread();
                    lowest = std::min(lowest, stack_position());
                    highest = std::max(highest, stack_position());
                }
                co_return failed;
            },
            use_awaitable);
    });
    BOOST_TEST(failures == 0);
    BOOST_TEST(always_on_the_strand);
    BOOST_TEST(highest - lowest <= 256u);  // the same depth every time (a nested resumption costs more)
}

BOOST_AUTO_TEST_CASE(a_valid_token_completes_after_async_get_returns) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    seed(c, cache, "acme");
    bool initiating = true;
    bool completed_inline = false;
    bool completed = false;
    cache.async_get("acme", [&](error_code ec, access_token token) {
        completed_inline = initiating;
        completed = !ec && !token.value.empty();
    });
    initiating = false;
    ioc.run();
    ioc.restart();
    BOOST_TEST(completed);
    BOOST_TEST(!completed_inline);
}

BOOST_AUTO_TEST_CASE(the_rotated_pair_is_stored_before_any_waiter_sees_it) {
    client c{ioc.get_executor(), config()};
    std::atomic<int> rotations{0};
    auto settings = cache_settings();
    settings.on_rotation = [&](const std::string&, const token_set&) { ++rotations; };
    token_cache cache{c, store, settings};
    seed(c, cache, "acme");
    expire_everything();
    std::atomic<int> saw_unstored{0};
    for (int i = 0; i < 50; ++i) {
        cache.async_get("acme", [&](error_code ec, access_token token) {
            if (ec || store->saved_generation("acme") < token.generation) {
                ++saw_unstored;
            }
        });
    }
    ioc.run();
    BOOST_TEST(saw_unstored.load() == 0);
    BOOST_TEST(store->saved_generation("acme") == 2u);
    BOOST_TEST(rotations.load() == 2);  // the seed and the rotation
}

BOOST_AUTO_TEST_CASE(a_failed_refresh_reaches_every_waiter_once_then_recovers) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    seed(c, cache, "acme");
    expire_everything();
    server.inject({.what = kind::http_status, .where = emulator::route::token, .status = 503});
    herd_result herd;
    run_herd(ioc, cache, "acme", 1'000, 2, herd);
    BOOST_TEST(herd.failed.load() == 1'000);
    BOOST_TEST(herd.errors.size() == 1u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);

    // Within the backoff, callers get the error at once, without a request.
    herd_result during_backoff;
    run_herd(ioc, cache, "acme", 10, 1, during_backoff);
    BOOST_TEST(during_backoff.failed.load() == 10);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);

    // After it, the next call refreshes (the 503 was used up) and everyone is served.
    clock.advance(std::chrono::minutes(2));
    herd_result later;
    run_herd(ioc, cache, "acme", 100, 1, later);
    BOOST_TEST(later.ok.load() == 100);
    BOOST_TEST(server.stats().refresh_token_grants == 2u);
}

BOOST_AUTO_TEST_CASE(invalid_grant_requires_reauthorization_and_calls_the_hook_once) {
    client c{ioc.get_executor(), config()};
    std::atomic<int> hook_calls{0};
    auto settings = cache_settings();
    settings.on_reauthorization_required = [&](const std::string& account) {
        BOOST_TEST(account == "acme");
        ++hook_calls;
    };
    token_cache cache{c, store, settings};
    const auto original = seed(c, cache, "acme");
    server.revoke_grant_of_refresh_token(std::string{original.refresh_token.reveal()});
    expire_everything();
    herd_result herd;
    run_herd(ioc, cache, "acme", 500, 2, herd);
    BOOST_TEST(herd.failed.load() == 500);
    BOOST_TEST(herd.errors.count(error_code{errc::reauthorization_required}.message()) == 1u);
    BOOST_TEST(hook_calls.load() == 1);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);

    clock.advance(std::chrono::days(1));  // no backoff involved: the state is terminal
    herd_result again;
    run_herd(ioc, cache, "acme", 10, 1, again);
    BOOST_TEST(again.failed.load() == 10);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    BOOST_TEST(hook_calls.load() == 1);

    // New tokens from a new authorization bring the account back.
    seed(c, cache, "acme");
    herd_result restored;
    run_herd(ioc, cache, "acme", 10, 1, restored);
    BOOST_TEST(restored.ok.load() == 10);
}

BOOST_AUTO_TEST_CASE(cancelled_waiters_leave_and_the_rest_get_the_token) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    seed(c, cache, "acme");
    expire_everything();
    // The refresh takes a while, so every waiter below is queued behind it.
    server.inject(
        {.what = kind::latency, .where = emulator::route::token, .delay = std::chrono::milliseconds(300)});
    constexpr int waiters = 200;
    std::vector<asio::cancellation_signal> signals(waiters);
    std::atomic<int> aborted{0}, served{0}, other{0};
    for (int i = 0; i < waiters; ++i) {
        cache.async_get("acme",
                        asio::bind_cancellation_slot(signals[i].slot(), [&](error_code ec, access_token) {
                            if (ec == asio::error::operation_aborted) {
                                ++aborted;
                            } else if (!ec) {
                                ++served;
                            } else {
                                ++other;
                            }
                        }));
    }
    for (int i = 0; i < waiters; i += 2) {
        signals[i].emit(asio::cancellation_type::total);
    }
    ioc.run();
    BOOST_TEST(aborted.load() == waiters / 2);
    BOOST_TEST(served.load() == waiters / 2);
    BOOST_TEST(other.load() == 0);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    BOOST_TEST(server.stats().successful_refreshes == 1u);
}

BOOST_AUTO_TEST_CASE(refresh_ahead_serves_the_current_token_and_refreshes_once_in_the_background) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    const auto original = seed(c, cache, "acme");
    clock.advance(std::chrono::days(23));  // past 75% of 30 days, not expired
    server.inject(
        {.what = kind::latency, .where = emulator::route::token, .delay = std::chrono::milliseconds(200)});
    herd_result herd;
    run_herd(ioc, cache, "acme", 1'000, 2, herd);
    BOOST_TEST(herd.ok.load() == 1'000);
    // Nobody waited for the refresh: they all got the token that was current when they asked.
    BOOST_TEST(herd.tokens.size() == 1u);
    BOOST_TEST(herd.tokens.count(std::string{original.access_token.reveal()}) == 1u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);  // ran in the background, once
    // Once it is in, callers get the new pair, with no further refresh.
    herd_result after;
    run_herd(ioc, cache, "acme", 100, 1, after);
    BOOST_TEST(after.tokens.size() == 1u);
    BOOST_TEST(after.tokens.count(std::string{original.access_token.reveal()}) == 0u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
}

BOOST_AUTO_TEST_CASE(a_lifetime_shorter_than_the_margin_still_rotates_once) {
    client c{ioc.get_executor(), config()};
    server.set_expires_in(std::chrono::seconds(30));  // shorter than the 60 s expiry margin
    token_cache cache{c, store, cache_settings()};
    seed(c, cache, "acme");
    clock.advance(std::chrono::seconds(31));
    herd_result herd;
    run_herd(ioc, cache, "acme", 2'000, 2, herd);
    BOOST_TEST(herd.ok.load() == 2'000);
    BOOST_TEST(herd.tokens.size() == 1u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
}

BOOST_AUTO_TEST_CASE(two_accounts_refresh_in_parallel) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    seed(c, cache, "acme");
    seed(c, cache, "globex");
    // Both herds are queued before the io_context runs: both refreshes are on the wire together.
    herd_result a2, g2;
    expire_everything();
    server.inject({.what = kind::latency,
                   .where = emulator::route::token,
                   .count = 2,
                   .delay = std::chrono::milliseconds(300)});
    for (const char* account : {"acme", "globex"}) {
        auto& out = std::string{account} == "acme" ? a2 : g2;
        for (int i = 0; i < 50; ++i) {
            cache.async_get(account, [&out](error_code ec, access_token) { ec ? ++out.failed : ++out.ok; });
        }
    }
    ioc.run();
    BOOST_TEST(a2.ok.load() == 50);
    BOOST_TEST(g2.ok.load() == 50);
    BOOST_TEST(server.stats().max_refreshes_in_flight == 2u);
}

BOOST_AUTO_TEST_CASE(invalidate_acts_only_on_the_current_token) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    seed(c, cache, "acme");
    auto first = cache.try_get("acme");
    BOOST_REQUIRE(first.has_value());
    for (int i = 0; i < 1'000; ++i) {
        cache.invalidate("acme", *first);  // a thousand 401s for the same token
    }
    herd_result herd;
    run_herd(ioc, cache, "acme", 100, 2, herd);
    BOOST_TEST(herd.ok.load() == 100);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    // The old token's late 401s change nothing now.
    cache.invalidate("acme", *first);
    BOOST_TEST(cache.try_get("acme").has_value());
}

// A 401 reported with a token this cache never served for the account (here: a generation far
// ahead of its own, as another account's or another cache's token may carry) changes nothing. It
// used to hide every publication up to that generation, and each get then took the "rejection"
// to the account's machine, which rotated the pair: one refresh per get.
BOOST_AUTO_TEST_CASE(invalidate_with_a_token_this_cache_never_served_changes_nothing) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    seed(c, cache, "acme");
    auto current = cache.try_get("acme");
    BOOST_REQUIRE(current.has_value());
    access_token foreign = *current;
    foreign.generation += 100;
    cache.invalidate("acme", foreign);
    herd_result herd;
    run_herd(ioc, cache, "acme", 100, 2, herd);
    BOOST_TEST(herd.ok.load() == 100);
    BOOST_TEST(server.stats().refresh_token_grants == 0u);
    BOOST_TEST(cache.metrics().refreshes == 0u);
    const auto after = cache.try_get("acme");  // still served without the machine
    BOOST_REQUIRE(after.has_value());
    BOOST_TEST(after->generation == current->generation);
}

BOOST_AUTO_TEST_CASE(a_store_failure_keeps_the_pair_reports_and_catches_up) {
    client c{ioc.get_executor(), config()};
    std::atomic<int> failures_reported{0};
    auto settings = cache_settings();
    settings.backoff_initial = std::chrono::milliseconds(5);
    settings.on_store_failure = [&](const std::string&, error_code ec) {
        BOOST_TEST(ec == errc::store_failure);
        ++failures_reported;
    };
    token_cache cache{c, store, settings};
    seed(c, cache, "acme");
    expire_everything();
    store->failing = true;
    // One coroutine drives it all: the cache's catch-up timer is pending work, so the io_context
    // only runs dry once the write has caught up.
    const bool caught_up = run([&]() -> awaitable<bool> {
        int served = 0;
        for (int i = 0; i < 100; ++i) {
            auto [ec, token] = co_await cache.async_get("acme", asio::as_tuple(use_awaitable));
            served += !ec && token.generation == 2;
        }
        // Callers are served the rotated pair although the write failed, and the failure is told.
        BOOST_TEST(served == 100);
        BOOST_TEST(failures_reported.load() >= 1);
        BOOST_TEST(store->saved_generation("acme") == 1u);
        store->failing = false;
        asio::steady_timer timer{co_await asio::this_coro::executor};
        for (int i = 0; i < 5'000 && store->saved_generation("acme") < 2; ++i) {
            timer.expires_after(std::chrono::milliseconds(2));
            co_await timer.async_wait(use_awaitable);
        }
        co_return store->saved_generation("acme") == 2u;
    });
    BOOST_TEST(caught_up);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);  // the pair in memory was used meanwhile
}

BOOST_AUTO_TEST_CASE(a_new_authorization_stored_during_a_rotation_wins) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    seed(c, cache, "acme");
    authorization_flow flow{c.config()};
    auto second_grant = authorize(flow);  // the customer will authorize again mid-rotation
    expire_everything();
    store->hold_next_save = true;  // the rotation's write is held at the store
    error_code waiter_ec = asio::error::would_block;
    access_token waiter_token;
    cache.async_get("acme", [&](error_code ec, access_token t) {
        waiter_ec = ec;
        waiter_token = std::move(t);
    });
    const std::string account = "acme";
    const auto fresh = run([&]() -> awaitable<token_set> {
        asio::steady_timer timer{co_await asio::this_coro::executor};
        while (!store->has_held_save()) {  // bounded by the suite's timeout; no fixed sleep
            timer.expires_after(std::chrono::milliseconds(2));
            co_await timer.async_wait(use_awaitable);
        }
        BOOST_TEST(waiter_ec == asio::error::would_block);  // persist before publish: still waiting
        auto tokens = co_await c.async_exchange_code(std::move(second_grant), use_awaitable);
        co_await cache.async_store(account, tokens, use_awaitable);
        store->release_held_save();
        co_return tokens;
    });
    BOOST_TEST(!waiter_ec);
    BOOST_TEST(waiter_token.value == fresh.access_token);
    // The new authorization took generation 3, past the rotation's 2, and the store kept it.
    BOOST_TEST(waiter_token.generation == 3u);
    BOOST_TEST(store->saved_generation("acme") == 3u);
}

BOOST_AUTO_TEST_CASE(stop_completes_every_waiter) {
    client c{ioc.get_executor(), config()};
    auto cache = std::make_unique<token_cache>(c, store, cache_settings());
    seed(c, *cache, "acme");
    expire_everything();
    server.inject(
        {.what = kind::latency, .where = emulator::route::token, .delay = std::chrono::milliseconds(200)});
    std::atomic<int> shut{0};
    for (int i = 0; i < 100; ++i) {
        cache->async_get("acme", [&](error_code ec, access_token) { shut += ec == errc::shutting_down; });
    }
    run([&]() -> awaitable<bool> {
        asio::steady_timer timer{co_await asio::this_coro::executor};
        while (cache->metrics().refreshes == 0) {  // the refresh is on the wire (the strand started it)
            timer.expires_after(std::chrono::milliseconds(2));
            co_await timer.async_wait(use_awaitable);
        }
        cache.reset();  // destroying stops
        co_return true;
    });
    BOOST_TEST(shut.load() == 100);
    // The refresh that was on the wire still finished and its pair was stored: nothing lost.
    BOOST_TEST(store->saved_generation("acme") == 2u);
}

BOOST_AUTO_TEST_CASE(an_unknown_account_is_reported) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    herd_result herd;
    run_herd(ioc, cache, "nobody", 20, 1, herd);
    BOOST_TEST(herd.failed.load() == 20);
    BOOST_TEST(herd.errors.count(error_code{errc::unknown_account}.message()) == 1u);
}

// An id past max_account_id_bytes is refused at the door, before any store is asked: the file
// store's record could not hold the largest pair beside an id of hundreds of kilobytes, and a
// rotated refresh token its store refuses lives in memory alone. The longest id taken still works.
BOOST_AUTO_TEST_CASE(an_account_id_past_the_limit_is_refused_before_any_store_is_asked) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    const std::string longest(max_account_id_bytes, 'a');
    const std::string too_long(max_account_id_bytes + 1, 'a');
    const auto tokens = obtain_tokens(c);

    const auto stored = [&](const std::string& account) {
        return run([&]() -> awaitable<error_code> {
            auto [ec] = co_await cache.async_store(account, tokens, asio::as_tuple(use_awaitable));
            co_return ec;
        });
    };
    BOOST_TEST(stored(too_long) == errc::invalid_argument);
    BOOST_TEST(store->saves.load() == 0);
    BOOST_TEST(!stored(longest));
    BOOST_TEST(store->saved_generation(longest) == 1u);

    herd_result refused;
    run_herd(ioc, cache, too_long, 5, 1, refused);
    BOOST_TEST(refused.failed.load() == 5);
    BOOST_TEST(refused.errors.count(error_code{errc::invalid_argument}.message()) == 1u);
    diagnostics diag;
    diag.http_status = 400;  // cleared by the call
    const auto with_diag = run([&]() -> awaitable<error_code> {
        auto [ec, token] = co_await cache.async_get(too_long, diag, asio::as_tuple(use_awaitable));
        co_return ec;
    });
    BOOST_TEST(with_diag == errc::invalid_argument);
    BOOST_TEST(diag.http_status == 0u);
    BOOST_TEST(!cache.try_get(too_long));

    herd_result served;
    run_herd(ioc, cache, longest, 5, 1, served);
    BOOST_TEST(served.ok.load() == 5);
    BOOST_TEST(served.tokens.size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_new_cache_over_the_same_store_continues_with_the_rotated_pair) {
    client c{ioc.get_executor(), config()};
    {
        token_cache first{c, store, cache_settings()};
        seed(c, first, "acme");
        expire_everything();
        herd_result herd;
        run_herd(ioc, first, "acme", 10, 1, herd);
        BOOST_TEST(herd.ok.load() == 10);
    }
    token_cache second{c, store, cache_settings()};
    clock.advance(std::chrono::days(31));
    herd_result herd;
    run_herd(ioc, second, "acme", 10, 1, herd);
    BOOST_TEST(herd.ok.load() == 10);  // refreshed with the rotated refresh token from the store
    BOOST_TEST(server.stats().refresh_token_grants == 2u);
    BOOST_TEST(store->saved_generation("acme") == 3u);
}

BOOST_AUTO_TEST_SUITE_END()
