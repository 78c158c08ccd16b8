#include "https_server.hpp"

#include "client_key.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace web_app {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using namespace std::chrono_literals;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr auto handshake_timeout = 10s;
constexpr auto idle_timeout = 60s;  // between requests on a keep-alive connection
constexpr auto write_timeout = 30s;
constexpr std::size_t body_limit = 64 * 1024;
// The most a connection's read buffer holds unconsumed: Beast's request header limit (8 KiB) and
// room for a chunk's size line or a chunked body's trailer, which its parser needs whole and
// bounds by nothing else (a trailer field past 65,533 bytes made it throw inside the read, out of
// io_context::run: one request ended the process). Past it the read fails: a 400.
constexpr std::size_t read_buffer_limit = 8 * 1024 + 4 * 1024;
// How long a connection whose last answer went out reads (and drops) what the client still sends,
// waiting for its end of the stream: see close_lingering.
constexpr auto linger_timeout = 5s;
constexpr std::chrono::milliseconds first_accept_backoff =
    100ms;  // after accept failed for want of descriptors
constexpr std::chrono::milliseconds max_accept_backoff = 1s;

response internal_error(unsigned version) {
    response res{http::status::internal_server_error, version};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = "internal error\n";
    return res;
}

// The answer to a request that could not be read, or nothing where there is no one to answer (the
// client closed, the read timed out, TLS failed). The request's own version may never have been
// parsed, so the answer is HTTP/1.1, and it closes the connection: where the next request would
// begin is unknown. Without it, a browser whose form was too large saw only a reset connection.
std::optional<response> answer_to_unreadable(const error_code& ec) {
    if (ec.category() != http::make_error_code(http::error::body_limit).category()) {
        return std::nullopt;
    }
    http::status status = http::status::bad_request;
    switch (static_cast<http::error>(ec.value())) {
        case http::error::body_limit:
            status = http::status::payload_too_large;  // RFC 9110 §15.5.14
            break;
        case http::error::header_limit:
            status = http::status::request_header_fields_too_large;  // RFC 6585 §5
            break;
        case http::error::end_of_stream:
        case http::error::partial_message:
        case http::error::need_more:
        case http::error::need_buffer:
        case http::error::stale_parser:
        case http::error::short_read:
            return std::nullopt;  // the stream ended, or our own buffer's doing: not the request's
        default:
            // The bad_* family: a request that is not HTTP/1.1 (RFC 9112 §2.2: 400); and
            // buffer_overflow: a chunk size line or trailer past read_buffer_limit.
            break;
    }
    response res{status, 11};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = std::string(http::obsolete_reason(status)) + "\n";
    return res;
}

// A lingering close, as Apache and nginx do it. The client may still be sending when its last
// answer goes out: a body the answer refused, requests pipelined behind a Connection: close.
// Closing a socket with unread bytes makes the kernel reset the connection (RFC 1122
// §4.2.2.13) and drop what it has not sent yet, which may be that very answer. So the send side
// ends with a FIN, and what arrives is read and dropped until the client closes too, or for
// linger_timeout. (Once the drain has shut the receive side, the read ends as soon as what had
// arrived is dropped.)
asio::awaitable<void> close_lingering(beast::tcp_stream& transport) {
    error_code ignored;  // a client that reset the connection already: there is nothing to keep
    transport.socket().shutdown(tcp::socket::shutdown_send, ignored);
    transport.expires_after(linger_timeout);
    std::array<char, 4096> dropped;
    for (;;) {
        if (auto [ec, n] = co_await transport.async_read_some(asio::buffer(dropped), use_tuple); ec) {
            break;
        }
    }
    transport.close();
}

// One accepted connection. Its members are used on its strand (the stream's executor) only.
struct connection {
    connection(tcp::socket socket, ssl::context& tls)
        : peer(remote_address(socket)), client(client_key(peer)), stream(std::move(socket), tls) {}

    static asio::ip::address remote_address(const tcp::socket& socket) {
        error_code ec;  // a client already gone: it is not answered anyway
        return socket.remote_endpoint(ec).address();
    }

    // Ends whatever the connection waits for (its operations complete with operation_aborted).
    void close() { beast::get_lowest_layer(stream).close(); }

    // Ends a wait for a request (or a handshake): the read sees the end of the stream. Unlike
    // close(), it leaves what already arrived readable and the socket writable: a request read, or
    // whose bytes are in, is still answered. (Closing could not tell a connection waiting for a
    // request from one whose read had just completed, its handler not yet run on the strand: that
    // request lost its answer.)
    void stop_reading() {
        error_code ignored;  // a connection the client closed already
        beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_receive, ignored);
    }

    const asio::ip::address peer;
    const std::string client;  ///< client_key(peer): what the per-address limit counts
    ssl::stream<beast::tcp_stream> stream;
};

asio::awaitable<void> serve(std::shared_ptr<connection> c, request_handler handler,
                            const std::atomic<bool>& stopping) {
    auto& stream = c->stream;
    auto& transport = beast::get_lowest_layer(stream);
    transport.expires_after(handshake_timeout);
    if (auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple); ec) {
        co_return;  // a browser that gave up, a port scan, a client that distrusts us
    }
    beast::flat_buffer buffer(read_buffer_limit);
    // Requests are read until an answer says Connection: close, whether the server stops meanwhile
    // or not: an answer that went out without it (the drain began while it was being written)
    // promised the client that its next request would be read, and a request pipelined behind
    // that one may be in `buffer` already. Once the drain has shut the receive side, the read
    // returns what had arrived, then the end of the stream.
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(body_limit);
        transport.expires_after(idle_timeout);
        if (auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_tuple); ec) {
            if (auto answer = answer_to_unreadable(ec)) {
                answer->keep_alive(false);
                answer->prepare_payload();
                transport.expires_after(write_timeout);
                co_await http::async_write(stream, *answer, use_tuple);
            }
            break;
        }
        request req = parser.release();
        const unsigned version = req.version();
        bool keep_alive = req.keep_alive();
        response res;
        try {
            res = co_await handler(std::move(req), c->peer);
        } catch (const std::exception& e) {
            std::cerr << "web_app: handler failed: " << e.what() << "\n";  // no request data in it
            res = internal_error(version);
        }
        // Stopping, this answer is the last: it says Connection: close, and what the client
        // pipelined behind its request (in `buffer`, or still on the way) is not processed. RFC
        // 9112 §9.6 asks exactly that of a server that sends close, and it is what lets the client
        // resend those requests on a new connection, a POST included: the close in the last
        // answer tells it that nothing after that request was processed (§9.3.1, §9.3.2).
        // Answering what happens to be in the buffer would not spare the client that: how much of
        // a pipeline has arrived depends on TLS records and TCP segments, so the last answer must
        // say close wherever that line falls; and the drain's time would go to one client's
        // pipeline rather than to the answers already under way.
        keep_alive = keep_alive && !stopping;
        res.version(version);
        res.keep_alive(keep_alive);
        res.prepare_payload();
        transport.expires_after(write_timeout);
        auto [ec, n] = co_await http::async_write(stream, res, use_tuple);
        if (ec || !keep_alive) {
            break;
        }
    }
    if (stopping) {
        // The drain shut the receive side, so the peer's close_notify may never be read (a read
        // after the end of the stream was seen waits for readiness that does not come again):
        // send ours and close, without waiting for the handshake deadline.
        SSL_set_shutdown(stream.native_handle(), SSL_RECEIVED_SHUTDOWN);
    }
    transport.expires_after(handshake_timeout);
    co_await stream.async_shutdown(use_tuple);
    co_await close_lingering(transport);
}

}  // namespace

// The accept loop and the set of open connections live on the acceptor's strand.
struct https_server::impl : std::enable_shared_from_this<impl> {
    impl(asio::io_context& ioc, ssl::context& tls, tcp::endpoint where, request_handler handler,
         connection_limits limits)
        : ioc(ioc),
          tls(tls),
          acceptor(asio::make_strand(ioc), where),
          wake(acceptor.get_executor()),
          drained(acceptor.get_executor()),
          handler(std::move(handler)),
          limits(limits) {}

    asio::awaitable<void> accept_loop() {
        auto self = shared_from_this();  // lives as long as the loop
        auto backoff = first_accept_backoff;
        while (!stopping) {
            if (open.size() >= limits.total) {
                // Each connection holds a descriptor and its buffers; the next ones wait in the
                // listen backlog (the kernel has completed their TCP handshakes) until one ends.
                wake.expires_at(asio::steady_timer::time_point::max());
                co_await wake.async_wait(use_tuple);
                continue;
            }
            auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(ioc), use_tuple);
            if (stopping) {
                co_return;
            }
            if (ec == asio::error::connection_aborted) {
                continue;  // the client left before we took it: its backlog entry is gone too
            }
            if (ec) {
                // Out of descriptors (EMFILE, ENFILE) or memory: the connection stays in the
                // backlog and the acceptor readable, so accepting again at once fails at once, and
                // the loop would spin a core. Wait until a connection ends, or a while.
                wake.expires_after(backoff);
                co_await wake.async_wait(use_tuple);
                backoff = std::min(2 * backoff, max_accept_backoff);
                continue;
            }
            backoff = first_accept_backoff;
            auto c = std::make_shared<connection>(std::move(socket), tls);
            if (!admit(*c)) {
                continue;  // its address holds its share: closed before its handshake costs anything
            }
            open.insert(c);
            asio::co_spawn(c->stream.get_executor(), serve(c, handler, stopping),
                           [self, c](const std::exception_ptr&) {
                               asio::post(self->acceptor.get_executor(), [self, c] { self->closed(c); });
                           });
        }
    }

    // Counts `c` against its address, or closes it when the address holds limits.per_address
    // already. Closed rather than left in the backlog: the backlog is everyone's queue, and one
    // address waiting at its head would keep the others behind it.
    bool admit(connection& c) {
        if (limits.per_address == 0) {
            return true;
        }
        auto& held = per_address[c.client];
        if (held >= limits.per_address) {
            c.close();
            return false;
        }
        ++held;
        return true;
    }

    void closed(const std::shared_ptr<connection>& c) {
        open.erase(c);
        if (const auto it = per_address.find(c->client); it != per_address.end() && --it->second == 0) {
            per_address.erase(it);
        }
        wake.cancel();  // a descriptor and a place are free: the accept loop may go on
        if (stopping && open.empty()) {
            drained.cancel();
        }
    }

    asio::awaitable<void> stop(std::chrono::milliseconds drain) {
        auto self = shared_from_this();
        stopping = true;
        error_code ignored;
        acceptor.close(ignored);
        wake.cancel();
        // Each connection stops reading, on its own strand: one waiting for a request ends at once,
        // and one with a request in is answered (Connection: close), then ends.
        for (const auto& c : open) {
            asio::post(c->stream.get_executor(), [c] { c->stop_reading(); });
        }
        if (!open.empty()) {
            drained.expires_after(drain);
            co_await drained.async_wait(use_tuple);  // cancelled once the last connection ends
        }
        for (const auto& c : open) {
            asio::post(c->stream.get_executor(), [c] { c->close(); });
        }
    }

    asio::io_context& ioc;
    ssl::context& tls;
    tcp::acceptor acceptor;
    asio::steady_timer wake;     ///< the accept loop's wait: for a free place, or a backoff
    asio::steady_timer drained;  ///< stop(): a condition variable for "no connection left"
    request_handler handler;
    const connection_limits limits;
    std::atomic<bool> stopping = false;  ///< read by the connections, on their strands
    std::unordered_set<std::shared_ptr<connection>> open;
    std::unordered_map<std::string, std::size_t> per_address;  ///< open connections by client_key()
};

https_server::https_server(asio::io_context& ioc, ssl::context& tls, tcp::endpoint where,
                           request_handler handler, connection_limits limits)
    : impl_(std::make_shared<impl>(ioc, tls, where, std::move(handler), limits)) {}

https_server::~https_server() = default;

tcp::endpoint https_server::local_endpoint() const {
    return impl_->acceptor.local_endpoint();
}

void https_server::start() {
    asio::co_spawn(impl_->acceptor.get_executor(), impl_->accept_loop(), asio::detached);
}

asio::awaitable<void> https_server::stop(std::chrono::milliseconds drain) {
    // On the acceptor's strand, where the set of connections lives.
    const auto strand = impl_->acceptor.get_executor();
    co_await asio::co_spawn(strand, impl_->stop(drain), asio::use_awaitable);
}

}  // namespace web_app
