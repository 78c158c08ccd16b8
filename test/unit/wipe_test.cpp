// The transport's wiping of transient secret copies (src/http/wipe.hpp).
#include <ostream>  // before Beast's verb.hpp

#include "http/wipe.hpp"

#include <boost/beast/core/buffers_to_string.hpp>

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstring>

using namespace apollo_oauth;
namespace beast = boost::beast;

namespace {

// Reads bytes the object still owns (the storage is not freed by the wipe).
bool all_zero(const char* p, std::size_t n) {
    return std::all_of(p, p + n, [](char c) { return c == '\0'; });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(transient_copies)

BOOST_AUTO_TEST_CASE(request_body_and_authorization_are_zeroed) {
    const std::string body =
        "grant_type=refresh_token&refresh_token=rt-0123456789&client_secret=s-0123456789";
    const std::string bearer = "Bearer at-0123456789abcdef";
    beast::http::request<beast::http::string_body> req{beast::http::verb::post, "/token", 11};
    req.set(beast::http::field::host, "example.com");
    req.set(beast::http::field::authorization, bearer);
    req.body() = body;
    const char* body_bytes = req.body().data();
    const char* auth_bytes = req[beast::http::field::authorization].data();

    http::wipe_secrets(req);
    BOOST_TEST(req.body().empty());
    BOOST_TEST(all_zero(body_bytes, body.size()));
    BOOST_TEST(all_zero(auth_bytes, bearer.size()));
    BOOST_TEST(req[beast::http::field::host] == "example.com");  // the rest is left alone
}

BOOST_AUTO_TEST_CASE(consumed_read_buffer_is_zeroed) {
    http::read_buffer buffer;
    const std::string response = R"({"access_token":"at-0123456789abcdef","token_type":"Bearer"})";
    auto space = buffer.prepare(response.size());
    std::memcpy(space.data(), response.data(), response.size());
    buffer.commit(response.size());
    const char* bytes = static_cast<const char*>(buffer.data().data());
    buffer.consume(buffer.size());

    http::wipe_consumed(buffer);
    BOOST_TEST(all_zero(bytes, response.size()));
}

BOOST_AUTO_TEST_CASE(unconsumed_bytes_are_kept) {
    http::read_buffer buffer;
    const std::string pipelined = "HTTP/1.1 200 OK\r\n";
    auto space = buffer.prepare(pipelined.size());
    std::memcpy(space.data(), pipelined.data(), pipelined.size());
    buffer.commit(pipelined.size());

    http::wipe_consumed(buffer);
    BOOST_TEST(beast::buffers_to_string(buffer.data()) == pipelined);
}

BOOST_AUTO_TEST_SUITE_END()
