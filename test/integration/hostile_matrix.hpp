// The hostile-server matrix: every operation (code exchange, refresh through the token cache, API
// request through api_client) against every misbehaviour the emulator can show. One test case
// per cell (hostile_exchange_tests.cpp, hostile_refresh_tests.cpp, hostile_api_tests.cpp); each
// names its expected outcome, and the checks shared by every cell live in hostile_matrix.cpp:
// - the operation completes (a watchdog stops the io_context and fails the cell if it hangs),
//   with the expected error code or response status;
// - the request reached the server as often as it should (never for connection faults, once
//   otherwise: nothing is re-sent that may have had effects);
// - an operation that succeeds despite the fault returns what the endpoint gave (tokens, the
//   API's 200), never an interim 1xx;
// - a redirect target received nothing (no credential left for another origin);
// - after the fault is used up the next call on the same client succeeds (no poisoned pooled
//   connection), and for a refresh, the store holds the emulator's newest refresh token unless
//   the fault hid a rotation that did happen (then: reauthorization_required, by design).
#pragma once

#include <apollo_oauth/error.hpp>

#include <boost/asio/error.hpp>
#include <boost/beast/http/error.hpp>

#include <openssl/ssl.h>  // the SSL_R_* reasons cells expect

#include <string_view>

namespace apollo_oauth::test::hostile {

enum class misbehaviour {
    server_error,                 ///< 503 with an HTML page
    rate_limited_retry_after,     ///< 429, Retry-After: 1
    rate_limited_no_retry_after,  ///< 429 without Retry-After
    reset_before_request,         ///< RST right after the TLS handshake, nothing read
    reset_after_request,          ///< RST after the request was read (and processed)
    stall_headers,                ///< request processed, then silence
    stall_mid_header,             ///< request processed, half the response header, then silence
    stall_body,                   ///< request processed, header and half the body, then silence
    endless_chunked,              ///< 200, chunked, 1 KiB chunks as fast as the client reads
    trickling_chunked,            ///< 200, chunked, 1 KiB every 50 ms forever
    huge_content_length,          ///< 200 claiming Content-Length: 8 GiB, one byte, then silence
    oversized_headers,            ///< 200 with 64 KiB of header fields
    oversized_chunk_extension,    ///< 200, chunked, a chunk extension of 1 MiB on the size line
    oversized_trailer,            ///< 200, chunked, a 70 KB trailer field (past what Beast holds)
    not_json,                     ///< 200, application/json, an HTML body
    truncated_json,               ///< 200, a token object cut off mid-way
    wrong_types_json,             ///< 200, access_token a number, expires_in a string
    redirect,                     ///< 307 to a second emulator
    early_hints,                  ///< request processed, 103 Early Hints, 50 ms, then the answer
    many_early_hints,             ///< request processed, 16 interim 103s, then the answer
    endless_interim,              ///< request processed, 17 interim 103s (more than a client reads)
    switching_protocols,          ///< request processed, 101 Switching Protocols, then the answer
    wrong_name_certificate,       ///< TLS: a certificate for other.example.com (trusted CA)
    expired_certificate,          ///< TLS: an expired certificate (trusted CA, right name)
    tls_1_1_only,                 ///< TLS: the server speaks TLS 1.0/1.1 only
    /// request processed, the answer padded to end on a 512-byte read, then in the same TLS record
    /// a second, unsolicited 200 response
    trailing_response_in_same_record,
    /// request processed, the answer in a TLS record of its own, then a second, unsolicited 200
    /// response in the next record, sent in the same TCP segment
    trailing_response_in_next_record,
};

/// What a cell expects the operation to complete with.
struct expected {
    error_code error{};        ///< an empty code: success
    unsigned http_status = 0;  ///< exchange: diagnostics::http_status; api: the response status
};

/// The operation succeeds (an exchange or a refresh: the tokens the endpoint issued); `status` is
/// the HTTP status the diagnostics report (an exchange's: the final answer's, never a 1xx).
expected succeeds(unsigned status = 0);
/// The operation fails with `ec`; `status` is the HTTP status the diagnostics report (0: none).
expected fails_with(error_code ec, unsigned status = 0);
/// api_client completes without error and returns a response with this status.
expected answers(unsigned status);
/// An asio::ssl category error carrying OpenSSL's reason code `reason` (SSL_R_*).
error_code tls_failure(int reason);

/// Each runs one cell on a fresh emulator and fresh clients, and checks it (see above).
void exchange_cell(misbehaviour m, expected want);
void refresh_cell(misbehaviour m, expected want);
void api_cell(misbehaviour m, expected want);

// Names for the expected outcomes in the cell tables.
namespace asio = boost::asio;
namespace http_error = boost::beast::http;

}  // namespace apollo_oauth::test::hostile

/// One cell: a test case named after the misbehaviour, running `op`_cell with its expectation.
#define HOSTILE_CELL(op, name, outcome)                                                             \
    BOOST_AUTO_TEST_CASE(name) {                                                                    \
        ::apollo_oauth::test::hostile::op##_cell(::apollo_oauth::test::hostile::misbehaviour::name, \
                                                 outcome);                                          \
    }
