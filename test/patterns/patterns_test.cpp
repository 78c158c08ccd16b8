// Every call pattern README.md and docs/api.md show, in every completion form they mention, as a
// user writes them: inside coroutines, with std::string temporaries and braced arguments, against
// the emulator over real TLS. Built in the normal build with g++ 12 (and under ASan/UBSan in the
// sanitizer build); test/patterns/run_clang.sh builds and runs it with clang 14 as well.
//
// g++ 12 destroys a braced or designated-initializer *aggregate* temporary (api_request,
// authorization_grant) built inside a co_await expression twice (docs/api.md, "Call forms and
// g++ 12"). The documented forms avoid it; those forms are what this program runs. The braced
// aggregate inside co_await is exercised only where the compiler handles it (clang), so that
// the claim "clang is fine" is checked too.
#include <apollo_oauth.hpp>
#include <apollo_oauth/emulator/client_config.hpp>
#include <apollo_oauth/emulator/server.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

namespace asio = boost::asio;
namespace http = boost::beast::http;
using namespace apollo_oauth;

namespace apollo_oauth {
inline std::ostream& boost_test_print_type(std::ostream& os, errc e) {
    return os << make_error_code(e);
}
}  // namespace apollo_oauth

namespace {

const std::string json = R"({"tasks":[{"type":"call","note":"patterns"}]})";
const std::string bulk_create = "/v1/tasks/bulk_create";

cache_config settings() {
    cache_config c;
    c.on_reauthorization_required = [](const std::string&) {};
    return c;
}

// The README's set-up: a client, a flow, a cache and an API client, on one io_context.
struct patterns_fixture {
    emulator::server server;
    asio::io_context ioc;
    client apollo{ioc.get_executor(), emulator::client_config_for(server)};
    token_cache cache{apollo, make_memory_token_store(ioc.get_executor()), settings()};
    api_client api{apollo, cache};

    // The README's steps 1 and 2: the authorize URL (designated arguments, outside co_await),
    // consent, the callback; unbound, as docs/api.md shows it for a one-user program.
    authorization_grant authorize() {
        authorization_flow flow{apollo.config()};
        auto url =
            flow.make_authorization_url({.scopes = {"contacts_search", "person_read"}, .any_browser = true});
        BOOST_TEST_REQUIRE(url.has_value());
        auto grant = flow.verify_callback(server.consent(url->url));
        BOOST_TEST_REQUIRE(grant.has_value());
        return std::move(*grant);
    }

    /// Runs the coroutine to completion; rethrows what it threw.
    template <class Factory>
    void run(Factory make) {
        std::exception_ptr failure;
        bool done = false;
        asio::co_spawn(ioc, make(), [&](std::exception_ptr e) {
            failure = e;
            done = true;
        });
        ioc.run();
        ioc.restart();
        BOOST_TEST_REQUIRE(done);
        if (failure) {
            std::rethrow_exception(failure);
        }
    }

    token_set tokens() {
        token_set out;
        run([&]() -> asio::awaitable<void> {
            out = co_await apollo.async_exchange_code(authorize(), asio::use_awaitable);
        });
        return out;
    }

    /// "customer-42" with a fresh pair in the cache (README: async_store after the exchange).
    void store_account(const std::string& account = "customer-42") {
        auto t = tokens();
        run([&]() -> asio::awaitable<void> { co_await cache.async_store(account, t, asio::use_awaitable); });
    }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(call_patterns, patterns_fixture)

// README "Using the library", step 3, line by line.
BOOST_AUTO_TEST_CASE(readme_connect_account) {
    auto g = authorize();
    run([&]() -> asio::awaitable<void> {
        diagnostics diag;
        auto [ec, tokens] =
            co_await apollo.async_exchange_code(std::move(g), diag, asio::as_tuple(asio::use_awaitable));
        BOOST_TEST_REQUIRE(!ec);
        auto profile = co_await apollo.async_get_profile(tokens.access_token, asio::use_awaitable);
        BOOST_TEST(profile.email == "ada@example.com");
        auto res = co_await apollo.async_api_request(tokens.access_token, http::verb::post,
                                                     "/v1/tasks/bulk_create", json, asio::use_awaitable);
        BOOST_TEST(res.status == 200u);
        auto fresh = co_await apollo.async_refresh(tokens.refresh_token, {}, asio::use_awaitable);
        BOOST_TEST(!fresh.access_token.empty());
        BOOST_TEST(!(fresh.access_token == tokens.access_token));
    });
}

// README "The token cache": the store and the API call through the cache.
BOOST_AUTO_TEST_CASE(readme_token_cache) {
    auto tokens = this->tokens();
    run([&]() -> asio::awaitable<void> {
        co_await cache.async_store("customer-42", tokens, asio::use_awaitable);
        auto res = co_await api.async_request("customer-42", http::verb::post, "/v1/tasks/bulk_create", json,
                                              asio::use_awaitable);
        BOOST_TEST(res.status == 200u);
    });
}

// README "Using the library" and "The token cache" as they stand: the client_config set-up (the
// secret from the environment, a braced list of redirect URIs), the diagnostics printed after a
// failed exchange, a file store, and a cache whose cache_config is a designated temporary.
BOOST_AUTO_TEST_CASE(readme_set_up_and_file_store) {
    const auto& registered = server.config().clients.front();
    BOOST_TEST_REQUIRE(registered.redirect_uris.front() == "https://app.example.com/oauth/callback");
    BOOST_TEST_REQUIRE(::setenv("APOLLO_CLIENT_SECRET", registered.client_secret.c_str(), 1) == 0);
    client_config config;
    config.client_id = registered.client_id;
    config.client_secret = secret_string{std::getenv("APOLLO_CLIENT_SECRET")};  // never argv; unset: throws
    config.redirect_uris = {"https://app.example.com/oauth/callback"};          // 1 to 4, https
    ::unsetenv("APOLLO_CLIENT_SECRET");
    const auto emulated = emulator::client_config_for(server);  // where the emulator is, and its CA
    config.endpoints = emulated.endpoints;
    config.tls = emulated.tls;
    client apollo{ioc.get_executor(), config};

    const std::string browser_session_id = "session-cookie-of-this-browser";
    authorization_flow flow{config};
    auto url = flow.make_authorization_url({.scopes = {"contacts_search", "person_read"},
                                            .session = browser_session_id});  // e.g. your session cookie's id
    BOOST_TEST_REQUIRE(url.has_value());
    const std::string redirected_url = server.consent(url->url);
    BOOST_TEST(flow.verify_callback(redirected_url, "another-browser").error() == errc::unknown_state);
    auto grant = flow.verify_callback(redirected_url,
                                      browser_session_id);  // boost::system::result<authorization_grant>
    BOOST_TEST_REQUIRE(grant.has_value());
    auto used_up = *grant;  // exchanged again at the end: refused, and the diagnostics print
    const auto directory =
        std::filesystem::temp_directory_path() / ("apollo-oauth-patterns-" + std::to_string(::getpid()));
    std::filesystem::remove_all(directory);
    std::ostringstream log;
    run([&]() -> asio::awaitable<void> {
        auto tokens = co_await apollo.async_exchange_code(std::move(*grant), asio::use_awaitable);
        auto ex = co_await asio::this_coro::executor;
        auto store = make_file_token_store(ex, directory.string());
        bool told = false;
        token_cache cache{apollo, store, {.on_reauthorization_required = [&told](const std::string& account) {
                              told = account == "customer-42";
                          }}};
        api_client api{apollo, cache};
        co_await cache.async_store("customer-42", tokens, asio::use_awaitable);
        auto res = co_await api.async_request("customer-42", http::verb::post, "/v1/tasks/bulk_create", json,
                                              asio::use_awaitable);
        BOOST_TEST(res.status == 200u);
        BOOST_TEST(!told);
        co_await cache.async_shutdown(std::chrono::seconds(5), asio::use_awaitable);

        // Last: a reused code is refused, and (as RFC 6749 §4.1.2 allows) revokes what it gave.
        diagnostics diag;
        auto [ec, none] = co_await apollo.async_exchange_code(std::move(used_up), diag,
                                                              asio::as_tuple(asio::use_awaitable));
        if (ec) {
            log << ec.message() << " " << diag;
        }
        BOOST_TEST(ec == errc::invalid_grant);
    });
    BOOST_TEST(log.str().find("invalid_grant") != std::string::npos, log.str());
    BOOST_TEST(std::filesystem::exists(directory));
    std::filesystem::remove_all(directory);
}

// api_client::async_request in every completion form, with the documented argument forms.
BOOST_AUTO_TEST_CASE(api_client_every_completion_form) {
    store_account();
    run([&]() -> asio::awaitable<void> {
        // use_awaitable; std::string temporaries for target and body.
        auto a = co_await api.async_request(std::string("customer-") + "42", http::verb::post,
                                            "/v1/tasks/" + std::string("bulk_create"),
                                            std::string(json.begin(), json.end()), asio::use_awaitable);
        BOOST_TEST(a.status == 200u);
        // as_tuple(use_awaitable)
        auto [ec, b] = co_await api.async_request("customer-42", http::verb::post, bulk_create, json,
                                                  asio::as_tuple(asio::use_awaitable));
        BOOST_TEST(!ec);
        BOOST_TEST(b.status == 200u);
        // redirect_error(use_awaitable)
        error_code rec;
        auto c = co_await api.async_request("customer-42", http::verb::post, bulk_create, json,
                                            asio::redirect_error(asio::use_awaitable, rec));
        BOOST_TEST(!rec);
        BOOST_TEST(c.status == 200u);
        // deferred (the default token), then awaited.
        auto op = api.async_request("customer-42", http::verb::post, bulk_create, json);
        auto d = co_await std::move(op)(asio::use_awaitable);
        BOOST_TEST(d.status == 200u);
        auto [dec, e] = co_await api.async_request("customer-42", http::verb::post, bulk_create, json,
                                                   asio::deferred)(asio::as_tuple(asio::use_awaitable));
        BOOST_TEST(!dec);
        BOOST_TEST(e.status == 200u);
        // A braced aggregate in a statement of its own (a deferred operation), awaited in the next.
        auto braced_op = api.async_request("customer-42",
                                           {.method = http::verb::post, .target = bulk_create, .body = json});
        auto m = co_await std::move(braced_op);
        BOOST_TEST(m.status == 200u);
        // The default token (deferred) awaited directly, and as_tuple(deferred).
        auto d2 = co_await api.async_request("customer-42", http::verb::post, bulk_create, json);
        BOOST_TEST(d2.status == 200u);
        auto [d3ec, d3] = co_await api.async_request("customer-42", http::verb::post, bulk_create, json,
                                                     asio::as_tuple(asio::deferred));
        BOOST_TEST(!d3ec);
        BOOST_TEST(d3.status == 200u);
        // Method and target only: a GET (405 from this endpoint: a response, not an error), with
        // use_awaitable, as_tuple(use_awaitable) and the default token (docs/api.md).
        auto f = co_await api.async_request("customer-42", http::verb::get, bulk_create, asio::use_awaitable);
        BOOST_TEST(f.status == 405u);
        auto [fec, f2] = co_await api.async_request("customer-42", http::verb::get, bulk_create,
                                                    asio::as_tuple(asio::use_awaitable));
        BOOST_TEST(!fec);
        BOOST_TEST(f2.status == 405u);
        auto f3 = co_await api.async_request("customer-42", http::verb::get, bulk_create);
        BOOST_TEST(f3.status == 405u);
        // Extra headers in a named header_list (g++ 12 rejects a braced list of strings inside
        // co_await: "array used as initializer").
        header_list headers{{"X-Request-Id", "42"}, {"Accept", "application/json"}};
        auto g = co_await api.async_request("customer-42", http::verb::post, bulk_create, json, headers,
                                            asio::use_awaitable);
        BOOST_TEST(g.status == 200u);
        // An api_request kept in a named local, moved in or copied.
        api_request request{.method = http::verb::post, .target = bulk_create, .body = json};
        auto h = co_await api.async_request("customer-42", request, asio::use_awaitable);
        BOOST_TEST(h.status == 200u);
        auto i = co_await api.async_request("customer-42", std::move(request), asio::use_awaitable);
        BOOST_TEST(i.status == 200u);
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 13)
        // The braced aggregate inside co_await: fine here, broken by g++ 12 (not run there).
        auto j = co_await api.async_request("customer-42",
                                            {.method = http::verb::post, .target = bulk_create, .body = json},
                                            asio::use_awaitable);
        BOOST_TEST(j.status == 200u);
        auto [jec, k] = co_await api.async_request("customer-42", {.target = bulk_create},
                                                   asio::as_tuple(asio::use_awaitable));
        BOOST_TEST(!jec);
        BOOST_TEST(k.status == 405u);
        auto l = co_await api.async_request("customer-42", http::verb::post, bulk_create, json,
                                            {{"X-Request-Id", "42"}}, asio::use_awaitable);
        BOOST_TEST(l.status == 200u);
#endif
    });

    // Callbacks, with the braced aggregate (outside any coroutine: safe with every compiler).
    std::optional<api_response> by_callback;
    api.async_request("customer-42", {.method = http::verb::post, .target = bulk_create, .body = json},
                      [&](error_code ec, api_response res) {
                          BOOST_TEST(!ec);
                          by_callback = std::move(res);
                      });
    api.async_request("customer-42", http::verb::post, bulk_create, json,
                      [&](error_code ec, api_response res) {
                          BOOST_TEST(!ec);
                          BOOST_TEST(res.status == 200u);
                      });
    ioc.run();
    ioc.restart();
    BOOST_TEST_REQUIRE(by_callback.has_value());
    BOOST_TEST(by_callback->status == 200u);
}

// use_future: the io_context runs on another thread while this one waits.
BOOST_AUTO_TEST_CASE(use_future_from_another_thread) {
    store_account();
    auto work = asio::make_work_guard(ioc);
    std::thread runner([&] { ioc.run(); });
    std::future<api_response> braced = api.async_request(
        "customer-42", {.method = http::verb::post, .target = bulk_create, .body = json}, asio::use_future);
    std::future<api_response> separate =
        api.async_request("customer-42", http::verb::post, bulk_create, json, asio::use_future);
    std::future<user_profile> profile = [&] {
        auto t = cache.try_get("customer-42");
        BOOST_TEST_REQUIRE(t.has_value());
        return apollo.async_get_profile(t->value, asio::use_future);
    }();
    BOOST_TEST(braced.get().status == 200u);
    BOOST_TEST(separate.get().status == 200u);
    BOOST_TEST(profile.get().email == "ada@example.com");
    work.reset();
    runner.join();
    ioc.restart();
}

// client::async_api_request and the other client operations in their documented forms.
BOOST_AUTO_TEST_CASE(client_every_completion_form) {
    auto tokens = this->tokens();
    run([&]() -> asio::awaitable<void> {
        auto a = co_await apollo.async_api_request(tokens.access_token, http::verb::post, bulk_create, json,
                                                   asio::use_awaitable);
        BOOST_TEST(a.status == 200u);
        auto [ec, b] = co_await apollo.async_api_request(tokens.access_token, http::verb::post,
                                                         "/v1/tasks/" + std::string("bulk_create"), json,
                                                         asio::as_tuple(asio::use_awaitable));
        BOOST_TEST(!ec);
        BOOST_TEST(b.status == 200u);
        auto c = co_await apollo.async_api_request(tokens.access_token, http::verb::get,
                                                   bulk_create)(asio::use_awaitable);
        BOOST_TEST(c.status == 405u);
        auto c2 = co_await apollo.async_api_request(tokens.access_token, http::verb::get, bulk_create);
        BOOST_TEST(c2.status == 405u);
        api_request named{.method = http::verb::post, .target = bulk_create, .body = json};
        auto d =
            co_await apollo.async_api_request(tokens.access_token, std::move(named), asio::use_awaitable);
        BOOST_TEST(d.status == 200u);
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 13)
        auto e = co_await apollo.async_api_request(
            tokens.access_token, {.method = http::verb::post, .target = bulk_create, .body = json},
            asio::use_awaitable);
        BOOST_TEST(e.status == 200u);
#endif
        diagnostics diag;
        auto [pec, profile] =
            co_await apollo.async_get_profile(tokens.access_token, diag, asio::as_tuple(asio::use_awaitable));
        BOOST_TEST(!pec);
        BOOST_TEST(profile.email == "ada@example.com");
        // async_refresh: `{}` for the scopes; a list of them in a named vector (g++ 12 rejects a
        // braced list of strings inside co_await); deferred.
        auto fresh = co_await apollo.async_refresh(tokens.refresh_token, {}, asio::use_awaitable);
        std::vector<std::string> scopes{"contacts_search"};
        auto narrower = co_await apollo.async_refresh(fresh.refresh_token, scopes, diag,
                                                      asio::deferred)(asio::use_awaitable);
        BOOST_TEST(narrower.scopes == std::vector<std::string>{"contacts_search"});
        // The old refresh token is revoked: an error, reported through as_tuple and diag.
        auto [old_ec, old] = co_await apollo.async_refresh(tokens.refresh_token, {}, diag,
                                                           asio::as_tuple(asio::use_awaitable));
        BOOST_TEST(old_ec == errc::invalid_grant);
    });
    // Exchange with callbacks; the grant braced outside a coroutine.
    bool exchanged = false;
    apollo.async_exchange_code(
        authorize(), [&](error_code ec, token_set t) { exchanged = !ec && !t.access_token.empty(); });
    ioc.run();
    ioc.restart();
    BOOST_TEST(exchanged);
}

// token_cache: async_get, try_get, async_store in the documented forms.
BOOST_AUTO_TEST_CASE(token_cache_forms) {
    auto tokens = this->tokens();
    run([&]() -> asio::awaitable<void> {
        auto [sec] = co_await cache.async_store(std::string("customer-") + "7", tokens,
                                                asio::as_tuple(asio::use_awaitable));
        BOOST_TEST(!sec);
        auto a = co_await cache.async_get("customer-7", asio::use_awaitable);
        BOOST_TEST(a.value == tokens.access_token);
        auto [ec, b] =
            co_await cache.async_get(std::string("customer-7"), asio::as_tuple(asio::use_awaitable));
        BOOST_TEST(!ec);
        auto c = co_await cache.async_get("customer-7")(asio::use_awaitable);  // deferred
        BOOST_TEST(c.generation == a.generation);
        const std::string_view id = "customer-7";  // any string type: account_id (docs/api.md)
        auto d = co_await cache.async_get(id, asio::use_awaitable);
        BOOST_TEST(d.generation == a.generation);
        auto [missing, none] = co_await cache.async_get("nobody", asio::as_tuple(asio::use_awaitable));
        BOOST_TEST(missing == errc::unknown_account);
    });
    BOOST_TEST(cache.try_get("customer-7").has_value());
    bool got = false;
    cache.async_get("customer-7", [&](error_code ec, access_token) { got = !ec; });
    ioc.run();
    ioc.restart();
    BOOST_TEST(got);
}

// docs/api.md "Private files": an application's own small secrets, and a lock file, beside the
// store's records.
BOOST_AUTO_TEST_CASE(private_files_forms) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("apollo-oauth-private-" + std::to_string(::getpid())) / "app";
    BOOST_TEST(!make_private_directory(dir));
    const std::string stem = file_store_account_stem("customer-7");
    BOOST_TEST(!replace_private_file(dir, stem + ".mine", "a secret of the application's"));
    const auto lock = open_lock_file_at(AT_FDCWD, (dir / (stem + ".mine.lock")).string());
    BOOST_REQUIRE(lock.has_value());
    BOOST_TEST(::flock(*lock, LOCK_EX | LOCK_NB) == 0);
    ::close(*lock);
    std::filesystem::remove_all(dir.parent_path());
}

BOOST_AUTO_TEST_SUITE_END()
