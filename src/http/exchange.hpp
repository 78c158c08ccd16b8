// One request/response exchange: wait for a connection, connect and handshake when it is new,
// write, read, hand the connection back. Callback-driven on the connection's strand; the
// caller's handler is posted to the caller's executor.
#pragma once

#include "http/connection_pool.hpp"
#include "http/transport.hpp"

#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/parser.hpp>

#include <memory>
#include <mutex>
#include <optional>

namespace apollo_oauth::http {

class exchange : public std::enable_shared_from_this<exchange> {
public:
    exchange(std::shared_ptr<connection_pool> pool, request req, send_options options,
             const apollo_oauth::timeouts& timeouts, std::size_t header_limit);

    /// Takes a connection from the pool (or queues for one) and runs; `handler` gets the result,
    /// posted to `handler_ex`.
    void start(boost::asio::any_io_executor handler_ex, response_handler handler);
    /// Called by the pool when a queued exchange is handed a connection.
    void start_on(std::shared_ptr<connection> conn);
    /// Thread-safe: from the caller's cancellation slot (exchange_cancellation), on any thread.
    void cancel();

private:
    enum class phase { resolve, connect, handshake, write, read_header, read_body };

    void acquire_connection(bool fresh_only);
    void run_on_strand();
    bool has_finished();
    /// Finishes with operation_aborted when cancel() was called; true then.
    bool abort_if_cancelled();
    void resolve();
    void connect(const boost::asio::ip::tcp::resolver::results_type& endpoints);
    void handshake();
    void write();
    void read_header();
    void read_body();
    void on_io(phase where, error_code ec);
    bool should_retry(phase where, error_code ec) const;
    void finish(error_code ec);

    std::shared_ptr<connection_pool> pool_;
    request request_;
    send_options options_;
    apollo_oauth::timeouts timeouts_;
    std::size_t header_limit_;
    // optional + emplace: any_completion_handler's move assignment is broken in Boost 1.81.
    std::optional<response_handler> handler_;
    boost::asio::any_io_executor handler_ex_;

    std::shared_ptr<connection> conn_;
    std::optional<boost::asio::ip::tcp::resolver> resolver_;
    std::optional<boost::asio::steady_timer> resolve_timer_;
    std::optional<boost::beast::http::response_parser<boost::beast::http::string_body>> parser_;
    bool retried_ = false;
    bool resolve_timed_out_ = false;

    // Shared with cancel(), which may run on any thread.
    std::mutex cancel_mutex_;
    bool cancel_requested_ = false;
    bool finished_ = false;
};

/// The handler installed in a caller's cancellation slot: terminal cancellation cancels the
/// exchange; it does nothing once the exchange has finished (or is gone).
struct exchange_cancellation {
    // A constructor, not an aggregate: the slot constructs it with parentheses (clang 14).
    explicit exchange_cancellation(const std::shared_ptr<exchange>& op) : op(op) {}
    std::weak_ptr<exchange> op;
    void operator()(boost::asio::cancellation_type type) const;
};

}  // namespace apollo_oauth::http
