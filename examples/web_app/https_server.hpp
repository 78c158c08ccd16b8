// A small HTTPS/1.1 server on Beast: accepts on an io_context that any number of threads run,
// one strand per connection, keep-alive, deadlines on every phase. It knows nothing of OAuth: each
// request goes to the handler it was given. A request it cannot read is answered 400 (not
// HTTP/1.1), 431 (headers past 8 KiB) or 413 (a body past 64 KiB), and its connection closed. A
// connection ends with a lingering close: the server ends its side, then drops what the client
// still sends until the client closes too (at most 5 s), so that a client still uploading when its
// last answer went out is not reset, and does not lose that answer.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

namespace web_app {

using request = boost::beast::http::request<boost::beast::http::string_body>;
using response = boost::beast::http::response<boost::beast::http::string_body>;
/// Answers one request from the client at `peer`; runs on the connection's strand. Exceptions
/// become a 500.
using request_handler =
    std::function<boost::asio::awaitable<response>(request, boost::asio::ip::address peer)>;

struct connection_limits {
    /// Connections served at once; the next ones wait in the listen backlog until one ends.
    std::size_t total = 10'000;
    /// Connections one client address (client_key(): an IPv4 address or an IPv6 /64) holds at
    /// once. One more from it is closed as soon as it is accepted, so that a few clients that
    /// trickle their requests cannot take every place and keep everyone else in the backlog until
    /// their deadlines. 0: no such limit (behind a reverse proxy, every connection has its address).
    std::size_t per_address = 256;
};

class https_server {
public:
    /// Binds `where` now (throws on failure); serves once start() is called, within `limits`.
    /// When accepting fails for want of descriptors or memory, the next try waits 100 ms, doubling
    /// up to 1 s (or until a connection ends), instead of failing again at once.
    https_server(boost::asio::io_context& ioc, boost::asio::ssl::context& tls,
                 boost::asio::ip::tcp::endpoint where, request_handler handler, connection_limits limits);
    ~https_server();

    boost::asio::ip::tcp::endpoint local_endpoint() const;
    void start();
    /// Stops accepting and stops reading: the connections that wait for a request (or a
    /// handshake) end at once. A request already received (read, or its bytes arrived) gets up to
    /// `drain` to have its answer written (with Connection: close); what the client pipelined
    /// behind it is not processed (RFC 9112 §9.6), but a request behind an answer that went out
    /// without Connection: close before the stop is read and answered. Then every connection still
    /// open is closed, and stop completes. A handler still running goes on (its answer is not
    /// written): what it waits for must end it.
    boost::asio::awaitable<void> stop(std::chrono::milliseconds drain);

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace web_app
