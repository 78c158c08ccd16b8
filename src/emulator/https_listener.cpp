#include "emulator/https_listener.hpp"

#include "emulator/certificates.hpp"
#include "emulator/routes.hpp"
#include "emulator/state.hpp"
#include "net/close_on_exec.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/system/system_error.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace apollo_oauth::emulator::detail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr auto handshake_timeout = 10s;
constexpr auto idle_timeout = 60s;
constexpr auto write_timeout = 60s;
constexpr auto shutdown_timeout = 5s;
constexpr std::size_t body_limit = 1024 * 1024;
// The most a connection's read buffer holds unconsumed: Beast's request header limit (8 KiB) and
// room for a chunk's size line or a chunked body's trailer, which the parser needs whole and
// bounds by nothing else (a trailer field past 65,533 bytes would make it throw inside the read,
// out of io_context::run). Past it the read fails with buffer_overflow: a 400.
constexpr std::size_t read_buffer_limit = 8 * 1024 + 4 * 1024;

// One connection. Everything in it runs on its own strand: the serving coroutine and close().
struct session {
    session(tcp::socket socket, ssl::context& tls)
        : stream(std::move(socket), tls), timer(stream.get_executor()) {}

    void close() {
        closing = true;
        timer.cancel();
        beast::get_lowest_layer(stream).close();  // aborts any pending read, write or stall
    }

    ssl::stream<beast::tcp_stream> stream;
    asio::steady_timer timer;  ///< latency faults
    bool closing = false;
};

ssl::context make_tls_context(const std::string& leaf_cert_pem, const std::string& leaf_key_pem) {
    ssl::context tls(ssl::context::tls_server);
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                    ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
    tls.use_certificate_chain(asio::buffer(leaf_cert_pem));
    tls.use_private_key(asio::buffer(leaf_key_pem), ssl::context::pem);
    return tls;
}

// A server stuck in the past: TLS 1.0 and 1.1 only. OpenSSL 3 refuses them at its default
// security level (their handshake signatures use SHA-1), hence level 0, for this context only.
ssl::context make_tls_1_1_context(const certificate_chain& certificates) {
    ssl::context tls(ssl::context::tls_server);
    SSL_CTX_set_security_level(tls.native_handle(), 0);
    SSL_CTX_set_cipher_list(tls.native_handle(), "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_VERSION);
    SSL_CTX_set_max_proto_version(tls.native_handle(), TLS1_1_VERSION);
    tls.use_certificate_chain(asio::buffer(certificates.leaf_cert_pem));
    tls.use_private_key(asio::buffer(certificates.leaf_key_pem), ssl::context::pem);
    return tls;
}

bool is_http_parse_error(const boost::system::error_code& ec) {
    return ec.category() == http::make_error_code(http::error::body_limit).category();
}

unsigned status_for_parse_error(const boost::system::error_code& ec) {
    if (ec == http::error::body_limit) {
        return 413;
    }
    if (ec == http::error::header_limit) {
        return 431;
    }
    return 400;
}

// TLS close_notify, bounded: a peer that neither answers nor closes does not hold the session.
asio::awaitable<void> shut_down(session& s) {
    beast::get_lowest_layer(s.stream).expires_after(shutdown_timeout);
    co_await s.stream.async_shutdown(use_tuple);
    beast::get_lowest_layer(s.stream).close();
}

// A stalled connection sends nothing more. Reading (and discarding) lets the session end as soon
// as the client gives up and closes; close() ends it at shutdown.
asio::awaitable<void> stall(session& s) {
    beast::get_lowest_layer(s.stream).expires_never();
    std::array<char, 1024> sink{};
    for (;;) {
        const auto [ec, n] = co_await s.stream.async_read_some(asio::buffer(sink), use_tuple);
        if (ec || s.closing) {
            co_return;
        }
    }
}

// SO_LINGER 0 turns close() into an RST: the client sees a reset, not an orderly end.
void reset(session& s) {
    boost::system::error_code ec;
    beast::get_lowest_layer(s.stream).socket().set_option(asio::socket_base::linger(true, 0), ec);
    beast::get_lowest_layer(s.stream).close();
}

// Writes `piece` every `interval` (back to back when zero) until the client goes away or the
// server stops; `once` stops after the first write and stalls instead.
asio::awaitable<void> stream_forever(session& s, std::string piece, std::chrono::milliseconds interval,
                                     bool once) {
    auto& transport = beast::get_lowest_layer(s.stream);
    for (;;) {
        transport.expires_after(write_timeout);
        if (const auto [ec, n] = co_await asio::async_write(s.stream, asio::buffer(piece), use_tuple);
            ec || s.closing) {
            co_return;
        }
        if (once) {
            co_return co_await stall(s);
        }
        if (interval > 0ms) {
            s.timer.expires_after(interval);
            co_await s.timer.async_wait(use_tuple);
            if (s.closing) {
                co_return;
            }
        }
    }
}

// `message`, chunked (its framing says so), its body in 16-byte chunks: a reader sees it grow
// piece by piece.
asio::awaitable<boost::system::error_code> write_in_small_chunks(session& s, response& message) {
    http::response_serializer<http::string_body> serializer(message);
    if (const auto [ec, n] = co_await http::async_write_header(s.stream, serializer, use_tuple); ec) {
        co_return ec;
    }
    const std::string_view body = message.body();
    std::string chunks;
    for (std::size_t at = 0; at < body.size(); at += 16) {
        const auto piece = body.substr(at, 16);
        chunks += piece.size() == 16 ? "10" : std::string(1, "0123456789abcdef"[piece.size()]);
        chunks += "\r\n";
        chunks += piece;
        chunks += "\r\n";
    }
    chunks += "0\r\n\r\n";
    const auto [ec, n] = co_await asio::async_write(s.stream, asio::buffer(chunks), use_tuple);
    co_return ec;
}

}  // namespace

struct https_listener::impl {
    impl(oauth_state& state, consent_book& consent, const certificate_chain& certificates)
        : state(state),
          consent(consent),
          tls(make_tls_context(certificates.leaf_cert_pem, certificates.leaf_key_pem)),
          wrong_name_tls(make_tls_context(certificates.wrong_name_cert_pem, certificates.leaf_key_pem)),
          expired_tls(make_tls_context(certificates.expired_cert_pem, certificates.leaf_key_pem)),
          tls_1_1(make_tls_1_1_context(certificates)),
          acceptor_strand(asio::make_strand(ioc)) {
        // What tcp::acceptor's (executor, endpoint) constructor does, on a close-on-exec socket: a
        // process that embeds the emulator and spawns children keeps its port to itself.
        const tcp::endpoint where(asio::ip::make_address(state.config().listen_address), 0);
        acceptor.emplace(acceptor_strand);
        boost::system::error_code ec;
        apollo_oauth::net::open_close_on_exec(*acceptor, where.protocol(), ec);
        if (ec) {
            throw boost::system::system_error(ec, "emulator listener");  // as the constructor would
        }
        acceptor->set_option(tcp::acceptor::reuse_address(true));
        acceptor->bind(where);
        acceptor->listen();
        port = acceptor->local_endpoint().port();
        accept_pause.emplace(acceptor_strand);
    }

    asio::awaitable<void> accept_loop();
    asio::awaitable<void> serve(std::shared_ptr<session> s, bool reset_after_handshake);
    std::optional<fault::kind> take_connection_fault();
    ssl::context& context_for(std::optional<fault::kind> f);
    void stop();

    oauth_state& state;
    consent_book& consent;
    // Declared before the io_context: handlers it destroys on the way out still use them.
    std::mutex mutex;
    bool stopping = false;
    std::unordered_map<session*, std::weak_ptr<session>> sessions;
    std::deque<fault> connection_faults;
    ssl::context tls;
    ssl::context wrong_name_tls;
    ssl::context expired_tls;
    ssl::context tls_1_1;
    asio::io_context ioc;
    asio::strand<asio::io_context::executor_type> acceptor_strand;
    std::optional<tcp::acceptor> acceptor;
    std::optional<asio::steady_timer> accept_pause;  ///< after a failed accept; on acceptor_strand
    std::uint16_t port = 0;
    std::vector<std::thread> threads;
};

asio::awaitable<void> https_listener::impl::accept_loop() {
    constexpr std::chrono::milliseconds first_pause{10};
    constexpr std::chrono::milliseconds longest_pause{1'000};
    auto pause = first_pause;
    for (;;) {
        // Each connection gets its own strand, so close() from stop() never races the session.
        auto [ec, socket] =
            co_await acceptor->async_accept(asio::any_io_executor(asio::make_strand(ioc)), use_tuple);
        if (ec) {
            if (!acceptor->is_open()) {
                co_return;
            }
            // Out of descriptors (EMFILE, ENFILE) or memory: the pending connection stays in the
            // backlog and Asio's next accept fails again at once, so retrying without a pause
            // spins a core until descriptors free up. Paused, doubling to a second.
            accept_pause->expires_after(pause);
            co_await accept_pause->async_wait(use_tuple);
            pause = std::min(pause * 2, longest_pause);
            continue;
        }
        pause = first_pause;
        apollo_oauth::net::set_close_on_exec(socket.native_handle());
        state.count_connection();
        const auto f = take_connection_fault();
        auto s = std::make_shared<session>(std::move(socket), context_for(f));
        {
            const std::lock_guard lock(mutex);
            if (stopping) {
                co_return;
            }
            sessions.emplace(s.get(), s);
        }
        const bool reset_after_handshake = f == fault::kind::reset_before_request;
        asio::co_spawn(s->stream.get_executor(), serve(s, reset_after_handshake),
                       [this, raw = s.get()](const std::exception_ptr&) {
                           const std::lock_guard lock(mutex);
                           sessions.erase(raw);
                       });
    }
}

std::optional<fault::kind> https_listener::impl::take_connection_fault() {
    const std::lock_guard lock(mutex);
    if (connection_faults.empty()) {
        return std::nullopt;
    }
    const auto what = connection_faults.front().what;
    if (--connection_faults.front().count == 0) {
        connection_faults.pop_front();
    }
    return what;
}

ssl::context& https_listener::impl::context_for(std::optional<fault::kind> f) {
    switch (f.value_or(fault::kind::latency)) {
        case fault::kind::wrong_name_certificate:
            return wrong_name_tls;
        case fault::kind::expired_certificate:
            return expired_tls;
        case fault::kind::tls_1_1_only:
            return tls_1_1;
        default:
            return tls;
    }
}

asio::awaitable<void> https_listener::impl::serve(std::shared_ptr<session> s, bool reset_after_handshake) {
    auto& stream = s->stream;
    auto& transport = beast::get_lowest_layer(stream);
    transport.expires_after(handshake_timeout);
    if (const auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple); ec) {
        co_return;
    }
    if (reset_after_handshake) {
        reset(*s);
        co_return;
    }

    beast::flat_buffer buffer(read_buffer_limit);
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(body_limit);
        transport.expires_after(idle_timeout);
        const auto [read_ec, read_n] = co_await http::async_read(stream, buffer, parser, use_tuple);
        if (read_ec == http::error::end_of_stream) {
            co_await shut_down(*s);
            co_return;
        }
        if (read_ec) {
            if (s->closing || !is_http_parse_error(read_ec)) {
                co_return;  // timeout, reset, or stop()
            }
            response res = bad_request(status_for_parse_error(read_ec), 11);
            transport.expires_after(write_timeout);
            co_await http::async_write(stream, res, use_tuple);
            co_await shut_down(*s);
            co_return;
        }

        reply r = handle_request(parser.get(), state, consent);
        if (!r.interim.empty()) {
            transport.expires_after(write_timeout);
            if (const auto [ec, n] = co_await asio::async_write(stream, asio::buffer(r.interim), use_tuple);
                ec || s->closing) {
                co_return;
            }
            if (r.reset_after_interim) {
                r.in_flight.release();
                reset(*s);
                co_return;
            }
        }
        if (r.delay > 0ms) {
            s->timer.expires_after(r.delay);
            co_await s->timer.async_wait(use_tuple);
            if (s->closing) {
                co_return;
            }
        }
        switch (r.what) {
            case reply::action::send:
            case reply::action::small_chunks: {
                transport.expires_after(write_timeout);
                const auto write_ec =
                    r.what == reply::action::send
                        ? std::get<0>(co_await http::async_write(stream, r.message, use_tuple))
                        : co_await write_in_small_chunks(*s, r.message);
                r.in_flight.release();
                if (write_ec || s->closing) {
                    co_return;
                }
                if (!r.message.keep_alive()) {
                    co_await shut_down(*s);
                    co_return;
                }
                break;
            }
            case reply::action::trailing_response: {
                std::ostringstream serialized;
                serialized << r.message;
                std::string answer = std::move(serialized).str();
                transport.expires_after(write_timeout);
                boost::system::error_code write_ec;
                if (r.trailing_in_own_record) {
                    // Two writes, two records; corked, so that they leave in one segment and
                    // the client's one read from the socket takes both.
                    const int native = transport.socket().native_handle();
                    int on = 1;
                    ::setsockopt(native, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
                    std::tie(write_ec, std::ignore) =
                        co_await asio::async_write(stream, asio::buffer(answer), use_tuple);
                    if (!write_ec) {
                        std::tie(write_ec, std::ignore) =
                            co_await asio::async_write(stream, asio::buffer(r.trailing), use_tuple);
                    }
                    int off = 0;
                    ::setsockopt(native, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
                } else {
                    // One buffer, one write: one TLS record holding both responses.
                    answer += r.trailing;
                    std::tie(write_ec, std::ignore) =
                        co_await asio::async_write(stream, asio::buffer(answer), use_tuple);
                }
                r.in_flight.release();
                if (write_ec || s->closing) {
                    co_return;
                }
                break;  // keep-alive: the client's next request, if it sends one, is answered
            }
            case reply::action::reset:
                r.in_flight.release();
                reset(*s);
                co_return;
            case reply::action::stall_headers:
                r.in_flight.release();
                co_await stall(*s);
                co_return;
            case reply::action::stall_body: {
                http::response_serializer<http::string_body> serializer(r.message);
                transport.expires_after(write_timeout);
                if (const auto [ec, n] = co_await http::async_write_header(stream, serializer, use_tuple);
                    ec) {
                    co_return;
                }
                const std::string& body = r.message.body();
                if (const auto [ec, n] = co_await asio::async_write(
                        stream, asio::buffer(body.data(), body.size() / 2), use_tuple);
                    ec) {
                    co_return;
                }
                r.in_flight.release();
                co_await stall(*s);
                co_return;
            }
            case reply::action::stall_mid_header: {
                std::ostringstream header;
                header << r.message.base();
                std::string half = std::move(header).str();
                half.resize(half.size() / 2);
                transport.expires_after(write_timeout);
                if (const auto [ec, n] = co_await asio::async_write(stream, asio::buffer(half), use_tuple);
                    ec) {
                    co_return;
                }
                r.in_flight.release();
                co_await stall(*s);
                co_return;
            }
            case reply::action::framed_chunks:
            case reply::action::endless_chunks:
            case reply::action::trickle_body: {
                r.in_flight.release();
                http::response_serializer<http::string_body> serializer(r.message);
                transport.expires_after(write_timeout);
                if (const auto [ec, n] = co_await http::async_write_header(stream, serializer, use_tuple);
                    ec) {
                    co_return;
                }
                if (r.what == reply::action::framed_chunks) {
                    // The body as it stands: chunks framed already, hostile framing included.
                    const auto [ec, n] =
                        co_await asio::async_write(stream, asio::buffer(r.message.body()), use_tuple);
                    if (!ec && !s->closing) {
                        co_await shut_down(*s);
                    }
                } else if (r.what == reply::action::endless_chunks) {
                    std::string chunk = "400\r\n" + std::string(0x400, ' ') + "\r\n";
                    co_await stream_forever(*s, std::move(chunk), r.interval, false);
                } else {
                    std::string first_byte = "{";
                    co_await stream_forever(*s, std::move(first_byte), r.interval, r.interval == 0ms);
                }
                co_return;
            }
        }
    }
}

void https_listener::impl::stop() {
    std::vector<std::shared_ptr<session>> open;
    {
        const std::lock_guard lock(mutex);
        stopping = true;
        for (const auto& [raw, weak] : sessions) {
            if (auto s = weak.lock()) {
                open.push_back(std::move(s));
            }
        }
    }
    asio::post(acceptor_strand, [this] {
        boost::system::error_code ec;
        acceptor->close(ec);
        accept_pause->cancel();  // a loop paused after a failed accept sees the closed acceptor now
    });
    for (auto& s : open) {
        asio::post(s->stream.get_executor(), [s] { s->close(); });
    }
    open.clear();
    // With the acceptor and every connection closed, nothing is left to wait for: run() returns.
    for (auto& t : threads) {
        t.join();
    }
}

https_listener::https_listener(oauth_state& state, consent_book& consent,
                               const certificate_chain& certificates, unsigned threads)
    : impl_(std::make_unique<impl>(state, consent, certificates)) {
    asio::co_spawn(impl_->acceptor_strand, impl_->accept_loop(), [](const std::exception_ptr&) {});
    try {
        for (unsigned i = 0; i < std::max(threads, 1u); ++i) {
            impl_->threads.emplace_back([this] { impl_->ioc.run(); });
        }
    } catch (...) {
        impl_->stop();  // the destructor will not run: join what did start
        throw;
    }
}

https_listener::~https_listener() {
    impl_->stop();
    impl_->acceptor.reset();
}

std::uint16_t https_listener::port() const noexcept {
    return impl_->port;
}

void https_listener::inject(fault f) {
    if (f.count == 0) {
        return;
    }
    const std::lock_guard lock(impl_->mutex);
    impl_->connection_faults.push_back(std::move(f));
}

void https_listener::clear_faults() {
    const std::lock_guard lock(impl_->mutex);
    impl_->connection_faults.clear();
}

}  // namespace apollo_oauth::emulator::detail
