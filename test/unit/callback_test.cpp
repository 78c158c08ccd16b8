// Parsing the URL the browser is redirected to, and matching it with the redirect URI.
#include "sansio/url.hpp"

#include "test_support.hpp"

#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

using namespace apollo_oauth;
using namespace apollo_oauth::sansio;

BOOST_AUTO_TEST_SUITE(callback_parsing)

BOOST_AUTO_TEST_CASE(code_and_state) {
    auto cb = parse_callback(
        "https://www.example.com/callback?code=MUsgYj77Jc8r07qH2szUh125xqi2AV7eBhsfPnYOhmo"
        "&state=WeHH_yy2irpl8UYAvv-my");
    BOOST_TEST_REQUIRE(cb.has_value());
    BOOST_TEST(cb->base == "https://www.example.com/callback");
    BOOST_TEST(cb->code.value() == "MUsgYj77Jc8r07qH2szUh125xqi2AV7eBhsfPnYOhmo");
    BOOST_TEST(cb->state.value() == "WeHH_yy2irpl8UYAvv-my");
    BOOST_TEST(!cb->error.has_value());
    BOOST_TEST(!cb->error_description.has_value());
    BOOST_TEST(!cb->error_uri.has_value());
}

BOOST_AUTO_TEST_CASE(error_with_plus_and_percent_spaces) {
    auto cb = parse_callback(
        "https://www.example.com/callback?error=access_denied"
        "&error_description=The+user%20denied+access%21&error_uri=https%3A%2F%2Fdocs.example%2Fe"
        "&state=abc");
    BOOST_TEST_REQUIRE(cb.has_value());
    BOOST_TEST(cb->error.value() == "access_denied");
    BOOST_TEST(cb->error_description.value() == "The user denied access!");
    BOOST_TEST(cb->error_uri.value() == "https://docs.example/e");
    BOOST_TEST(cb->state.value() == "abc");
    BOOST_TEST(!cb->code.has_value());
}

BOOST_AUTO_TEST_CASE(base_keeps_port_and_drops_query_and_fragment) {
    auto cb = parse_callback("https://example.com:8443/a/b?code=1&state=2#section");
    BOOST_TEST_REQUIRE(cb.has_value());
    BOOST_TEST(cb->base == "https://example.com:8443/a/b");
}

BOOST_AUTO_TEST_CASE(no_query_gives_no_fields) {
    auto cb = parse_callback("https://example.com/cb");
    BOOST_TEST_REQUIRE(cb.has_value());
    BOOST_TEST(!cb->code.has_value());
    BOOST_TEST(!cb->state.has_value());
}

BOOST_AUTO_TEST_CASE(other_parameters_are_ignored_even_repeated) {
    auto cb = parse_callback("https://example.com/cb?x=1&x=2&code=c&session_state=z&state=s");
    BOOST_TEST_REQUIRE(cb.has_value());
    BOOST_TEST(cb->code.value() == "c");
    BOOST_TEST(cb->state.value() == "s");
}

BOOST_AUTO_TEST_CASE(encoded_parameter_names_are_decoded) {
    auto cb = parse_callback("https://example.com/cb?co%64e=c&state=s");
    BOOST_TEST_REQUIRE(cb.has_value());
    BOOST_TEST(cb->code.value() == "c");
}

BOOST_AUTO_TEST_CASE(repeated_oauth_parameters_are_refused) {
    for (const char* url :
         {"https://example.com/cb?code=a&code=b&state=s", "https://example.com/cb?code=a&state=s&state=s",
          "https://example.com/cb?error=a&error=b&state=s", "https://example.com/cb?code=a&co%64e=b"}) {
        auto cb = parse_callback(url);
        BOOST_TEST_REQUIRE(!cb.has_value(), url);
        BOOST_TEST(cb.error() == errc::invalid_callback, url);
    }
}

// Found by fuzzing: Boost.URL 1.81 read past the end of "...?#..." when iterating its parameters.
BOOST_AUTO_TEST_CASE(empty_query_before_a_fragment) {
    const std::string text = "https://example.com/cb?#code=a&state=s";
    const std::vector<char> exact(text.begin(), text.end());  // no NUL after the view
    auto cb = parse_callback(std::string_view(exact.data(), exact.size()));
    BOOST_TEST_REQUIRE(cb.has_value());
    BOOST_TEST(cb->base == "https://example.com/cb");
    BOOST_TEST(!cb->code.has_value());  // the fragment is no query
    BOOST_TEST(!cb->state.has_value());
}

BOOST_AUTO_TEST_CASE(malformed_escapes_and_non_urls_are_refused) {
    for (const char* url :
         {"https://example.com/cb?code=%zz&state=s", "https://example.com/cb?code=%4&state=s",
          "https://example.com/cb?code=a b&state=s", "not a url", "", "/cb?code=a&state=s",
          "mailto:someone@example.com", "https://[::2]:https://example.com/cb?code=a&state=s"}) {
        auto cb = parse_callback(url);
        BOOST_TEST_REQUIRE(!cb.has_value(), url);
        BOOST_TEST(cb.error() == errc::invalid_callback, url);
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(redirect_location)

BOOST_AUTO_TEST_CASE(same_place) {
    BOOST_TEST(same_redirect_location("https://example.com/cb", "https://example.com/cb"));
    BOOST_TEST(same_redirect_location("https://Example.COM/cb", "https://example.com/cb"));
    BOOST_TEST(same_redirect_location("HTTPS://example.com:443/cb", "https://example.com/cb"));
    BOOST_TEST(same_redirect_location("http://127.0.0.1:80/cb", "http://127.0.0.1/cb"));
    BOOST_TEST(same_redirect_location("https://example.com", "https://example.com/"));
    BOOST_TEST(same_redirect_location("https://example.com/cb", "https://example.com/cb?tenant=1"));
}

BOOST_AUTO_TEST_CASE(different_place) {
    BOOST_TEST(!same_redirect_location("https://example.com/cb2", "https://example.com/cb"));
    BOOST_TEST(!same_redirect_location("https://example.com/CB", "https://example.com/cb"));
    BOOST_TEST(!same_redirect_location("https://example.com/cb/", "https://example.com/cb"));
    BOOST_TEST(!same_redirect_location("http://example.com/cb", "https://example.com/cb"));
    BOOST_TEST(!same_redirect_location("https://example.com:8443/cb", "https://example.com/cb"));
    BOOST_TEST(!same_redirect_location("https://evil.example.com/cb", "https://example.com/cb"));
    BOOST_TEST(!same_redirect_location("https://u@example.com/cb", "https://example.com/cb"));
    BOOST_TEST(!same_redirect_location("garbage", "https://example.com/cb"));
    BOOST_TEST(!same_redirect_location("https://example.com/cb", "garbage"));
}

BOOST_AUTO_TEST_SUITE_END()
