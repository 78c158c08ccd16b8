// The emulator's TLS listener: 127.0.0.1:0, keep-alive HTTP/1.1 sessions, its own io_context
// and threads. Everything Beast and OpenSSL stays in https_listener.cpp.
#pragma once

#include <apollo_oauth/emulator/server.hpp>

#include <cstdint>
#include <memory>

namespace apollo_oauth::emulator::detail {

struct certificate_chain;
class consent_book;
class oauth_state;

class https_listener {
public:
    /// Binds, then starts `threads` threads (at least one). `state` and `consent` must outlive the
    /// listener.
    https_listener(oauth_state& state, consent_book& consent, const certificate_chain& certificates,
                   unsigned threads);
    /// Closes the acceptor and every connection (stalled ones included), cancels every timer and
    /// joins the threads.
    ~https_listener();
    https_listener(const https_listener&) = delete;
    https_listener& operator=(const https_listener&) = delete;

    std::uint16_t port() const noexcept;

    /// Queues a connection fault (is_connection_fault): it applies to the next `count`
    /// connections accepted, in the order queued.
    void inject(fault f);
    void clear_faults();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace apollo_oauth::emulator::detail
