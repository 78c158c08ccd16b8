// The hostile-server matrix, refresh column: token_cache::async_get on an expired token. One test case per
// misbehaviour; the expected outcome is the cell's argument, the checks are in hostile_matrix.cpp.
#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/test/unit_test.hpp>

#include "cache_fixture.hpp"
#include "hostile_matrix.hpp"

using namespace apollo_oauth;
using namespace apollo_oauth::test::hostile;

#define CELL(name, outcome) HOSTILE_CELL(refresh, name, outcome)

BOOST_AUTO_TEST_SUITE(hostile_refresh)

CELL(server_error, fails_with(errc::unexpected_status))
CELL(rate_limited_retry_after, fails_with(errc::rate_limited))
CELL(rate_limited_no_retry_after, fails_with(errc::rate_limited))
CELL(reset_before_request, fails_with(asio::error::connection_reset))
CELL(reset_after_request, fails_with(asio::error::connection_reset))
CELL(stall_headers, fails_with(asio::error::timed_out))
CELL(stall_mid_header, fails_with(asio::error::timed_out))
CELL(stall_body, fails_with(asio::error::timed_out))
CELL(endless_chunked, fails_with(http_error::error::body_limit))
CELL(trickling_chunked, fails_with(asio::error::timed_out))
CELL(huge_content_length, fails_with(http_error::error::body_limit))
CELL(oversized_headers, fails_with(http_error::error::header_limit))
// The chunk framing a parser holds whole, bounded by the read buffer (response_reading.hpp): a
// 1 MiB extension was read in full and the answer delivered; a 70 KB trailer field made Beast
// throw inside the read, out of io_context::run, the handler never called and the pool's slot lost.
CELL(oversized_chunk_extension, fails_with(http_error::error::buffer_overflow))
CELL(oversized_trailer, fails_with(http_error::error::buffer_overflow))
CELL(not_json, fails_with(errc::malformed_response))
CELL(truncated_json, fails_with(errc::malformed_response))
CELL(wrong_types_json, fails_with(errc::wrong_field_type))
CELL(redirect, fails_with(errc::unexpected_status))
// Interim responses are read past; a 101, or more of them than a client reads, fails, and the
// endpoint has run (the grant has rotated).
CELL(early_hints, succeeds())
CELL(many_early_hints, succeeds())
CELL(endless_interim, fails_with(errc::malformed_response))
CELL(switching_protocols, fails_with(errc::malformed_response))
// The answer arrives whole; the unsolicited response after it (in the same TLS record, or in
// the next one, read off the socket with it) is never read as the next request's answer: the
// connection is closed, not pooled.
CELL(trailing_response_in_same_record, succeeds())
CELL(trailing_response_in_next_record, succeeds())
CELL(wrong_name_certificate, fails_with(tls_failure(SSL_R_CERTIFICATE_VERIFY_FAILED)))
CELL(expired_certificate, fails_with(tls_failure(SSL_R_CERTIFICATE_VERIFY_FAILED)))
CELL(tls_1_1_only, fails_with(tls_failure(SSL_R_TLSV1_ALERT_PROTOCOL_VERSION)))

BOOST_AUTO_TEST_SUITE_END()

// What the cache does with a Retry-After from the token endpoint (the matrix cell above only
// shows that the next refresh works once the wait is over).
namespace {

using apollo_oauth::test::cache_fixture;
using namespace std::chrono_literals;

struct retry_after_fixture : cache_fixture {
    error_code get(token_cache& cache) {
        return run([&]() -> asio::awaitable<error_code> {
            auto [ec, token] = co_await cache.async_get("acme", asio::as_tuple(asio::use_awaitable));
            co_return ec;
        });
    }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(hostile_refresh_retry_after, retry_after_fixture)

BOOST_AUTO_TEST_CASE(no_refresh_is_sent_before_retry_after_has_passed) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};  // backoff: 1 s, doubling to 60 s
    seed(c, cache, "acme");
    expire_everything();
    server.inject({.what = emulator::fault::kind::rate_limit,
                   .where = emulator::route::token,
                   .retry_after = std::chrono::seconds(30)});
    BOOST_TEST(get(cache) == errc::rate_limited);
    clock.advance(5s);  // past the backoff, not past Retry-After
    BOOST_TEST(get(cache) == errc::rate_limited);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    clock.advance(30s);
    BOOST_TEST(!get(cache));
    BOOST_TEST(server.stats().refresh_token_grants == 2u);
}

BOOST_AUTO_TEST_CASE(a_retry_after_is_honoured_up_to_backoff_max) {
    client c{ioc.get_executor(), config()};
    auto settings = cache_settings();
    settings.backoff_max = std::chrono::seconds(60);
    token_cache cache{c, store, settings};
    seed(c, cache, "acme");
    expire_everything();
    server.inject({.what = emulator::fault::kind::rate_limit,
                   .where = emulator::route::token,
                   .retry_after = std::chrono::hours(24)});
    BOOST_TEST(get(cache) == errc::rate_limited);
    clock.advance(61s);  // a hostile Retry-After does not lock the account out for a day
    BOOST_TEST(!get(cache));
    BOOST_TEST(server.stats().refresh_token_grants == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
