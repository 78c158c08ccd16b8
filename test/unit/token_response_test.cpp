// parse_token_response: Apollo's responses, RFC 6749 errors, malformed bodies.
#include "sansio/response_classification.hpp"
#include "sansio/token_protocol.hpp"

#include "test_support.hpp"

#include <boost/test/unit_test.hpp>

#include <sstream>

using namespace apollo_oauth;
using namespace apollo_oauth::sansio;
using namespace std::chrono_literals;
using std::chrono::system_clock;

namespace {

const system_clock::time_point sent_at{1718366690s};

// Apollo's two sample responses, from the OAuth guide.
constexpr std::string_view apollo_exchange = R"({
  "access_token": "6vJtf0jt94Km1WxYsH29DE98xVgsNp8wCHFZMcIZdAg",
  "token_type": "Bearer",
  "expires_in": 2592000,
  "refresh_token": "mVml3fpNBkIpIe3_DWvQ4iP_5h_cvYxOp6pYpZwGz0o",
  "scope": "read_user_profile app_scopes opportunity_write",
  "created_at": 1718366695
})";
constexpr std::string_view apollo_refresh = R"({
  "access_token": "IFuV6LMQoNGfzuvJTbqU-jY5DD9iJVTiCoqm3v5uZPU",
  "token_type": "Bearer",
  "expires_in": 2592000,
  "refresh_token": "OeV84CtgzB6NK5BJxA_INSau7svEjhp2IuYOzkZYgQg",
  "scope": "read_user_profile app_scopes opportunity_write",
  "created_at": 1718366832
})";

constexpr std::string_view leaked_token = "ACCESS-TOKEN-VALUE-THAT-MUST-NOT-LEAK";

token_request_context context() {
    token_request_context ctx;
    ctx.sent_at = sent_at;
    ctx.requested_scopes = {"contacts_search"};
    ctx.assumed_lifetime = 3600s;
    return ctx;
}

struct parsed {
    error_code ec;
    token_set tokens;
    diagnostics diag;
};

parsed parse(unsigned status, std::string_view body, const token_request_context& ctx = context()) {
    parsed p;
    p.ec = parse_token_response(status, body, ctx, p.tokens, p.diag);
    BOOST_TEST(p.diag.http_status == status);
    return p;
}

// A valid response with one member replaced (or removed when `value` is empty).
std::string with_member(std::string_view name, std::string_view value) {
    const std::pair<std::string_view, std::string_view> members[] = {
        {"access_token", "\"ACCESS-TOKEN-VALUE-THAT-MUST-NOT-LEAK\""},
        {"token_type", "\"Bearer\""},
        {"expires_in", "2592000"},
        {"refresh_token", "\"refresh-value\""},
        {"scope", "\"a b\""},
        {"created_at", "1718366695"},
    };
    std::string body = "{";
    for (const auto& [n, v] : members) {
        const std::string_view out = n == name ? value : v;
        if (out.empty()) {
            continue;
        }
        if (body.size() > 1) {
            body += ',';
        }
        body += '"' + std::string(n) + "\":" + std::string(out);
    }
    return body + "}";
}

// Nothing a failed parse reports may carry a token value.
void expect_no_leak(const parsed& p) {
    std::ostringstream printed;
    printed << p.diag;
    for (const std::string& text : {p.diag.error, p.diag.error_description, p.diag.error_uri, printed.str(),
                                    p.ec.message(), p.ec.what()}) {
        BOOST_TEST(text.find(leaked_token) == std::string::npos, text);
        BOOST_TEST(text.find("refresh-value") == std::string::npos, text);
    }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(token_response)

BOOST_AUTO_TEST_CASE(apollo_code_exchange_sample) {
    auto p = parse(200, apollo_exchange);
    BOOST_TEST_REQUIRE(!p.ec);
    const token_set& t = p.tokens;
    BOOST_TEST(t.access_token.reveal() == "6vJtf0jt94Km1WxYsH29DE98xVgsNp8wCHFZMcIZdAg");
    BOOST_TEST(t.token_type == "Bearer");
    BOOST_TEST(t.expires_in.count() == 2592000);
    BOOST_TEST(t.refresh_token.reveal() == "mVml3fpNBkIpIe3_DWvQ4iP_5h_cvYxOp6pYpZwGz0o");
    const std::vector<std::string> scopes{"read_user_profile", "app_scopes", "opportunity_write"};
    BOOST_TEST(t.scopes == scopes, boost::test_tools::per_element());
    BOOST_TEST((t.created_at.time_since_epoch() == std::chrono::seconds(1718366695)));
    // Expiry counts from the local send time, not from the server's created_at.
    BOOST_TEST((t.expires_at == sent_at + 2592000s));
    BOOST_TEST(p.diag.error.empty());
}

BOOST_AUTO_TEST_CASE(apollo_refresh_sample) {
    const secret_string previous("mVml3fpNBkIpIe3_DWvQ4iP_5h_cvYxOp6pYpZwGz0o");
    auto ctx = context();
    ctx.previous_refresh_token = &previous;
    auto p = parse(200, apollo_refresh, ctx);
    BOOST_TEST_REQUIRE(!p.ec);
    BOOST_TEST(p.tokens.access_token.reveal() == "IFuV6LMQoNGfzuvJTbqU-jY5DD9iJVTiCoqm3v5uZPU");
    BOOST_TEST(p.tokens.refresh_token.reveal() == "OeV84CtgzB6NK5BJxA_INSau7svEjhp2IuYOzkZYgQg");
    BOOST_TEST((p.tokens.created_at.time_since_epoch() == std::chrono::seconds(1718366832)));
    BOOST_TEST(p.tokens.has_scope("opportunity_write"));
}

BOOST_AUTO_TEST_CASE(any_2xx_is_success) {
    BOOST_TEST(!parse(201, apollo_exchange).ec);
    BOOST_TEST(!parse(299, apollo_exchange).ec);
}

BOOST_AUTO_TEST_CASE(required_fields) {
    auto no_access = parse(200, with_member("access_token", ""));
    BOOST_TEST(no_access.ec == errc::missing_field);
    BOOST_TEST(no_access.diag.error == "access_token");

    auto no_type = parse(200, with_member("token_type", ""));
    BOOST_TEST(no_type.ec == errc::missing_field);
    BOOST_TEST(no_type.diag.error == "token_type");
    expect_no_leak(no_type);
}

BOOST_AUTO_TEST_CASE(wrong_types) {
    const std::pair<std::string_view, std::string_view> cases[] = {
        {"access_token", "123"},     {"access_token", "null"}, {"access_token", "\"\""},
        {"access_token", "[\"x\"]"}, {"token_type", "1"},      {"token_type", "true"},
        {"token_type", "null"},      {"refresh_token", "5"},   {"refresh_token", "{}"},
    };
    for (const auto& [field, value] : cases) {
        auto p = parse(200, with_member(field, value));
        BOOST_TEST(p.ec == errc::wrong_field_type, field << '=' << value);
        BOOST_TEST(p.diag.error == field, field << '=' << value);
        expect_no_leak(p);
    }
}

// A 2xx answer to a refresh means the server rotated the pair and revoked the one sent: an answer
// refused for a field the pair can be used without would lose the only live pair. Such fields
// count as absent: the lifetime assumed, the send time, the requested scopes.
BOOST_AUTO_TEST_CASE(informational_fields_never_cost_the_pair) {
    const std::pair<std::string_view, std::string_view> cases[] = {
        {"expires_in", "1.5"},  {"expires_in", "-1"},        {"expires_in", "-1.0"},
        {"expires_in", "true"}, {"expires_in", "{}"},        {"expires_in", "\"1h\""},
        {"expires_in", "\"\""}, {"expires_in", "\"-3600\""}, {"expires_in", "\"36000000000000000000\""},
    };
    for (const auto& [field, value] : cases) {
        auto p = parse(200, with_member(field, value));
        BOOST_TEST_REQUIRE(!p.ec, field << '=' << value);
        BOOST_TEST(p.tokens.access_token.reveal() == leaked_token, field << '=' << value);
        BOOST_TEST(p.tokens.refresh_token.reveal() == "refresh-value", field << '=' << value);
        BOOST_TEST(p.tokens.expires_in.count() == 3600, field << '=' << value);
    }
    for (const std::string_view value : {"\"x\"", "-5", "1.25", "1e300", "[]"}) {
        auto p = parse(200, with_member("created_at", value));
        BOOST_TEST_REQUIRE(!p.ec, value);
        BOOST_TEST(p.tokens.refresh_token.reveal() == "refresh-value", value);
        BOOST_TEST((p.tokens.created_at == sent_at), value);
        BOOST_TEST(p.tokens.expires_in.count() == 2592000, value);
    }
    for (const std::string_view value : {"[\"a\"]", "7", "{}", "true"}) {
        auto p = parse(200, with_member("scope", value));
        BOOST_TEST_REQUIRE(!p.ec, value);
        BOOST_TEST(p.tokens.refresh_token.reveal() == "refresh-value", value);
        BOOST_TEST((p.tokens.scopes == std::vector<std::string>{"contacts_search"}), value);
    }
}

// Some well-known servers write expires_in as a string of digits.
BOOST_AUTO_TEST_CASE(expires_in_as_a_string_of_digits) {
    auto p = parse(200, with_member("expires_in", "\"3599\""));
    BOOST_TEST_REQUIRE(!p.ec);
    BOOST_TEST(p.tokens.expires_in.count() == 3599);
    BOOST_TEST((p.tokens.expires_at == sent_at + 3599s));
}

BOOST_AUTO_TEST_CASE(numbers_as_uint64_and_integral_doubles) {
    auto big = parse(200, with_member("expires_in", "18446744073709551615"));
    BOOST_TEST_REQUIRE(!big.ec);
    // Clamped so that the expiry arithmetic cannot overflow.
    BOOST_TEST(big.tokens.expires_in.count() > 365LL * 24 * 3600);
    BOOST_TEST((big.tokens.expires_at > sent_at));

    auto as_double = parse(200, with_member("expires_in", "3600.0"));
    BOOST_TEST_REQUIRE(!as_double.ec);
    BOOST_TEST(as_double.tokens.expires_in.count() == 3600);

    auto zero = parse(200, with_member("expires_in", "0"));
    BOOST_TEST_REQUIRE(!zero.ec);
    BOOST_TEST((zero.tokens.expires_at == sent_at));
}

BOOST_AUTO_TEST_CASE(token_type_is_case_insensitive_bearer_only) {
    for (const char* ok : {"\"bearer\"", "\"BEARER\"", "\"BeArEr\""}) {
        auto p = parse(200, with_member("token_type", ok));
        BOOST_TEST_REQUIRE(!p.ec, ok);
        BOOST_TEST(p.tokens.token_type == "Bearer");
    }
    for (const char* bad : {"\"mac\"", "\"\"", "\"Bearer \"", "\"DPoP\""}) {
        auto p = parse(200, with_member("token_type", bad));
        BOOST_TEST(p.ec == errc::unsupported_token_type, bad);
        BOOST_TEST(p.diag.error == "token_type");
        expect_no_leak(p);
    }
}

BOOST_AUTO_TEST_CASE(rfc6749_error_whatever_the_status) {
    const std::string body =
        R"({"error":"invalid_grant","error_description":"The provided authorization grant is invalid",)"
        R"("error_uri":"https://docs.example/errors#grant"})";
    auto p400 = parse(400, body);
    BOOST_TEST(p400.ec == errc::invalid_grant);
    BOOST_TEST(p400.diag.error == "invalid_grant");
    BOOST_TEST(p400.diag.error_description == "The provided authorization grant is invalid");
    BOOST_TEST(p400.diag.error_uri == "https://docs.example/errors#grant");

    auto p401 = parse(401, R"({"error":"invalid_client"})");
    BOOST_TEST(p401.ec == errc::invalid_client);
    BOOST_TEST(p401.diag.error == "invalid_client");
    BOOST_TEST(p401.diag.error_description.empty());

    auto p200 = parse(200, R"({"error":"invalid_request","error_description":"no"})");
    BOOST_TEST(p200.ec == errc::invalid_request);
    BOOST_TEST(p200.diag.error_description == "no");
}

BOOST_AUTO_TEST_CASE(unknown_error_code) {
    auto p = parse(400, R"({"error":"quota_exhausted_for_team"})");
    BOOST_TEST(p.ec == errc::unknown_oauth_error);
    BOOST_TEST(p.diag.error == "quota_exhausted_for_team");
}

BOOST_AUTO_TEST_CASE(non_string_error_is_not_an_error_object) {
    BOOST_TEST(parse(400, R"({"error":5})").ec == errc::unexpected_status);
    BOOST_TEST(parse(200, R"({"error":{"code":1}})").ec == errc::missing_field);
}

BOOST_AUTO_TEST_CASE(malformed_bodies) {
    BOOST_TEST(parse(200, "<html>oops</html>").ec == errc::malformed_response);
    BOOST_TEST(parse(200, "").ec == errc::malformed_response);
    BOOST_TEST(parse(200, "[1,2]").ec == errc::malformed_response);
    BOOST_TEST(parse(200, "\"Bearer\"").ec == errc::malformed_response);
    BOOST_TEST(parse(200, std::string(apollo_exchange) + " trailing").ec == errc::malformed_response);
    BOOST_TEST(parse(200, R"({"access_token":"x",)").ec == errc::malformed_response);
}

BOOST_AUTO_TEST_CASE(non_json_error_status) {
    auto p = parse(502, "<html>Bad Gateway</html>");
    BOOST_TEST(p.ec == errc::unexpected_status);
    BOOST_TEST(p.diag.http_status == 502u);
    BOOST_TEST(parse(500, "[]").ec == errc::unexpected_status);
    // A token-shaped body with an error status is still a failure.
    BOOST_TEST(parse(503, apollo_exchange).ec == errc::unexpected_status);
}

BOOST_AUTO_TEST_CASE(refresh_without_refresh_token_keeps_the_previous_one) {
    const secret_string previous("previous-refresh-token");
    auto ctx = context();
    ctx.previous_refresh_token = &previous;
    auto p = parse(200, with_member("refresh_token", ""), ctx);
    BOOST_TEST_REQUIRE(!p.ec);
    BOOST_TEST(p.tokens.refresh_token.reveal() == "previous-refresh-token");

    auto empty = parse(200, with_member("refresh_token", "\"\""), ctx);
    BOOST_TEST_REQUIRE(!empty.ec);
    BOOST_TEST(empty.tokens.refresh_token.reveal() == "previous-refresh-token");

    auto null = parse(200, with_member("refresh_token", "null"), ctx);
    BOOST_TEST_REQUIRE(!null.ec);
    BOOST_TEST(null.tokens.refresh_token.reveal() == "previous-refresh-token");

    auto none = parse(200, with_member("refresh_token", ""));
    BOOST_TEST_REQUIRE(!none.ec);
    BOOST_TEST(none.tokens.refresh_token.empty());
}

BOOST_AUTO_TEST_CASE(no_scope_means_the_requested_scopes) {
    for (const char* value : {"", "null", "\"\""}) {
        auto p = parse(200, with_member("scope", value));
        BOOST_TEST_REQUIRE(!p.ec, value);
        const std::vector<std::string> requested{"contacts_search"};
        BOOST_TEST(p.tokens.scopes == requested, boost::test_tools::per_element());
    }
    auto ctx = context();
    ctx.requested_scopes.clear();
    auto none = parse(200, with_member("scope", ""), ctx);
    BOOST_TEST_REQUIRE(!none.ec);
    BOOST_TEST(none.tokens.scopes.empty());
}

BOOST_AUTO_TEST_CASE(absent_expires_in_and_created_at) {
    auto p = parse(200, R"({"access_token":"a","token_type":"Bearer"})");
    BOOST_TEST_REQUIRE(!p.ec);
    BOOST_TEST(p.tokens.expires_in.count() == 3600);
    BOOST_TEST((p.tokens.expires_at == sent_at + 3600s));
    BOOST_TEST((p.tokens.created_at == sent_at));

    auto ctx = context();
    ctx.assumed_lifetime = 120s;
    auto q = parse(200, with_member("expires_in", "null"), ctx);
    BOOST_TEST_REQUIRE(!q.ec);
    BOOST_TEST(q.tokens.expires_in.count() == 120);
}

BOOST_AUTO_TEST_CASE(unknown_fields_are_ignored) {
    auto p = parse(200, R"({"id_token":"x","access_token":"a","extra":{"nested":[1,2,{"k":null}]},)"
                        R"("token_type":"Bearer","expires_in":60,"team":7})");
    BOOST_TEST_REQUIRE(!p.ec);
    BOOST_TEST(p.tokens.access_token.reveal() == "a");
    BOOST_TEST(p.tokens.expires_in.count() == 60);
}

BOOST_AUTO_TEST_CASE(error_description_is_truncated_to_512_bytes) {
    auto p =
        parse(400, R"({"error":"invalid_request","error_description":")" + std::string(600, 'x') + "\"}");
    BOOST_TEST(p.diag.error_description == std::string(512, 'x'));

    // Not in the middle of a UTF-8 sequence: 511 ASCII bytes then a 2-byte character.
    auto u = parse(400, R"({"error":"invalid_request","error_description":")" + std::string(511, 'a') +
                            "\xC3\xA9" + "tail\"}");
    BOOST_TEST(u.diag.error_description == std::string(511, 'a'));
}

BOOST_AUTO_TEST_CASE(a_big_document_parses) {
    // Larger than the parser's inline buffers.
    std::string padding(20'000, 'p');
    auto p = parse(200, R"({"padding":")" + padding + R"(","access_token":"a","token_type":"Bearer"})");
    BOOST_TEST(!p.ec);
}

BOOST_AUTO_TEST_CASE(failed_parse_leaves_output_alone) {
    token_set out;
    out.access_token = secret_string("kept");
    diagnostics diag;
    BOOST_TEST(parse_token_response(400, R"({"error":"invalid_grant"})", context(), out, diag) ==
               errc::invalid_grant);
    BOOST_TEST(out.access_token.reveal() == "kept");
}

// Retry-After counts where it asks the client to wait (429, 503): on a 400 it would stretch the
// cache's backoff for an answer that says nothing of load.
BOOST_AUTO_TEST_CASE(retry_after_is_read_from_429_and_503_only) {
    const std::string_view error_body = R"({"error":"invalid_request"})";
    for (const unsigned status : {429U, 503U, 400U, 500U, 200U}) {
        token_set out;
        diagnostics diag;
        const http_answer answer{
            status, status == 200 ? std::string_view(apollo_exchange) : error_body, "120", {}};
        (void)classify_token_answer(answer, context(), sent_at, out, diag);
        const bool asks_to_wait = status == 429 || status == 503;
        BOOST_TEST(diag.retry_after.has_value() == asks_to_wait, status);
        if (asks_to_wait) {
            BOOST_TEST(diag.retry_after->count() == 120, status);
        }
        user_profile profile;
        diagnostics profile_diag;
        (void)classify_profile_answer({status, "{}", "120", {}}, sent_at, profile, profile_diag);
        BOOST_TEST(profile_diag.retry_after.has_value() == asks_to_wait, status);
    }
}

// A 429 is a rate limit whatever its body: an RFC 6749 error object sent with it (a gateway's,
// or a server's "invalid_grant") was taken as the answer, unknown_oauth_error or worse, so the
// cache's Retry-After backoff was skipped, or a grant given up. The object stays in diag.
BOOST_AUTO_TEST_CASE(a_429_is_rate_limited_whatever_its_body) {
    for (const std::string_view body :
         {R"({"error":"too_many_requests","error_description":"Slow down."})", R"({"error":"invalid_grant"})",
          R"({"message":"Rate limit exceeded."})", "<html>busy</html>", ""}) {
        token_set out;
        diagnostics diag;
        const auto ec = classify_token_answer({429, body, "7", {}}, context(), sent_at, out, diag);
        BOOST_TEST(ec == errc::rate_limited, body);
        BOOST_TEST(diag.http_status == 429u);
        BOOST_TEST(diag.retry_after.value().count() == 7, body);
        BOOST_TEST(out.access_token.empty());
    }
    token_set out;
    diagnostics diag;
    (void)classify_token_answer(
        {429, R"({"error":"too_many_requests","error_description":"Slow down."})", {}, {}}, context(),
        sent_at, out, diag);
    BOOST_TEST(diag.error == "too_many_requests");
    BOOST_TEST(diag.error_description == "Slow down.");
    BOOST_TEST(!diag.retry_after.has_value());
}

BOOST_AUTO_TEST_CASE(diag_is_reset_but_retry_after_kept) {
    token_set out;
    diagnostics diag;
    diag.error = "stale";
    diag.error_description = "stale";
    diag.retry_after = 30s;
    BOOST_TEST(!parse_token_response(200, apollo_exchange, context(), out, diag));
    BOOST_TEST(diag.error.empty());
    BOOST_TEST(diag.error_description.empty());
    BOOST_TEST(diag.retry_after.value().count() == 30);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(token_response_injection)

// The access token becomes `Authorization: Bearer <token>`; one holding CR or LF would let the
// token endpoint add headers of its choosing to every API request.
BOOST_AUTO_TEST_CASE(an_access_token_outside_b64token_is_refused) {
    for (const char* bad : {R"("abc\r\nX-Injected: 1")", R"("abc\nX-Injected: 1")", R"("abc\rx")",
                            R"("abc\u0000def")", R"("two words")", R"("tab\there")", R"("a=b")", R"("=abc")",
                            R"("quote\"d")", R"("caf\u00e9")", R"("semi;colon")"}) {
        auto p = parse(200, with_member("access_token", bad));
        BOOST_TEST(p.ec == errc::invalid_token_response, bad);
        BOOST_TEST(p.diag.error == "access_token", bad);
        BOOST_TEST(p.tokens.access_token.empty());
        expect_no_leak(p);
    }
    for (const char* ok : {R"("abc")", R"("A-Z.a_z~0+9/")", R"("abc==")", R"("x=")"}) {
        auto p = parse(200, with_member("access_token", ok));
        BOOST_TEST(!p.ec, ok);
    }
}

BOOST_AUTO_TEST_CASE(a_minimum_lifetime_raises_zero_and_one) {
    auto ctx = context();
    ctx.minimum_lifetime = 60s;
    for (const char* short_lived : {"0", "1", "59"}) {
        auto p = parse(200, with_member("expires_in", short_lived), ctx);
        BOOST_TEST_REQUIRE(!p.ec, short_lived);
        BOOST_TEST(p.tokens.expires_in.count() == 60, short_lived);
        BOOST_TEST((p.tokens.expires_at == sent_at + 60s), short_lived);
    }
    auto longer = parse(200, with_member("expires_in", "61"), ctx);
    BOOST_TEST(longer.tokens.expires_in.count() == 61);
    // Without a minimum (a code exchange), the server's value stands.
    auto zero = parse(200, with_member("expires_in", "0"));
    BOOST_TEST(zero.tokens.expires_in.count() == 0);
}

BOOST_AUTO_TEST_SUITE_END()
