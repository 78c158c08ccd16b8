// The hostile-server matrix, API column: api_client::async_request (POST). One test case per
// misbehaviour; the expected outcome is the cell's argument, the checks are in hostile_matrix.cpp.
#include <boost/test/unit_test.hpp>

#include "hostile_matrix.hpp"

using namespace apollo_oauth;
using namespace apollo_oauth::test::hostile;

#define CELL(name, outcome) HOSTILE_CELL(api, name, outcome)

BOOST_AUTO_TEST_SUITE(hostile_api)

// Statuses are the API's answer, passed through; 429 is retried (Retry-After or the default wait).
CELL(server_error, answers(503))
CELL(rate_limited_retry_after, answers(200))
CELL(rate_limited_no_retry_after, answers(200))
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
// API bodies are the application's to parse: the library passes them through.
CELL(not_json, answers(200))
CELL(truncated_json, answers(200))
CELL(wrong_types_json, answers(200))
// Not followed: the Bearer token never leaves for the Location's origin.
CELL(redirect, answers(307))
// Interim responses are read past, and the connection stays usable for the next request; a 101,
// or more of them than a client reads, fails.
CELL(early_hints, answers(200))
CELL(many_early_hints, answers(200))
CELL(endless_interim, fails_with(errc::malformed_response))
CELL(switching_protocols, fails_with(errc::malformed_response))
// The answer arrives whole; the unsolicited response after it (in the same TLS record, or in
// the next one, read off the socket with it) is never read as the next request's answer: the
// connection is closed, not pooled.
CELL(trailing_response_in_same_record, answers(200))
CELL(trailing_response_in_next_record, answers(200))
CELL(wrong_name_certificate, fails_with(tls_failure(SSL_R_CERTIFICATE_VERIFY_FAILED)))
CELL(expired_certificate, fails_with(tls_failure(SSL_R_CERTIFICATE_VERIFY_FAILED)))
CELL(tls_1_1_only, fails_with(tls_failure(SSL_R_TLSV1_ALERT_PROTOCOL_VERSION)))

BOOST_AUTO_TEST_SUITE_END()
