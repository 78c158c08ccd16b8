// parse_profile_response.
#include "sansio/token_protocol.hpp"

#include "test_support.hpp"

#include <boost/test/unit_test.hpp>

using namespace apollo_oauth;
using namespace apollo_oauth::sansio;

namespace {

struct parsed {
    error_code ec;
    user_profile profile;
    diagnostics diag;
};

parsed parse(unsigned status, std::string_view body) {
    parsed p;
    p.ec = parse_profile_response(status, body, p.profile, p.diag);
    BOOST_TEST(p.diag.http_status == status);
    return p;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(profile_response)

BOOST_AUTO_TEST_CASE(fields_at_the_top_level) {
    const std::string body =
        R"({"id":"5f1e2d","email":"ann@example.com","name":"Ann Example","team_id":"t-9","extra":[1,2]})";
    auto p = parse(200, body);
    BOOST_TEST_REQUIRE(!p.ec);
    BOOST_TEST(p.profile.id == "5f1e2d");
    BOOST_TEST(p.profile.email == "ann@example.com");
    BOOST_TEST(p.profile.name == "Ann Example");
    BOOST_TEST(p.profile.team_id == "t-9");
    BOOST_TEST(p.profile.json == body);
}

BOOST_AUTO_TEST_CASE(fields_in_a_user_object) {
    auto p = parse(200, R"({"user":{"id":"u1","email":"bob@example.com","name":"Bob","team_id":"T1"},)"
                        R"("is_logged_in":true})");
    BOOST_TEST_REQUIRE(!p.ec);
    BOOST_TEST(p.profile.id == "u1");
    BOOST_TEST(p.profile.email == "bob@example.com");
    BOOST_TEST(p.profile.name == "Bob");
    BOOST_TEST(p.profile.team_id == "T1");
}

BOOST_AUTO_TEST_CASE(user_id_and_numbers) {
    auto p = parse(200, R"({"user_id":42,"team_id":7,"email":null})");
    BOOST_TEST_REQUIRE(!p.ec);
    BOOST_TEST(p.profile.id == "42");
    BOOST_TEST(p.profile.team_id == "7");
    BOOST_TEST(p.profile.email.empty());
    BOOST_TEST(p.profile.name.empty());
}

BOOST_AUTO_TEST_CASE(status_codes) {
    auto unauthorized = parse(401, "");
    BOOST_TEST(unauthorized.ec == errc::unauthorized);

    auto with_body = parse(401, R"({"error":"invalid_token","error_description":"expired"})");
    BOOST_TEST(with_body.ec == errc::unauthorized);
    BOOST_TEST(with_body.diag.error == "invalid_token");
    BOOST_TEST(with_body.diag.error_description == "expired");

    BOOST_TEST(parse(429, R"({"message":"slow down"})").ec == errc::rate_limited);
    BOOST_TEST(parse(429, R"({"error":"server_error"})").ec == errc::rate_limited);
    BOOST_TEST(parse(500, "<html>").ec == errc::unexpected_status);
    BOOST_TEST(parse(403, R"({"error":"insufficient_scope"})").ec == errc::unknown_oauth_error);
    BOOST_TEST(parse(400, R"({"error":"invalid_request"})").ec == errc::invalid_request);
}

BOOST_AUTO_TEST_CASE(malformed_success_bodies) {
    BOOST_TEST(parse(200, "[]").ec == errc::malformed_response);
    BOOST_TEST(parse(200, "not json").ec == errc::malformed_response);
    BOOST_TEST(parse(200, "").ec == errc::malformed_response);
}

BOOST_AUTO_TEST_SUITE_END()
