#include "emulator/consent.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>

#include <openssl/ssl.h>

#include <chrono>
#include <exception>
#include <stdexcept>

namespace apollo_oauth::emulator::detail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr std::chrono::seconds phase_timeout{30};
constexpr std::size_t max_page_text = 200;

struct https_get {
    std::string host;
    std::string port;
    std::string host_header;
    std::string target;
};

https_get split_url(const std::string& url) {
    const auto parsed = boost::urls::parse_uri(url);
    if (!parsed || parsed->scheme_id() != boost::urls::scheme::https || !parsed->has_authority()) {
        throw std::runtime_error("consent: not an https URL");
    }
    https_get out;
    out.host = parsed->host_address();
    out.port = parsed->has_port() ? std::string(parsed->port()) : "443";
    out.host_header = parsed->encoded_host_and_port();
    out.target = parsed->encoded_path().empty() ? "/" : std::string(parsed->encoded_path());
    if (parsed->has_query()) {
        out.target += "?" + std::string(parsed->encoded_query());
    }
    return out;
}

// Why the emulator refused, short: its pages carry the reason in their first paragraph; any
// other body is shown without markup.
std::string page_text(std::string_view html) {
    if (const auto p = html.find("<p>"); p != std::string_view::npos) {
        html.remove_prefix(p + 3);
        html = html.substr(0, html.find("</p>"));
    }
    std::string text;
    bool in_tag = false;
    for (const char c : html) {
        if (c == '<' || c == '>') {
            in_tag = c == '<';
        } else if (!in_tag && text.size() < max_page_text) {
            text += c;
        }
    }
    return text;
}

asio::awaitable<http::response<http::string_body>> send(ssl::stream<beast::tcp_stream>& stream,
                                                        const https_get& where,
                                                        http::request<http::string_body> req) {
    auto& transport = beast::get_lowest_layer(stream);
    tcp::resolver resolver(co_await asio::this_coro::executor);
    const auto endpoints = co_await resolver.async_resolve(where.host, where.port, asio::use_awaitable);
    transport.expires_after(phase_timeout);
    co_await transport.async_connect(endpoints, asio::use_awaitable);
    transport.expires_after(phase_timeout);
    co_await stream.async_handshake(ssl::stream_base::client, asio::use_awaitable);

    req.set(http::field::host, where.host_header);
    req.set(http::field::user_agent, "apollo_oauth-emulator-consent");
    req.keep_alive(false);
    req.prepare_payload();
    transport.expires_after(phase_timeout);
    co_await http::async_write(stream, req, asio::use_awaitable);

    // Bounded (Beast's response header limit, 8 KiB, and 4 KiB more): its parser holds a chunk's
    // size line and a chunked body's trailer whole and bounds neither, and throws
    // std::length_error from inside the read on a field past 65,533 bytes.
    beast::flat_buffer buffer(8 * 1024 + 4 * 1024);
    http::response<http::string_body> res;
    transport.expires_after(phase_timeout);
    co_await http::async_read(stream, buffer, res, asio::use_awaitable);
    transport.close();
    co_return res;
}

// One request on a fresh TLS connection that trusts only `ca_pem` and checks the host name.
http::response<http::string_body> round_trip(const https_get& where, const std::string& ca_pem,
                                             http::request<http::string_body> req) {
    ssl::context tls(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
    tls.add_certificate_authority(asio::buffer(ca_pem));
    tls.set_verify_mode(ssl::verify_peer);

    asio::io_context ioc;
    ssl::stream<beast::tcp_stream> stream(ioc, tls);
    stream.set_verify_callback(ssl::host_name_verification(where.host));
    boost::system::error_code ec;
    asio::ip::make_address(where.host, ec);
    if (ec) {
        SSL_set_tlsext_host_name(stream.native_handle(), where.host.c_str());  // SNI is for names only
    }

    std::exception_ptr failure;
    http::response<http::string_body> res;
    asio::co_spawn(ioc, send(stream, where, std::move(req)),
                   [&](std::exception_ptr e, http::response<http::string_body> r) {
                       failure = e;
                       res = std::move(r);
                   });
    ioc.run();
    if (failure) {
        std::rethrow_exception(failure);
    }
    return res;
}

// The consent page's anti-forgery value (consent_page.cpp writes value="..." right after the
// name, and the value is base64url: nothing to unescape), or empty when the page has none.
std::string authenticity_token_of(std::string_view html) {
    constexpr std::string_view marker = R"(name="authenticity_token" value=")";
    const auto start = html.find(marker);
    if (start == std::string_view::npos) {
        return {};
    }
    html.remove_prefix(start + marker.size());
    return std::string(html.substr(0, html.find('"')));
}

// Plays the user clicking Approve: posts the page's value back with the cookie it set.
http::response<http::string_body> approve(const https_get& where, const std::string& ca_pem,
                                          const http::response<http::string_body>& page,
                                          const std::string& token) {
    http::request<http::string_body> req{http::verb::post, "/oauth/authorize", 11};
    req.set(http::field::content_type, "application/x-www-form-urlencoded");
    const auto cookie = page[http::field::set_cookie];
    req.set(http::field::cookie, cookie.substr(0, cookie.find(';')));
    req.body() = "authenticity_token=" + token + "&decision=approve";
    return round_trip(where, ca_pem, std::move(req));
}

}  // namespace

std::string follow_authorize(const std::string& url, const std::string& ca_pem) {
    const https_get where = split_url(url);
    auto res = round_trip(where, ca_pem, http::request<http::string_body>{http::verb::get, where.target, 11});
    if (res.result() == http::status::ok) {
        if (const std::string token = authenticity_token_of(res.body()); !token.empty()) {
            res = approve(where, ca_pem, res, token);
        }
    }

    const auto status = res.result_int();
    if (status / 100 == 3) {
        if (const auto it = res.find(http::field::location); it != res.end()) {
            return std::string(it->value());
        }
    }
    std::string message = "consent: HTTP " + std::to_string(status);
    if (const std::string text = page_text(res.body()); !text.empty()) {
        message += ": " + text;
    }
    throw std::runtime_error(message);
}

}  // namespace apollo_oauth::emulator::detail
