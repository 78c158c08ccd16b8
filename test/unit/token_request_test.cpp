// Token endpoint request bodies.
#include "sansio/token_protocol.hpp"

#include <boost/test/unit_test.hpp>

using namespace apollo_oauth;
using namespace apollo_oauth::sansio;

namespace {

// The guide's example values.
const secret_string client_secret("N6CW_m_0FNl8hapshH4Wy4jr3uT8XqsERzdniY74Tw5");
const client_credentials cred{"vvZd-i_3MsfI6gmktGJY7F-kTE42SrO1RB9W8avPp0h", client_secret};
const std::string redirect = "https://www.example.com/callback";
const std::string encoded_tail =
    "&redirect_uri=https%3A%2F%2Fwww.example.com%2Fcallback"
    "&client_id=vvZd-i_3MsfI6gmktGJY7F-kTE42SrO1RB9W8avPp0h"
    "&client_secret=N6CW_m_0FNl8hapshH4Wy4jr3uT8XqsERzdniY74Tw5";

}  // namespace

BOOST_AUTO_TEST_SUITE(token_requests)

BOOST_AUTO_TEST_CASE(code_exchange_body) {
    const secret_string code("MUsgYj77Jc8r07qH2szUh125xqi2AV7eBhsfPnYOhmo");
    BOOST_TEST(exchange_code_body(cred, code, redirect, secret_string()) ==
               "grant_type=authorization_code&code=MUsgYj77Jc8r07qH2szUh125xqi2AV7eBhsfPnYOhmo" +
                   encoded_tail);
}

BOOST_AUTO_TEST_CASE(code_exchange_with_pkce_verifier) {
    const secret_string code("c");
    const secret_string verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    BOOST_TEST(exchange_code_body(cred, code, redirect, verifier) ==
               "grant_type=authorization_code&code=c" + encoded_tail +
                   "&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
}

BOOST_AUTO_TEST_CASE(refresh_without_scope) {
    const secret_string refresh("mVml3fpNBkIpIe3_DWvQ4iP_5h_cvYxOp6pYpZwGz0o");
    BOOST_TEST(refresh_body(cred, refresh, redirect, {}) ==
               "grant_type=refresh_token&refresh_token=mVml3fpNBkIpIe3_DWvQ4iP_5h_cvYxOp6pYpZwGz0o" +
                   encoded_tail);
}

BOOST_AUTO_TEST_CASE(refresh_narrowing_scope) {
    const secret_string refresh("r");
    BOOST_TEST(refresh_body(cred, refresh, redirect, {"contacts_search", "person_read"}) ==
               "grant_type=refresh_token&refresh_token=r" + encoded_tail +
                   "&scope=contacts_search+person_read");
}

BOOST_AUTO_TEST_CASE(values_are_form_encoded) {
    const secret_string odd_secret("a+b c&d=e%");
    const client_credentials odd{"id/with:chars", odd_secret};
    const secret_string code("x y");
    BOOST_TEST(exchange_code_body(odd, code, "https://e.com/cb?t=1", secret_string()) ==
               "grant_type=authorization_code&code=x+y&redirect_uri=https%3A%2F%2Fe.com%2Fcb%3Ft%3D1"
               "&client_id=id%2Fwith%3Achars&client_secret=a%2Bb+c%26d%3De%25");
}

BOOST_AUTO_TEST_SUITE_END()
