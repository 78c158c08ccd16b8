#include "recording_https_server.hpp"

#include "emulator/certificates.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <thread>

namespace apollo_oauth::test {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

// True when `data` holds a header block and as many body bytes as its Content-Length says.
bool is_complete_request(const std::string& data) {
    const auto end = data.find("\r\n\r\n");
    if (end == std::string::npos) {
        return false;
    }
    std::string head = data.substr(0, end);
    std::transform(head.begin(), head.end(), head.begin(), [](unsigned char c) { return std::tolower(c); });
    std::size_t length = 0;
    if (const auto at = head.find("\r\ncontent-length:"); at != std::string::npos) {
        length = std::stoul(head.substr(at + 17));
    }
    return data.size() >= end + 4 + length;
}

}  // namespace

struct recording_https_server::impl {
    explicit impl(std::string answer_text) : answer(std::move(answer_text)) {
        chain = emulator::detail::make_certificate_chain();
        tls.use_certificate_chain(asio::buffer(chain.leaf_cert_pem));
        tls.use_private_key(asio::buffer(chain.leaf_key_pem), ssl::context::pem);
        acceptor.open(tcp::v4());
        acceptor.bind({asio::ip::make_address("127.0.0.1"), 0});
        acceptor.listen();
        asio::co_spawn(ioc, accept_loop(), asio::detached);
        thread = std::thread([this] { ioc.run(); });
    }

    ~impl() {
        asio::post(ioc, [this] {
            boost::system::error_code ignored;
            acceptor.close(ignored);
            ioc.stop();
        });
        thread.join();
    }

    asio::awaitable<void> accept_loop() {
        for (;;) {
            boost::system::error_code ec;
            tcp::socket socket =
                co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (ec) {
                co_return;
            }
            {
                std::lock_guard lock{mutex};
                ++accepted;
            }
            asio::co_spawn(ioc, serve(std::move(socket)), asio::detached);
        }
    }

    asio::awaitable<void> serve(tcp::socket socket) {
        ssl::stream<tcp::socket> stream{std::move(socket), tls};
        boost::system::error_code ec;
        co_await stream.async_handshake(ssl::stream_base::server,
                                        asio::redirect_error(asio::use_awaitable, ec));
        std::string request;
        char buffer[4096];
        while (!ec) {
            const std::size_t n = co_await stream.async_read_some(
                asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
            request.append(buffer, n);
            {
                std::lock_guard lock{mutex};
                bytes.append(buffer, n);
            }
            if (is_complete_request(request)) {
                co_await asio::async_write(stream, asio::buffer(answer),
                                           asio::redirect_error(asio::use_awaitable, ec));
                co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
                co_return;
            }
        }
    }

    std::string answer;
    emulator::detail::certificate_chain chain;
    asio::io_context ioc;
    ssl::context tls{ssl::context::tls_server};
    tcp::acceptor acceptor{ioc};
    std::thread thread;

    mutable std::mutex mutex;
    std::string bytes;
    std::size_t accepted = 0;
};

recording_https_server::recording_https_server(std::string answer)
    : impl_(std::make_unique<impl>(std::move(answer))) {}

recording_https_server::~recording_https_server() = default;

std::uint16_t recording_https_server::port() const noexcept {
    return impl_->acceptor.local_endpoint().port();
}

std::string recording_https_server::url(std::string_view path) const {
    return "https://127.0.0.1:" + std::to_string(port()) + std::string(path);
}

const std::string& recording_https_server::ca_pem() const noexcept {
    return impl_->chain.ca_pem;
}

std::string recording_https_server::received() const {
    std::lock_guard lock{impl_->mutex};
    return impl_->bytes;
}

std::size_t recording_https_server::connections() const {
    std::lock_guard lock{impl_->mutex};
    return impl_->accepted;
}

std::string json_answer(unsigned status, std::string_view body) {
    return "HTTP/1.1 " + std::to_string(status) +
           " X\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + std::string(body);
}

client_config config_for(const recording_https_server& server) {
    client_config c;
    c.client_id = "recording-client";
    c.client_secret = secret_string{"recording-secret-0123456789"};
    c.redirect_uris = {"https://app.example.com/oauth/callback"};
    c.endpoints.authorize_url = server.url("/oauth/authorize");
    c.endpoints.token_url = server.url("/api/v1/oauth/token");
    c.endpoints.profile_url = server.url("/api/v1/users/api_profile");
    c.endpoints.api_base = server.url();
    c.tls.use_system_trust_store = false;
    c.tls.ca_pem = server.ca_pem();
    return c;
}

}  // namespace apollo_oauth::test
