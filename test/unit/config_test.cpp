// client_config validation.
#include <apollo_oauth/config.hpp>

#include "test_support.hpp"

#include <boost/test/unit_test.hpp>

#include <functional>
#include <limits>

using namespace apollo_oauth;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view secret_value = "S3CRET-must-never-appear";

client_config valid_config() {
    client_config c;
    c.client_id = "vvZd-i_3MsfI6gmktGJY7F-kTE42SrO1RB9W8avPp0h";
    c.client_secret = secret_string(secret_value);
    c.redirect_uris = {"https://app.example.com/callback"};
    return c;
}

struct outcome {
    error_code ec;
    std::string what;
};

outcome check(const std::function<void(client_config&)>& change) {
    client_config c = valid_config();
    change(c);
    outcome o;
    diagnostics diag;
    o.ec = validate(c, diag);
    o.what = diag.error + ": " + diag.error_description;
    BOOST_TEST(o.what.find(secret_value) == std::string::npos);
    std::string older_form;
    BOOST_TEST(validate(c, &older_form) == o.ec);  // the std::string form says the same
    if (o.ec) {
        BOOST_TEST(older_form == o.what);
    }
    return o;
}

bool mentions(const outcome& o, std::string_view field) {
    return o.what.find(field) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(config_validation)

BOOST_AUTO_TEST_CASE(defaults_with_credentials_are_valid) {
    std::string what = "untouched";
    BOOST_TEST(!validate(valid_config(), &what));
    BOOST_TEST(!validate(valid_config()));
}

BOOST_AUTO_TEST_CASE(diagnostics_name_the_field_and_the_rule) {
    client_config c = valid_config();
    c.timeouts.connect = std::chrono::seconds(0);
    diagnostics diag;
    diag.http_status = 500;  // cleared
    BOOST_TEST(validate(c, diag) == errc::invalid_configuration);
    BOOST_TEST(diag.error == "timeouts.connect");
    BOOST_TEST(diag.error_description == "must be positive");
    BOOST_TEST(diag.http_status == 0u);
    BOOST_TEST(!validate(valid_config(), diag));
    BOOST_TEST(diag.error.empty());
}

BOOST_AUTO_TEST_CASE(client_id) {
    auto empty = check([](client_config& c) { c.client_id.clear(); });
    BOOST_TEST(empty.ec == errc::invalid_configuration);
    BOOST_TEST(mentions(empty, "client_id"));
    BOOST_TEST(check([](client_config& c) { c.client_id = "abc\n"; }).ec == errc::invalid_configuration);
    BOOST_TEST(check([](client_config& c) { c.client_id = "caf\xC3\xA9"; }).ec ==
               errc::invalid_configuration);
    BOOST_TEST(check([](client_config& c) { c.client_id = std::string("a\0b", 3); }).ec ==
               errc::invalid_configuration);
}

BOOST_AUTO_TEST_CASE(client_secret_required_and_never_echoed) {
    auto o = check([](client_config& c) { c.client_secret.clear(); });
    BOOST_TEST(o.ec == errc::invalid_configuration);
    BOOST_TEST(mentions(o, "client_secret"));
}

BOOST_AUTO_TEST_CASE(one_to_four_redirect_uris) {
    auto none = check([](client_config& c) { c.redirect_uris.clear(); });
    BOOST_TEST(none.ec == errc::invalid_configuration);
    BOOST_TEST(mentions(none, "redirect_uris"));

    auto four = check([](client_config& c) {
        c.redirect_uris = {"https://a.example/1", "https://a.example/2", "https://a.example/3",
                           "https://a.example/4"};
    });
    BOOST_TEST(!four.ec);

    auto five = check([](client_config& c) {
        c.redirect_uris = {"https://a.example/1", "https://a.example/2", "https://a.example/3",
                           "https://a.example/4", "https://a.example/5"};
    });
    BOOST_TEST(five.ec == errc::invalid_configuration);
    BOOST_TEST(mentions(five, "redirect_uris"));
}

BOOST_AUTO_TEST_CASE(each_redirect_uri_is_checked) {
    auto http = check([](client_config& c) { c.redirect_uris.push_back("http://app.example.com/cb"); });
    BOOST_TEST(http.ec == errc::insecure_redirect_uri);
    BOOST_TEST(mentions(http, "redirect_uris[1]"));

    auto fragment = check([](client_config& c) { c.redirect_uris[0] = "https://app.example.com/cb#x"; });
    BOOST_TEST(fragment.ec == errc::invalid_url);
    BOOST_TEST(mentions(fragment, "redirect_uris[0]"));

    BOOST_TEST(check([](client_config& c) { c.redirect_uris[0] = "http://127.0.0.1:8080/cb"; }).ec ==
               errc::insecure_redirect_uri);
    BOOST_TEST(!check([](client_config& c) {
                    c.redirect_uris[0] = "http://127.0.0.1:8080/cb";
                    c.allow_loopback_http_redirect = true;
                }).ec);
    BOOST_TEST(check([](client_config& c) {
                   c.redirect_uris[0] = "http://example.com/cb";
                   c.allow_loopback_http_redirect = true;
               }).ec == errc::insecure_redirect_uri);
}

BOOST_AUTO_TEST_CASE(endpoints) {
    BOOST_TEST(!check([](client_config& c) {
                    c.endpoints.authorize_url = "https://127.0.0.1:8443/oauth/authorize";
                    c.endpoints.token_url = "https://127.0.0.1:8443/api/v1/oauth/token";
                    c.endpoints.profile_url = "https://127.0.0.1:8443/api/v1/users/api_profile";
                    c.endpoints.api_base = "https://127.0.0.1:8443";
                }).ec);
    BOOST_TEST(!check([](client_config& c) { c.endpoints.api_base = "https://api.apollo.io/"; }).ec);

    const std::pair<std::function<void(client_config&)>, std::string_view> bad[] = {
        {[](client_config& c) { c.endpoints.authorize_url = "http://app.apollo.io/#/oauth/authorize"; },
         "authorize_url"},
        {[](client_config& c) { c.endpoints.authorize_url = ""; }, "authorize_url"},
        {[](client_config& c) { c.endpoints.token_url = "http://app.apollo.io/api/v1/oauth/token"; },
         "token_url"},
        {[](client_config& c) { c.endpoints.token_url = "https://app.apollo.io/token#x"; }, "token_url"},
        {[](client_config& c) { c.endpoints.profile_url = "app.apollo.io/api/v1/users/api_profile"; },
         "profile_url"},
        {[](client_config& c) { c.endpoints.api_base = "https://api.apollo.io/v1"; }, "api_base"},
        {[](client_config& c) { c.endpoints.api_base = "https://api.apollo.io/?x=1"; }, "api_base"},
        {[](client_config& c) { c.endpoints.api_base = "http://api.apollo.io"; }, "api_base"},
    };
    for (const auto& [change, field] : bad) {
        auto o = check(change);
        BOOST_TEST(o.ec == errc::invalid_url, field);
        BOOST_TEST(mentions(o, field), o.what);
    }
}

BOOST_AUTO_TEST_CASE(timeouts_limits_pool_and_lifetimes) {
    const std::pair<std::function<void(client_config&)>, std::string_view> bad[] = {
        {[](client_config& c) { c.timeouts.resolve = 0ms; }, "timeouts.resolve"},
        {[](client_config& c) { c.timeouts.connect = -1ms; }, "timeouts.connect"},
        {[](client_config& c) { c.timeouts.tls_handshake = 0ms; }, "timeouts.tls_handshake"},
        {[](client_config& c) { c.timeouts.write = 0ms; }, "timeouts.write"},
        {[](client_config& c) { c.timeouts.response_header = 0ms; }, "timeouts.response_header"},
        {[](client_config& c) { c.timeouts.response_body = 0ms; }, "timeouts.response_body"},
        {[](client_config& c) { c.limits.header_bytes = 0; }, "limits.header_bytes"},
        {[](client_config& c) { c.limits.token_body_bytes = 0; }, "limits.token_body_bytes"},
        {[](client_config& c) { c.limits.api_body_bytes = 0; }, "limits.api_body_bytes"},
        {[](client_config& c) { c.pool.max_connections_per_host = 0; }, "pool.max_connections_per_host"},
        {[](client_config& c) { c.pool.idle_timeout = -1ms; }, "pool.idle_timeout"},
        {[](client_config& c) { c.state_lifetime = 0s; }, "state_lifetime"},
        // Its expiry is a system_clock time point: centuries would overflow into the past.
        {[](client_config& c) { c.state_lifetime = max_state_lifetime + 1s; }, "state_lifetime"},
        {[](client_config& c) { c.state_lifetime = std::chrono::seconds::max(); }, "state_lifetime"},
        {[](client_config& c) { c.assumed_lifetime = 0s; }, "assumed_lifetime"},
        {[](client_config& c) { c.minimum_lifetime = 0s; }, "minimum_lifetime"},
        {[](client_config& c) { c.tls.use_system_trust_store = false; }, "tls"},
    };
    for (const auto& [change, field] : bad) {
        auto o = check(change);
        BOOST_TEST(o.ec == errc::invalid_configuration, field);
        BOOST_TEST(mentions(o, field), o.what);
    }
    BOOST_TEST(!check([](client_config& c) {
                    c.tls.use_system_trust_store = false;
                    c.tls.ca_pem = "-----BEGIN CERTIFICATE-----...";
                }).ec);
    BOOST_TEST(!check([](client_config& c) { c.pool.max_connections_per_host = 1; }).ec);
    BOOST_TEST(!check([](client_config& c) { c.state_lifetime = max_state_lifetime; }).ec);
}

// A token response can be at most token_body_bytes, and the pair it brings must fit in a store's
// record: past max_token_body_bytes a store could refuse every write of it (invalid_argument),
// and the cache kept the only live refresh token in memory alone, its write refused again on
// every retry. Refused here, before any request.
BOOST_AUTO_TEST_CASE(a_token_body_limit_past_what_a_store_record_holds_is_refused) {
    for (const std::size_t too_large :
         {max_token_body_bytes + 1, std::size_t{1} << 20, std::numeric_limits<std::size_t>::max()}) {
        const auto o = check([too_large](client_config& c) { c.limits.token_body_bytes = too_large; });
        BOOST_TEST(o.ec == errc::invalid_configuration);
        BOOST_TEST(o.what == "limits.token_body_bytes: must be at most 192 KiB");
    }
    BOOST_TEST(!check([](client_config& c) { c.limits.token_body_bytes = max_token_body_bytes; }).ec);
    BOOST_TEST(max_token_body_bytes == 192u * 1024u);  // the figure the message and the docs give
}

// Beast throws std::length_error, from inside a read, for a header field past 65,533 bytes: with
// a header limit above max_header_bytes a server could send one (or, in a chunked body's trailer,
// one up to the read buffer's bound), and io_context::run would throw instead of the handler
// being told. Refused here.
BOOST_AUTO_TEST_CASE(a_header_limit_past_what_a_field_can_hold_is_refused) {
    for (const std::size_t too_large :
         {max_header_bytes + 1, std::size_t{1} << 20, std::numeric_limits<std::size_t>::max()}) {
        const auto o = check([too_large](client_config& c) { c.limits.header_bytes = too_large; });
        BOOST_TEST(o.ec == errc::invalid_configuration);
        BOOST_TEST(o.what == "limits.header_bytes: must be at most 60 KiB");
    }
    BOOST_TEST(!check([](client_config& c) { c.limits.header_bytes = max_header_bytes; }).ec);
    BOOST_TEST(max_header_bytes == 60u * 1024u);  // the figure the message and the docs give
}

BOOST_AUTO_TEST_SUITE_END()
