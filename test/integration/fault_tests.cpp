// Each emulator fault knob yields its documented error, within the configured deadline.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/test/unit_test.hpp>

#include <sstream>

#include "fixture.hpp"

using namespace apollo_oauth;
using apollo_oauth::test::emulator_fixture;
namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using kind = emulator::fault::kind;

namespace {

struct fault_fixture : emulator_fixture {
    // Deadlines short enough that a stall is noticed quickly.
    client_config fast_config() const {
        auto cfg = config();
        cfg.timeouts.response_header = std::chrono::milliseconds(300);
        cfg.timeouts.response_body = std::chrono::milliseconds(300);
        return cfg;
    }

    // A refresh with a valid token under fault `f`: the error and what the server said.
    std::pair<error_code, diagnostics> refresh_under(emulator::fault f) {
        client c{ioc.get_executor(), fast_config()};
        const auto tokens = obtain_tokens(c);
        server.inject(f);
        diagnostics diag;
        auto [ec, ignored] = run([&]() -> awaitable<std::tuple<error_code, token_set>> {
            co_return co_await c.async_refresh(tokens.refresh_token, {}, diag, asio::as_tuple(use_awaitable));
        });
        std::ostringstream line;
        line << "fault " << static_cast<int>(f.what) << ": " << ec.message() << " [" << diag << "]";
        test::secret_log::note(line.str());
        return {ec, diag};
    }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(faults, fault_fixture)

BOOST_AUTO_TEST_CASE(server_error_status_is_unexpected_status) {
    auto [ec, diag] =
        refresh_under({.what = kind::http_status, .where = emulator::route::token, .status = 503});
    BOOST_TEST(ec == errc::unexpected_status);
    BOOST_TEST(diag.http_status == 503u);
}

// A status Beast does not list (a CDN's 520) goes out by its number: written through
// int_to_status it was "000", which no client parses.
BOOST_AUTO_TEST_CASE(an_unlisted_status_goes_out_by_its_number) {
    auto [ec, diag] =
        refresh_under({.what = kind::http_status, .where = emulator::route::token, .status = 520});
    BOOST_TEST(ec == errc::unexpected_status);
    BOOST_TEST(diag.http_status == 520u);
}

BOOST_AUTO_TEST_CASE(rate_limit_is_rate_limited_with_retry_after) {
    auto [ec, diag] = refresh_under(
        {.what = kind::rate_limit, .where = emulator::route::token, .retry_after = std::chrono::seconds(7)});
    BOOST_TEST(ec == errc::rate_limited);
    BOOST_TEST(diag.http_status == 429u);
    BOOST_REQUIRE(diag.retry_after.has_value());
    BOOST_TEST(diag.retry_after->count() == 7);
}

BOOST_AUTO_TEST_CASE(connection_reset_is_a_transport_error_and_not_retried) {
    auto [ec, diag] = refresh_under({.what = kind::reset, .where = emulator::route::token});
    BOOST_TEST(ec.failed());
    BOOST_TEST(diag.http_status == 0u);
    // The refresh reached the server once and was not re-sent: it may have rotated.
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
}

BOOST_AUTO_TEST_CASE(malformed_body_is_malformed_response) {
    auto [ec, diag] = refresh_under({.what = kind::malformed_body, .where = emulator::route::token});
    BOOST_TEST(ec == errc::malformed_response);
    BOOST_TEST(diag.http_status == 200u);
}

BOOST_AUTO_TEST_CASE(oversized_body_hits_the_body_limit) {
    auto [ec, diag] = refresh_under({.what = kind::oversized_body, .where = emulator::route::token});
    BOOST_TEST(ec == boost::beast::http::error::body_limit);
}

BOOST_AUTO_TEST_CASE(stalled_headers_time_out) {
    auto [ec, diag] = refresh_under({.what = kind::stall_headers, .where = emulator::route::token});
    BOOST_TEST(ec == asio::error::timed_out);
}

BOOST_AUTO_TEST_CASE(stalled_body_times_out) {
    auto [ec, diag] = refresh_under({.what = kind::stall_body, .where = emulator::route::token});
    BOOST_TEST(ec == asio::error::timed_out);
}

BOOST_AUTO_TEST_CASE(latency_within_the_deadline_succeeds) {
    auto [ec, diag] = refresh_under(
        {.what = kind::latency, .where = emulator::route::token, .delay = std::chrono::milliseconds(50)});
    BOOST_TEST(!ec);
}

BOOST_AUTO_TEST_CASE(latency_past_the_deadline_times_out) {
    auto [ec, diag] = refresh_under(
        {.what = kind::latency, .where = emulator::route::token, .delay = std::chrono::milliseconds(2000)});
    BOOST_TEST(ec == asio::error::timed_out);
}

BOOST_AUTO_TEST_CASE(api_faults_surface_as_statuses_or_errors) {
    client c{ioc.get_executor(), fast_config()};
    const auto tokens = obtain_tokens(c);
    server.inject(
        {.what = kind::rate_limit, .where = emulator::route::api, .retry_after = std::chrono::seconds(3)});
    server.inject({.what = kind::http_status, .where = emulator::route::api, .status = 502});
    server.inject({.what = kind::stall_headers, .where = emulator::route::api});
    api_request req;
    req.target = "/v1/tasks/bulk_create";
    req.method = boost::beast::http::verb::post;
    req.body = "{}";
    auto send = [&] {
        return run([&]() -> awaitable<std::tuple<error_code, api_response>> {
            co_return co_await c.async_api_request(tokens.access_token, req, asio::as_tuple(use_awaitable));
        });
    };
    auto [ec1, limited] = send();
    BOOST_TEST(!ec1);
    BOOST_TEST(limited.status == 429u);
    BOOST_TEST(limited.header("retry-after").value_or("") == "3");
    auto [ec2, bad_gateway] = send();
    BOOST_TEST(bad_gateway.status == 502u);
    auto [ec3, stalled] = send();
    BOOST_TEST(ec3 == asio::error::timed_out);
    auto [ec4, fine] = send();  // faults used up: the next call works on a new connection
    BOOST_TEST(!ec4);
    BOOST_TEST(fine.status == 200u);
}

BOOST_AUTO_TEST_CASE(an_untrusted_certificate_fails_the_handshake) {
    auto cfg = config();
    cfg.tls.ca_pem.clear();  // only the system store, which does not know the emulator's CA
    cfg.tls.use_system_trust_store = true;
    client c{ioc.get_executor(), cfg};
    const secret_string refresh_token{"refresh-token-value"};
    auto [ec, ignored] = run([&]() -> awaitable<std::tuple<error_code, token_set>> {
        co_return co_await c.async_refresh(refresh_token, {}, asio::as_tuple(use_awaitable));
    });
    test::secret_log::note("untrusted certificate: " + ec.message());
    BOOST_TEST((ec.category() == asio::error::get_ssl_category()));
    BOOST_TEST(server.stats().token_requests == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
