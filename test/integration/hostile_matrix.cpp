#include "hostile_matrix.hpp"

#include <apollo_oauth/api_client.hpp>
#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/test/unit_test.hpp>

#include <openssl/err.h>

#include <condition_variable>
#include <mutex>
#include <sstream>
#include <thread>

#include "cache_fixture.hpp"

namespace apollo_oauth::test::hostile {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using emulator::route;
using kind = emulator::fault::kind;
using namespace std::chrono_literals;

/// Far beyond any deadline below, even under the sanitizers: only a hang gets there.
constexpr auto watchdog_limit = 30s;
const std::string account = "hostile-account";

std::string_view name_of(misbehaviour m) {
    switch (m) {
        case misbehaviour::server_error:
            return "server_error";
        case misbehaviour::rate_limited_retry_after:
            return "rate_limited_retry_after";
        case misbehaviour::rate_limited_no_retry_after:
            return "rate_limited_no_retry_after";
        case misbehaviour::reset_before_request:
            return "reset_before_request";
        case misbehaviour::reset_after_request:
            return "reset_after_request";
        case misbehaviour::stall_headers:
            return "stall_headers";
        case misbehaviour::stall_mid_header:
            return "stall_mid_header";
        case misbehaviour::stall_body:
            return "stall_body";
        case misbehaviour::endless_chunked:
            return "endless_chunked";
        case misbehaviour::trickling_chunked:
            return "trickling_chunked";
        case misbehaviour::huge_content_length:
            return "huge_content_length";
        case misbehaviour::oversized_headers:
            return "oversized_headers";
        case misbehaviour::oversized_chunk_extension:
            return "oversized_chunk_extension";
        case misbehaviour::oversized_trailer:
            return "oversized_trailer";
        case misbehaviour::not_json:
            return "not_json";
        case misbehaviour::truncated_json:
            return "truncated_json";
        case misbehaviour::wrong_types_json:
            return "wrong_types_json";
        case misbehaviour::redirect:
            return "redirect";
        case misbehaviour::early_hints:
            return "early_hints";
        case misbehaviour::many_early_hints:
            return "many_early_hints";
        case misbehaviour::endless_interim:
            return "endless_interim";
        case misbehaviour::switching_protocols:
            return "switching_protocols";
        case misbehaviour::trailing_response_in_same_record:
            return "trailing_response_in_same_record";
        case misbehaviour::trailing_response_in_next_record:
            return "trailing_response_in_next_record";
        case misbehaviour::wrong_name_certificate:
            return "wrong_name_certificate";
        case misbehaviour::expired_certificate:
            return "expired_certificate";
        case misbehaviour::tls_1_1_only:
            return "tls_1_1_only";
    }
    return "?";
}

/// The faults that hit after the endpoint ran: a code is consumed, a refresh has rotated (and,
/// when the operation failed, its answer is lost).
bool endpoint_runs(misbehaviour m) {
    return m == misbehaviour::reset_after_request || m == misbehaviour::stall_headers ||
           m == misbehaviour::stall_mid_header || m == misbehaviour::stall_body ||
           m == misbehaviour::early_hints || m == misbehaviour::many_early_hints ||
           m == misbehaviour::endless_interim || m == misbehaviour::switching_protocols ||
           m == misbehaviour::trailing_response_in_same_record ||
           m == misbehaviour::trailing_response_in_next_record;
}

/// The faults that leave an unsolicited response behind the answer, in the client's TLS layer.
bool leaves_trailing_response(misbehaviour m) {
    return m == misbehaviour::trailing_response_in_same_record ||
           m == misbehaviour::trailing_response_in_next_record;
}

/// The faults that act on the connection before any request is read.
bool before_any_request(misbehaviour m) {
    return m == misbehaviour::reset_before_request || m == misbehaviour::wrong_name_certificate ||
           m == misbehaviour::expired_certificate || m == misbehaviour::tls_1_1_only;
}

bool is_rate_limit(misbehaviour m) {
    return m == misbehaviour::rate_limited_retry_after || m == misbehaviour::rate_limited_no_retry_after;
}

bool same_error(error_code actual, error_code want) {
    if (want.category() == asio::error::get_ssl_category()) {
        // OpenSSL packs its library and reason into the value; the reason is what matters.
        return actual.category() == want.category() &&
               ERR_GET_REASON(static_cast<unsigned long>(actual.value())) ==
                   ERR_GET_REASON(static_cast<unsigned long>(want.value()));
    }
    return actual == want;
}

std::string describe(error_code ec) {
    if (!ec) {
        return "success";
    }
    std::ostringstream out;
    out << ec.category().name() << ":" << ec.value() << " (" << ec.message() << ")";
    return out.str();
}

api_request bulk_create() {
    return {.method = boost::beast::http::verb::post,
            .target = "/v1/tasks/bulk_create",
            .body = R"({"tasks":[{"type":"call"}]})"};
}

/// One cell's world: the emulator under test, a movable clock and a store (cache_fixture), a
/// second emulator as the redirect target, and the client settings for hostile servers.
struct cell_world : cache_fixture {
    misbehaviour m;
    emulator::server elsewhere;  ///< the redirect target; must receive nothing

    explicit cell_world(misbehaviour which) : m(which) {}

    /// Deadlines short enough to keep stalls cheap, generous enough for the sanitizer builds.
    client_config hostile_config() const {
        auto c = config();
        c.timeouts.connect = 2s;
        c.timeouts.tls_handshake = 2s;
        c.timeouts.write = 2s;
        c.timeouts.response_header = 500ms;
        c.timeouts.response_body = 500ms;
        c.limits.api_body_bytes = 256 * 1024;
        return c;
    }

    emulator::fault fault_on(route where) const {
        emulator::fault f{.where = where};
        switch (m) {
            case misbehaviour::server_error:
                f.what = kind::http_status;
                f.status = 503;
                break;
            case misbehaviour::rate_limited_retry_after:
                f.what = kind::rate_limit;
                f.retry_after = 1s;
                break;
            case misbehaviour::rate_limited_no_retry_after:
                f.what = kind::rate_limit;
                break;
            case misbehaviour::reset_before_request:
                f.what = kind::reset_before_request;
                break;
            case misbehaviour::reset_after_request:
                f.what = kind::reset;
                break;
            case misbehaviour::stall_headers:
                f.what = kind::stall_headers;
                break;
            case misbehaviour::stall_mid_header:
                f.what = kind::stall_mid_header;
                break;
            case misbehaviour::stall_body:
                f.what = kind::stall_body;
                break;
            case misbehaviour::endless_chunked:
                f.what = kind::endless_chunked;
                break;
            case misbehaviour::trickling_chunked:
                f.what = kind::endless_chunked;
                f.delay = 50ms;
                break;
            case misbehaviour::huge_content_length:
                f.what = kind::huge_content_length;
                break;
            case misbehaviour::oversized_headers:
                f.what = kind::oversized_headers;
                f.size = 64 * 1024;
                break;
            case misbehaviour::oversized_chunk_extension:
                f.what = kind::oversized_chunk_extension;
                f.size = 1024 * 1024;
                break;
            case misbehaviour::oversized_trailer:
                f.what = kind::oversized_trailer;
                f.size = 70'000;  // Beast throws std::length_error on a field past 65,533 bytes
                break;
            case misbehaviour::not_json:
                f.what = kind::malformed_body;
                break;
            case misbehaviour::truncated_json:
                f.what = kind::truncated_json;
                break;
            case misbehaviour::wrong_types_json:
                f.what = kind::wrong_types_json;
                break;
            case misbehaviour::redirect:
                f.what = kind::redirect;
                f.status = 307;  // keeps the method and body: the dangerous one for a POST
                f.location = where == route::token ? elsewhere.token_url()
                                                   : elsewhere.api_base() + "/v1/tasks/bulk_create";
                break;
            case misbehaviour::early_hints:
                f.what = kind::interim_response;
                f.status = 103;
                f.delay = 50ms;  // the 103 arrives alone; the answer is still on its way
                break;
            case misbehaviour::many_early_hints:
                f.what = kind::interim_response;
                f.status = 103;
                f.interim_count = 16;
                break;
            case misbehaviour::endless_interim:
                f.what = kind::interim_response;
                f.status = 103;
                f.interim_count = 17;
                break;
            case misbehaviour::switching_protocols:
                f.what = kind::interim_response;
                f.status = 101;
                break;
            case misbehaviour::trailing_response_in_same_record:
                f.what = kind::trailing_response_in_same_record;
                break;
            case misbehaviour::trailing_response_in_next_record:
                f.what = kind::trailing_response_in_next_record;
                break;
            case misbehaviour::wrong_name_certificate:
                f.what = kind::wrong_name_certificate;
                break;
            case misbehaviour::expired_certificate:
                f.what = kind::expired_certificate;
                break;
            case misbehaviour::tls_1_1_only:
                f.what = kind::tls_1_1_only;
                break;
        }
        return f;
    }

    /// Runs `make()`'s awaitable until the io_context has no work left. A watchdog thread stops
    /// the io_context if that takes longer than watchdog_limit, and the cell fails: completion,
    /// not speed, is what is checked.
    template <class Factory>
    auto run_watched(Factory make) {
        std::mutex mutex;
        std::condition_variable finished;
        bool done = false;
        bool hung = false;
        std::thread watchdog([&] {
            std::unique_lock lock{mutex};
            if (!finished.wait_for(lock, watchdog_limit, [&] { return done; })) {
                hung = true;
                ioc.stop();
            }
        });
        using value_type = typename decltype(make())::value_type;
        std::optional<value_type> result;
        asio::co_spawn(ioc, make(), [&](std::exception_ptr e, value_type v) {
            if (!e) {
                result.emplace(std::move(v));
            }
        });
        ioc.run();
        {
            std::lock_guard lock{mutex};
            done = true;
        }
        finished.notify_one();
        watchdog.join();
        ioc.restart();
        BOOST_REQUIRE_MESSAGE(!hung, name_of(m) << ": the operation did not complete (watchdog)");
        BOOST_REQUIRE_MESSAGE(result.has_value(), name_of(m) << ": the coroutine threw");
        return std::move(*result);
    }

    void store_tokens(token_cache& cache, const token_set& tokens) {
        const auto ec = run_watched([&]() -> awaitable<error_code> {
            auto [e] = co_await cache.async_store(account, tokens, asio::as_tuple(use_awaitable));
            co_return e;
        });
        BOOST_REQUIRE(!ec);
    }

    token_set stored_tokens_now() {
        error_code ec;
        std::optional<stored_tokens> record;
        store->async_load(account, [&](error_code e, std::optional<stored_tokens> r) {
            ec = e;
            record = std::move(r);
        });
        ioc.run();
        ioc.restart();
        BOOST_REQUIRE(!ec);
        BOOST_REQUIRE(record.has_value());
        return record->tokens;
    }

    void check_outcome(const char* op, error_code ec, const expected& want) {
        BOOST_TEST_INFO(op << " x " << name_of(m) << ": got " << describe(ec) << ", want "
                           << describe(want.error));
        BOOST_TEST(same_error(ec, want.error));
    }

    void check_redirect_target_untouched() {
        const auto s = elsewhere.stats();
        BOOST_TEST_INFO(name_of(m) << ": the redirect target must receive nothing");
        BOOST_TEST(s.connections_accepted == 0u);
    }

    void note(const char* op, error_code ec, unsigned status, const std::string& after) {
        std::ostringstream line;
        line << "hostile | " << op << " | " << name_of(m) << " | " << describe(ec) << " | status " << status
             << " | then: " << after;
        secret_log::note(line.str());
    }
};

}  // namespace

expected succeeds(unsigned status) {
    return {{}, status};
}

expected fails_with(error_code ec, unsigned status) {
    return {ec, status};
}

expected answers(unsigned status) {
    return {{}, status};
}

error_code tls_failure(int reason) {
    return {static_cast<int>(ERR_PACK(ERR_LIB_SSL, 0, reason)), asio::error::get_ssl_category()};
}

void exchange_cell(misbehaviour m, expected want) {
    cell_world w{m};
    client c{w.ioc.get_executor(), w.hostile_config()};
    authorization_flow flow{c.config()};
    const auto grant = w.authorize(flow);  // the browser's connection comes before the fault
    w.server.inject(w.fault_on(route::token));

    diagnostics diag;
    auto [ec, tokens] = w.run_watched([&]() -> awaitable<std::tuple<error_code, token_set>> {
        co_return co_await c.async_exchange_code(grant, diag, asio::as_tuple(use_awaitable));
    });
    w.check_outcome("exchange", ec, want);
    BOOST_TEST(diag.http_status == want.http_status);
    BOOST_TEST(tokens.access_token.empty() == want.error.failed());
    if (m == misbehaviour::rate_limited_retry_after) {
        BOOST_TEST((diag.retry_after == std::chrono::seconds(1)));
    } else {
        BOOST_TEST(!diag.retry_after.has_value());
    }
    if (m == misbehaviour::wrong_types_json) {
        BOOST_TEST(diag.error == "access_token");  // the field's name, never its value
    }
    // Sent once or, for a connection fault, not at all: never re-sent.
    BOOST_TEST(w.server.stats().authorization_code_grants == (before_any_request(m) ? 0u : 1u));
    w.check_redirect_target_untouched();

    // The same code again, on the same client: it works when the server never processed it; once
    // processed it is spent (the library cannot tell which from a lost answer, and never retries).
    const auto connections_before = w.server.stats().connections_accepted;
    auto [again_ec, again] = w.run_watched([&]() -> awaitable<std::tuple<error_code, token_set>> {
        co_return co_await c.async_exchange_code(grant, asio::as_tuple(use_awaitable));
    });
    if (leaves_trailing_response(m)) {
        // The connection holding the unsolicited response was closed, not pooled.
        BOOST_TEST(w.server.stats().connections_accepted == connections_before + 1);
    }
    if (endpoint_runs(m)) {
        BOOST_TEST(again_ec == errc::invalid_grant);
        // A new authorization works: the client is not left with a poisoned connection.
        auto fresh = w.obtain_tokens(c);
        BOOST_TEST(!fresh.access_token.empty());
    } else {
        BOOST_TEST(!again_ec);
        BOOST_TEST(!again.access_token.empty());
    }
    w.note(
        "exchange", ec, diag.http_status,
        endpoint_runs(m) ? "same code: invalid_grant (spent); new authorization works" : "same code works");
}

void refresh_cell(misbehaviour m, expected want) {
    cell_world w{m};
    client setup{w.ioc.get_executor(), w.config()};
    const auto original = w.obtain_tokens(setup);

    // The cache's client is new: its first connection is the refresh the fault hits.
    client c{w.ioc.get_executor(), w.hostile_config()};
    std::atomic<int> reauthorization_hooks{0};
    auto settings = w.cache_settings();
    settings.on_reauthorization_required = [&](const std::string&) { ++reauthorization_hooks; };
    token_cache cache{c, w.store, settings};
    w.store_tokens(cache, original);
    w.expire_everything();
    w.server.inject(w.fault_on(route::token));

    auto [ec, token] = w.run_watched([&]() -> awaitable<std::tuple<error_code, access_token>> {
        co_return co_await cache.async_get(account, asio::as_tuple(use_awaitable));
    });
    w.check_outcome("refresh", ec, want);
    BOOST_TEST(token.value.empty() == want.error.failed());
    BOOST_TEST(w.server.stats().refresh_token_grants == (before_any_request(m) ? 0u : 1u));
    w.check_redirect_target_untouched();

    // Past the backoff, the next caller triggers the next refresh.
    w.clock.advance(std::chrono::minutes(2));
    auto [next_ec, next] = w.run_watched([&]() -> awaitable<std::tuple<error_code, access_token>> {
        co_return co_await cache.async_get(account, asio::as_tuple(use_awaitable));
    });
    const auto stored = w.stored_tokens_now();
    const auto newest = w.server.newest_refresh_token_of(std::string{original.refresh_token.reveal()});
    if (endpoint_runs(m) && want.error.failed()) {
        // Apollo rotated and revoked the old pair, but the answer never arrived: the new pair is
        // unknowable, the old refresh token gets invalid_grant, and the customer must re-consent.
        BOOST_TEST(next_ec == errc::reauthorization_required);
        BOOST_TEST(reauthorization_hooks.load() == 1);
        BOOST_TEST((stored.refresh_token == original.refresh_token));
        BOOST_TEST(newest != std::string{original.refresh_token.reveal()});
        BOOST_TEST(w.server.stats().successful_refreshes == 1u);
    } else {
        // No rotation was lost during the fault (none happened, or its answer arrived): the next refresh
        // rotates once, and the store holds exactly the emulator's newest pair.
        BOOST_TEST(!next_ec);
        BOOST_TEST(reauthorization_hooks.load() == 0);
        BOOST_TEST(newest == std::string{stored.refresh_token.reveal()});
        BOOST_TEST(newest != std::string{original.refresh_token.reveal()});
        BOOST_TEST((next.value == stored.access_token));
        BOOST_TEST(w.server.stats().successful_refreshes == 1u);
    }
    if (!want.error.failed()) {
        // The connection the refresh came back on, if the pool kept it, carries the next refresh,
        // which must get the server's answer to it: a rotation read from bytes the server sent
        // earlier would store a pair that is not the newest, and the newest would be lost.
        w.expire_everything();
        const auto connections_before = w.server.stats().connections_accepted;
        auto [again_ec, again] = w.run_watched([&]() -> awaitable<std::tuple<error_code, access_token>> {
            co_return co_await cache.async_get(account, asio::as_tuple(use_awaitable));
        });
        BOOST_TEST_INFO("refresh x " << name_of(m) << ": a second refresh got " << describe(again_ec));
        BOOST_TEST(!again_ec);
        const auto after = w.server.stats();
        BOOST_TEST(after.successful_refreshes == 2u);
        const auto stored_again = w.stored_tokens_now();
        BOOST_TEST(w.server.newest_refresh_token_of(std::string{original.refresh_token.reveal()}) ==
                   std::string{stored_again.refresh_token.reveal()});
        BOOST_TEST((again.value == stored_again.access_token));
        if (leaves_trailing_response(m)) {
            // The connection holding the unsolicited response was closed, not pooled.
            BOOST_TEST(after.connections_accepted == connections_before + 1);
        }
    }
    w.note("refresh", ec, 0,
           endpoint_runs(m) && want.error.failed() ? "rotation lost server-side: reauthorization_required"
                                                   : "next async_get refreshes; store == emulator's newest");
}

void api_cell(misbehaviour m, expected want) {
    cell_world w{m};
    client setup{w.ioc.get_executor(), w.config()};
    const auto original = w.obtain_tokens(setup);

    client c{w.ioc.get_executor(), w.hostile_config()};
    token_cache cache{c, w.store, w.cache_settings()};
    api_client api{c, cache, {.max_rate_limit_retries = 2, .default_retry_after = 10ms}};
    w.store_tokens(cache, original);
    w.server.inject(w.fault_on(route::api));

    auto [ec, res] = w.run_watched([&]() -> awaitable<std::tuple<error_code, api_response>> {
        co_return co_await api.async_request(account, bulk_create(), asio::as_tuple(use_awaitable));
    });
    w.check_outcome("api", ec, want);
    BOOST_TEST(res.status == want.http_status);
    const auto s = w.server.stats();
    BOOST_TEST(s.api_requests == (before_any_request(m) ? 0u : is_rate_limit(m) ? 2u : 1u));
    BOOST_TEST(s.refresh_token_grants == 0u);  // nothing here is a reason to refresh
    w.check_redirect_target_untouched();
    if (m == misbehaviour::redirect) {
        BOOST_TEST(res.header("location").has_value());
    }

    auto [next_ec, next] = w.run_watched([&]() -> awaitable<std::tuple<error_code, api_response>> {
        co_return co_await api.async_request(account, bulk_create(), asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(!next_ec);
    BOOST_TEST(next.status == 200u);
    // The server's answer to this request (one task created), not bytes left from another.
    BOOST_TEST(next.body == R"({"created":1})");
    BOOST_TEST(w.server.stats().api_requests == s.api_requests + 1);
    if (leaves_trailing_response(m)) {
        // The connection holding the unsolicited response was closed, not pooled.
        BOOST_TEST(w.server.stats().connections_accepted == s.connections_accepted + 1);
    }
    w.note("api", ec, res.status, "next request succeeds");
}

}  // namespace apollo_oauth::test::hostile
