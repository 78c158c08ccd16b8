// docs/scale-out.md's set-up of the Redis store, line by line, against a redis-server this test
// starts (test/redis/redis_server.hpp), and the cache on it storing and serving a pair.
#include <apollo_oauth.hpp>
#include <apollo_oauth/emulator/client_config.hpp>
#include <apollo_oauth/emulator/server.hpp>
#include <apollo_oauth/redis_token_store.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <iostream>
#include <system_error>

#include "redis_server.hpp"

namespace asio = boost::asio;

BOOST_AUTO_TEST_SUITE(redis_patterns)

BOOST_AUTO_TEST_CASE(scale_out_set_up) {
    apollo_oauth::redis_test::redis_server_options options;
    options.arguments = {"--requirepass", "s3cret-for-the-test"};
    apollo_oauth::redis_test::redis_server server{options};
    apollo_oauth::emulator::server apollo_emulator;
    asio::io_context ioc;
    apollo_oauth::client oauth_client{ioc.get_executor(),
                                      apollo_oauth::emulator::client_config_for(apollo_emulator)};
    const std::string redis_url = "redis://127.0.0.1:" + std::to_string(server.port()) + "/0";
    const std::string redis_password = "s3cret-for-the-test";
    bool durable = false;

    // docs/scale-out.md, as it stands (but for the flag the test reads).
    apollo_oauth::redis_options redis;
    if (auto ec = apollo_oauth::parse_redis_url(redis_url, redis)) {
        throw std::system_error(ec, "the Redis URL");  // the message never quotes the URL
    }
    redis.password = apollo_oauth::secret_string{redis_password};
    redis.on_durability = [&durable](const apollo_oauth::redis_durability& d) {
        durable = d.survives_crash() && d.keeps_records();
        if (!d.survives_crash() || !d.keeps_records()) {
            std::cerr << "Redis may forget a just-written token pair (a crash, or eviction)\n";
        }
    };
    auto store = apollo_oauth::make_redis_token_store(ioc.get_executor(), redis);
    apollo_oauth::token_cache cache{oauth_client, store};

    // The pair goes through Redis: stored, then served from the cache.
    apollo_oauth::authorization_flow flow{oauth_client.config()};
    auto url = flow.make_authorization_url({.any_browser = true});
    BOOST_TEST_REQUIRE(url.has_value());
    auto grant = flow.verify_callback(apollo_emulator.consent(url->url));
    BOOST_TEST_REQUIRE(grant.has_value());
    std::uint64_t served_generation = 0;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            auto tokens = co_await oauth_client.async_exchange_code(std::move(*grant), asio::use_awaitable);
            co_await cache.async_store("customer-42", std::move(tokens), asio::use_awaitable);
            auto token = co_await cache.async_get("customer-42", asio::use_awaitable);
            served_generation = token.generation;
            co_await cache.async_shutdown(std::chrono::seconds(5), asio::use_awaitable);
        },
        [](std::exception_ptr e) {
            if (e) {
                std::rethrow_exception(e);
            }
        });
    ioc.run();
    BOOST_TEST(served_generation == 1u);
    BOOST_TEST(durable);  // the test's server runs AOF with appendfsync always
    auto [ec, record] = [&] {
        // Read back through a second store on the same Redis: the pair is there, not only in memory.
        asio::io_context check;
        auto reader = apollo_oauth::make_redis_token_store(check.get_executor(), redis);
        std::pair<apollo_oauth::error_code, std::optional<apollo_oauth::stored_tokens>> out;
        reader->async_load("customer-42",
                           [&](apollo_oauth::error_code e, std::optional<apollo_oauth::stored_tokens> r) {
                               out = {e, std::move(r)};
                           });
        check.run();
        return out;
    }();
    BOOST_TEST(!ec);
    BOOST_TEST_REQUIRE(record.has_value());
    BOOST_TEST(record->generation == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
