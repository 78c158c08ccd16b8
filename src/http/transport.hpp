// HTTPS transport: keep-alive connection pools per origin, per-phase timeouts, limits, and a
// retry rule that never re-sends a request that may have reached the server unless it is
// idempotent.
#pragma once

#include <apollo_oauth/config.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace apollo_oauth::http {

using request = boost::beast::http::request<boost::beast::http::string_body>;
using response = boost::beast::http::response<boost::beast::http::string_body>;
using response_handler = boost::asio::any_completion_handler<void(error_code, response)>;

/// Where a request goes: one pool per origin.
struct origin {
    std::string host;
    std::string port;
    auto operator<=>(const origin&) const = default;
};

struct send_options {
    /// May be re-sent once when a reused keep-alive connection turns out to be closed. Token
    /// requests are not: a code is single-use and a refresh rotates.
    bool idempotent = false;
    std::size_t body_limit = 64 * 1024;
    /// The body holds secrets (a token response). A chunked one is then read into room for
    /// body_limit reserved up front: a body that grew chunk by chunk would move, and each move
    /// freed the copy it left unwiped. (A Content-Length body is reserved whole by Beast anyway.)
    bool secret_body = false;
};

class connection_pool;

/// Makes `req` ready for the wire to `to`: HTTP/1.1 (keep-alive), Host from the origin
/// (sansio::host_header: the one place a Host value is built, IPv6 in brackets), User-Agent, and
/// Content-Length from the body.
void prepare_request(const origin& to, request& req);

class transport {
public:
    /// Throws when the TLS configuration cannot be loaded.
    transport(boost::asio::any_io_executor ex, const client_config& config);
    ~transport();
    transport(const transport&) = delete;
    transport& operator=(const transport&) = delete;

    /// Sends `req` to `to` (framed by prepare_request) and reads the response.
    /// Handler: void(error_code, response), posted to `handler_ex`: never inline.
    /// Cancellation: `terminal` through `cancel_slot`, emitted on any thread (start_exchange says
    /// how it reaches the exchange); operation_aborted. The handler's own slot is not used.
    /// Errors: asio/ssl/beast codes, asio::error::timed_out for a phase past its deadline;
    /// errc::invalid_argument, nothing sent, for a request Beast cannot frame (a TRACE with a
    /// body).
    void send(const origin& to, request req, send_options options, boost::asio::cancellation_slot cancel_slot,
              boost::asio::any_io_executor handler_ex, response_handler handler);

private:
    std::shared_ptr<connection_pool> pool_for(const origin& to);

    boost::asio::any_io_executor executor_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    apollo_oauth::timeouts timeouts_;
    std::size_t header_limit_;
    pool_config pool_config_;
    std::mutex pools_mutex_;
    std::map<origin, std::shared_ptr<connection_pool>> pools_;
};

}  // namespace apollo_oauth::http
