#include "raw_https.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/system/system_error.hpp>

#include <openssl/ssl.h>

#include <cctype>
#include <exception>
#include <sstream>

namespace apollo_oauth::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// Runs one operation to completion on the client's private io_context.
template <class T>
T run(asio::io_context& ioc, asio::awaitable<T> op) {
    std::optional<T> result;
    std::exception_ptr failure;
    asio::co_spawn(ioc, std::move(op), [&](std::exception_ptr e, T value) {
        failure = e;
        result = std::move(value);
    });
    ioc.restart();
    ioc.run();
    if (failure) {
        std::rethrow_exception(failure);
    }
    return std::move(*result);
}

}  // namespace

std::optional<std::string> raw_response::header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
        if (beast::iequals(n, name)) {
            return v;
        }
    }
    return std::nullopt;
}

struct raw_https_client::impl {
    impl(std::string h, std::uint16_t p, const std::string& ca_pem)
        : host(std::move(h)), port(p), verify_host(host) {
        SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
        tls.set_verify_mode(ssl::verify_peer);
        if (!ca_pem.empty()) {
            tls.add_certificate_authority(asio::buffer(ca_pem));
        }
    }

    asio::awaitable<error_code> connect();
    asio::awaitable<raw_result> exchange(std::string bytes);

    void close() {
        if (stream) {
            beast::get_lowest_layer(*stream).close();
            stream.reset();
        }
        buffer.clear();
    }

    std::string host;
    std::uint16_t port;
    std::string verify_host;
    std::chrono::milliseconds timeout{std::chrono::seconds(10)};
    std::size_t body_limit = 64 * 1024 * 1024;
    ssl::context tls{ssl::context::tls_client};
    asio::io_context ioc;
    std::optional<ssl::stream<beast::tcp_stream>> stream;
    beast::flat_buffer buffer;
    std::size_t opened = 0;
};

asio::awaitable<error_code> raw_https_client::impl::connect() {
    close();
    stream.emplace(ioc, tls);
    stream->set_verify_callback(ssl::host_name_verification(verify_host));
    error_code ec;
    asio::ip::make_address(verify_host, ec);
    if (ec) {
        SSL_set_tlsext_host_name(stream->native_handle(), verify_host.c_str());
    }

    tcp::resolver resolver(ioc);
    auto [resolve_ec, endpoints] = co_await resolver.async_resolve(host, std::to_string(port), use_tuple);
    if (resolve_ec) {
        close();
        co_return resolve_ec;
    }
    auto& transport = beast::get_lowest_layer(*stream);
    transport.expires_after(timeout);
    if (auto [connect_ec, endpoint] = co_await transport.async_connect(endpoints, use_tuple); connect_ec) {
        close();
        co_return connect_ec;
    }
    ++opened;
    transport.expires_after(timeout);
    if (auto [handshake_ec] = co_await stream->async_handshake(ssl::stream_base::client, use_tuple);
        handshake_ec) {
        close();
        co_return handshake_ec;
    }
    co_return error_code{};
}

asio::awaitable<raw_result> raw_https_client::impl::exchange(std::string bytes) {
    raw_result out;
    if (!stream) {
        if (out.ec = co_await connect(); out.ec) {
            co_return out;
        }
    }
    auto& transport = beast::get_lowest_layer(*stream);
    transport.expires_after(timeout);
    if (auto [ec, n] = co_await asio::async_write(*stream, asio::buffer(bytes), use_tuple); ec) {
        close();
        out.ec = ec;
        co_return out;
    }

    http::response_parser<http::string_body> parser;
    parser.body_limit(body_limit);
    transport.expires_after(timeout);
    auto [header_ec, header_n] = co_await http::async_read_header(*stream, buffer, parser, use_tuple);
    out.ec = header_ec;
    if (!header_ec) {
        out.header_received = true;
        transport.expires_after(timeout);
        auto [body_ec, body_n] = co_await http::async_read(*stream, buffer, parser, use_tuple);
        out.ec = body_ec;
    }
    if (out.header_received) {
        const auto& message = parser.get();
        out.response.status = message.result_int();
        for (const auto& field : message) {
            out.response.headers.emplace_back(field.name_string(), field.value());
        }
        out.response.keep_alive = message.keep_alive();
        out.response.body = message.body();  // what arrived, even when the body was cut short
    }
    if (out.ec || !out.response.keep_alive) {
        close();
    }
    co_return out;
}

raw_https_client::raw_https_client(std::string host, std::uint16_t port, std::string ca_pem)
    : impl_(std::make_unique<impl>(std::move(host), port, ca_pem)) {}

raw_https_client::~raw_https_client() = default;

void raw_https_client::set_timeout(std::chrono::milliseconds timeout) {
    impl_->timeout = timeout;
}
void raw_https_client::set_body_limit(std::size_t limit) {
    impl_->body_limit = limit;
}
void raw_https_client::set_verify_host(std::string name) {
    impl_->verify_host = std::move(name);
}

error_code raw_https_client::try_connect() {
    return run(impl_->ioc, impl_->connect());
}

raw_result raw_https_client::try_send(const raw_request& request) {
    http::request<http::string_body> message;
    const http::verb verb = http::string_to_verb(request.method);
    if (verb == http::verb::unknown) {
        message.method_string(request.method);
    } else {
        message.method(verb);
    }
    message.target(request.target);
    message.version(11);
    for (const auto& [name, value] : request.headers) {
        message.insert(name, value);
    }
    if (message.find(http::field::host) == message.end()) {
        message.set(http::field::host, impl_->host + ":" + std::to_string(impl_->port));
    }
    message.body() = request.body;
    message.prepare_payload();

    // Serialised up front so that try_send and try_send_bytes share one exchange.
    std::ostringstream bytes;
    bytes << message;
    return try_send_bytes(bytes.str());
}

raw_result raw_https_client::try_send_bytes(std::string_view bytes) {
    return run(impl_->ioc, impl_->exchange(std::string(bytes)));
}

raw_response raw_https_client::send(const raw_request& request) {
    raw_result result = try_send(request);
    if (result.ec) {
        throw boost::system::system_error(result.ec, "raw_https_client");
    }
    return std::move(result.response);
}

bool raw_https_client::is_open() const noexcept {
    return impl_->stream.has_value();
}
void raw_https_client::close() {
    impl_->close();
}
std::size_t raw_https_client::connections_opened() const noexcept {
    return impl_->opened;
}

std::string form_body(const std::vector<std::pair<std::string, std::string>>& fields) {
    static constexpr char hex[] = "0123456789ABCDEF";
    const auto encode = [](std::string& out, std::string_view value) {
        for (const unsigned char c : value) {
            if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
                out += static_cast<char>(c);
            } else if (c == ' ') {
                out += '+';
            } else {
                out += '%';
                out += hex[c >> 4];
                out += hex[c & 15];
            }
        }
    };
    std::string body;
    for (const auto& [name, value] : fields) {
        if (!body.empty()) {
            body += '&';
        }
        encode(body, name);
        body += '=';
        encode(body, value);
    }
    return body;
}

raw_request form_post(std::string target, const std::vector<std::pair<std::string, std::string>>& fields) {
    return {"POST",
            std::move(target),
            {{"Content-Type", "application/x-www-form-urlencoded"}},
            form_body(fields)};
}

raw_request bearer_request(std::string method, std::string target, std::string token, std::string json_body) {
    raw_request request{std::move(method), std::move(target), {{"Authorization", "Bearer " + token}}, {}};
    if (!json_body.empty()) {
        request.headers.emplace_back("Content-Type", "application/json");
        request.body = std::move(json_body);
    }
    return request;
}

}  // namespace apollo_oauth::test
