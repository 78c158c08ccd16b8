// The emulator's consent page mode (server_config::consent_page), driven over real TLS by
// raw_https_client: the page, Approve and Deny, and every way a decision can be forged.
#include <apollo_oauth/emulator/server.hpp>

#include <boost/test/unit_test.hpp>
#include <boost/url/parse.hpp>

#include <map>
#include <string>

#include "raw_https.hpp"
#include "secret_log.hpp"

namespace {

using namespace apollo_oauth;
using test::raw_https_client;
using test::raw_request;
using test::raw_response;

const std::string callback = "https://app.example.com/oauth/callback";

std::map<std::string, std::string> query_of(const std::string& url) {
    const auto parsed = boost::urls::parse_uri(url);
    BOOST_REQUIRE(parsed.has_value());
    std::map<std::string, std::string> out;
    for (const auto& param : parsed->params()) {
        out[param.key] = param.value;
    }
    return out;
}

emulator::server_config with_page() {
    emulator::server_config config;
    config.consent_page = true;
    config.clients.front().name = "Acme <CRM> & Co";
    return config;
}

// A page as a browser got it: the anti-forgery value and the cookie that binds it.
struct shown_page {
    raw_response response;
    std::string token;
    std::string cookie;  ///< "emulator_browser=..."
};

struct consent_emu {
    consent_emu() : server(with_page()), http("127.0.0.1", server.port(), server.ca_pem()) {}
    ~consent_emu() { test::secret_log::record_all(server.issued_secrets()); }

    std::string authorize_target(const std::string& scope = "contacts_search person_read") const {
        return "/oauth/authorize?" +
               test::form_body({{"client_id", server.config().clients.front().client_id},
                                {"redirect_uri", callback},
                                {"response_type", "code"},
                                {"scope", scope},
                                {"state", "s-1"}});
    }

    shown_page show(const std::string& cookie = {}) {
        raw_request req{.method = "GET", .target = authorize_target(), .headers = {}, .body = {}};
        if (!cookie.empty()) {
            req.headers.emplace_back("Cookie", cookie);
        }
        shown_page page{http.send(req), {}, cookie};
        const std::string marker = R"(name="authenticity_token" value=")";
        const auto at = page.response.body.find(marker);
        if (at != std::string::npos) {
            const auto start = at + marker.size();
            page.token = page.response.body.substr(start, page.response.body.find('"', start) - start);
        }
        if (const auto set = page.response.header("Set-Cookie")) {
            page.cookie = set->substr(0, set->find(';'));
        }
        return page;
    }

    raw_response decide(const std::vector<std::pair<std::string, std::string>>& form,
                        const std::string& cookie) {
        raw_request req = test::form_post("/oauth/authorize", form);
        if (!cookie.empty()) {
            req.headers.emplace_back("Cookie", cookie);
        }
        return http.send(req);
    }

    raw_response decide(const shown_page& page, const std::string& decision) {
        return decide({{"authenticity_token", page.token}, {"decision", decision}}, page.cookie);
    }

    emulator::server server;
    raw_https_client http;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(emulator_consent_page, consent_emu)

BOOST_AUTO_TEST_CASE(shows_the_app_the_scopes_and_two_buttons_instead_of_redirecting) {
    const shown_page page = show();
    BOOST_TEST(page.response.status == 200u);
    BOOST_TEST(page.response.header("Content-Type").value_or("").starts_with("text/html"));
    const std::string& html = page.response.body;
    BOOST_TEST(html.find("Acme &lt;CRM&gt; &amp; Co") != std::string::npos);  // escaped
    BOOST_TEST(html.find("<CRM>") == std::string::npos);
    for (const char* scope : {"read_user_profile", "contacts_search", "person_read"}) {
        BOOST_TEST(html.find(std::string("<code>") + scope + "</code>") != std::string::npos, scope);
    }
    BOOST_TEST(html.find("<code>opportunity_write</code>") == std::string::npos);  // not requested
    BOOST_TEST(html.find("value=\"approve\"") != std::string::npos);
    BOOST_TEST(html.find("value=\"deny\"") != std::string::npos);
    BOOST_TEST(page.token.size() == 43u);
    BOOST_TEST(!page.response.header("Location").has_value());
    const std::string set_cookie = page.response.header("Set-Cookie").value_or("");
    for (const char* attribute : {"Secure", "HttpOnly", "SameSite=Lax"}) {
        BOOST_TEST(set_cookie.find(attribute) != std::string::npos, attribute);
    }
    BOOST_TEST(page.response.header("X-Frame-Options").value_or("") == "DENY");
    BOOST_TEST(page.response.header("Cache-Control").value_or("") == "no-store");
}

BOOST_AUTO_TEST_CASE(a_browser_that_has_the_cookie_keeps_it) {
    const shown_page first = show();
    const shown_page second = show(first.cookie);
    BOOST_TEST(!second.response.header("Set-Cookie").has_value());
    BOOST_TEST(second.token != first.token);  // one value per authorization request
    BOOST_TEST(decide(second, "approve").status == 302u);
}

BOOST_AUTO_TEST_CASE(approve_redirects_with_a_code_and_the_state) {
    const shown_page page = show();
    const raw_response res = decide(page, "approve");
    BOOST_REQUIRE_EQUAL(res.status, 302u);
    const auto query = query_of(res.header("Location").value_or(""));
    BOOST_TEST(query.at("code").size() == 43u);
    BOOST_TEST(query.at("state") == "s-1");
    // The code is a real one: it exchanges once.
    const raw_response token = http.send(test::form_post(
        "/api/v1/oauth/token", {{"grant_type", "authorization_code"},
                                {"code", query.at("code")},
                                {"redirect_uri", callback},
                                {"client_id", server.config().clients.front().client_id},
                                {"client_secret", server.config().clients.front().client_secret}}));
    BOOST_TEST(token.status == 200u);
}

BOOST_AUTO_TEST_CASE(deny_redirects_with_access_denied_and_the_state) {
    const shown_page page = show();
    const raw_response res = decide(page, "deny");
    BOOST_REQUIRE_EQUAL(res.status, 302u);
    const std::string location = res.header("Location").value_or("");
    BOOST_TEST(location.starts_with(callback + "?"));
    const auto query = query_of(location);
    BOOST_TEST(query.at("error") == "access_denied");
    BOOST_TEST(query.at("state") == "s-1");
    BOOST_TEST(query.count("code") == 0u);
}

BOOST_AUTO_TEST_CASE(a_missing_anti_forgery_value_is_refused) {
    const shown_page page = show();
    const raw_response res = decide({{"decision", "approve"}}, page.cookie);
    BOOST_TEST(res.status == 403u);
    BOOST_TEST(!res.header("Location").has_value());
    BOOST_TEST(res.body.find("without its anti-forgery value") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_forged_anti_forgery_value_is_refused) {
    const shown_page page = show();
    std::string forged = page.token;
    forged.back() = forged.back() == 'A' ? 'B' : 'A';
    const raw_response res = decide({{"authenticity_token", forged}, {"decision", "approve"}}, page.cookie);
    BOOST_TEST(res.status == 403u);
    BOOST_TEST(!res.header("Location").has_value());
    BOOST_TEST(decide(page, "approve").status == 302u);  // the real page still works
}

BOOST_AUTO_TEST_CASE(a_value_posted_from_another_browser_is_refused_and_left_pending) {
    const shown_page page = show();
    const shown_page elsewhere = show();  // a second browser: its own cookie
    BOOST_REQUIRE(elsewhere.cookie != page.cookie);
    BOOST_TEST(
        decide({{"authenticity_token", page.token}, {"decision", "approve"}}, elsewhere.cookie).status ==
        403u);
    BOOST_TEST(decide({{"authenticity_token", page.token}, {"decision", "approve"}}, "").status == 403u);
    BOOST_TEST(decide(page, "approve").status == 302u);
}

BOOST_AUTO_TEST_CASE(a_decision_is_single_use) {
    const shown_page page = show();
    BOOST_TEST(decide(page, "deny").status == 302u);
    BOOST_TEST(decide(page, "approve").status == 403u);
}

BOOST_AUTO_TEST_CASE(a_decision_other_than_approve_or_deny_is_refused) {
    const shown_page page = show();
    BOOST_TEST(decide(page, "maybe").status == 403u);
    BOOST_TEST(decide(page, "approve").status == 302u);
}

BOOST_AUTO_TEST_CASE(requests_that_cannot_be_granted_get_no_page) {
    // Unknown client: the 400 page, as without the consent page.
    raw_response res =
        http.send({.method = "GET",
                   .target = "/oauth/authorize?client_id=nobody&redirect_uri=x&response_type=code",
                   .headers = {},
                   .body = {}});
    BOOST_TEST(res.status == 400u);
    // A scope the app lacks: redirected with the error at once.
    res =
        http.send({.method = "GET", .target = authorize_target("no_such_scope"), .headers = {}, .body = {}});
    BOOST_TEST(res.status == 302u);
    BOOST_TEST(query_of(res.header("Location").value_or("")).at("error") == "invalid_scope");
}

BOOST_AUTO_TEST_CASE(consent_approves_the_page_itself) {
    const std::string location = server.consent(server.authorize_url() + authorize_target().substr(16));
    BOOST_TEST(query_of(location).at("code").size() == 43u);
}

BOOST_AUTO_TEST_SUITE_END()
