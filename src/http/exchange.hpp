// One request/response exchange as one composed operation: wait for a connection, connect and
// handshake when it is new, write, read, hand the connection back.
#pragma once

#include "http/transport.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <cstddef>
#include <memory>

namespace apollo_oauth::http {

class connection_pool;

/// Starts the exchange of `req` (already framed by prepare_request) over a connection of `pool`.
///
/// Handler: void(error_code, response), run on `handler_ex`, never inline.
/// Executor: every step that touches a connection runs on that connection's strand (its stream
/// and its timer live there); waiting for a connection is an asynchronous wait in the pool.
/// Cancellation: `terminal`, emitted on any thread, through `caller_slot` (the caller's, passed
/// apart from `handler` so that no layer between the user and the exchange sits in the
/// emission's path: a composed op clearing its own slot on one thread while the user emits on
/// another would free the handler being run). While
/// the exchange waits in the pool it leaves the queue; once it holds a connection the emission
/// is carried to the connection's strand and reaches whichever operation is pending there
/// (Beast's reads and writes, the TLS handshake and the connect through their own slots; the
/// resolver, which has none, through a canceller of ours), and the socket is closed. Completes
/// with operation_aborted, or with the response when it was read whole first.
/// Errors: asio/ssl/beast codes; asio::error::timed_out for a phase past its deadline.
void start_exchange(std::shared_ptr<connection_pool> pool, request req, send_options options,
                    const apollo_oauth::timeouts& timeouts, std::size_t header_limit,
                    boost::asio::cancellation_slot caller_slot, boost::asio::any_io_executor handler_ex,
                    response_handler handler);

}  // namespace apollo_oauth::http
