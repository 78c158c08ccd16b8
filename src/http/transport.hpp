// HTTPS transport: keep-alive connection pools per origin, per-phase timeouts, limits, and a
// retry rule that never re-sends a request that may have reached the server unless it is
// idempotent.
#pragma once

#include <apollo_oauth/config.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
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
};

class connection_pool;
class exchange;

/// Cancels one exchange from any thread; does nothing once it has completed.
class exchange_canceller {
public:
    exchange_canceller() = default;
    explicit exchange_canceller(std::weak_ptr<exchange> op) : op_(std::move(op)) {}
    void cancel() const;

private:
    std::weak_ptr<exchange> op_;
};

class transport {
public:
    /// Throws when the TLS configuration cannot be loaded.
    transport(boost::asio::any_io_executor ex, const client_config& config);
    ~transport();
    transport(const transport&) = delete;
    transport& operator=(const transport&) = delete;

    /// An exchange that has not started yet: install its canceller where cancellation may come
    /// from, then start() it. Starting is separate so no completion can race the installation.
    class prepared {
    public:
        exchange_canceller canceller() const;
        /// Sends the request and reads the response. The handler runs on an internal strand,
        /// never inline. Errors: asio/ssl/beast codes, asio::error::timed_out for a phase past its
        /// deadline, operation_aborted after cancel().
        void start(response_handler handler) &&;

    private:
        friend class transport;
        std::shared_ptr<exchange> op_;
    };

    /// Prepares sending `req` to `to`. Host is set here unless present; HTTP/1.1 keep-alive.
    prepared prepare(const origin& to, request req, send_options options);

    /// Connections open now, idle or busy, over all origins (for tests and metrics).
    std::size_t open_connections() const;

private:
    std::shared_ptr<connection_pool> pool_for(const origin& to);

    boost::asio::any_io_executor executor_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    apollo_oauth::timeouts timeouts_;
    std::size_t header_limit_;
    pool_config pool_config_;
    mutable std::mutex pools_mutex_;
    std::map<origin, std::shared_ptr<connection_pool>> pools_;
};

}  // namespace apollo_oauth::http
