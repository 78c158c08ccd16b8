// A small blocking HTTPS/1.1 client for integration tests: sends exactly the request it is given
// (any method, headers, body, or raw bytes) over one keep-alive TLS connection, verifies the
// server's certificate against a given CA, and reports transport failures (timeouts, resets,
// truncated bodies) as error codes together with whatever part of the response arrived.
// Independent of the library under test, so it can check the library's peers.
#pragma once

#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace apollo_oauth::test {

struct raw_request {
    std::string method = "GET";
    std::string target = "/";
    /// Sent as given; Host is added unless present, Content-Length is always computed.
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

struct raw_response {
    unsigned status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;  ///< possibly partial when raw_result::ec is set
    bool keep_alive = false;

    /// The first value of header `name` (case-insensitive), or nullopt.
    std::optional<std::string> header(std::string_view name) const;
};

struct raw_result {
    boost::system::error_code ec;  ///< e.g. boost::beast::error::timeout, asio::error::connection_reset
    bool header_received = false;  ///< the status line and headers arrived
    raw_response response;
};

class raw_https_client {
public:
    /// Connects to host:port lazily. Trusts only `ca_pem`; verifies the certificate's name against
    /// `host` unless set_verify_host says otherwise.
    raw_https_client(std::string host, std::uint16_t port, std::string ca_pem);
    ~raw_https_client();
    raw_https_client(const raw_https_client&) = delete;
    raw_https_client& operator=(const raw_https_client&) = delete;

    /// Per-phase limit (connect, handshake, write, header, body). Default 10 s.
    void set_timeout(std::chrono::milliseconds timeout);
    /// Largest response body accepted. Default 64 MiB.
    void set_body_limit(std::size_t limit);
    /// The name the certificate must carry (default: the connect host).
    void set_verify_host(std::string name);

    /// Opens the TLS connection now. Returns the TCP or TLS error (certificate failures are
    /// asio::ssl category errors).
    boost::system::error_code try_connect();

    /// Sends one request on the open connection (connecting first if needed) and reads one
    /// response. After an error, or a response without keep-alive, the connection is closed.
    raw_result try_send(const raw_request& request);
    /// Writes `bytes` as they are (no HTTP framing added) and reads one response.
    raw_result try_send_bytes(std::string_view bytes);
    /// try_send, throwing boost::system::system_error on a transport error.
    raw_response send(const raw_request& request);

    bool is_open() const noexcept;
    void close();
    /// TCP connections opened so far (to observe keep-alive).
    std::size_t connections_opened() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// "k1=v1&k2=v2", form-encoded (space as '+', everything but unreserved characters escaped).
std::string form_body(const std::vector<std::pair<std::string, std::string>>& fields);

/// A POST with an application/x-www-form-urlencoded body.
raw_request form_post(std::string target, const std::vector<std::pair<std::string, std::string>>& fields);

/// A request with Authorization: Bearer <token>.
raw_request bearer_request(std::string method, std::string target, std::string token,
                           std::string json_body = {});

}  // namespace apollo_oauth::test
