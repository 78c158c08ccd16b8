// WWW-Authenticate (RFC 6750 §3) and Retry-After (RFC 9110 §10.2.3).
#include "sansio/token_protocol.hpp"

#include "test_support.hpp"

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>

#include <stdexcept>
#include <string>

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

// RFC 9110 §11.6.1: a field may hold several challenges; the Bearer one need not be the first.
// Reading only the first made `Basic realm="x", Bearer error="insufficient_scope"` a 401 without
// an error, which api_client answers with a refresh: a rotation on every such request.
BOOST_AUTO_TEST_CASE(the_bearer_challenge_is_found_among_others) {
    const std::pair<const char*, const char*> cases[] = {
        {R"(Basic realm="x", Bearer error="insufficient_scope")", "insufficient_scope"},
        {R"(Basic realm="x", charset="UTF-8", Bearer realm="y", error="invalid_token")", "invalid_token"},
        {R"(Negotiate YII/abc+==, Bearer error="insufficient_scope")", "insufficient_scope"},  // token68
        {R"(Basic abc=, Bearer error=invalid_request)", "invalid_request"},
        {R"(Bearer error="invalid_token", Bearer error="insufficient_scope")", "invalid_token"},  // the first
        {R"(Bearer error="invalid_token", Basic realm="x", error="insufficient_scope")", "invalid_token"},
    };
    for (const auto& [header, error] : cases) {
        diagnostics d;
        BOOST_TEST(parse_www_authenticate(header, d), header);
        BOOST_TEST(d.error == error, header);
    }
}

BOOST_AUTO_TEST_CASE(whether_there_was_a_bearer_challenge) {
    diagnostics d;
    BOOST_TEST(parse_www_authenticate(R"(Bearer realm="example")", d));
    BOOST_TEST(parse_www_authenticate("Bearer", d));
    BOOST_TEST(parse_www_authenticate(R"(Basic realm="x", Bearer)", d));
    BOOST_TEST(!parse_www_authenticate(R"(Basic realm="x", error="invalid_token")", d));
    BOOST_TEST(!parse_www_authenticate("", d));
    BOOST_TEST(!parse_www_authenticate(R"(Bearer/x error="invalid_token")", d));
    BOOST_TEST(d.error.empty());
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

BOOST_AUTO_TEST_SUITE(request_header_checks)

BOOST_AUTO_TEST_CASE(b64token_is_rfc6750s) {
    for (std::string_view ok : {"a", "Z", "0", "abc-._~+/XYZ09", "abc=", "abc==", "-", "/"}) {
        BOOST_TEST(is_b64token(ok), ok);
    }
    using namespace std::string_view_literals;
    for (std::string_view bad : {""sv, "="sv, "=abc"sv, "a=b"sv, "a b"sv, "a\tb"sv, "a\r\nX: 1"sv, "a\n"sv,
                                 "a\r"sv, "a\0b"sv, "a,b"sv, "a;b"sv, "a\"b"sv, "caf\xc3\xa9"sv, "a\x7f"sv}) {
        BOOST_TEST(!is_b64token(bad), bad);
    }
}

BOOST_AUTO_TEST_CASE(field_names_are_tchar_tokens) {
    for (std::string_view ok : {"X-Trace", "accept", "x!#$%&'*+-.^_`|~1"}) {
        BOOST_TEST(is_field_name(ok), ok);
    }
    using namespace std::string_view_literals;
    for (std::string_view bad : {""sv, "Transfer-Encoding "sv, "Content-Length\t"sv, " Host"sv, "X:Y"sv,
                                 "X\r\nY"sv, "X\0"sv, "X(Y)"sv, "X/Y"sv, "\xc3\xa9"sv}) {
        BOOST_TEST(!is_field_name(bad), bad);
    }
}

BOOST_AUTO_TEST_CASE(field_values_without_cr_lf_nul) {
    using namespace std::string_view_literals;
    BOOST_TEST(is_safe_field_value(""));
    BOOST_TEST(is_safe_field_value("application/json; charset=utf-8"));
    BOOST_TEST(is_safe_field_value("tab\tand space"));
    for (std::string_view bad : {"a\r\nX-Injected: 1"sv, "a\nb"sv, "a\rb"sv, "a\0b"sv}) {
        BOOST_TEST(!is_safe_field_value(bad));
    }
}

// Past max_field_bytes Beast throws std::length_error while the request is built: refused first.
BOOST_AUTO_TEST_CASE(field_names_and_values_no_longer_than_beast_holds) {
    const std::string longest(max_field_bytes, 'x');
    const std::string too_long(max_field_bytes + 1, 'x');
    BOOST_TEST(is_field_name(longest));
    BOOST_TEST(!is_field_name(too_long));
    BOOST_TEST(is_safe_field_value(longest));
    BOOST_TEST(!is_safe_field_value(too_long));
    BOOST_TEST(is_acceptable_extra_header("X-Big", longest));
    BOOST_TEST(!is_acceptable_extra_header("X-Big", too_long));
    BOOST_TEST(!is_acceptable_extra_header(too_long, "1"));
    // The bound is Beast's own: the longest is kept, one byte more throws.
    boost::beast::http::request<boost::beast::http::empty_body> req;
    BOOST_CHECK_NO_THROW(req.insert(longest, longest));
    BOOST_CHECK_THROW(req.insert("X-Big", too_long), std::length_error);
    BOOST_CHECK_THROW(req.insert(too_long, "1"), std::length_error);
}

BOOST_AUTO_TEST_CASE(reserved_names_any_case_and_only_after_the_token_check) {
    for (std::string_view name : {"Host", "AUTHORIZATION", "content-length", "Connection",
                                  "Transfer-Encoding", "Upgrade", "te", "KEEP-ALIVE"}) {
        BOOST_TEST(is_reserved_field_name(name), name);
        BOOST_TEST(!is_acceptable_extra_header(name, "x"), name);
    }
    // The smuggling forms: not tokens, so refused before the reserved comparison.
    BOOST_TEST(!is_acceptable_extra_header("Transfer-Encoding ", "chunked"));
    BOOST_TEST(!is_acceptable_extra_header("Content-Length\t", "0"));
    BOOST_TEST(!is_acceptable_extra_header("X-Ok", "1\r\nX-Injected: 1"));
    BOOST_TEST(!is_acceptable_extra_header("", "x"));
    BOOST_TEST(is_acceptable_extra_header("X-Request-Id", "42"));
    BOOST_TEST(is_acceptable_extra_header("Accept", "application/json"));
}

BOOST_AUTO_TEST_CASE(bearer_value_checks_the_token_again) {
    secret_string out;
    BOOST_TEST(!bearer_field_value(secret_string{"abc.DEF-123=="}, out));
    BOOST_TEST(out.reveal() == "Bearer abc.DEF-123==");
    // A long token: the value is built in one block of the exact size.
    BOOST_TEST(!bearer_field_value(secret_string{std::string(300, 'a')}, out));
    BOOST_TEST(out.reveal() == "Bearer " + std::string(300, 'a'));
    // The longest token whose field Beast can hold, and one byte more.
    const std::string longest(max_field_bytes - 7, 'a');
    BOOST_TEST(!bearer_field_value(secret_string{longest}, out));
    BOOST_TEST(out.size() == max_field_bytes);
    secret_string kept{"unchanged"};
    BOOST_TEST(bearer_field_value(secret_string{longest + "a"}, kept) == errc::invalid_argument);
    BOOST_TEST(kept.reveal() == "unchanged");
    for (const char* bad : {"", "abc\r\nX-Injected: 1", "a b", "a\nb"}) {
        secret_string refused{"unchanged"};
        BOOST_TEST(bearer_field_value(secret_string{bad}, refused) == errc::invalid_argument, bad);
        BOOST_TEST(refused.reveal() == "unchanged");
    }
}

BOOST_AUTO_TEST_SUITE_END()
