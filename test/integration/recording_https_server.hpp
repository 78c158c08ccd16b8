// A TLS server on 127.0.0.1 that records every byte it receives and answers each complete
// request with one fixed response, as it is. Independent of the library and the emulator's
// routing, so that tests can see exactly what the library put on the wire (or that it put
// nothing there). Its certificate chain is the emulator's generator's (trust ca_pem()).
#pragma once

#include <apollo_oauth/config.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace apollo_oauth::test {

class recording_https_server {
public:
    /// `answer`: the whole HTTP response, written after each request whose header and
    /// Content-Length body have arrived; the connection is then closed.
    explicit recording_https_server(std::string answer);
    ~recording_https_server();
    recording_https_server(const recording_https_server&) = delete;
    recording_https_server& operator=(const recording_https_server&) = delete;

    std::uint16_t port() const noexcept;
    /// "https://127.0.0.1:<port>" + path.
    std::string url(std::string_view path = {}) const;
    const std::string& ca_pem() const noexcept;

    /// Every byte received so far (decrypted), over all connections.
    std::string received() const;
    /// TCP connections accepted so far.
    std::size_t connections() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// "HTTP/1.1 <status> X\r\nContent-Type: application/json\r\nContent-Length: n\r\n
/// Connection: close\r\n\r\n<body>".
std::string json_answer(unsigned status, std::string_view body);

/// A client_config whose token, profile and API endpoints are all on `server`, trusting its CA.
client_config config_for(const recording_https_server& server);

}  // namespace apollo_oauth::test
