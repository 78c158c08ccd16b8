// start_authorization and the pure verify_callback: a pending authorization as a value.
#include <apollo_oauth/authorization.hpp>

#include "sansio/random.hpp"
#include "test_support.hpp"

#include <boost/test/unit_test.hpp>

using namespace apollo_oauth;
using namespace std::chrono_literals;

namespace {

using sys_time = std::chrono::system_clock::time_point;

const std::string redirect = "https://app.example.com/callback";
const sys_time t0 = sys_time(std::chrono::seconds(1'800'000'000));

client_config test_config() {
    client_config c;
    c.client_id = "client-123";
    c.redirect_uris = {redirect, "https://app.example.com/other"};
    return c;  // no client secret: starting an authorization never needs it
}

pending_authorization started(authorization_request request = {}, client_config c = test_config()) {
    auto s = start_authorization(c, std::move(request), t0);
    BOOST_TEST_REQUIRE(s.has_value());
    return s->pending;
}

std::string callback(const std::string& state, std::string_view extra = "code=the-code",
                     std::string_view base = redirect) {
    return std::string(base) + "?" + std::string(extra) + "&state=" + state;
}

errc error_of(const boost::system::result<authorization_grant>& r) {
    BOOST_TEST_REQUIRE(!r.has_value());
    return static_cast<errc>(r.error().value());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pending_authorization_tests)

BOOST_AUTO_TEST_CASE(start_makes_url_and_pending_value) {
    auto s = start_authorization(test_config(), {.scopes = {"person_read"}}, t0);
    BOOST_TEST_REQUIRE(s.has_value());
    const auto& p = s->pending;
    BOOST_TEST(p.state.size() == 43u);
    BOOST_TEST(s->url.find("&state=" + p.state) != std::string::npos);
    BOOST_TEST(s->url.find("scope=person_read") != std::string::npos);
    BOOST_TEST(p.redirect_uri == redirect);
    BOOST_TEST(p.scopes == std::vector<std::string>{"person_read"}, boost::test_tools::per_element());
    BOOST_TEST(p.code_verifier.empty());
    BOOST_TEST((p.expires_at == t0 + std::chrono::seconds(600)));
    BOOST_TEST(started().state != p.state);
}

BOOST_AUTO_TEST_CASE(start_with_pkce_keeps_the_verifier) {
    client_config c = test_config();
    c.use_pkce = true;
    auto s = start_authorization(c, {}, t0);
    BOOST_TEST_REQUIRE(s.has_value());
    BOOST_TEST(s->pending.code_verifier.size() == 43u);
    BOOST_TEST(s->url.find("code_challenge=" + sansio::code_challenge_s256(
                                                   s->pending.code_verifier.reveal())) != std::string::npos);
}

BOOST_AUTO_TEST_CASE(start_refuses_bad_requests) {
    auto other = start_authorization(test_config(), {.redirect_uri = "https://evil.example.com/cb"}, t0);
    BOOST_TEST(other.error() == errc::redirect_uri_not_registered);
    auto scope = start_authorization(test_config(), {.scopes = {"a b"}}, t0);
    BOOST_TEST(scope.error() == errc::invalid_argument);
    client_config none = test_config();
    none.redirect_uris.clear();
    BOOST_TEST(start_authorization(none, {}, t0).error() == errc::invalid_configuration);
    client_config bad_url = test_config();
    bad_url.endpoints.authorize_url = "http://app.apollo.io/authorize";
    BOOST_TEST(start_authorization(bad_url, {}, t0).error() == errc::invalid_url);
}

BOOST_AUTO_TEST_CASE(verify_grants_and_remembers_nothing) {
    client_config c = test_config();
    c.use_pkce = true;
    const auto p = started({.scopes = {"contacts_search"}}, c);
    for (int i = 0; i < 2; ++i) {  // pure: the same answer twice (single use is the holder's part)
        auto grant = verify_callback(p, callback(p.state), t0 + 599s);
        BOOST_TEST_REQUIRE(grant.has_value());
        BOOST_TEST(grant->code.reveal() == "the-code");
        BOOST_TEST(grant->redirect_uri == redirect);
        BOOST_TEST(grant->code_verifier.reveal() == p.code_verifier.reveal());
        BOOST_TEST(grant->requested_scopes == p.scopes, boost::test_tools::per_element());
        BOOST_TEST(callback_spends_state(grant));
    }
}

BOOST_AUTO_TEST_CASE(verify_refusals_in_order_and_which_spend_the_state) {
    const auto p = started();
    struct row {
        std::string url;
        sys_time now;
        errc expected;
        bool spends;
    };
    const row rows[] = {
        {"not a url", t0, errc::invalid_callback, false},
        {redirect + "?code=c", t0, errc::missing_state, false},
        {callback(sansio::make_state()), t0, errc::unknown_state, false},
        {callback(p.state.substr(0, 42)), t0, errc::unknown_state, false},
        {callback(p.state), t0 + 600s, errc::state_expired, false},  // exactly at expires_at
        {callback(p.state, "code=c", "https://app.example.com/other"), t0, errc::redirect_uri_not_registered,
         false},
        {callback(p.state, "code=c&error=access_denied"), t0, errc::access_denied, true},
        {callback(p.state, "foo=bar"), t0, errc::missing_code, true},
        {callback(p.state, "code="), t0, errc::missing_code, true},
    };
    for (const auto& r : rows) {
        auto result = verify_callback(p, r.url, r.now);
        BOOST_TEST(error_of(result) == r.expected, r.url);
        BOOST_TEST(callback_spends_state(result) == r.spends, r.url);
    }
}

// RFC 6749 §3.1.2: the server keeps the redirect URI's query and adds its own parameters. An
// application that registers one location with two queries to tell its flows apart must not see
// a callback cross from one to the other.
BOOST_AUTO_TEST_CASE(verify_requires_the_redirect_uris_own_query) {
    client_config c = test_config();
    c.redirect_uris = {"https://app.example.com/cb?flow=admin&tenant=a%20b",
                       "https://app.example.com/cb?flow=user"};
    const auto admin = started({.redirect_uri = c.redirect_uris[0]}, c);
    const std::string base = "https://app.example.com/cb";
    const auto verify = [&](std::string_view query) {
        return verify_callback(admin, callback(admin.state, query, base), t0);
    };
    BOOST_TEST(verify("flow=admin&tenant=a+b&code=c").has_value());
    BOOST_TEST(verify("code=c&tenant=a%20b&flow=admin&iss=x").has_value());  // any order, extras
    for (const std::string_view crossed :
         {"flow=user&tenant=a+b&code=c", "flow=admin&code=c", "code=c", "flow=admin&tenant=a&code=c"}) {
        const auto result = verify(crossed);
        BOOST_TEST(error_of(result) == errc::redirect_uri_not_registered, crossed);
        BOOST_TEST(!callback_spends_state(result), crossed);
    }
    // A parameter the URI repeats must come back as often.
    c.redirect_uris = {"https://app.example.com/cb?x=1&x=1"};
    const auto twice = started({}, c);
    BOOST_TEST(verify_callback(twice, callback(twice.state, "x=1&x=1&code=c", base), t0).has_value());
    BOOST_TEST(error_of(verify_callback(twice, callback(twice.state, "x=1&code=c", base), t0)) ==
               errc::redirect_uri_not_registered);
    // An empty parameter ("&&") asks nothing of the callback.
    c.redirect_uris = {"https://app.example.com/cb?x=1&&y=2"};
    const auto gap = started({}, c);
    BOOST_TEST(verify_callback(gap, callback(gap.state, "x=1&y=2&code=c", base), t0).has_value());
    // A redirect URI without a query accepts whatever the server adds.
    const auto plain = started();
    BOOST_TEST(verify_callback(plain, callback(plain.state, "code=c&flow=anything"), t0).has_value());
}

BOOST_AUTO_TEST_CASE(verify_puts_the_servers_error_in_diag) {
    const auto p = started();
    diagnostics diag;
    diag.http_status = 500;
    auto r =
        verify_callback(p, callback(p.state, "error=invalid_scope&error_description=Not+yours"), t0, &diag);
    BOOST_TEST(error_of(r) == errc::invalid_scope);
    BOOST_TEST(diag.error == "invalid_scope");
    BOOST_TEST(diag.error_description == "Not yours");
    BOOST_TEST(diag.http_status == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
