// "localhost" with the addresses a test gives it, for the connects that try a lookup's addresses
// in turn (the HTTPS exchange, the Redis connection), and socket() without IPv6. A test binary
// links localhost_addresses.cpp, which replaces getaddrinfo and socket with these.
#pragma once

#include <atomic>
#include <cstring>
#include <optional>
#include <vector>

#include <netdb.h>
#include <sys/socket.h>

namespace apollo_oauth::test {

using getaddrinfo_function = int (*)(const char*, const char*, const struct addrinfo*, struct addrinfo**);

// A binary's own answers, asked first: the getaddrinfo result for `node`, or nullopt for the rest.
using lookup_answer = std::optional<int> (*)(const char* node);
inline std::atomic<lookup_answer> lookup_hook{nullptr};

// The addresses "localhost" resolves to while a test sets them (nullptr: libc's answer).
inline std::atomic<const std::vector<const char*>*> localhost_addresses{nullptr};
inline std::atomic<int> localhost_lookups{0};

// Chains libc's answers for each numeric address, IPv4 or IPv6 (glibc allocates every node on its own, so
// freeaddrinfo frees the chain whole).
inline int resolve_numeric(const std::vector<const char*>& addresses, const char* service,
                           struct addrinfo** res, getaddrinfo_function real) {
    struct addrinfo numeric {};
    numeric.ai_family = AF_UNSPEC;
    numeric.ai_socktype = SOCK_STREAM;
    numeric.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    struct addrinfo* head = nullptr;
    struct addrinfo** tail = &head;
    for (const char* address : addresses) {
        if (const int rc = real(address, service, &numeric, tail); rc != 0) {
            if (head != nullptr) {
                ::freeaddrinfo(head);
            }
            return rc;
        }
        while (*tail != nullptr) {
            tail = &(*tail)->ai_next;
        }
    }
    *res = head;
    return 0;
}

/// getaddrinfo's answer for `node` while a test has set localhost's addresses, else nullopt.
inline std::optional<int> localhost_answer(const char* node, const char* service, struct addrinfo** res,
                                           getaddrinfo_function real) {
    const auto* addresses = localhost_addresses.load();
    if (addresses == nullptr || node == nullptr || std::strcmp(node, "localhost") != 0) {
        return std::nullopt;
    }
    ++localhost_lookups;
    return resolve_numeric(*addresses, service, res, real);
}

// While set, a socket() replacement refuses IPv6, as a kernel without it does (refuses_socket).
inline std::atomic<bool> no_ipv6_sockets{false};

/// For a socket() replacement: whether to fail this one with EAFNOSUPPORT.
inline bool refuses_socket(int domain) noexcept {
    return domain == AF_INET6 && no_ipv6_sockets;
}

/// While it lives, socket() refuses IPv6.
struct without_ipv6 {
    without_ipv6() { no_ipv6_sockets = true; }
    ~without_ipv6() { no_ipv6_sockets = false; }
    without_ipv6(const without_ipv6&) = delete;
    without_ipv6& operator=(const without_ipv6&) = delete;
};

/// While it lives, "localhost" resolves to `addresses`, in that order.
struct localhost_resolving_to {
    explicit localhost_resolving_to(std::vector<const char*> list) : addresses(std::move(list)) {
        localhost_lookups = 0;
        localhost_addresses = &addresses;
    }
    ~localhost_resolving_to() { localhost_addresses = nullptr; }
    localhost_resolving_to(const localhost_resolving_to&) = delete;
    localhost_resolving_to& operator=(const localhost_resolving_to&) = delete;

    std::vector<const char*> addresses;
};

}  // namespace apollo_oauth::test
