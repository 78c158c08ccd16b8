// The token cache over the Redis store while Redis goes away and comes back (issue 12, "when
// Redis is unreachable"): a valid token is served from memory without Redis; a refresh that needs
// coordination fails closed with the retryable coordination_unavailable (never an uncoordinated
// refresh); a rotated pair whose commit meets a dead Redis is kept, served, and committed once
// Redis is back. A real redis-server, killed (SIGKILL) and restarted on its AOF.
#include "store/multi_process_support.hpp"
#include "store_support.hpp"

#include <apollo_oauth/forwarding_token_store.hpp>
#include <apollo_oauth/redis_token_store.hpp>
#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <future>
#include <mutex>

using namespace apollo_oauth;
using namespace apollo_oauth::redis_test;
namespace asio = boost::asio;

namespace {

/// Kills the Redis server just before the first commit reaches it: the rotation has happened at
/// the token endpoint, and the store cannot take it.
class redis_dies_before_commit : public forwarding_token_store {
public:
    redis_dies_before_commit(std::shared_ptr<token_store> inner, redis_server& server)
        : forwarding_token_store(std::move(inner)), server_(server) {}

    void async_commit(std::string account, std::string holder, stored_tokens record,
                      std::uint64_t expected_generation, save_handler handler) override {
        if (!killed_.exchange(true)) {
            server_.kill();
        }
        inner().async_commit(std::move(account), std::move(holder), std::move(record), expected_generation,
                             std::move(handler));
    }

private:
    redis_server& server_;
    std::atomic<bool> killed_{false};
};

/// Tells which the cache did first after a lease was granted to it: waited (async_wait_for_change)
/// or marked its request sent (the refresh token goes out next).
class first_step_after_grant : public forwarding_token_store {
public:
    using forwarding_token_store::forwarding_token_store;

    std::future<std::string> first_step() { return first_.get_future(); }

    void async_acquire(std::string account, std::string holder, std::uint64_t known,
                       std::chrono::milliseconds ttl, acquire_handler handler) override {
        inner().async_acquire(std::move(account), std::move(holder), known, ttl,
                              [this, h = std::move(handler)](error_code ec, lease_outcome o) mutable {
                                  granted_ = !ec && o.what == lease_outcome::kind::granted;
                                  std::move(h)(ec, std::move(o));
                              });
    }
    void async_mark_sent(std::string account, std::string holder, std::uint64_t generation,
                         std::chrono::milliseconds ttl, lease_handler handler) override {
        tell("sent");
        inner().async_mark_sent(std::move(account), std::move(holder), generation, ttl, std::move(handler));
    }
    void async_wait_for_change(std::string account, std::uint64_t known, std::chrono::milliseconds max_wait,
                               load_handler handler) override {
        if (granted_) {
            tell("waited");
        }
        // Through a lambda: Boost 1.81 recurses without end when an any_completion_handler with a
        // cancellation slot is passed on as another.
        inner().async_wait_for_change(
            std::move(account), known, max_wait,
            [h = std::move(handler)](error_code ec, std::optional<stored_tokens> r) mutable {
                std::move(h)(ec, std::move(r));
            });
    }

private:
    void tell(const char* step) {
        std::call_once(told_, [&] { first_.set_value(step); });
    }

    std::atomic<bool> granted_{false};  // one account, whose machine runs one step at a time
    std::promise<std::string> first_;
    std::once_flag told_;
};

/// Tells when the cache first waits for another holder (async_wait_for_change).
class tells_when_waiting : public forwarding_token_store {
public:
    using forwarding_token_store::forwarding_token_store;

    std::future<void> waiting() { return waiting_.get_future(); }

    void async_wait_for_change(std::string account, std::uint64_t known, std::chrono::milliseconds max_wait,
                               load_handler handler) override {
        std::call_once(told_, [&] { waiting_.set_value(); });
        // Through a lambda, as in first_step_after_grant, bound to the caller's cancellation slot:
        // the cache's stop cancels the wait, which would otherwise hold the pool for the lease's
        // 10 minutes when the test fails.
        auto slot = asio::get_associated_cancellation_slot(handler);
        inner().async_wait_for_change(
            std::move(account), known, max_wait,
            asio::bind_cancellation_slot(
                slot, [h = std::move(handler)](error_code ec, std::optional<stored_tokens> r) mutable {
                    std::move(h)(ec, std::move(r));
                }));
    }

private:
    std::promise<void> waiting_;
    std::once_flag told_;
};

struct cache_on_redis_fixture : pool_fixture {
    redis_server redis;
    emulator::server server;  // 30-day pairs: only invalidate() makes the cache refresh
    client oauth{executor(), emulator::client_config_for(server)};
    std::atomic<std::int64_t> steady_offset_ms{0};  // moves the cache's backoff clock

    cache_config settings() {
        cache_config c;
        c.on_reauthorization_required = [](const std::string&) {};
        c.steady_clock = [this] {
            return std::chrono::steady_clock::now() + std::chrono::milliseconds(steady_offset_ms.load());
        };
        return c;
    }

    void pass_the_backoff() { steady_offset_ms += 120'000; }  // beyond backoff_max

    access_token get(token_cache& cache) { return cache.async_get("acme", asio::use_future).get(); }

    error_code get_error(token_cache& cache) {
        try {
            get(cache);
        } catch (const boost::system::system_error& e) {
            return e.code();
        }
        return {};
    }

    // Two caches, each on its own store object (as two processes), share an account. The first
    // marks its request sent and the token endpoint answers 500: its refresh fails, and it gives
    // the lease back. The second then refreshes at once: the first holds no rotated pair it could
    // still commit, so nobody is to be waited for. (Over Redis the release left the mark, and the
    // second held the lease for backoff_max waiting for a commit that could not come; 30 s here,
    // a minute by default, with every caller of the account told to wait meanwhile.)
    void a_failed_refresh_leaves_nothing_to_wait_for(std::shared_ptr<token_store> first_store,
                                                     std::shared_ptr<token_store> second_store) {
        auto config = settings();
        config.backoff_max = std::chrono::seconds(30);
        token_cache first{oauth, std::move(first_store), config};
        token_cache second{oauth, std::move(second_store), config};
        first.async_store("acme", store_test::authorize(server), asio::use_future).get();
        const auto first_token = get(first);
        const auto second_token = get(second);
        BOOST_TEST_REQUIRE(second_token.generation == 1u);

        server.inject(
            {.what = emulator::fault::kind::http_status, .where = emulator::route::token, .status = 500});
        first.invalidate("acme", first_token);
        BOOST_TEST_REQUIRE(get_error(first).failed());
        const auto requests = server.stats().token_requests;  // the one answered 500
        BOOST_TEST(server.stats().successful_refreshes == 0u);

        second.invalidate("acme", second_token);
        auto pending = second.async_get("acme", asio::use_future);
        // A third of backoff_max: a wait for the first cache's commit is not over by then.
        BOOST_TEST_REQUIRE((pending.wait_for(std::chrono::seconds(10)) == std::future_status::ready));
        BOOST_TEST(pending.get().generation == 2u);
        BOOST_TEST(server.stats().token_requests == requests + 1);
        BOOST_TEST(server.stats().successful_refreshes == 1u);
    }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(cache_on_redis, cache_on_redis_fixture)

BOOST_AUTO_TEST_CASE(valid_tokens_are_served_while_redis_is_down_and_a_refresh_fails_closed) {
    token_cache cache{oauth, make_redis_token_store(executor(), store_options(redis)), settings()};
    cache.async_store("acme", store_test::authorize(server), asio::use_future).get();
    const auto first = get(cache);
    BOOST_TEST(first.generation == 1u);

    redis.kill();
    BOOST_TEST(get(cache).generation == 1u);  // from memory: a valid token never touches Redis
    cache.invalidate("acme", first);          // as a 401 would: now it needs a refresh
    BOOST_TEST(get_error(cache) == errc::coordination_unavailable);  // fail closed, retryable
    BOOST_TEST(server.stats().successful_refreshes == 0u);           // nothing sent uncoordinated

    redis.start();
    pass_the_backoff();
    BOOST_TEST(get(cache).generation == 2u);
    BOOST_TEST(server.stats().successful_refreshes == 1u);
    auto [ec, record] = sync_store{make_redis_token_store(executor(), store_options(redis))}.load("acme");
    BOOST_TEST(!ec);
    BOOST_TEST_REQUIRE(record.has_value());
    BOOST_TEST(record->generation == 2u);
}

BOOST_AUTO_TEST_CASE(a_rotated_pair_whose_commit_meets_a_dead_redis_is_served_and_committed_when_it_returns) {
    auto store = std::make_shared<redis_dies_before_commit>(
        make_redis_token_store(executor(), store_options(redis)), redis);
    token_cache cache{oauth, store, settings()};
    const token_set original = store_test::authorize(server);
    cache.async_store("acme", original, asio::use_future).get();
    cache.invalidate("acme", get(cache));

    // The server rotates; Redis dies before the commit: the new pair is served from memory.
    const auto rotated = get(cache);
    BOOST_TEST(rotated.generation == 2u);
    BOOST_TEST(server.stats().successful_refreshes == 1u);
    BOOST_TEST(std::string{rotated.value.reveal()} != std::string{original.access_token.reveal()});

    // Redis returns (its AOF has generation 1); the cache's retried commit lands, and shutdown
    // waits for it.
    redis.start();
    cache.async_shutdown(std::chrono::seconds(20), asio::use_future).get();
    auto [ec, record] = sync_store{make_redis_token_store(executor(), store_options(redis))}.load("acme");
    BOOST_TEST(!ec);
    BOOST_TEST_REQUIRE(record.has_value());
    BOOST_TEST(record->generation == 2u);
    BOOST_TEST(std::string{record->tokens.access_token.reveal()} == std::string{rotated.value.reveal()});
    const auto grant = server.grant_stats_of(std::string{original.refresh_token.reveal()});
    BOOST_TEST(grant.refreshes == 1u);
    BOOST_TEST(!grant.revoked);
}

// A Redis that lost the account (a restart without persistence; a failover to a replica that
// missed the last writes looks the same) while a cache holds its pair: the lease is granted on
// what Redis holds, so the cache writes its pair back first, then refreshes once from it.
BOOST_AUTO_TEST_CASE(a_redis_that_lost_the_account_gets_the_cached_pair_back_before_the_one_refresh) {
    token_cache cache{oauth, make_redis_token_store(executor(), store_options(redis)), settings()};
    const token_set original = store_test::authorize(server);
    cache.async_store("acme", original, asio::use_future).get();
    const auto first = get(cache);
    redis::connection raw{executor(), plain_config(redis)};
    exec(raw, {"FLUSHALL"});
    cache.invalidate("acme", first);

    const auto rotated = get(cache);
    BOOST_TEST(rotated.generation == 2u);
    BOOST_TEST(server.stats().successful_refreshes == 1u);
    const auto grant = server.grant_stats_of(std::string{original.refresh_token.reveal()});
    BOOST_TEST(grant.refreshes == 1u);
    BOOST_TEST(!grant.revoked);
    auto [ec, record] = sync_store{make_redis_token_store(executor(), store_options(redis))}.load("acme");
    BOOST_TEST(!ec);
    BOOST_TEST_REQUIRE(record.has_value());
    BOOST_TEST(record->generation == 2u);
    BOOST_TEST(std::string{record->tokens.access_token.reveal()} == std::string{rotated.value.reveal()});
    raw.close();
}

// Another process leased the account, marked its request sent, had the pair rotated by the
// server, and was cut off from Redis past its lease and grace. The cache granted the lease next
// must not send that refresh token again (the server would revoke the grant, the silent
// process's new pair included): it waits, and the silent process's commit, when it lands, is
// adopted with no refresh of its own.
BOOST_AUTO_TEST_CASE(a_holder_that_sent_and_went_silent_commits_before_anyone_sends_its_token_again) {
    auto options = store_options(redis);
    options.sent_grace = std::chrono::milliseconds(50);
    auto spy = std::make_shared<first_step_after_grant>(make_redis_token_store(executor(), options));
    auto config = settings();
    config.backoff_max = std::chrono::seconds(60);  // how long the silent holder's retry may take
    token_cache cache{oauth, spy, config};
    const token_set original = store_test::authorize(server);
    cache.async_store("acme", original, asio::use_future).get();
    const auto first = get(cache);

    sync_store silent{make_redis_token_store(executor(), options)};
    const auto ttl = std::chrono::milliseconds(100);
    BOOST_TEST_REQUIRE(
        (std::get<1>(silent.acquire("acme", "silent", 1, ttl)).what == lease_outcome::kind::granted));
    BOOST_TEST_REQUIRE(!silent.mark_sent("acme", "silent", 1, ttl));
    const token_set rotated = oauth.async_refresh(original.refresh_token, {}, asio::use_future).get();

    cache.invalidate("acme", first);
    auto pending = cache.async_get("acme", asio::use_future);
    const auto step = spy->first_step().get();
    BOOST_TEST(step == "waited");
    stored_tokens record;
    record.tokens = rotated;
    record.generation = 2;
    BOOST_TEST(!silent.commit("acme", "silent", record, 1));

    const auto token = pending.get();
    BOOST_TEST(token.generation == 2u);
    BOOST_TEST(std::string{token.value.reveal()} == std::string{rotated.access_token.reveal()});
    BOOST_TEST(server.stats().successful_refreshes == 1u);  // the silent process's only
    const auto grant = server.grant_stats_of(std::string{original.refresh_token.reveal()});
    BOOST_TEST(grant.reuses == 0u);
    BOOST_TEST(!grant.revoked);
}

// Another process holds the lease and gives it back without sending anything (its cache shut
// down, or its store refused the mark-sent): the cache waiting for it refreshes at once, not when
// that lease would have run out (10 minutes here: a wait the release did not end fails the test).
BOOST_AUTO_TEST_CASE(a_lease_given_back_lets_a_waiting_cache_refresh_at_once) {
    auto spy = std::make_shared<tells_when_waiting>(make_redis_token_store(executor(), store_options(redis)));
    token_cache cache{oauth, spy, settings()};
    const token_set original = store_test::authorize(server);
    cache.async_store("acme", original, asio::use_future).get();
    const auto first = get(cache);

    sync_store elsewhere{make_redis_token_store(executor(), store_options(redis))};
    BOOST_TEST_REQUIRE(
        (std::get<1>(elsewhere.acquire("acme", "elsewhere", 1, std::chrono::minutes(10))).what ==
         lease_outcome::kind::granted));
    cache.invalidate("acme", first);
    auto pending = cache.async_get("acme", asio::use_future);
    spy->waiting().get();
    redis::connection raw(executor(), plain_config(redis));
    BOOST_TEST_REQUIRE(wait_for_subscribers(raw, "test:changed", 1));
    BOOST_TEST_REQUIRE(!elsewhere.release("acme", "elsewhere"));

    BOOST_TEST_REQUIRE((pending.wait_for(std::chrono::seconds(60)) == std::future_status::ready));
    BOOST_TEST(pending.get().generation == 2u);
    BOOST_TEST(server.stats().successful_refreshes == 1u);
}

BOOST_AUTO_TEST_CASE(after_a_refresh_that_failed_and_gave_the_lease_back_the_next_process_refreshes_at_once) {
    a_failed_refresh_leaves_nothing_to_wait_for(make_redis_token_store(executor(), store_options(redis)),
                                                make_redis_token_store(executor(), store_options(redis)));
}

// The same over one memory store (two caches in one process), which never kept the mark.
BOOST_AUTO_TEST_CASE(after_a_refresh_that_failed_and_gave_the_lease_back_the_next_cache_refreshes_at_once) {
    const auto shared = make_memory_token_store(executor());
    a_failed_refresh_leaves_nothing_to_wait_for(shared, shared);
}

// An acquire that ran on Redis but whose reply never came back: Redis is stopped past the store's
// command_timeout, so the store gives up the connection with the acquire still in Redis's socket,
// and Redis runs it when it continues (granting the lease, 10 minutes here). The cache is told
// coordination_unavailable and, holding nothing as far as it knows, releases nothing; so the
// store gives that lease back itself. (It stayed for its whole time: another process's cache
// found it busy and waited the 10 minutes.)
BOOST_AUTO_TEST_CASE(a_lease_whose_acquire_reply_was_lost_does_not_keep_other_processes_waiting) {
    auto config = settings();
    config.lease_ttl = std::chrono::minutes(10);
    auto losing = store_options(redis);
    losing.command_timeout = std::chrono::seconds(1);
    token_cache first{oauth, make_redis_token_store(executor(), losing), config};
    token_cache second{oauth, make_redis_token_store(executor(), store_options(redis)), config};
    first.async_store("acme", store_test::authorize(server), asio::use_future).get();
    const auto first_token = get(first);
    const auto second_token = get(second);
    redis::connection raw(executor(), plain_config(redis));
    exec(raw, {"CONFIG", "RESETSTAT"});
    {
        const stopped_redis stopped{redis};
        first.invalidate("acme", first_token);
        BOOST_TEST_REQUIRE(get_error(first) == errc::coordination_unavailable);
    }
    BOOST_TEST_REQUIRE(wait_for_calls(raw, "fcall", 1));  // the acquire ran after all

    second.invalidate("acme", second_token);
    auto pending = second.async_get("acme", asio::use_future);
    // 30 s: far below the lease's 10 minutes, which a lease left standing makes the cache wait.
    BOOST_TEST_REQUIRE((pending.wait_for(std::chrono::seconds(30)) == std::future_status::ready));
    BOOST_TEST(pending.get().generation == 2u);
    BOOST_TEST(server.stats().successful_refreshes == 1u);
    raw.close();
}

// A cache that found the grant gone learns of the customer's new authorization, stored through
// another cache, at its next caller (it looks at Redis again at most once per backoff_initial).
BOOST_AUTO_TEST_CASE(a_new_authorization_stored_through_another_cache_ends_a_reauthorization) {
    token_cache elsewhere{oauth, make_redis_token_store(executor(), store_options(redis)), settings()};
    token_cache here{oauth, make_redis_token_store(executor(), store_options(redis)), settings()};
    elsewhere.async_store("acme", store_test::authorize(server), asio::use_future).get();
    sync_store direct{make_redis_token_store(executor(), store_options(redis))};
    BOOST_TEST_REQUIRE(!direct.mark_reauth("acme", 1));
    BOOST_TEST(get_error(here) == errc::reauthorization_required);

    const token_set again = store_test::authorize(server);
    elsewhere.async_store("acme", again, asio::use_future).get();
    const auto token = get(here);
    BOOST_TEST(token.generation == 2u);
    BOOST_TEST(std::string{token.value.reveal()} == std::string{again.access_token.reveal()});
}

// A store that must have each write acknowledged by a replica (min_replicas), with none
// attached: the cache serves the valid token, but refreshes nothing (its mark-sent is not
// acknowledged, so no request goes out) until a replica is there; then one refresh, whose pair a
// failover to that replica would serve.
BOOST_AUTO_TEST_CASE(a_cache_whose_store_waits_for_a_missing_replica_sends_nothing_until_one_is_there) {
    sync_store unreplicated{make_redis_token_store(executor(), store_options(redis))};
    BOOST_REQUIRE(
        !unreplicated.save("acme", stored_tokens{store_test::authorize(server), 1, record_state::ok}, 0));
    auto options = store_options(redis);
    options.min_replicas = 1;
    options.replica_timeout = std::chrono::milliseconds(1'000);  // ample for the replica's ack
    token_cache cache{oauth, make_redis_token_store(executor(), options), settings()};
    const auto first = get(cache);  // a load waits for no replica
    BOOST_TEST(first.generation == 1u);
    cache.invalidate("acme", first);
    BOOST_TEST(get_error(cache) == errc::coordination_unavailable);
    BOOST_TEST(server.stats().refresh_token_grants == 0u);  // not even sent

    const auto replica = replica_of(redis);
    BOOST_REQUIRE(wait_for_a_replica(executor(), redis));
    pass_the_backoff();
    BOOST_TEST(get(cache).generation == 2u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    redis::connection on_replica(executor(), plain_config(replica));
    BOOST_TEST(exec(on_replica, {"HGET", options.key_prefix + "{acme}", "gen"}).text == "2");
}

BOOST_AUTO_TEST_SUITE_END()
