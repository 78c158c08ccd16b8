// WWW-Authenticate (RFC 6750 §3) and Retry-After (RFC 9110 §10.2.3).
#include "sansio/token_protocol.hpp"

#include <boost/test/unit_test.hpp>

using namespace apollo_oauth;
using namespace apollo_oauth::sansio;
using namespace std::chrono;

BOOST_AUTO_TEST_SUITE(www_authenticate)

BOOST_AUTO_TEST_CASE(rfc6750_examples) {
    diagnostics realm_only;
    parse_www_authenticate(R"(Bearer realm="example")", realm_only);
    BOOST_TEST(realm_only.error.empty());
    BOOST_TEST(realm_only.error_description.empty());

    diagnostics d;
    parse_www_authenticate(
        R"(Bearer realm="example", error="invalid_token", error_description="The access token expired")", d);
    BOOST_TEST(d.error == "invalid_token");
    BOOST_TEST(d.error_description == "The access token expired");

    diagnostics scope;
    parse_www_authenticate(R"(Bearer realm="example", error="insufficient_scope", scope="contacts_search")",
                           scope);
    BOOST_TEST(scope.error == "insufficient_scope");
    BOOST_TEST(scope.scope == "contacts_search");
}

BOOST_AUTO_TEST_CASE(any_order_case_and_tokens) {
    diagnostics d;
    parse_www_authenticate(
        R"(  bearer error_description="d",ERROR=invalid_request ,  error_uri="https://e.x/doc")", d);
    BOOST_TEST(d.error == "invalid_request");
    BOOST_TEST(d.error_description == "d");
    BOOST_TEST(d.error_uri == "https://e.x/doc");
}

BOOST_AUTO_TEST_CASE(quoted_pair_escapes) {
    diagnostics d;
    parse_www_authenticate(R"(Bearer error="invalid_token", error_description="a \"quoted\" word\\")", d);
    BOOST_TEST(d.error_description == R"(a "quoted" word\)");
}

BOOST_AUTO_TEST_CASE(other_schemes_leave_diag_alone) {
    for (const char* header : {R"(Basic realm="x", error="invalid_token")",
                               R"(Bearerx error="invalid_token")", "", R"(DPoP error="invalid_token")"}) {
        diagnostics d;
        d.error = "kept";
        parse_www_authenticate(header, d);
        BOOST_TEST(d.error == "kept", header);
    }
}

BOOST_AUTO_TEST_CASE(malformed_input_keeps_what_parsed) {
    diagnostics d;
    parse_www_authenticate(R"(Bearer error="invalid_token", error_description="unterminated)", d);
    BOOST_TEST(d.error == "invalid_token");
    BOOST_TEST(d.error_description.empty());

    diagnostics next;
    parse_www_authenticate(R"(Bearer error="invalid_token", Basic realm="x")", next);
    BOOST_TEST(next.error == "invalid_token");
}

BOOST_AUTO_TEST_CASE(long_description_is_truncated) {
    diagnostics d;
    parse_www_authenticate("Bearer error_description=\"" + std::string(700, 'y') + "\"", d);
    BOOST_TEST(d.error_description == std::string(512, 'y'));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(retry_after)

// Wed, 21 Oct 2015 07:27:00 GMT
const system_clock::time_point now = sys_days(year(2015) / October / 21) + hours(7) + minutes(27);

std::optional<long long> delay(std::string_view value, system_clock::time_point at = now) {
    auto d = parse_retry_after(value, at);
    if (!d) {
        return std::nullopt;
    }
    return d->count();
}

BOOST_AUTO_TEST_CASE(delay_seconds) {
    BOOST_TEST(delay("120").value() == 120);
    BOOST_TEST(delay(" 120\t").value() == 120);
    BOOST_TEST(delay("0").value() == 0);
}

BOOST_AUTO_TEST_CASE(imf_fixdate) {
    BOOST_TEST(delay("Wed, 21 Oct 2015 07:28:00 GMT").value() == 60);
    BOOST_TEST(delay("Wed, 21 Oct 2015 07:00:00 GMT").value() == 0);  // in the past
    BOOST_TEST(delay("Thu, 22 Oct 2015 07:27:00 GMT").value() == 86400);
    // Rounded up: waiting a little too long is better than too short.
    BOOST_TEST(delay("Wed, 21 Oct 2015 07:28:00 GMT", now + milliseconds(500)).value() == 60);
}

BOOST_AUTO_TEST_CASE(obsolete_date_forms) {
    BOOST_TEST(delay("Wednesday, 21-Oct-15 07:28:00 GMT").value() == 60);
    BOOST_TEST(delay("Wed Oct 21 07:28:00 2015").value() == 60);
    BOOST_TEST(delay("Sun Nov  6 08:49:37 1994").value() == 0);
}

// Found by fuzzing: callers turn the delay into milliseconds or add it to a clock, which
// overflowed for huge delay-seconds; and a date far in the past overflowed system_clock.
BOOST_AUTO_TEST_CASE(clamped_to_a_year) {
    const long long max = max_retry_after.count();
    BOOST_TEST(delay("99999999999999999999999").value() == max);  // beyond int64: still a delay
    BOOST_TEST(delay("9223372036854775").value() == max);         // overflows as milliseconds
    BOOST_TEST(delay(std::to_string(max)).value() == max);
    BOOST_TEST(delay(std::to_string(max - 1)).value() == max - 1);
    BOOST_TEST(delay("Fri, 31 Dec 9999 23:59:59 GMT").value() == max);
    BOOST_TEST(delay("Thu, 01 Jan 0985 00:00:00 GMT").value() == 0);
}

BOOST_AUTO_TEST_CASE(garbage) {
    for (const char* bad :
         {"", "  ", "soon", "-1", "1.5", "12abc", "99999999999999999999999x", "Wed, 32 Oct 2015 07:28:00 GMT",
          "Wed, 21 Oct 2015 25:00:00 GMT", "Wed, 21 Oct 2015 07:28:00", "Wed, 21 Foo 2015 07:28:00 GMT",
          "Wed, 29 Feb 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 GMT extra"}) {
        BOOST_TEST(!delay(bad).has_value(), bad);
    }
}

BOOST_AUTO_TEST_SUITE_END()
