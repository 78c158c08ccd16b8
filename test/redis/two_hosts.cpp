#include "two_hosts.hpp"

#include <cstdlib>
#include <filesystem>

#include <unistd.h>

namespace apollo_oauth::redis_test {

two_hosts::two_hosts() {
    for (const char* candidate : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
        if (std::filesystem::exists(candidate)) {
            ip_ = candidate;
            break;
        }
    }
    if (ip_.empty()) {
        why_not_ = "ip(8) not found (Debian: iproute2)";
        return;
    }
    // Names and a subnet of this process's own, so that two test runs at once do not collide.
    const auto tag = std::to_string(::getpid());
    const auto subnet = "10.213." + std::to_string(20 + ::getpid() % 200) + ".";
    bridge_ = "aob" + tag;
    if (!run(ip_ + " link add " + bridge_ + " type bridge")) {
        bridge_.clear();
        why_not_ = "cannot create a bridge (network namespaces need CAP_NET_ADMIN, e.g. root)";
        return;
    }
    bool made =
        run(ip_ + " addr add " + subnet + "1/24 dev " + bridge_) && run(ip_ + " link set " + bridge_ + " up");
    for (int host = 0; made && host < 2; ++host) {
        const auto ns = "aon" + tag + "h" + std::to_string(host);
        const auto outside = "aov" + tag + "h" + std::to_string(host);  // at most 15 characters
        const auto inside = "aoe" + tag + "h" + std::to_string(host);
        made = run(ip_ + " netns add " + ns);
        if (made) {
            namespaces_.push_back(ns);
        }
        made =
            made && run(ip_ + " link add " + outside + " type veth peer name " + inside) &&
            run(ip_ + " link set " + inside + " netns " + ns) &&
            run(ip_ + " link set " + outside + " master " + bridge_) &&
            run(ip_ + " link set " + outside + " up") &&
            run(ip_ + " -n " + ns + " addr add " + subnet + std::to_string(2 + host) + "/24 dev " + inside) &&
            run(ip_ + " -n " + ns + " link set " + inside + " up") &&
            run(ip_ + " -n " + ns + " link set lo up");
    }
    if (!made) {
        why_not_ = "cannot set up the network namespaces and veth pairs";
        return;
    }
    gateway_ = subnet + "1";
}

two_hosts::~two_hosts() {
    for (const auto& ns : namespaces_) {
        run(ip_ + " netns delete " + ns);  // takes the veth pair with it
    }
    if (!bridge_.empty()) {
        run(ip_ + " link delete " + bridge_);
    }
}

std::vector<std::string> two_hosts::in_host(std::size_t index, std::vector<std::string> argv) const {
    std::vector<std::string> wrapped{ip_, "netns", "exec", namespaces_.at(index)};
    wrapped.insert(wrapped.end(), std::make_move_iterator(argv.begin()), std::make_move_iterator(argv.end()));
    return wrapped;
}

bool two_hosts::run(const std::string& command) {
    // Only names and addresses made above reach the shell.
    return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace apollo_oauth::redis_test
