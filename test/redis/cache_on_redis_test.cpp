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

#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>

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

BOOST_AUTO_TEST_SUITE_END()
