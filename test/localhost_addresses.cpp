// getaddrinfo and socket, replaced in the test binaries that link this file (integration_tests,
// redis_tests): while a test asks for it, "localhost" has the addresses the test gives it and
// socket() refuses IPv6 (localhost_addresses.hpp); a binary may also answer names of its own
// first (lookup_hook). Everything else goes to libc.
#include "localhost_addresses.hpp"

#include <cerrno>

#include <dlfcn.h>

extern "C" int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints,
                           struct addrinfo** res) {
    static const auto real =
        reinterpret_cast<apollo_oauth::test::getaddrinfo_function>(::dlsym(RTLD_NEXT, "getaddrinfo"));
    if (const auto hook = apollo_oauth::test::lookup_hook.load(); hook != nullptr && node != nullptr) {
        if (const auto answer = hook(node)) {
            return *answer;
        }
    }
    if (const auto answer = apollo_oauth::test::localhost_answer(node, service, res, real)) {
        return *answer;
    }
    return real(node, service, hints, res);
}

extern "C" int socket(int domain, int type, int protocol) {
    using real_socket = int (*)(int, int, int);
    static const auto real = reinterpret_cast<real_socket>(::dlsym(RTLD_NEXT, "socket"));
    if (apollo_oauth::test::refuses_socket(domain)) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    return real(domain, type, protocol);
}
