// Two "hosts" on one machine: two network namespaces, each joined to the test's own namespace by a
// veth pair on one bridge. Processes started in them reach Redis and the emulator only over the
// veth pairs, through the bridge's address, as processes on other machines would over a network.
// Making namespaces needs CAP_NET_ADMIN (root in CI); without it, available() is false and
// why_not() says what failed, so that the test can skip with a clear message.
#pragma once

#include <string>
#include <vector>

namespace apollo_oauth::redis_test {

class two_hosts {
public:
    two_hosts();
    /// Deletes the namespaces, their veth pairs and the bridge.
    ~two_hosts();
    two_hosts(const two_hosts&) = delete;
    two_hosts& operator=(const two_hosts&) = delete;

    bool available() const noexcept { return why_not_.empty(); }
    const std::string& why_not() const noexcept { return why_not_; }

    /// The bridge's address in the test's namespace: where Redis and the emulator listen for the
    /// hosts. 127.0.0.1 when the network could not be made.
    const std::string& gateway() const noexcept { return gateway_; }

    /// `argv` run inside host `index` (0 or 1): `ip netns exec <namespace> argv...`.
    std::vector<std::string> in_host(std::size_t index, std::vector<std::string> argv) const;

private:
    bool run(const std::string& command);

    std::string ip_;  ///< the ip(8) executable
    std::string bridge_;
    std::vector<std::string> namespaces_;
    std::string gateway_ = "127.0.0.1";
    std::string why_not_;
};

}  // namespace apollo_oauth::redis_test
