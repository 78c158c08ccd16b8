// login's HTTPS listener on loopback: waits for the browser's redirect to the redirect URI.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace apollo_oauth::cli {

/// What the listener answers a request on the callback path, and whether the wait is over.
struct callback_verdict {
    unsigned status = 200;
    std::string page;   ///< a short plain-text message for the browser tab
    bool done = false;  ///< true: this callback settles the login (good or bad)
};

/// Decides on one redirected URL ("https://127.0.0.1:8443/callback?code=...&state=..."). The URL
/// holds the authorization code: a view of a buffer the listener wipes before freeing it. A judge
/// that copies it wipes its copy too (verify_callback does).
using callback_judge = std::function<callback_verdict(std::string_view redirected_url)>;

class login_listener {
public:
    /// Binds `endpoint` now (so a busy port is reported before the user opens a browser).
    /// `callback_origin` is "https://127.0.0.1:8443" (what the redirect URI starts with) and
    /// `callback_path` its path. Throws boost::system::system_error when the port cannot be bound
    /// or the certificate and key do not load.
    login_listener(boost::asio::io_context& ioc, boost::asio::ip::tcp::endpoint endpoint,
                   const std::string& cert_pem, const std::string& key_pem, std::string callback_origin,
                   std::string callback_path, callback_judge judge);
    ~login_listener();
    login_listener(const login_listener&) = delete;
    login_listener& operator=(const login_listener&) = delete;

    /// Serves connections (each on its own, so an idle pre-connection of the browser blocks
    /// nothing) until a callback is judged `done`, `timeout` passes (returns false) or `stop()`.
    /// Returns true when a callback settled the login.
    boost::asio::awaitable<bool> async_wait_for_callback(std::chrono::seconds timeout);

    /// Ends the wait (Ctrl-C): async_wait_for_callback returns false.
    void stop();

    /// Where it listens: `endpoint`, with the port the system chose when its port was 0 (a test).
    boost::asio::ip::tcp::endpoint local_endpoint() const;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace apollo_oauth::cli
