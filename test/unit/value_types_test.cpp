// token_set and api_response helpers.
#include <apollo_oauth/api_types.hpp>
#include <apollo_oauth/token_set.hpp>

#include <boost/test/unit_test.hpp>

#include <sstream>

using namespace apollo_oauth;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(value_types)

BOOST_AUTO_TEST_CASE(token_set_scopes) {
    token_set t;
    t.scopes = {"read_user_profile", "app_scopes"};
    BOOST_TEST(t.has_scope("app_scopes"));
    BOOST_TEST(!t.has_scope("app"));
    BOOST_TEST(!t.has_scope(""));
}

BOOST_AUTO_TEST_CASE(token_set_prints_without_tokens) {
    token_set t;
    t.access_token = secret_string("ACCESS-VALUE");
    t.refresh_token = secret_string("REFRESH-VALUE");
    t.token_type = "Bearer";
    t.scopes = {"a", "b"};
    t.expires_in = 2592000s;
    t.created_at = std::chrono::system_clock::time_point(1718366695s);
    t.expires_at = std::chrono::system_clock::time_point(1718366695s + 2592000s);
    std::ostringstream os;
    os << t;
    const std::string s = os.str();
    BOOST_TEST(s ==
               "token_set{token_type=Bearer scopes=[a b] expires_in=2592000 created_at=1718366695 "
               "expires_at=1720958695 access_token=[redacted] refresh_token=[redacted]}");
    BOOST_TEST(s.find("ACCESS-VALUE") == std::string::npos);
    BOOST_TEST(s.find("REFRESH-VALUE") == std::string::npos);
}

// The scopes are the server's text: printed raw, a CR/LF in one forged a log line of its own and
// an ESC drove the terminal the log is read on. Printed escaped, as diagnostics' text is.
BOOST_AUTO_TEST_CASE(token_set_prints_control_bytes_in_scopes_escaped) {
    token_set t;
    t.token_type = "Bearer";
    t.scopes = {"read\r\nlevel=ERROR forged", "\x1b[31mred", "caf\xc3\xa9"};
    std::ostringstream os;
    os << t;
    const std::string s = os.str();
    BOOST_TEST(s.find("scopes=[read\\x0d\\x0alevel=ERROR forged \\x1b[31mred caf\xc3\xa9]") !=
               std::string::npos);
    BOOST_TEST(s.find_first_of("\r\n\x1b") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(api_response_header_lookup_ignores_case) {
    api_response r;
    r.headers = {{"Content-Type", "application/json"}, {"Retry-After", "30"}, {"retry-after", "60"}};
    BOOST_TEST(r.header("content-type").value() == "application/json");
    BOOST_TEST(r.header("CONTENT-TYPE").value() == "application/json");
    BOOST_TEST(r.header("Retry-After").value() == "30");  // the first one
    BOOST_TEST(!r.header("Content-Length").has_value());
    BOOST_TEST(!r.header("Content-Typ").has_value());
}

BOOST_AUTO_TEST_SUITE_END()
