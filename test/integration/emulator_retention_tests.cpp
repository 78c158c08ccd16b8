// server_config::retain_revoked = false: the emulator forgets rotated pairs and used codes, so its
// memory stays flat under a long soak, while a client still gets the same errors for them.
#include <apollo_oauth/emulator/server.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/test/unit_test.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>

#include "raw_https.hpp"
#include "secret_log.hpp"

namespace {

using namespace apollo_oauth;
namespace json = boost::json;
using field_list = std::vector<std::pair<std::string, std::string>>;

struct forgetful_emulator {
    forgetful_emulator() : server(config()), http("127.0.0.1", server.port(), server.ca_pem()) {}
    ~forgetful_emulator() { test::secret_log::record_all(server.issued_secrets()); }

    static emulator::server_config config() {
        emulator::server_config c;
        c.retain_revoked = false;
        return c;
    }

    const emulator::registered_client& app() const { return server.config().clients.front(); }

    std::string code() {
        const field_list params{{"client_id", app().client_id},
                                {"redirect_uri", app().redirect_uris.front()},
                                {"response_type", "code"},
                                {"state", "s"}};
        const auto location = server.consent(server.authorize_url() + "?" + test::form_body(params));
        for (const auto& param : boost::urls::parse_uri(location)->params()) {
            if (param.key == "code") {
                return param.value;
            }
        }
        BOOST_FAIL("no code in the redirect");
        return {};
    }

    test::raw_response token(field_list fields) {
        fields.emplace_back("redirect_uri", app().redirect_uris.front());
        fields.emplace_back("client_id", app().client_id);
        fields.emplace_back("client_secret", app().client_secret);
        return http.send(test::form_post("/api/v1/oauth/token", fields));
    }

    /// {access_token, refresh_token} of a 200 answer.
    std::pair<std::string, std::string> pair_of(const test::raw_response& res) {
        BOOST_REQUIRE_EQUAL(res.status, 200u);
        const auto body = json::parse(res.body).as_object();
        std::pair<std::string, std::string> tokens{body.at("access_token").as_string().c_str(),
                                                   body.at("refresh_token").as_string().c_str()};
        test::secret_log::record_all({tokens.first, tokens.second});  // the server will forget them
        return tokens;
    }

    std::string error_of(const test::raw_response& res) {
        return std::string(json::parse(res.body).at("error").as_string());
    }

    bool holds(const std::string& secret) const {
        const auto held = server.issued_secrets();
        return std::find(held.begin(), held.end(), secret) != held.end();
    }

    emulator::server server;
    test::raw_https_client http;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(emulator_retain_revoked_off, forgetful_emulator)

BOOST_AUTO_TEST_CASE(a_rotated_pair_is_forgotten_but_still_refused) {
    const auto code_value = code();
    test::secret_log::record_all({code_value});
    const auto first = pair_of(token({{"grant_type", "authorization_code"}, {"code", code_value}}));
    const auto second = pair_of(token({{"grant_type", "refresh_token"}, {"refresh_token", first.second}}));

    BOOST_TEST(!holds(code_value));
    BOOST_TEST(!holds(first.first));
    BOOST_TEST(!holds(first.second));
    BOOST_TEST(holds(second.first));
    BOOST_TEST(holds(second.second));
    BOOST_TEST(holds(app().client_secret));

    BOOST_TEST(server.newest_refresh_token_of(second.second) == second.second);
    BOOST_TEST(server.newest_refresh_token_of(first.second).empty());
    const auto replayed = token({{"grant_type", "refresh_token"}, {"refresh_token", first.second}});
    BOOST_TEST(replayed.status == 400u);
    BOOST_TEST(error_of(replayed) == "invalid_grant");
    const auto api = http.send(test::bearer_request("POST", "/v1/tasks/bulk_create", first.first, "{}"));
    BOOST_TEST(api.status == 401u);
    BOOST_TEST(http.send(test::bearer_request("POST", "/v1/tasks/bulk_create", second.first, "{}")).status ==
               200u);
}

BOOST_AUTO_TEST_CASE(a_replayed_code_is_unknown_and_leaves_the_grant_alone) {
    const auto code_value = code();
    test::secret_log::record_all({code_value});
    const auto tokens = pair_of(token({{"grant_type", "authorization_code"}, {"code", code_value}}));
    const auto replay = token({{"grant_type", "authorization_code"}, {"code", code_value}});
    BOOST_TEST(replay.status == 400u);
    BOOST_TEST(error_of(replay) == "invalid_grant");
    // Retaining, the replay would revoke the grant (RFC 6749 §4.1.2); forgotten, it cannot.
    BOOST_TEST(http.send(test::bearer_request("POST", "/v1/tasks/bulk_create", tokens.first, "{}")).status ==
               200u);
}

BOOST_AUTO_TEST_SUITE_END()
