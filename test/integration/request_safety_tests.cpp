// Nothing from outside can add a header to a request (issue 10 §2): a token endpoint that sends
// an access token with CR/LF, a caller's content type or extra header that would split the
// message or smuggle a reserved name. Each is refused with its documented error, and a server
// that records every byte it receives shows that nothing was sent. Also: the minimum lifetime
// of a refreshed pair.
#include <apollo_oauth/api_client.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/token_cache.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include "cache_fixture.hpp"
#include "http/transport.hpp"
#include "recording_https_server.hpp"

using namespace apollo_oauth;
using namespace apollo_oauth::test;
namespace asio = boost::asio;
using boost::beast::http::verb;

namespace {

const std::string crlf_token = "abc\r\nX-Injected: 1";
const std::string good_token = "good-token-0123456789";

// One callback operation run to completion on a fresh io_context.
template <class Result, class Start>
std::pair<error_code, Result> run_op(Start start) {
    asio::io_context ioc;
    std::pair<error_code, Result> out;
    bool done = false;
    start(ioc.get_executor(), [&](error_code ec, Result r) {
        out = {ec, std::move(r)};
        done = true;
    });
    ioc.run();
    BOOST_TEST_REQUIRE(done);
    return out;
}

std::pair<error_code, api_response> api_call(const recording_https_server& server, std::string token,
                                             api_request request) {
    return run_op<api_response>([&](asio::any_io_executor ex, auto handler) {
        client c{ex, config_for(server)};
        c.async_api_request(secret_string{std::move(token)}, std::move(request), std::move(handler));
    });
}

api_request post_json() {
    api_request r;
    r.method = verb::post;
    r.target = "/v1/tasks/bulk_create";
    r.body = R"({"tasks":[]})";
    return r;
}

void expect_nothing_sent(const recording_https_server& server) {
    BOOST_TEST(server.connections() == 0u);
    BOOST_TEST(server.received().empty());
}

/// A pair valid for an hour, whose access token is `access`.
token_set valid_pair_with(std::string_view access) {
    token_set tokens;
    tokens.access_token = secret_string{std::string(access)};
    tokens.refresh_token = secret_string{"refresh-0123456789"};
    tokens.token_type = "Bearer";
    tokens.expires_in = std::chrono::hours(1);
    tokens.expires_at = std::chrono::system_clock::now() + tokens.expires_in;
    return tokens;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(request_safety)

BOOST_AUTO_TEST_CASE(a_token_response_with_crlf_in_the_access_token_is_refused) {
    recording_https_server server{
        json_answer(200, R"({"access_token":"abc\r\nX-Injected: 1","token_type":"Bearer","expires_in":3600,)"
                         R"("refresh_token":"r1"})")};
    diagnostics diag;
    auto [ec, tokens] = run_op<token_set>([&](asio::any_io_executor ex, auto handler) {
        client c{ex, config_for(server)};
        c.async_exchange_code(authorization_grant{.code = secret_string{"a-code"}}, diag, std::move(handler));
    });
    BOOST_TEST(ec == errc::invalid_token_response);
    BOOST_TEST(diag.error == "access_token");
    BOOST_TEST(tokens.access_token.empty());
    BOOST_TEST(server.connections() == 1u);  // the exchange itself reached the server
}

BOOST_AUTO_TEST_CASE(a_token_with_crlf_is_refused_where_the_bearer_header_is_built) {
    // A token from a store or the caller, not from the parser: checked again before sending.
    recording_https_server server{json_answer(200, "{}")};
    auto [ec, res] = api_call(server, crlf_token, post_json());
    BOOST_TEST(ec == errc::invalid_argument);
    for (const std::string& bad :
         {std::string(), std::string("a b"), std::string("a\nb"), std::string("nul\0x", 5)}) {
        BOOST_TEST(api_call(server, bad, post_json()).first == errc::invalid_argument);
    }
    auto [pec, profile] = run_op<user_profile>([&](asio::any_io_executor ex, auto handler) {
        client c{ex, config_for(server)};
        c.async_get_profile(secret_string{crlf_token}, std::move(handler));
    });
    BOOST_TEST(pec == errc::invalid_argument);
    expect_nothing_sent(server);
}

BOOST_AUTO_TEST_CASE(a_content_type_with_cr_lf_or_nul_is_refused) {
    recording_https_server server{json_answer(200, "{}")};
    for (std::string bad : {std::string("application/json\r\nX-Injected: 1"), std::string("a\nb"),
                            std::string("a\rb"), std::string("a\0b", 3)}) {
        auto request = post_json();
        request.content_type = bad;
        BOOST_TEST(api_call(server, good_token, request).first == errc::invalid_argument);
        request.body.clear();  // not even sent then: still refused
        BOOST_TEST(api_call(server, good_token, request).first == errc::invalid_argument);
    }
    expect_nothing_sent(server);
}

BOOST_AUTO_TEST_CASE(extra_headers_that_split_or_smuggle_are_refused) {
    recording_https_server server{json_answer(200, "{}")};
    const header_list refused[] = {
        {{"Transfer-Encoding ", "chunked"}},
        {{"Content-Length\t", "0"}},
        {{"transfer-encoding", "chunked"}},
        {{"CONTENT-LENGTH", "0"}},
        {{"Host", "evil.example"}},
        {{"authorization", "Bearer other"}},
        {{"Connection", "close"}},
        {{"Upgrade", "h2c"}},  // would invite a 101 the client cannot speak
        {{"TE", "gzip"}},      // a transfer coding it cannot decode
        {{"keep-alive", "timeout=1"}},
        {{"X-Ok", "1\r\nX-Injected: 1"}},
        {{"X-Ok", std::string("a\0b", 3)}},
        {{"X\r\nInjected", "1"}},
        {{"X Space", "1"}},
        {{"", "1"}},
        {{"X-Fine", "1"}, {"X-Bad:", "2"}},
    };
    for (const auto& headers : refused) {
        auto request = post_json();
        request.headers = headers;
        BOOST_TEST(api_call(server, good_token, request).first == errc::invalid_argument,
                   headers.back().first);
    }
    expect_nothing_sent(server);
}

// Beast keeps a field's name and value in at most 65,533 bytes and throws std::length_error past
// it while the request is built: unchecked, that escaped the initiation (which promises
// invalid_argument), and, from the api_client's steps on a strand, io_context::run. A token
// response may bring an access token that long (limits::token_body_bytes allows 192 KiB).
BOOST_AUTO_TEST_CASE(fields_longer_than_a_request_can_hold_are_refused) {
    recording_https_server server{json_answer(200, "{}")};
    const std::string too_long(70'000, 'v');
    auto with_value = post_json();
    with_value.headers = {{"X-Big", too_long}};
    BOOST_TEST(api_call(server, good_token, with_value).first == errc::invalid_argument);
    auto with_name = post_json();
    with_name.headers = {{std::string(70'000, 'X'), "1"}};
    BOOST_TEST(api_call(server, good_token, with_name).first == errc::invalid_argument);
    auto with_content_type = post_json();
    with_content_type.content_type = too_long;
    BOOST_TEST(api_call(server, good_token, with_content_type).first == errc::invalid_argument);
    BOOST_TEST(api_call(server, std::string(70'000, 't'), post_json()).first == errc::invalid_argument);
    auto [pec, profile] = run_op<user_profile>([&](asio::any_io_executor ex, auto handler) {
        client c{ex, config_for(server)};
        c.async_get_profile(secret_string{std::string(70'000, 't')}, std::move(handler));
    });
    BOOST_TEST(pec == errc::invalid_argument);
    expect_nothing_sent(server);
}

// Beast throws on writing verb::unknown: unchecked, that escaped the handler that sends (the
// cache's completion, on a miss) and its caller never heard back. CONNECT takes an authority,
// never the origin-form target an API request has.
BOOST_AUTO_TEST_CASE(a_method_that_cannot_be_sent_is_refused) {
    recording_https_server server{json_answer(200, "{}")};
    for (const auto method : {boost::beast::http::verb::unknown, boost::beast::http::verb::connect}) {
        auto request = post_json();
        request.method = method;
        BOOST_TEST(api_call(server, good_token, request).first == errc::invalid_argument);
    }
    expect_nothing_sent(server);
}

// A TRACE request may not have content (RFC 9110 §9.3.8), and Beast's prepare_payload() throws
// std::invalid_argument for one with a body: unchecked, that escaped the initiating call.
BOOST_AUTO_TEST_CASE(a_trace_with_a_body_is_refused) {
    recording_https_server server{json_answer(200, "{}")};
    auto request = post_json();
    request.method = verb::trace;
    BOOST_TEST(api_call(server, good_token, request).first == errc::invalid_argument);
    expect_nothing_sent(server);
}

BOOST_AUTO_TEST_CASE(the_control_a_trace_without_a_body_is_sent) {
    // Without this, the refusal above could be of every TRACE.
    recording_https_server server{json_answer(200, "{}")};
    api_request request;
    request.method = verb::trace;
    request.target = "/v1/echo";
    auto [ec, res] = api_call(server, good_token, request);
    BOOST_TEST(!ec);
    BOOST_TEST(res.status == 200u);
    BOOST_TEST(server.received().starts_with("TRACE /v1/echo HTTP/1.1\r\n"));
}

// The api_client with a cold cache sends from a step of its own composed operation, after the
// token is loaded from the store: there, the exception escaped io_context::run() and the caller
// never heard back.
BOOST_AUTO_TEST_CASE(a_trace_with_a_body_is_refused_by_the_api_client_after_loading_the_token) {
    recording_https_server server{json_answer(200, "{}")};
    auto [ec, res] = run_op<api_response>([&](asio::any_io_executor ex, auto handler) {
        auto oauth = std::make_shared<client>(ex, config_for(server));
        auto store = make_memory_token_store(ex);
        const token_set tokens = valid_pair_with(good_token);
        // Straight into the store: the cache has nothing in memory and loads it first.
        store->async_save("acct", stored_tokens{.tokens = tokens, .generation = 1}, 0,
                          [=, h = std::move(handler)](error_code save_ec) mutable {
                              BOOST_TEST_REQUIRE(!save_ec);
                              auto cache = std::make_shared<token_cache>(*oauth, store);
                              auto api = std::make_shared<api_client>(*oauth, *cache);
                              auto request = post_json();
                              request.method = verb::trace;
                              api->async_request("acct", std::move(request),
                                                 [h = std::move(h), oauth, cache, api](
                                                     error_code e, api_response r) mutable {
                                                     std::move(h)(e, std::move(r));
                                                 });
                          });
    });
    BOOST_TEST(ec == errc::invalid_argument);
    expect_nothing_sent(server);
}

// The transport's own guard, beneath the client's refusal: a request Beast cannot frame
// completes its handler with invalid_argument, posted, with nothing sent, instead of throwing.
BOOST_AUTO_TEST_CASE(the_transport_completes_a_request_it_cannot_frame_with_an_error) {
    recording_https_server server{json_answer(200, "{}")};
    asio::io_context ioc;
    http::transport transport{ioc.get_executor(), config_for(server)};
    http::request req{verb::trace, "/v1/echo", 11};
    req.body() = "body";
    error_code ec;
    bool done = false;
    transport.send(http::origin{"127.0.0.1", std::to_string(server.port())}, std::move(req), {},
                   asio::cancellation_slot{}, ioc.get_executor(), [&](error_code e, http::response) {
                       ec = e;
                       done = true;
                   });
    BOOST_TEST(!done);  // never inline
    ioc.run();
    BOOST_TEST(done);
    BOOST_TEST(ec == errc::invalid_argument);
    expect_nothing_sent(server);
}

BOOST_AUTO_TEST_CASE(the_control_a_clean_request_reaches_the_recording_server) {
    // Without this, "nothing sent" could mean the recording server never works.
    recording_https_server server{json_answer(200, R"({"ok":true})")};
    auto request = post_json();
    request.headers = {{"X-Request-Id", "42"}};
    auto [ec, res] = api_call(server, good_token, request);
    BOOST_TEST_REQUIRE(!ec);
    BOOST_TEST(res.status == 200u);
    const auto wire = server.received();
    BOOST_TEST(wire.find("Authorization: Bearer " + good_token + "\r\n") != std::string::npos);
    BOOST_TEST(wire.find("X-Request-Id: 42\r\n") != std::string::npos);
    BOOST_TEST(wire.find("Content-Type: application/json\r\n") != std::string::npos);
    BOOST_TEST(wire.find("X-Injected") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_stored_token_with_crlf_is_refused_by_the_api_client) {
    recording_https_server server{json_answer(200, "{}")};
    auto [ec, res] = run_op<api_response>([&](asio::any_io_executor ex, auto handler) {
        auto oauth = std::make_shared<client>(ex, config_for(server));
        auto cache = std::make_shared<token_cache>(*oauth, make_memory_token_store(ex));
        auto api = std::make_shared<api_client>(*oauth, *cache);
        const token_set tokens = valid_pair_with(crlf_token);
        cache->async_store("acct", tokens, [=, h = std::move(handler)](error_code store_ec) mutable {
            BOOST_TEST_REQUIRE(!store_ec);
            api->async_request("acct", post_json(),
                               [h = std::move(h), oauth, cache, api](error_code e, api_response r) mutable {
                                   std::move(h)(e, std::move(r));
                               });
        });
    });
    BOOST_TEST(ec == errc::invalid_argument);
    expect_nothing_sent(server);
}

BOOST_FIXTURE_TEST_CASE(expires_in_zero_gives_one_refresh_for_twenty_gets, cache_fixture) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    server.set_expires_in(std::chrono::seconds(0));
    seed(c, cache, "acme");  // the exchanged pair is expired on arrival: the first get refreshes
    const auto gets = run([&]() -> asio::awaitable<int> {
        int ok = 0;
        for (int i = 0; i < 20; ++i) {
            auto [ec, token] = co_await cache.async_get("acme", asio::as_tuple(asio::use_awaitable));
            ok += !ec;
        }
        co_return ok;
    });
    BOOST_TEST(gets == 20);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    // The minimum is a lifetime, not forever: past it, one more refresh.
    clock.advance(c.config().minimum_lifetime);
    run([&]() -> asio::awaitable<int> {
        for (int i = 0; i < 20; ++i) {
            co_await cache.async_get("acme", asio::as_tuple(asio::use_awaitable));
        }
        co_return 0;
    });
    BOOST_TEST(server.stats().refresh_token_grants == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
