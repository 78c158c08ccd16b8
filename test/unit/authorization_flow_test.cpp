// authorization_flow: authorize URLs out, callbacks in, with an injected clock.
#include <apollo_oauth/authorization.hpp>

#include "sansio/random.hpp"
#include "test_support.hpp"

#include <boost/system/system_error.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <thread>

using namespace apollo_oauth;
using namespace std::chrono_literals;

namespace {

const std::string redirect = "https://app.example.com/callback";
const std::string other_redirect = "https://app.example.com/other-callback";

client_config test_config() {
    client_config c;
    c.client_id = "client-123";
    c.client_secret = secret_string("secret-xyz");
    c.redirect_uris = {redirect, other_redirect};
    return c;
}

// A steady clock the test moves by hand.
struct manual_clock {
    std::atomic<std::int64_t> now_s{1'000'000};
    authorization_flow::clock_function function() {
        return [this] { return std::chrono::steady_clock::time_point(std::chrono::seconds(now_s.load())); };
    }
    void advance(std::chrono::seconds s) { now_s += s.count(); }
};

struct fixture {
    manual_clock clock;
    authorization_flow flow{test_config(), clock.function()};

    // These tests are about states: unbound unless the test names a session.
    authorization_url start(authorization_request r = {}) {
        r.any_browser = r.session.empty();
        auto url = flow.make_authorization_url(std::move(r));
        BOOST_TEST_REQUIRE(url.has_value());
        return *url;
    }
};

std::string callback(const std::string& state, std::string_view extra = "code=the-code",
                     std::string_view base = redirect) {
    return std::string(base) + "?" + std::string(extra) + "&state=" + state;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(authorization_flow_tests)

BOOST_AUTO_TEST_CASE(invalid_configuration_throws) {
    client_config c = test_config();
    c.client_id.clear();
    try {
        authorization_flow flow(c);
        BOOST_FAIL("no exception");
    } catch (const boost::system::system_error& e) {
        BOOST_TEST(e.code() == errc::invalid_configuration);
        BOOST_TEST(std::string(e.what()).find("client_id") != std::string::npos);
    }

    c = test_config();
    c.redirect_uris = {"http://app.example.com/cb"};
    try {
        authorization_flow flow(c);
        BOOST_FAIL("no exception");
    } catch (const boost::system::system_error& e) {
        BOOST_TEST(e.code() == errc::insecure_redirect_uri);
        BOOST_TEST(std::string(e.what()).find("secret-xyz") == std::string::npos);
    }
}

BOOST_FIXTURE_TEST_CASE(happy_path, fixture) {
    auto url = start({.scopes = {"contacts_search", "person_read"}});
    BOOST_TEST(url.state.size() == 43u);
    BOOST_TEST(url.url ==
               "https://app.apollo.io/#/oauth/authorize?client_id=client-123"
               "&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback&response_type=code"
               "&scope=contacts_search%20person_read&state=" +
                   url.state);
    BOOST_TEST(flow.pending_count() == 1u);

    diagnostics diag;
    diag.error = "stale";
    auto grant = flow.verify_callback(callback(url.state), diag);
    BOOST_TEST_REQUIRE(grant.has_value());
    BOOST_TEST(grant->code.reveal() == "the-code");
    BOOST_TEST(grant->redirect_uri == redirect);
    BOOST_TEST(grant->code_verifier.empty());
    const std::vector<std::string> scopes{"contacts_search", "person_read"};
    BOOST_TEST(grant->requested_scopes == scopes, boost::test_tools::per_element());
    BOOST_TEST(diag.error.empty());
    BOOST_TEST(flow.pending_count() == 0u);
}

// RFC 6749 §10.12: an authorization made for a browser session is answered only in that session.
// An attacker who authorized their own Apollo account and sends the callback URL to a victim gets
// unknown_state in the victim's session, and the state stays for the browser it was made for.
BOOST_FIXTURE_TEST_CASE(a_state_made_for_a_session_is_answered_only_in_that_session, fixture) {
    auto url = start({.scopes = {"contacts_search"}, .session = "attacker-session"});
    const auto link = callback(url.state);
    diagnostics diag;
    for (const auto& verified :
         {flow.verify_callback(link, "victim-session", diag), flow.verify_callback(link),
          flow.verify_callback(link, diag), flow.verify_callback(link, "")}) {
        BOOST_TEST_REQUIRE(!verified.has_value());
        BOOST_TEST(verified.error() == errc::unknown_state);
    }
    BOOST_TEST(flow.pending_count() == 1u);
    auto grant = flow.verify_callback(link, "attacker-session", diag);
    BOOST_TEST_REQUIRE(grant.has_value());
    BOOST_TEST(grant->code.reveal() == "the-code");
    BOOST_TEST(flow.verify_callback(link, "attacker-session").error() == errc::state_reused);

    // Made for any browser: any call answers it.
    auto unbound = start();
    BOOST_TEST(flow.verify_callback(callback(unbound.state), "any-session").has_value());
}

// Secure by default: an authorization that names no session must say it wants none; forgetting
// the session is refused rather than silently made unbound, and nothing is remembered.
BOOST_FIXTURE_TEST_CASE(an_authorization_without_a_session_must_ask_for_any_browser, fixture) {
    for (authorization_request forgot :
         {authorization_request{}, authorization_request{.scopes = {"person_read"}}}) {
        auto url = flow.make_authorization_url(std::move(forgot));
        BOOST_TEST_REQUIRE(!url.has_value());
        BOOST_TEST(url.error() == errc::session_required);
    }
    // Both at once contradict each other.
    auto both = flow.make_authorization_url({.session = "s1", .any_browser = true});
    BOOST_TEST_REQUIRE(!both.has_value());
    BOOST_TEST(both.error() == errc::invalid_argument);
    BOOST_TEST(flow.pending_count() == 0u);
    BOOST_TEST(flow.make_authorization_url({.any_browser = true}).has_value());
    BOOST_TEST(flow.make_authorization_url({.session = "s1"}).has_value());
    BOOST_TEST(flow.pending_count() == 2u);
}

BOOST_FIXTURE_TEST_CASE(each_url_has_its_own_state, fixture) {
    auto a = start();
    auto b = start();
    BOOST_TEST(a.state != b.state);
    BOOST_TEST(flow.pending_count() == 2u);
    BOOST_TEST(a.url.find("scope=") == std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(redirect_uri_choice, fixture) {
    auto url = start({.redirect_uri = other_redirect});
    BOOST_TEST(url.url.find("redirect_uri=https%3A%2F%2Fapp.example.com%2Fother-callback&") !=
               std::string::npos);
    // The callback must come back to the redirect URI that request used.
    auto wrong = flow.verify_callback(callback(url.state, "code=c", redirect));
    BOOST_TEST_REQUIRE(!wrong.has_value());
    BOOST_TEST(wrong.error() == errc::redirect_uri_not_registered);
    auto grant = flow.verify_callback(callback(url.state, "code=c", other_redirect));
    BOOST_TEST_REQUIRE(grant.has_value());
    BOOST_TEST(grant->redirect_uri == other_redirect);
}

BOOST_FIXTURE_TEST_CASE(unregistered_redirect_uri_and_bad_scope, fixture) {
    for (const char* uri : {"https://evil.example.com/callback", "https://app.example.com/callback/"}) {
        auto url = flow.make_authorization_url({.redirect_uri = uri, .any_browser = true});
        BOOST_TEST_REQUIRE(!url.has_value());
        BOOST_TEST(url.error() == errc::redirect_uri_not_registered);
    }
    auto url = flow.make_authorization_url({.scopes = {"contacts_search", "bad scope"}, .any_browser = true});
    BOOST_TEST_REQUIRE(!url.has_value());
    BOOST_TEST(url.error() == errc::invalid_argument);
    BOOST_TEST(flow.pending_count() == 0u);
}

BOOST_FIXTURE_TEST_CASE(unknown_state, fixture) {
    start();
    auto r = flow.verify_callback(callback(sansio::make_state()));
    BOOST_TEST_REQUIRE(!r.has_value());
    BOOST_TEST(r.error() == errc::unknown_state);
    BOOST_TEST(flow.pending_count() == 1u);
}

BOOST_FIXTURE_TEST_CASE(missing_state_and_unparseable_callback, fixture) {
    auto url = start();
    auto no_state = flow.verify_callback(redirect + "?code=c");
    BOOST_TEST_REQUIRE(!no_state.has_value());
    BOOST_TEST(no_state.error() == errc::missing_state);
    auto empty_state = flow.verify_callback(redirect + "?code=c&state=");
    BOOST_TEST_REQUIRE(!empty_state.has_value());
    BOOST_TEST(empty_state.error() == errc::missing_state);
    auto garbage = flow.verify_callback("not a url " + url.state);
    BOOST_TEST_REQUIRE(!garbage.has_value());
    BOOST_TEST(garbage.error() == errc::invalid_callback);
    BOOST_TEST(flow.pending_count() == 1u);
}

BOOST_FIXTURE_TEST_CASE(state_expires_after_its_lifetime, fixture) {
    auto early = start();
    auto late = start();
    clock.advance(599s);
    BOOST_TEST(flow.verify_callback(callback(early.state)).has_value());
    clock.advance(1s);  // exactly state_lifetime (600 s) after issue
    auto r = flow.verify_callback(callback(late.state));
    BOOST_TEST_REQUIRE(!r.has_value());
    BOOST_TEST(r.error() == errc::state_expired);
    BOOST_TEST(flow.pending_count() == 0u);
}

BOOST_FIXTURE_TEST_CASE(long_expired_states_are_forgotten, fixture) {
    auto url = start();
    clock.advance(3600s);
    auto r = flow.verify_callback(callback(url.state));
    BOOST_TEST_REQUIRE(!r.has_value());
    BOOST_TEST(r.error() == errc::unknown_state);
}

BOOST_FIXTURE_TEST_CASE(state_is_single_use, fixture) {
    auto url = start();
    BOOST_TEST(flow.verify_callback(callback(url.state)).has_value());
    auto again = flow.verify_callback(callback(url.state));
    BOOST_TEST_REQUIRE(!again.has_value());
    BOOST_TEST(again.error() == errc::state_reused);
    // Still reported as a replay until the state would have expired anyway.
    clock.advance(599s);
    auto later = flow.verify_callback(callback(url.state, "code=other"));
    BOOST_TEST_REQUIRE(!later.has_value());
    BOOST_TEST(later.error() == errc::state_reused);
}

BOOST_FIXTURE_TEST_CASE(access_denied_consumes_state_and_fills_diag, fixture) {
    auto url = start();
    diagnostics diag;
    auto r = flow.verify_callback(
        callback(url.state,
                 "error=access_denied&error_description=The+user%20said+no&error_uri=https%3A%2F%2Fe.x%2Fd"),
        &diag);
    BOOST_TEST_REQUIRE(!r.has_value());
    BOOST_TEST(r.error() == errc::access_denied);
    BOOST_TEST(diag.error == "access_denied");
    BOOST_TEST(diag.error_description == "The user said no");
    BOOST_TEST(diag.error_uri == "https://e.x/d");
    BOOST_TEST(diag.http_status == 0u);
    BOOST_TEST(flow.pending_count() == 0u);

    auto replay = flow.verify_callback(callback(url.state));
    BOOST_TEST_REQUIRE(!replay.has_value());
    BOOST_TEST(replay.error() == errc::state_reused);
}

BOOST_FIXTURE_TEST_CASE(error_wins_over_code_and_unknown_errors_map, fixture) {
    auto url = start();
    diagnostics diag;
    auto r = flow.verify_callback(callback(url.state, "code=c&error=something_new"), diag);
    BOOST_TEST_REQUIRE(!r.has_value());
    BOOST_TEST(r.error() == errc::unknown_oauth_error);
    BOOST_TEST(diag.error == "something_new");
}

BOOST_FIXTURE_TEST_CASE(error_description_is_truncated, fixture) {
    auto url = start();
    diagnostics diag;
    auto r = flow.verify_callback(
        callback(url.state, "error=server_error&error_description=" + std::string(600, 'x')), diag);
    BOOST_TEST(r.error() == errc::server_error);
    BOOST_TEST(diag.error_description == std::string(512, 'x'));
}

BOOST_FIXTURE_TEST_CASE(missing_code_consumes_state, fixture) {
    auto url = start();
    auto r = flow.verify_callback(callback(url.state, "foo=bar"));
    BOOST_TEST_REQUIRE(!r.has_value());
    BOOST_TEST(r.error() == errc::missing_code);
    auto empty_code = start();
    auto e = flow.verify_callback(callback(empty_code.state, "code="));
    BOOST_TEST_REQUIRE(!e.has_value());
    BOOST_TEST(e.error() == errc::missing_code);
    BOOST_TEST(flow.pending_count() == 0u);
}

BOOST_FIXTURE_TEST_CASE(callback_elsewhere_is_refused_without_consuming, fixture) {
    auto url = start();
    for (const char* base : {"https://app.example.com/not-the-callback", "https://evil.example.com/callback",
                             "http://app.example.com/callback", "https://app.example.com:8443/callback"}) {
        auto r = flow.verify_callback(callback(url.state, "code=c", base));
        BOOST_TEST_REQUIRE(!r.has_value(), base);
        BOOST_TEST(r.error() == errc::redirect_uri_not_registered, base);
    }
    BOOST_TEST(flow.pending_count() == 1u);
    BOOST_TEST(flow.verify_callback(callback(url.state)).has_value());
}

BOOST_FIXTURE_TEST_CASE(pending_count_tracks_issue_use_and_expiry, fixture) {
    auto a = start();
    start();
    start();
    BOOST_TEST(flow.pending_count() == 3u);
    BOOST_TEST(flow.verify_callback(callback(a.state)).has_value());
    BOOST_TEST(flow.pending_count() == 2u);
    clock.advance(600s);
    BOOST_TEST(flow.pending_count() == 0u);
}

BOOST_AUTO_TEST_CASE(pkce_when_configured) {
    client_config c = test_config();
    c.use_pkce = true;
    authorization_flow flow(c);
    auto url = flow.make_authorization_url({.any_browser = true});
    BOOST_TEST_REQUIRE(url.has_value());
    const auto at = url->url.find("&code_challenge=");
    BOOST_TEST_REQUIRE(at != std::string::npos);
    const std::string challenge = url->url.substr(at + 16, 43);
    BOOST_TEST(url->url.substr(at + 16 + 43) == "&code_challenge_method=S256");

    auto grant = flow.verify_callback(callback(url->state));
    BOOST_TEST_REQUIRE(grant.has_value());
    BOOST_TEST(grant->code_verifier.size() == 43u);
    BOOST_TEST(sansio::code_challenge_s256(grant->code_verifier.reveal()) == challenge);
}

BOOST_AUTO_TEST_CASE(no_pkce_by_default) {
    authorization_flow flow(test_config());
    auto url = flow.make_authorization_url({.any_browser = true});
    BOOST_TEST_REQUIRE(url.has_value());
    BOOST_TEST(url->url.find("code_challenge") == std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(pending_set_is_bounded, fixture) {
    constexpr std::size_t bound = 100'000;
    const auto first = start();
    const auto second = start();
    for (std::size_t i = 2; i < bound; ++i) {
        start();
    }
    BOOST_TEST(flow.pending_count() == bound);
    const auto newest = start();  // one over: the oldest is forgotten
    BOOST_TEST(flow.pending_count() == bound);
    auto forgotten = flow.verify_callback(callback(first.state));
    BOOST_TEST_REQUIRE(!forgotten.has_value());
    BOOST_TEST(forgotten.error() == errc::unknown_state);
    BOOST_TEST(flow.verify_callback(callback(second.state)).has_value());
    BOOST_TEST(flow.verify_callback(callback(newest.state)).has_value());
}

BOOST_AUTO_TEST_CASE(concurrent_use_from_several_threads) {
    authorization_flow flow(test_config());
    constexpr int threads = 8;
    constexpr int per_thread = 300;
    std::atomic<int> granted{0};
    std::atomic<int> replays{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&] {
            for (int i = 0; i < per_thread; ++i) {
                auto url = flow.make_authorization_url({.scopes = {"person_read"}, .any_browser = true});
                if (!url) {
                    continue;
                }
                if (flow.verify_callback(callback(url->state))) {
                    ++granted;
                }
                if (flow.verify_callback(callback(url->state)).error() == errc::state_reused) {
                    ++replays;
                }
                (void)flow.pending_count();
            }
        });
    }
    for (auto& w : workers) {
        w.join();
    }
    BOOST_TEST(granted.load() == threads * per_thread);
    BOOST_TEST(replays.load() == threads * per_thread);
    BOOST_TEST(flow.pending_count() == 0u);
}

BOOST_AUTO_TEST_CASE(one_state_raced_by_many_threads_is_granted_once) {
    authorization_flow flow(test_config());
    for (int round = 0; round < 50; ++round) {
        auto url = flow.make_authorization_url({.any_browser = true});
        BOOST_TEST_REQUIRE(url.has_value());
        const std::string cb = callback(url->state);
        std::atomic<int> granted{0};
        std::atomic<int> reused{0};
        std::vector<std::thread> racers;
        for (int t = 0; t < 4; ++t) {
            racers.emplace_back([&] {
                auto r = flow.verify_callback(cb);
                if (r) {
                    ++granted;
                } else if (r.error() == errc::state_reused) {
                    ++reused;
                }
            });
        }
        for (auto& r : racers) {
            r.join();
        }
        BOOST_TEST_REQUIRE(granted.load() == 1);
        BOOST_TEST_REQUIRE(reused.load() == 3);
    }
}

BOOST_AUTO_TEST_SUITE_END()
