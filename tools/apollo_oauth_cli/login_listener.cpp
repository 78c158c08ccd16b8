// login's HTTPS listener on loopback.
#include "login_listener.hpp"

#include <algorithm>
#include <ostream>  // before beast's verb.hpp

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <openssl/ssl.h>

#include <fcntl.h>

#include <apollo_oauth/detail/wiping_allocator.hpp>

#include <string_view>

namespace apollo_oauth::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

// A browser that connects and never sends a request is dropped after this.
constexpr std::chrono::seconds connection_deadline{30};
// The pauses after a failed accept: the first, and the longest it doubles to.
constexpr std::chrono::milliseconds first_accept_pause{10};
constexpr std::chrono::milliseconds longest_accept_pause{1'000};

// What holds the redirect's bytes, code included, in this process's memory, each zeroed before it
// is freed (the library's wiping allocator, as for its client's read buffer), so that no freed
// block keeps the code on any path: answered, refused, malformed, cut short, or dropped with the
// connection when the wait ends (tests login_listener_heap_scan_*: each of the three types below
// left as std::allocator fails them). OpenSSL's own record buffers are wiped by
// SSL_OP_CLEANSE_PLAINTEXT (below).
using wiping_chars = apollo_oauth::detail::wiping_allocator<char>;
// The connection's read buffer: the request as it arrived, and what it frees as it grows.
using wiping_read_buffer = beast::basic_flat_buffer<wiping_chars>;
// The parsed request: its target (code included) and header values live in the fields'
// allocations, its body (a GET has none, but a request may carry one) in the body's.
using wiping_request = http::request<http::basic_string_body<char, std::char_traits<char>, wiping_chars>,
                                     http::basic_fields<wiping_chars>>;
// The URL given to the judge.
using wiping_string = std::basic_string<char, std::char_traits<char>, wiping_chars>;

// Asio 1.81 makes sockets without SOCK_CLOEXEC (and accepts with accept(), not accept4): a listener
// left inheritable went into `login --open`'s xdg-open and the browser it started, which kept
// 127.0.0.1:PORT listening after login exited, so the next login failed with EADDRINUSE.
// Set before anything is spawned (the browser is started before the io_context runs).
void close_on_exec(int fd) {
    ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC);
}

}  // namespace

struct login_listener::impl : std::enable_shared_from_this<impl> {
    impl(asio::io_context& ioc, tcp::endpoint endpoint, std::string origin, std::string path,
         callback_judge j)
        : tls(ssl::context::tls_server),
          acceptor(ioc),
          finished(ioc, asio::steady_timer::time_point::max()),
          accept_pause(ioc),
          callback_origin(std::move(origin)),
          callback_path(std::move(path)),
          judge(std::move(j)) {
        acceptor.open(endpoint.protocol());
        close_on_exec(acceptor.native_handle());
        acceptor.set_option(tcp::acceptor::reuse_address(true));
        acceptor.bind(endpoint);
        acceptor.listen();
    }

    ssl::context tls;
    tcp::acceptor acceptor;
    asio::steady_timer finished;      // its expiry is the deadline; cancelled when settled or stopped
    asio::steady_timer accept_pause;  // after a failed accept; cancelled by finish()
    std::string callback_origin;
    std::string callback_path;
    callback_judge judge;
    bool settled = false;

    void finish() {
        acceptor.close();
        accept_pause.cancel();
        finished.cancel();
    }

    asio::awaitable<void> accept_loop() {
        auto self = shared_from_this();
        auto pause = first_accept_pause;
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
            if (ec) {
                if (!acceptor.is_open()) {
                    co_return;  // closed: the wait is over
                }
                // Out of descriptors (EMFILE: connections that never send a request hold theirs
                // for connection_deadline) or memory: the browser's connection waits in the
                // backlog. Ending the loop here left login waiting for a redirect it could no
                // longer accept until its timeout; retrying at once would spin a core.
                accept_pause.expires_after(pause);
                co_await accept_pause.async_wait(asio::as_tuple(asio::use_awaitable));
                pause = std::min(pause * 2, longest_accept_pause);
                continue;
            }
            pause = first_accept_pause;
            close_on_exec(socket.native_handle());
            asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
        }
    }

    asio::awaitable<void> serve(tcp::socket socket) {
        auto self = shared_from_this();
        beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), tls);
        beast::get_lowest_layer(stream).expires_after(connection_deadline);
        auto [hec] =
            co_await stream.async_handshake(ssl::stream_base::server, asio::as_tuple(asio::use_awaitable));
        if (hec) {
            co_return;  // e.g. a browser that rejected the self-signed certificate
        }
        // Bounded: Beast's parser needs a chunk's size line and a chunked body's trailer whole in
        // the buffer and limits neither (a trailer field past 65,533 bytes makes it throw inside
        // the read). Its request header limit (8 KiB) and 4 KiB more; past that the read fails.
        wiping_read_buffer buffer(8 * 1024 + 4 * 1024);
        for (;;) {
            wiping_request request;
            auto [rec, n] =
                co_await http::async_read(stream, buffer, request, asio::as_tuple(asio::use_awaitable));
            if (rec || settled) {
                co_return;
            }
            // Views of the request's target, not copies: a copy would be one more block to wipe.
            const std::string_view target = request.target();
            const std::string_view path = target.substr(0, target.find('?'));
            callback_verdict verdict{404, "Not found. apollo-oauth is waiting for " + callback_path + "\n",
                                     false};
            if (request.method() == http::verb::get && path == callback_path) {
                wiping_string url;
                url.reserve(callback_origin.size() + target.size());
                url.append(callback_origin).append(target);
                verdict = judge(url);
            }
            http::response<http::string_body> response{static_cast<http::status>(verdict.status),
                                                       request.version()};
            response.set(http::field::content_type, "text/plain; charset=utf-8");
            response.set(http::field::cache_control, "no-store");
            response.keep_alive(!verdict.done && request.keep_alive());
            response.body() = std::move(verdict.page);
            response.prepare_payload();
            auto [wec, written] =
                co_await http::async_write(stream, response, asio::as_tuple(asio::use_awaitable));
            if (verdict.done && !settled) {
                settled = true;
                finish();
            }
            if (wec || !response.keep_alive()) {
                co_await stream.async_shutdown(asio::as_tuple(asio::use_awaitable));
                co_return;
            }
        }
    }
};

login_listener::login_listener(asio::io_context& ioc, tcp::endpoint endpoint, const std::string& cert_pem,
                               const std::string& key_pem, std::string callback_origin,
                               std::string callback_path, callback_judge judge)
    : impl_(std::make_shared<impl>(ioc, endpoint, std::move(callback_origin), std::move(callback_path),
                                   std::move(judge))) {
    impl_->tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    // What it reads is the redirect, whose code is a secret: OpenSSL wipes its decrypted records
    // before it frees their buffers (as the library's client does for a token answer,
    // src/http/exchange.cpp). Every connection: the listener serves one redirect, so it costs
    // nothing worth keeping (tests login_listener_heap_scan_* fail without it).
    SSL_CTX_set_options(impl_->tls.native_handle(), SSL_OP_CLEANSE_PLAINTEXT);
    impl_->tls.use_certificate_chain(asio::buffer(cert_pem));
    impl_->tls.use_private_key(asio::buffer(key_pem), ssl::context::pem);
}

login_listener::~login_listener() {
    boost::system::error_code ignored;
    impl_->acceptor.close(ignored);
}

asio::awaitable<bool> login_listener::async_wait_for_callback(std::chrono::seconds timeout) {
    impl_->finished.expires_after(timeout);
    asio::co_spawn(impl_->acceptor.get_executor(), impl_->accept_loop(), asio::detached);
    co_await impl_->finished.async_wait(asio::as_tuple(asio::use_awaitable));
    impl_->finish();  // (closes the acceptor, and ends an accept loop's pause)
    co_return impl_->settled;
}

void login_listener::stop() {
    impl_->finish();
}

tcp::endpoint login_listener::local_endpoint() const {
    return impl_->acceptor.local_endpoint();
}

}  // namespace apollo_oauth::cli
