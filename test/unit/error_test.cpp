// The apollo_oauth error category, RFC 6749 error strings and diagnostics printing.
#include <apollo_oauth/error.hpp>

#include "test_support.hpp"

#include <boost/test/unit_test.hpp>

#include <set>
#include <sstream>

using namespace apollo_oauth;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(errors)

BOOST_AUTO_TEST_CASE(category_and_conversion) {
    const error_code ec = errc::invalid_grant;
    BOOST_TEST(ec.category().name() == std::string("apollo_oauth"));
    BOOST_TEST(&ec.category() == &category());
    BOOST_TEST(ec == errc::invalid_grant);
    BOOST_TEST(ec != errc::invalid_client);
    BOOST_TEST(ec.value() == static_cast<int>(errc::invalid_grant));
}

BOOST_AUTO_TEST_CASE(every_code_has_its_own_fixed_message) {
    std::set<std::string> messages;
    const int last = static_cast<int>(errc::session_required);  // the last enumerator
    for (int v = 1; v <= last; ++v) {
        const std::string m = category().message(v);
        BOOST_TEST(!m.empty(), v);
        BOOST_TEST(m != category().message(last + 1), v);
        // The noexcept overload gives the same fixed text and ignores the caller's buffer.
        char buffer[8] = "junk";
        BOOST_TEST(std::string(category().message(v, buffer, sizeof buffer)) == m, v);
        messages.insert(m);
    }
    BOOST_TEST(messages.size() == static_cast<std::size_t>(last));
    BOOST_TEST(category().message(0) == category().message(9999));
}

BOOST_AUTO_TEST_CASE(messages_carry_no_dynamic_text) {
    // An error built while handling secrets and server text reports only the fixed text.
    const error_code ec = errc::invalid_grant;
    diagnostics diag;
    diag.error = "invalid_grant";
    diag.error_description = "token abc123SECRET is revoked";
    BOOST_TEST(ec.message().find("SECRET") == std::string::npos);
    BOOST_TEST(ec.message() == category().message(static_cast<int>(errc::invalid_grant)));
}

BOOST_AUTO_TEST_CASE(oauth_error_strings) {
    BOOST_TEST(errc_from_oauth_error("invalid_request") == errc::invalid_request);
    BOOST_TEST(errc_from_oauth_error("invalid_client") == errc::invalid_client);
    BOOST_TEST(errc_from_oauth_error("invalid_grant") == errc::invalid_grant);
    BOOST_TEST(errc_from_oauth_error("unauthorized_client") == errc::unauthorized_client);
    BOOST_TEST(errc_from_oauth_error("unsupported_grant_type") == errc::unsupported_grant_type);
    BOOST_TEST(errc_from_oauth_error("invalid_scope") == errc::invalid_scope);
    BOOST_TEST(errc_from_oauth_error("access_denied") == errc::access_denied);
    BOOST_TEST(errc_from_oauth_error("unsupported_response_type") == errc::unsupported_response_type);
    BOOST_TEST(errc_from_oauth_error("server_error") == errc::server_error);
    BOOST_TEST(errc_from_oauth_error("temporarily_unavailable") == errc::temporarily_unavailable);
    BOOST_TEST(errc_from_oauth_error("Invalid_Grant") == errc::unknown_oauth_error);
    BOOST_TEST(errc_from_oauth_error("") == errc::unknown_oauth_error);
    BOOST_TEST(errc_from_oauth_error("invalid_token") == errc::unknown_oauth_error);
}

BOOST_AUTO_TEST_CASE(diagnostics_printing) {
    auto print = [](const diagnostics& d) {
        std::ostringstream os;
        os << d;
        return os.str();
    };
    diagnostics d;
    BOOST_TEST(print(d) == "");
    d.http_status = 400;
    d.error = "invalid_grant";
    d.error_description = "bad code";
    d.retry_after = 30s;
    BOOST_TEST(print(d) == "http_status=400 error=invalid_grant description=bad code retry_after=30s");

    diagnostics only_uri;
    only_uri.error_uri = "https://e.x/doc";
    BOOST_TEST(print(only_uri) == "uri=https://e.x/doc");

    // Server text cannot forge log lines.
    diagnostics forged;
    forged.error_description = "a\nFAKE LOG LINE\r\x1b";
    BOOST_TEST(print(forged) == "description=a\\x0aFAKE LOG LINE\\x0d\\x1b");

    d.clear();
    BOOST_TEST(print(d) == "");
}

BOOST_AUTO_TEST_SUITE_END()
