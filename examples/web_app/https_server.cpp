#include "https_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <chrono>
#include <exception>
#include <iostream>

namespace web_app {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr auto handshake_timeout = 10s;
constexpr auto idle_timeout = 60s;  // between requests on a keep-alive connection
constexpr auto write_timeout = 30s;
constexpr std::size_t body_limit = 64 * 1024;

response internal_error(unsigned version) {
    response res{http::status::internal_server_error, version};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = "internal error\n";
    return res;
}

asio::awaitable<void> serve(ssl::stream<beast::tcp_stream> stream, request_handler handler) {
    auto& transport = beast::get_lowest_layer(stream);
    transport.expires_after(handshake_timeout);
    if (auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple); ec) {
        co_return;  // a browser that gave up, a port scan, a client that distrusts us
    }
    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(body_limit);
        transport.expires_after(idle_timeout);
        if (auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_tuple); ec) {
            break;
        }
        request req = parser.release();
        const bool keep_alive = req.keep_alive();
        const unsigned version = req.version();
        response res;
        try {
            res = co_await handler(std::move(req));
        } catch (const std::exception& e) {
            std::cerr << "web_app: handler failed: " << e.what() << "\n";  // no request data in it
            res = internal_error(version);
        }
        res.version(version);
        res.keep_alive(keep_alive);
        res.prepare_payload();
        transport.expires_after(write_timeout);
        if (auto [ec, n] = co_await http::async_write(stream, res, use_tuple); ec || !keep_alive) {
            break;
        }
    }
    transport.expires_after(handshake_timeout);
    co_await stream.async_shutdown(use_tuple);
}

}  // namespace

struct https_server::impl : std::enable_shared_from_this<impl> {
    impl(asio::io_context& ioc, ssl::context& tls, tcp::endpoint where, request_handler handler)
        : ioc(ioc), tls(tls), acceptor(asio::make_strand(ioc), where), handler(std::move(handler)) {}

    asio::awaitable<void> accept_loop() {
        auto self = shared_from_this();  // lives as long as the loop
        while (acceptor.is_open()) {
            auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(ioc), use_tuple);
            if (ec) {
                if (ec == asio::error::operation_aborted) {
                    co_return;
                }
                continue;  // e.g. too many open files: keep serving the others
            }
            auto executor = socket.get_executor();
            asio::co_spawn(executor, serve(ssl::stream<beast::tcp_stream>(std::move(socket), tls), handler),
                           asio::detached);
        }
    }

    asio::io_context& ioc;
    ssl::context& tls;
    tcp::acceptor acceptor;
    request_handler handler;
};

https_server::https_server(asio::io_context& ioc, ssl::context& tls, tcp::endpoint where,
                           request_handler handler)
    : impl_(std::make_shared<impl>(ioc, tls, where, std::move(handler))) {}

https_server::~https_server() = default;

tcp::endpoint https_server::local_endpoint() const {
    return impl_->acceptor.local_endpoint();
}

void https_server::start() {
    asio::co_spawn(impl_->acceptor.get_executor(), impl_->accept_loop(), asio::detached);
}

void https_server::stop() {
    asio::post(impl_->acceptor.get_executor(), [self = impl_] { self->acceptor.close(); });
}

}  // namespace web_app
