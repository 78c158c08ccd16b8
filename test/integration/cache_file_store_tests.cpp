// The token cache over the file store: a restart continues with the rotated refresh token.
#include <boost/asio/as_tuple.hpp>
#include <boost/test/unit_test.hpp>

#include <boost/asio/steady_timer.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include "cache_fixture.hpp"

using namespace apollo_oauth;
using apollo_oauth::test::cache_fixture;
namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

namespace {

// A fresh directory under the system temp dir, removed at the end.
struct temp_directory {
    std::filesystem::path path = std::filesystem::temp_directory_path() /
                                 ("apollo_oauth_cache_" + std::to_string(std::random_device{}()));
    ~temp_directory() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

// token_store's interface takes a handler; this makes it an ordinary async operation.
template <class CompletionToken>
auto async_load(token_store& store, std::string account, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(error_code, std::optional<stored_tokens>)>(
        [&store](auto handler, std::string acc) {
            store.async_load(std::move(acc), token_store::load_handler(std::move(handler)));
        },
        token, std::move(account));
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(cache_over_file_store, cache_fixture)

BOOST_AUTO_TEST_CASE(a_restarted_cache_continues_with_the_rotated_refresh_token) {
    temp_directory dir;
    client c{ioc.get_executor(), config()};
    const std::string account = "acme";
    std::string rotated_refresh_token;
    {
        auto settings = cache_settings();
        settings.on_rotation = [&](const std::string&, const token_set& t) {
            rotated_refresh_token = std::string{t.refresh_token.reveal()};
        };
        token_cache first{c, make_file_token_store(ioc.get_executor(), dir.path), settings};
        seed(c, first, "acme");
        expire_everything();
        auto [ec, token] = run([&]() -> awaitable<std::tuple<error_code, access_token>> {
            co_return co_await first.async_get(account, asio::as_tuple(use_awaitable));
        });
        BOOST_TEST(!ec);
        BOOST_TEST(token.generation == 2u);
    }
    // The emulator has revoked every older refresh token: only the rotated one still works.
    BOOST_TEST(server.newest_refresh_token_of(rotated_refresh_token) == rotated_refresh_token);

    token_cache second{c, make_file_token_store(ioc.get_executor(), dir.path), cache_settings()};
    clock.advance(std::chrono::days(31));
    auto [ec, token] = run([&]() -> awaitable<std::tuple<error_code, access_token>> {
        co_return co_await second.async_get(account, asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(!ec);
    BOOST_TEST(token.generation == 3u);
    BOOST_TEST(server.stats().refresh_token_grants == 2u);
    BOOST_TEST(server.stats().successful_refreshes == 2u);
}

// The file store writes the holder label into the lease as a line ("holder=<label>", and
// "sent_by=" once marked sent): a label with a newline (read from /etc/hostname with its own)
// made the lease unreadable, every mark_sent failed with lease_lost and the refresh was never
// sent; one of kilobytes overflowed the lease's read. Refused where the cache is made, naming the
// field; the longest label taken refreshes over the file store.
BOOST_AUTO_TEST_CASE(a_holder_label_a_lease_cannot_hold_is_refused_when_the_cache_is_made) {
    temp_directory dir;
    client c{ioc.get_executor(), config()};
    const auto store = make_file_token_store(ioc.get_executor(), dir.path);
    const auto refused = [&](std::string label) {
        auto settings = cache_settings();
        settings.holder = std::move(label);
        try {
            token_cache cache{c, store, settings};
        } catch (const boost::system::system_error& e) {
            return e.code() == errc::invalid_configuration &&
                   std::string_view(e.what()).find("cache_config::holder") != std::string_view::npos;
        }
        return false;
    };
    BOOST_TEST(refused("web1\n"));
    BOOST_TEST(refused("web\t1"));
    BOOST_TEST(refused(std::string(257, 'w')));
    auto settings = cache_settings();
    settings.holder = std::string(256, 'w');
    token_cache cache{c, store, settings};
    seed(c, cache, "acme");
    expire_everything();
    auto [ec, token] = run([&]() -> awaitable<std::tuple<error_code, access_token>> {
        co_return co_await cache.async_get("acme", asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(!ec);
    BOOST_TEST(token.generation == 2u);
}

BOOST_AUTO_TEST_CASE(an_unreachable_store_fails_closed_then_recovers) {
    temp_directory dir;
    client c{ioc.get_executor(), config()};
    auto settings = cache_settings();
    settings.backoff_initial = std::chrono::milliseconds(5);
    settings.backoff_max = std::chrono::milliseconds(20);
    auto store_on_disk = make_file_token_store(ioc.get_executor(), dir.path);
    token_cache cache{c, store_on_disk, settings};
    seed(c, cache, "acme");
    expire_everything();
    // Unwritable even for root: the directory's path now names a regular file.
    const auto moved = dir.path.string() + ".away";
    std::filesystem::rename(dir.path, moved);
    { std::ofstream blocker{dir.path}; }
    const std::string account = "acme";
    const bool recovered = run([&]() -> awaitable<bool> {
        // No lease can be taken: no uncoordinated refresh is sent (another process could be
        // refreshing with the same token), and the caller gets a retryable error.
        auto [ec, token] = co_await cache.async_get(account, asio::as_tuple(use_awaitable));
        BOOST_TEST(ec == errc::store_failure);
        BOOST_TEST(server.stats().refresh_token_grants == 0u);
        std::filesystem::remove(dir.path);
        std::filesystem::rename(moved, dir.path);
        asio::steady_timer timer{co_await asio::this_coro::executor};
        for (int i = 0; i < 5'000; ++i) {  // past the backoff, the next caller refreshes
            auto [get_ec, t] = co_await cache.async_get(account, asio::as_tuple(use_awaitable));
            if (!get_ec) {
                co_return t.generation == 2u;
            }
            timer.expires_after(std::chrono::milliseconds(5));
            co_await timer.async_wait(use_awaitable);
        }
        co_return false;
    });
    BOOST_TEST(recovered);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
