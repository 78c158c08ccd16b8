// A TCP relay on 127.0.0.1, between a client under test and a redis-server: what the network
// between them does (a NAT or load balancer that drops a connection silently, an address that
// moves to another server), on one host. Its own thread and io_context.
#pragma once

#include <cstdint>
#include <memory>

namespace apollo_oauth::redis_test {

class tcp_relay {
public:
    /// Relays every connection accepted on port() to 127.0.0.1:`target`.
    explicit tcp_relay(std::uint16_t target);
    ~tcp_relay();
    tcp_relay(const tcp_relay&) = delete;
    tcp_relay& operator=(const tcp_relay&) = delete;

    std::uint16_t port() const noexcept;

    /// Every connection relayed so far goes silent both ways: what arrives is read and dropped,
    /// nothing is closed (the client's kernel still sees its bytes acknowledged). Connections
    /// accepted later are relayed. Done when it returns.
    void black_hole();

    /// Connections accepted from now on go to `target` (those relayed so far stay where they
    /// are). Done when it returns.
    void retarget(std::uint16_t target);

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace apollo_oauth::redis_test
