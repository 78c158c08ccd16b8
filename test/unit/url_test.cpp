// https URL parsing, loopback hosts, redirect URI checks and the authorize URL.
#include "sansio/url.hpp"

#include "test_support.hpp"

#include <boost/test/unit_test.hpp>
#include <boost/url/parse.hpp>

using namespace apollo_oauth;
using namespace apollo_oauth::sansio;

BOOST_AUTO_TEST_SUITE(https_urls)

BOOST_AUTO_TEST_CASE(splits_for_the_transport) {
    auto t = parse_https_url("https://app.apollo.io/api/v1/oauth/token");
    BOOST_TEST_REQUIRE(t.has_value());
    BOOST_TEST(t->host == "app.apollo.io");
    BOOST_TEST(t->port == "443");
    BOOST_TEST(t->target == "/api/v1/oauth/token");
    BOOST_TEST(t->host_header() == "app.apollo.io");
}

BOOST_AUTO_TEST_CASE(port_query_and_empty_path) {
    auto t = parse_https_url("https://127.0.0.1:8443/oauth/token?x=1&y=a%20b");
    BOOST_TEST_REQUIRE(t.has_value());
    BOOST_TEST(t->host == "127.0.0.1");
    BOOST_TEST(t->port == "8443");
    BOOST_TEST(t->target == "/oauth/token?x=1&y=a%20b");
    BOOST_TEST(t->host_header() == "127.0.0.1:8443");

    auto bare = parse_https_url("https://api.apollo.io");
    BOOST_TEST_REQUIRE(bare.has_value());
    BOOST_TEST(bare->target == "/");

    auto explicit_default = parse_https_url("https://api.apollo.io:443/");
    BOOST_TEST_REQUIRE(explicit_default.has_value());
    BOOST_TEST(explicit_default->host_header() == "api.apollo.io");
}

BOOST_AUTO_TEST_CASE(ipv6_host_loses_its_brackets) {
    auto t = parse_https_url("https://[::1]:9000");
    BOOST_TEST_REQUIRE(t.has_value());
    BOOST_TEST(t->host == "::1");
    BOOST_TEST(t->target == "/");
    BOOST_TEST(t->host_header() == "[::1]:9000");
}

BOOST_AUTO_TEST_CASE(ipv6_host_header_with_and_without_the_default_port) {
    auto defaulted = parse_https_url("https://[2001:db8::7]/x");
    BOOST_TEST_REQUIRE(defaulted.has_value());
    BOOST_TEST(defaulted->port == "443");
    BOOST_TEST(defaulted->host_header() == "[2001:db8::7]");
    auto explicit_default = parse_https_url("https://[::1]:443/");
    BOOST_TEST_REQUIRE(explicit_default.has_value());
    BOOST_TEST(explicit_default->host_header() == "[::1]");
    BOOST_TEST(host_header("::1", "8443") == "[::1]:8443");
    BOOST_TEST(host_header("127.0.0.1", "443") == "127.0.0.1");
    BOOST_TEST(host_header("api.apollo.io", "8443") == "api.apollo.io:8443");
}

BOOST_AUTO_TEST_CASE(refuses_what_is_not_plain_https) {
    for (const char* bad : {"http://app.apollo.io/x", "https://user:pw@app.apollo.io/x",
                            "https://app.apollo.io/#/x", "https:///path", "not a url", "", "/relative/path",
                            "https://x:0/", "https://x:70000/", "ftp://x/", "https://x y/",
                            // Boost.URL 1.81 reads authority "[::2]:" and path "https://x/a" (fuzzing)
                            "https://[::2]:https://x/a"}) {
        auto t = parse_https_url(bad);
        BOOST_TEST_REQUIRE(!t.has_value(), bad);
        BOOST_TEST(t.error() == errc::invalid_url, bad);
    }
}

BOOST_AUTO_TEST_CASE(authorize_base_may_have_a_fragment) {
    BOOST_TEST(!check_authorize_base("https://app.apollo.io/#/oauth/authorize"));
    BOOST_TEST(!check_authorize_base("https://127.0.0.1:8443/oauth/authorize"));
    BOOST_TEST(check_authorize_base("http://app.apollo.io/#/oauth/authorize") == errc::invalid_url);
    BOOST_TEST(check_authorize_base("https://u@app.apollo.io/") == errc::invalid_url);
    BOOST_TEST(check_authorize_base("nonsense") == errc::invalid_url);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(redirect_uris)

BOOST_AUTO_TEST_CASE(loopback_hosts) {
    for (const char* host : {"localhost", "LocalHost", "127.0.0.1", "127.0.0.5", "127.255.255.254", "::1",
                             "[::1]", "0:0:0:0:0:0:0:1"}) {
        BOOST_TEST(is_loopback_host(host), host);
    }
    for (const char* host : {"", "128.0.0.1", "10.0.0.1", "example.com", "localhost.example.com", "::2",
                             "[::]", "127.0.0", "1.127.0.0"}) {
        BOOST_TEST(!is_loopback_host(host), host);
    }
}

BOOST_AUTO_TEST_CASE(https_is_always_fine) {
    BOOST_TEST(!check_redirect_uri("https://www.example.com/callback", false));
    BOOST_TEST(!check_redirect_uri("https://www.example.com/callback", true));
    BOOST_TEST(!check_redirect_uri("https://www.example.com:8443/cb?tenant=a", false));
}

BOOST_AUTO_TEST_CASE(http_only_for_loopback_and_only_when_allowed) {
    for (const char* uri :
         {"http://127.0.0.1:8080/cb", "http://127.0.0.5/cb", "http://[::1]:3000/cb", "http://localhost/cb"}) {
        BOOST_TEST(!check_redirect_uri(uri, true), uri);
        BOOST_TEST(check_redirect_uri(uri, false) == errc::insecure_redirect_uri, uri);
    }
    BOOST_TEST(check_redirect_uri("http://example.com/cb", true) == errc::insecure_redirect_uri);
    BOOST_TEST(check_redirect_uri("http://10.0.0.1/cb", true) == errc::insecure_redirect_uri);
    BOOST_TEST(check_redirect_uri("ftp://example.com/cb", true) == errc::insecure_redirect_uri);
}

BOOST_AUTO_TEST_CASE(fragment_userinfo_and_non_urls_are_refused) {
    BOOST_TEST(check_redirect_uri("https://www.example.com/cb#frag", false) == errc::invalid_url);
    BOOST_TEST(check_redirect_uri("https://www.example.com/cb#", false) == errc::invalid_url);
    BOOST_TEST(check_redirect_uri("https://user:pw@www.example.com/cb", false) == errc::invalid_url);
    BOOST_TEST(check_redirect_uri("myapp:/callback", false) == errc::invalid_url);
    BOOST_TEST(check_redirect_uri("/callback", false) == errc::invalid_url);
    BOOST_TEST(check_redirect_uri("not a url", false) == errc::invalid_url);
    BOOST_TEST(check_redirect_uri("https:///cb", false) == errc::invalid_url);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(authorize_url)

const std::vector<std::string> two_scopes{"contacts_search", "person_read"};

BOOST_AUTO_TEST_CASE(apollo_fragment_route) {
    // The guide's example values.
    auto url = build_authorize_url(
        "https://app.apollo.io/#/oauth/authorize", "FaKj9ikI5rafgwPKJId1DwbzhR1VHvQAe7UEAVH_5k",
        "https://www.example.com/callback", two_scopes, "WeHH_yy2irpl8UYAvv-my", std::nullopt);
    BOOST_TEST_REQUIRE(url.has_value());
    BOOST_TEST(*url ==
               "https://app.apollo.io/#/oauth/authorize?client_id=FaKj9ikI5rafgwPKJId1DwbzhR1VHvQAe7UEAVH_5k"
               "&redirect_uri=https%3A%2F%2Fwww.example.com%2Fcallback&response_type=code"
               "&scope=contacts_search%20person_read&state=WeHH_yy2irpl8UYAvv-my");
    // Still one valid URI, with everything in the fragment where Apollo's app reads it.
    auto parsed = boost::urls::parse_uri(*url);
    BOOST_TEST_REQUIRE(parsed.has_value());
    BOOST_TEST(!parsed->has_query());
    BOOST_TEST(std::string_view(parsed->encoded_fragment()).starts_with("/oauth/authorize?client_id="));
}

BOOST_AUTO_TEST_CASE(plain_base_gets_an_ordinary_query) {
    auto url = build_authorize_url("https://127.0.0.1:8443/oauth/authorize", "client-1",
                                   "https://127.0.0.1:9000/cb", two_scopes, "st", std::nullopt);
    BOOST_TEST_REQUIRE(url.has_value());
    BOOST_TEST(*url ==
               "https://127.0.0.1:8443/oauth/authorize?client_id=client-1"
               "&redirect_uri=https%3A%2F%2F127.0.0.1%3A9000%2Fcb&response_type=code"
               "&scope=contacts_search%20person_read&state=st");
    auto parsed = boost::urls::parse_uri(*url);
    BOOST_TEST_REQUIRE(parsed.has_value());
    BOOST_TEST((*parsed->params().find("scope")).value == "contacts_search person_read");
}

BOOST_AUTO_TEST_CASE(no_scope_parameter_without_scopes) {
    auto url = build_authorize_url("https://app.apollo.io/#/oauth/authorize", "c", "https://e.com/cb", {},
                                   "s", std::nullopt);
    BOOST_TEST_REQUIRE(url.has_value());
    BOOST_TEST(*url ==
               "https://app.apollo.io/#/oauth/authorize?client_id=c&redirect_uri=https%3A%2F%2Fe.com%2Fcb"
               "&response_type=code&state=s");
}

BOOST_AUTO_TEST_CASE(pkce_parameters_come_last) {
    auto url = build_authorize_url("https://x.example/authorize", "c", "https://e.com/cb", {"a"}, "s",
                                   std::string_view("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
    BOOST_TEST_REQUIRE(url.has_value());
    BOOST_TEST(
        *url ==
        "https://x.example/authorize?client_id=c&redirect_uri=https%3A%2F%2Fe.com%2Fcb&response_type=code"
        "&scope=a&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        "&code_challenge_method=S256");
}

BOOST_AUTO_TEST_CASE(every_value_is_fully_encoded) {
    auto url =
        build_authorize_url("https://x.example/authorize", "id with space&=", "https://e.com/cb?t=1&u=2",
                            {"a:b/c"}, "s+t", std::nullopt);
    BOOST_TEST_REQUIRE(url.has_value());
    BOOST_TEST(*url ==
               "https://x.example/authorize?client_id=id%20with%20space%26%3D"
               "&redirect_uri=https%3A%2F%2Fe.com%2Fcb%3Ft%3D1%26u%3D2&response_type=code"
               "&scope=a%3Ab%2Fc&state=s%2Bt");
}

BOOST_AUTO_TEST_CASE(an_existing_query_is_kept) {
    auto plain = build_authorize_url("https://x.example/authorize?tenant=a", "c", "https://e.com/cb", {}, "s",
                                     std::nullopt);
    BOOST_TEST_REQUIRE(plain.has_value());
    BOOST_TEST(*plain ==
               "https://x.example/authorize?tenant=a&client_id=c&redirect_uri=https%3A%2F%2Fe.com%2Fcb"
               "&response_type=code&state=s");
    auto in_fragment = build_authorize_url("https://x.example/#/authorize?tenant=a", "c", "https://e.com/cb",
                                           {}, "s", std::nullopt);
    BOOST_TEST_REQUIRE(in_fragment.has_value());
    BOOST_TEST(*in_fragment ==
               "https://x.example/#/authorize?tenant=a&client_id=c&redirect_uri=https%3A%2F%2Fe.com%2Fcb"
               "&response_type=code&state=s");
    // A '?' before the fragment belongs to the real query, not to the fragment's.
    auto both = build_authorize_url("https://x.example/?q=1#/authorize", "c", "https://e.com/cb", {}, "s",
                                    std::nullopt);
    BOOST_TEST_REQUIRE(both.has_value());
    BOOST_TEST(both->starts_with("https://x.example/?q=1#/authorize?client_id=c&"));
}

BOOST_AUTO_TEST_CASE(errors) {
    auto bad_scope = build_authorize_url("https://x.example/a", "c", "https://e.com/cb", {"ok", "not ok"},
                                         "s", std::nullopt);
    BOOST_TEST_REQUIRE(!bad_scope.has_value());
    BOOST_TEST(bad_scope.error() == errc::invalid_argument);

    auto bad_base = build_authorize_url("http://x.example/a", "c", "https://e.com/cb", {}, "s", std::nullopt);
    BOOST_TEST_REQUIRE(!bad_base.has_value());
    BOOST_TEST(bad_base.error() == errc::invalid_url);
}

BOOST_AUTO_TEST_SUITE_END()
