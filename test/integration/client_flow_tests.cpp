// The authorization-code flow end to end against the emulator: happy paths and the server's
// RFC 6749 errors.
#include <boost/asio/as_tuple.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/test/unit_test.hpp>

#include <sstream>

#include "fixture.hpp"

using namespace apollo_oauth;
using apollo_oauth::test::emulator_fixture;
namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

namespace {

std::string describe(error_code ec, const diagnostics& diag) {
    std::ostringstream out;
    out << ec.message() << " [" << diag << "]";
    test::secret_log::note(out.str());
    return out.str();
}

// Named values: GCC 12 rejects string literals inside a co_await full-expression ("array used as
// initializer"), so the tests pass these instead.
const std::vector<std::string> person_read_only{"person_read"};
const std::vector<std::string> wider_than_granted{"person_read", "opportunity_write"};
const std::vector<std::string> malformed_scope{"bad scope"};
const secret_string some_refresh_token{"a-refresh-token"};
const secret_string some_access_token{"token-value"};

api_request bulk_create() {
    api_request req;
    req.method = boost::beast::http::verb::post;
    req.target = "/v1/tasks/bulk_create";
    req.body = R"({"tasks":[{"type":"call"},{"type":"email"}]})";
    return req;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(client_flow, emulator_fixture)

BOOST_AUTO_TEST_CASE(code_exchange_profile_api_call_and_refresh) {
    client c{ioc.get_executor(), config()};
    const auto tokens = obtain_tokens(c, {.scopes = {"contacts_search", "person_read"}});
    BOOST_TEST(!tokens.access_token.empty());
    BOOST_TEST(!tokens.refresh_token.empty());
    BOOST_TEST(tokens.token_type == "Bearer");
    BOOST_TEST(tokens.expires_in == std::chrono::seconds(2'592'000));
    BOOST_TEST(tokens.has_scope("contacts_search"));
    BOOST_TEST(tokens.has_scope("person_read"));
    BOOST_TEST(!tokens.has_scope("opportunity_write"));
    BOOST_TEST((tokens.expires_at > std::chrono::system_clock::now() + std::chrono::days(29)));
    std::ostringstream printed;
    printed << tokens;
    test::secret_log::note(printed.str());

    const auto profile = run([&]() -> awaitable<user_profile> {
        co_return co_await c.async_get_profile(tokens.access_token, use_awaitable);
    });
    BOOST_TEST(profile.id == server.config().consenting_user.id);
    BOOST_TEST(profile.email == server.config().consenting_user.email);

    const auto response = run([&]() -> awaitable<api_response> {
        co_return co_await c.async_api_request(tokens.access_token, bulk_create(), use_awaitable);
    });
    BOOST_TEST(response.status == 200u);
    BOOST_TEST(response.header("content-type").has_value());

    const auto refreshed = run([&]() -> awaitable<token_set> {
        co_return co_await c.async_refresh(tokens.refresh_token, {}, use_awaitable);
    });
    BOOST_TEST(!(refreshed.access_token == tokens.access_token));
    BOOST_TEST(!(refreshed.refresh_token == tokens.refresh_token));
    BOOST_TEST(refreshed.scopes == tokens.scopes);
    BOOST_TEST(server.stats().authorization_code_grants == 1u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
}

BOOST_AUTO_TEST_CASE(old_tokens_are_refused_after_a_refresh) {
    client c{ioc.get_executor(), config()};
    const auto old_tokens = obtain_tokens(c);
    const auto fresh = run([&]() -> awaitable<token_set> {
        co_return co_await c.async_refresh(old_tokens.refresh_token, {}, use_awaitable);
    });

    // The HTTP status of an API call made with `access_token`.
    const auto api_status_with = [&](const secret_string& access_token) {
        return run([&]() -> awaitable<api_response> {
                   co_return co_await c.async_api_request(access_token, bulk_create(), use_awaitable);
               })
            .status;
    };

    // The old access token was revoked by the rotation, at the API and at the profile endpoint.
    diagnostics diag;
    BOOST_TEST(api_status_with(old_tokens.access_token) == 401u);
    auto [profile_ec, profile] = run([&]() -> awaitable<std::tuple<error_code, user_profile>> {
        co_return co_await c.async_get_profile(old_tokens.access_token, diag, asio::as_tuple(use_awaitable));
    });
    describe(profile_ec, diag);
    BOOST_TEST(profile_ec == errc::unauthorized);
    BOOST_TEST(diag.http_status == 401u);
    BOOST_TEST(diag.error == "invalid_token");

    // The new pair works.
    BOOST_TEST(api_status_with(fresh.access_token) == 200u);

    // The old refresh token was revoked too; presented again, it is refused, and (the emulator
    // takes it for a stolen one, as the harshest providers do) the whole grant goes with it.
    auto [ec, ignored] = run([&]() -> awaitable<std::tuple<error_code, token_set>> {
        co_return co_await c.async_refresh(old_tokens.refresh_token, {}, diag, asio::as_tuple(use_awaitable));
    });
    describe(ec, diag);
    BOOST_TEST(ec == errc::invalid_grant);
    BOOST_TEST(diag.http_status == 400u);
    BOOST_TEST(diag.error == "invalid_grant");
    BOOST_TEST(api_status_with(fresh.access_token) == 401u);
}

// The profile endpoint's 401: the Bearer challenge is read from whichever WWW-Authenticate field
// holds it (RFC 9110 §11.6.1), not only the first.
BOOST_AUTO_TEST_CASE(a_profile_401s_bearer_challenge_in_a_later_field_is_read) {
    client c{ioc.get_executor(), config()};
    const auto tokens = obtain_tokens(c);
    server.inject(
        {.what = emulator::fault::kind::http_status,
         .where = emulator::route::profile,
         .status = 401,
         .www_authenticate =
             "Basic realm=\"Apollo\"\nBearer error=\"insufficient_scope\", scope=\"read_user_profile\""});
    diagnostics diag;
    auto [ec, profile] = run([&]() -> awaitable<std::tuple<error_code, user_profile>> {
        co_return co_await c.async_get_profile(tokens.access_token, diag, asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(ec == errc::unauthorized);
    BOOST_TEST(diag.error == "insufficient_scope");
    BOOST_TEST(diag.scope == "read_user_profile");
    BOOST_TEST(!diag.blames_the_token());
}

BOOST_AUTO_TEST_CASE(wrong_client_secret_is_invalid_client) {
    auto cfg = config();
    cfg.client_secret = secret_string{"not-the-secret-at-all"};
    client c{ioc.get_executor(), cfg};
    authorization_flow flow{cfg};
    auto grant = authorize(flow);
    diagnostics diag;
    auto [ec, tokens] = run([&]() -> awaitable<std::tuple<error_code, token_set>> {
        co_return co_await c.async_exchange_code(std::move(grant), diag, asio::as_tuple(use_awaitable));
    });
    describe(ec, diag);
    BOOST_TEST(ec == errc::invalid_client);
    BOOST_TEST(diag.http_status == 401u);
    BOOST_TEST(tokens.access_token.empty());
}

BOOST_AUTO_TEST_CASE(a_code_is_single_use) {
    client c{ioc.get_executor(), config()};
    authorization_flow flow{c.config()};
    const auto grant = authorize(flow);
    run([&]() -> awaitable<token_set> { co_return co_await c.async_exchange_code(grant, use_awaitable); });
    diagnostics diag;
    auto [ec, tokens] = run([&]() -> awaitable<std::tuple<error_code, token_set>> {
        co_return co_await c.async_exchange_code(grant, diag, asio::as_tuple(use_awaitable));
    });
    describe(ec, diag);
    BOOST_TEST(ec == errc::invalid_grant);
    BOOST_TEST(server.stats().authorization_code_grants == 2u);
}

BOOST_AUTO_TEST_CASE(a_mismatched_redirect_uri_is_invalid_grant) {
    client c{ioc.get_executor(), config()};
    authorization_flow flow{c.config()};
    auto grant = authorize(flow);  // authorized for the first redirect URI
    grant.redirect_uri = c.config().redirect_uris.at(1);
    diagnostics diag;
    auto [ec, tokens] = run([&]() -> awaitable<std::tuple<error_code, token_set>> {
        co_return co_await c.async_exchange_code(std::move(grant), diag, asio::as_tuple(use_awaitable));
    });
    describe(ec, diag);
    BOOST_TEST(ec == errc::invalid_grant);
}

BOOST_AUTO_TEST_CASE(an_unregistered_redirect_uri_is_refused_before_sending) {
    client c{ioc.get_executor(), config()};
    authorization_grant grant{.code = secret_string{"some-code-value"},
                              .redirect_uri = "https://evil.example/cb"};
    auto [ec, tokens] = run([&]() -> awaitable<std::tuple<error_code, token_set>> {
        co_return co_await c.async_exchange_code(std::move(grant), asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(ec == errc::redirect_uri_not_registered);
    BOOST_TEST(server.stats().token_requests == 0u);
}

BOOST_AUTO_TEST_CASE(a_narrower_refresh_scope_is_granted) {
    client c{ioc.get_executor(), config()};
    const auto tokens = obtain_tokens(c, {.scopes = {"contacts_search", "person_read"}});
    const auto narrowed = run([&]() -> awaitable<token_set> {
        co_return co_await c.async_refresh(tokens.refresh_token, person_read_only, use_awaitable);
    });
    BOOST_TEST(narrowed.has_scope("person_read"));
    BOOST_TEST(!narrowed.has_scope("contacts_search"));
}

BOOST_AUTO_TEST_CASE(a_wider_refresh_scope_is_invalid_scope) {
    client c{ioc.get_executor(), config()};
    const auto tokens = obtain_tokens(c, {.scopes = {"person_read"}});
    diagnostics diag;
    auto [ec, ignored] = run([&]() -> awaitable<std::tuple<error_code, token_set>> {
        co_return co_await c.async_refresh(tokens.refresh_token, wider_than_granted, diag,
                                           asio::as_tuple(use_awaitable));
    });
    describe(ec, diag);
    BOOST_TEST(ec == errc::invalid_scope);
    BOOST_TEST(diag.error == "invalid_scope");
}

BOOST_AUTO_TEST_CASE(an_expired_access_token_gets_401_at_the_api) {
    client c{ioc.get_executor(), config()};
    const auto tokens = obtain_tokens(c);
    server.expire_access_token(std::string{tokens.access_token.reveal()});
    const auto response = run([&]() -> awaitable<api_response> {
        co_return co_await c.async_api_request(tokens.access_token, bulk_create(), use_awaitable);
    });
    BOOST_TEST(response.status == 401u);
    const auto challenge = response.header("www-authenticate");
    BOOST_REQUIRE(challenge.has_value());
    BOOST_TEST(challenge->find("invalid_token") != std::string_view::npos);
}

BOOST_AUTO_TEST_CASE(a_revoked_access_token_gets_401_at_the_api) {
    client c{ioc.get_executor(), config()};
    const auto tokens = obtain_tokens(c);
    server.revoke_access_token(std::string{tokens.access_token.reveal()});
    const auto response = run([&]() -> awaitable<api_response> {
        co_return co_await c.async_api_request(tokens.access_token, bulk_create(), use_awaitable);
    });
    BOOST_TEST(response.status == 401u);
}

BOOST_AUTO_TEST_CASE(denied_consent_is_access_denied_at_the_callback) {
    client c{ioc.get_executor(), config()};
    authorization_flow flow{c.config()};
    server.deny_consent(true);
    auto url = flow.make_authorization_url({.any_browser = true});
    BOOST_REQUIRE(url.has_value());
    diagnostics diag;
    auto grant = flow.verify_callback(server.consent(url->url), diag);
    BOOST_REQUIRE(grant.has_error());
    describe(grant.error(), diag);
    BOOST_TEST(grant.error() == errc::access_denied);
    BOOST_TEST(flow.pending_count() == 0u);
}

BOOST_AUTO_TEST_CASE(pkce_round_trip) {
    auto cfg = config();
    cfg.use_pkce = true;
    client c{ioc.get_executor(), cfg};
    authorization_flow flow{cfg};
    auto grant = authorize(flow);
    BOOST_TEST(!grant.code_verifier.empty());
    auto tampered = grant;
    tampered.code_verifier = secret_string{"a-verifier-that-does-not-match-the-challenge-xx"};
    auto [bad_ec, ignored] = run([&]() -> awaitable<std::tuple<error_code, token_set>> {
        co_return co_await c.async_exchange_code(std::move(tampered), asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(bad_ec == errc::invalid_grant);

    auto second = authorize(flow);
    const auto tokens = run([&]() -> awaitable<token_set> {
        co_return co_await c.async_exchange_code(std::move(second), use_awaitable);
    });
    BOOST_TEST(!tokens.access_token.empty());
}

BOOST_AUTO_TEST_CASE(invalid_arguments_are_refused_without_a_request) {
    client c{ioc.get_executor(), config()};
    auto [refresh_ec, t1] = run([&]() -> awaitable<std::tuple<error_code, token_set>> {
        co_return co_await c.async_refresh(secret_string{}, {}, asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(refresh_ec == errc::invalid_argument);
    auto [scope_ec, t2] = run([&]() -> awaitable<std::tuple<error_code, token_set>> {
        co_return co_await c.async_refresh(some_refresh_token, malformed_scope,
                                           asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(scope_ec == errc::invalid_argument);
    api_request smuggle = bulk_create();
    smuggle.target = "/v1/x HTTP/1.1\r\nHost: evil";
    auto [target_ec, r1] = run([&]() -> awaitable<std::tuple<error_code, api_response>> {
        co_return co_await c.async_api_request(some_access_token, smuggle, asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(target_ec == errc::invalid_argument);
    api_request header_injection = bulk_create();
    header_injection.headers = {{"X-Trace", "a\r\nAuthorization: Bearer other"}};
    auto [header_ec, r2] = run([&]() -> awaitable<std::tuple<error_code, api_response>> {
        co_return co_await c.async_api_request(some_access_token, header_injection,
                                               asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(header_ec == errc::invalid_argument);
    BOOST_TEST(server.stats().token_requests == 0u);
    BOOST_TEST(server.stats().api_requests == 0u);
}

BOOST_AUTO_TEST_CASE(an_invalid_configuration_throws_naming_the_field) {
    auto cfg = config();
    cfg.redirect_uris = {"http://app.example.com/callback"};
    try {
        client c{ioc.get_executor(), cfg};
        BOOST_FAIL("expected a throw");
    } catch (const boost::system::system_error& e) {
        test::secret_log::note(e.what());
        BOOST_TEST(std::string{e.what()}.find("redirect_uris") != std::string::npos);
        BOOST_TEST(std::string{e.what()}.find(std::string{cfg.client_secret.reveal()}) == std::string::npos);
    }
}

BOOST_AUTO_TEST_SUITE_END()
