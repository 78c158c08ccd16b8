// Idle accounts at rest: once nothing goes on for an account, the cache keeps only its machine's
// rest (sansio::packed_rest, ~60 bytes beside the account's snapshot, instead of an active slot
// of about 700 and a shard-map entry) and rebuilds the machine on the account's next event. Each case checks
// that the account did rest, then that what it does next (refresh with the refresh token it kept, answer a
// 401, save a new authorization above the generation it kept, stop) is what an account that never rested
// does. Against the emulator over loopback TLS; the emulator revokes the grant when a refresh token is used
// twice, so a rest that kept a stale refresh token would end in reauthorization, not in a token. Tokens are
// compared in parentheses, so that a failure does not print them into the test log.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cache/cache_impl.hpp"
#include "cache_fixture.hpp"

using namespace apollo_oauth;
using apollo_oauth::test::cache_fixture;
namespace asio = boost::asio;

namespace {

struct resting_cache : cache_fixture {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    token_set original = seed(c, cache, "acme");

    detail::cache_impl::account_census census() const { return detail::impl_of(cache)->census(); }

    bool resting_alone() const {
        const auto now = census();
        return now.active == 0 && now.resting == 1;
    }

    std::pair<error_code, access_token> get(const std::string& account = "acme") {
        return run([&]() -> asio::awaitable<std::pair<error_code, access_token>> {
            auto [ec, token] = co_await cache.async_get(account, asio::as_tuple(asio::use_awaitable));
            co_return std::pair{ec, std::move(token)};
        });
    }

    /// A get the machine answers, even for a valid token.
    std::pair<error_code, access_token> get_with_diagnostics(const std::string& account) {
        diagnostics diag;
        return run([&]() -> asio::awaitable<std::pair<error_code, access_token>> {
            auto [ec, token] = co_await cache.async_get(account, diag, asio::as_tuple(asio::use_awaitable));
            co_return std::pair{ec, std::move(token)};
        });
    }

    error_code store_as(const std::string& account, const token_set& tokens) {
        return run([&]() -> asio::awaitable<error_code> {
            auto [ec] = co_await cache.async_store(account, tokens, asio::as_tuple(asio::use_awaitable));
            co_return ec;
        });
    }

    error_code shut_down() {
        return run([&]() -> asio::awaitable<error_code> {
            auto [ec] =
                co_await cache.async_shutdown(std::chrono::seconds(5), asio::as_tuple(asio::use_awaitable));
            co_return ec;
        });
    }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(accounts_at_rest, resting_cache)

BOOST_AUTO_TEST_CASE(a_stored_account_rests_and_is_served_from_its_snapshot) {
    BOOST_TEST(resting_alone());
    const auto held = cache.try_get("acme");
    BOOST_TEST_REQUIRE(held.has_value());
    BOOST_TEST((held->value.reveal() == original.access_token.reveal()));
    const auto [ec, token] = get();
    BOOST_TEST(!ec);
    BOOST_TEST((token.value.reveal() == original.access_token.reveal()));
    BOOST_TEST(resting_alone());  // a valid token never wakes the machine
}

BOOST_AUTO_TEST_CASE(a_resting_account_refreshes_with_the_refresh_token_it_kept_every_time) {
    std::string previous{original.access_token.reveal()};
    for (std::uint64_t round = 1; round <= 3; ++round) {
        expire_everything();
        const auto [ec, token] = get();
        BOOST_TEST_REQUIRE(!ec, ec.message());
        BOOST_TEST((token.value.reveal() != previous));
        BOOST_TEST(token.generation == round + 1);
        previous = token.value.reveal();
        BOOST_TEST(resting_alone());
        BOOST_TEST(store->saved_generation("acme") == round + 1);
    }
    BOOST_TEST(server.stats().refresh_token_grants == 3u);
    BOOST_TEST(cache.metrics().reauthorizations == 0u);
}

BOOST_AUTO_TEST_CASE(a_401_wakes_a_resting_account_for_one_refresh) {
    const auto [ec, token] = get();
    BOOST_TEST_REQUIRE(!ec);
    BOOST_TEST(resting_alone());
    cache.invalidate("acme", token);
    const auto [ec2, next] = get();
    BOOST_TEST_REQUIRE(!ec2, ec2.message());
    BOOST_TEST((next.value.reveal() != token.value.reveal()));
    BOOST_TEST(next.generation == token.generation + 1);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    BOOST_TEST(resting_alone());
}

BOOST_AUTO_TEST_CASE(a_new_authorization_is_saved_above_the_generation_the_rest_kept) {
    // To generation 2 by a 401, not by the clock: the new authorization below is issued now,
    // and a clock moved past its lifetime would refresh it at once.
    const auto [ec1, first] = get();
    BOOST_TEST_REQUIRE(!ec1);
    cache.invalidate("acme", first);
    BOOST_TEST_REQUIRE(get().second.generation == 2u);
    BOOST_TEST(resting_alone());
    const auto again = obtain_tokens(c);
    const auto ec = store_as("acme", again);
    BOOST_TEST_REQUIRE(!ec, ec.message());
    BOOST_TEST(store->saved_generation("acme") == 3u);
    const auto [ec2, token] = get();
    BOOST_TEST(!ec2);
    BOOST_TEST((token.value.reveal() == again.access_token.reveal()));  // parenthesised: never printed
    BOOST_TEST(resting_alone());
}

// A diagnostics& caller always meets the machine. Were the account set aside after each such
// call, every call would wake it and rest it again (two allocations and ~1,300 instructions), so
// a get the machine answers leaves the account active, until its next refresh ends.
BOOST_AUTO_TEST_CASE(a_get_the_machine_answers_leaves_the_account_active_until_its_next_refresh) {
    const auto diag_get = [&] { return get_with_diagnostics("acme").first; };
    BOOST_TEST(resting_alone());
    BOOST_TEST(!diag_get());
    BOOST_TEST(census().active == 1u);
    BOOST_TEST(!diag_get());
    BOOST_TEST(census().active == 1u);
    BOOST_TEST(census().resting == 0u);
    expire_everything();
    BOOST_TEST(!get().first);  // the refresh cycle's end sets it aside again
    BOOST_TEST(resting_alone());
}

BOOST_AUTO_TEST_CASE(a_refresh_in_flight_keeps_the_account_active) {
    expire_everything();
    std::optional<error_code> done;
    cache.async_get("acme", [&](error_code ec, access_token) { done = ec; });
    while (cache.refreshes_in_flight() == 0 && !done && ioc.run_one() != 0) {
    }
    BOOST_TEST_REQUIRE(cache.refreshes_in_flight() == 1u);
    BOOST_TEST(census().active == 1u);
    BOOST_TEST(census().resting == 0u);
    ioc.run();
    ioc.restart();
    BOOST_TEST_REQUIRE(done.has_value());
    BOOST_TEST(!*done);
    BOOST_TEST(resting_alone());
}

BOOST_AUTO_TEST_CASE(shutdown_stops_a_resting_account_and_it_rests_stopped) {
    BOOST_TEST(resting_alone());
    const auto ec = shut_down();
    BOOST_TEST(!ec, ec.message());
    BOOST_TEST(resting_alone());
    BOOST_TEST(!cache.try_get("acme").has_value());
    BOOST_TEST((get().first == errc::shutting_down));
}

// A rest leaves what it serves (access token, generation, usable-until, refresh-at) to the
// account's snapshot slot when the slot holds exactly that, its token in its words (an Apollo
// token fits), and keeps it itself otherwise (a token longer than the words). Either way a machine
// woken by a get it answers (a diagnostics& caller's) serves the token and generation it had.
BOOST_AUTO_TEST_CASE(a_woken_machine_serves_the_access_token_its_rest_kept_in_either_place) {
    for (const std::size_t length : {std::size_t{43}, std::size_t{100}}) {
        const auto name = "tokens-of-" + std::to_string(length);
        auto tokens = original;
        tokens.access_token = secret_string(std::string(length, 'k'));
        const auto before = census();
        const auto stored = store_as(name, tokens);
        BOOST_TEST_REQUIRE(!stored, stored.message());
        BOOST_TEST(census().active == before.active);  // it rests
        // An Apollo-sized token stays in the slot's words only; a longer one is kept by the rest.
        BOOST_TEST(census().resting_with_their_token ==
                   before.resting_with_their_token + (length > 64 ? 1 : 0));
        const auto read = cache.try_get(name);  // from the snapshot: the machine stays at rest
        BOOST_TEST_REQUIRE(read.has_value());
        const auto [ec, served] = get_with_diagnostics(name);
        BOOST_TEST_REQUIRE(!ec, ec.message());
        BOOST_TEST(census().active == before.active + 1);  // the machine answered it
        BOOST_TEST((served.value.reveal() == tokens.access_token.reveal()));
        BOOST_TEST(served.generation == read->generation);
    }
}

// A resting account has no entry in its shard: its rest is kept beside its snapshot, and the
// shutdown finds it there. Two hundred accounts, all resting, over nearly all of the 64 shards.
BOOST_AUTO_TEST_CASE(shutdown_finds_and_stops_every_resting_account_of_every_shard) {
    const auto tokens = obtain_tokens(c);
    std::vector<std::string> names;
    for (int i = 0; i < 200; ++i) {
        names.push_back("account-" + std::to_string(i));
        const auto ec = store_as(names.back(), tokens);
        BOOST_TEST_REQUIRE(!ec, ec.message());
    }
    BOOST_TEST(census().active == 0u);
    BOOST_TEST(census().resting == 201u);
    const auto ec = shut_down();
    BOOST_TEST(!ec, ec.message());
    BOOST_TEST(census().active == 0u);
    BOOST_TEST(census().resting == 201u);  // each was woken, stopped, and rests again
    // Each one's machine was stopped: a get reaches it (a resting account is known to its shard)
    // and is refused. One the shutdown missed would wake unstopped and serve its token.
    std::size_t refused = 0;
    for (const auto& name : names) {
        refused += get(name).first == errc::shutting_down;
    }
    BOOST_TEST(refused == names.size());
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

/// A cache whose clock throws once `throwing` is set (an application's clock may).
struct cache_with_a_failing_clock : cache_fixture {
    std::atomic<bool> throwing{false};
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, [this] {
                          auto settings = cache_settings();
                          settings.clock = [this, inner = clock.function()] {
                              if (throwing) {
                                  throw std::runtime_error("the application's clock failed");
                              }
                              return inner();
                          };
                          return settings;
                      }()};
    token_set original = seed(c, cache, "acme");
};

}  // namespace

// The stopping path's events carry no time, so a clock that throws cannot keep an account from
// being stopped or async_shutdown from finishing (it used to leave the shard's share unreported,
// and the shutdown waiting for good).
BOOST_FIXTURE_TEST_CASE(a_clock_that_throws_cannot_keep_a_shutdown_from_finishing,
                        cache_with_a_failing_clock) {
    throwing = true;
    std::optional<error_code> done;
    cache.async_shutdown(std::chrono::seconds(5), [&](error_code ec) { done = ec; });
    // Bounded, so that a shutdown left waiting fails this case instead of hanging it: the
    // io_context runs out of work at once when all is well.
    ioc.run_for(std::chrono::seconds(30));
    BOOST_TEST_REQUIRE(done.has_value());
    BOOST_TEST(!*done, done->message());
    throwing = false;
    BOOST_TEST(!cache.try_get("acme").has_value());  // the account was stopped: withdrawn
    ioc.restart();
    std::optional<error_code> later;
    cache.async_get("acme", [&](error_code ec, access_token) { later = ec; });
    ioc.run_for(std::chrono::seconds(30));
    BOOST_TEST_REQUIRE(later.has_value());
    BOOST_TEST((*later == errc::shutting_down));
}
