// One process of bench_redis_herd: a token_cache over the Redis store, `callers` async_get calls
// at once on the account's expired token, released by the parent.
//
// Usage: bench_redis_herd_child <settings file> <redis URL> <account> <callers> <start fd>
// The settings file (0600, written by the parent: test/store/child_settings.hpp) holds the client
// settings; the client secret is never on a command line.
//
// Protocol on stdout: "ready" once the store's command connection is up (so that connecting is
// not counted among the herd's Redis commands), then, after the start fd reaches end of file (the
// parent closes its write end: every child is released by the same close), one line:
//   done served=S failed=F refreshes=R elapsed_us=T
// where T runs from the release to the last caller's completion, on this process's clock.
#include "store/child_settings.hpp"

#include <apollo_oauth/client.hpp>
#include <apollo_oauth/redis_token_store.hpp>
#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/io_context.hpp>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <future>
#include <iostream>

namespace asio = boost::asio;
using namespace apollo_oauth;

namespace {

/// Blocks until the parent closes the pipe's write end.
void wait_for_release(int fd) {
    char byte;
    for (;;) {
        const ssize_t n = ::read(fd, &byte, 1);
        if (n == 0 || (n < 0 && errno != EINTR)) {
            return;
        }
    }
}

}  // namespace

int main(int argc, char** argv) try {
    if (argc != 6) {
        std::cerr << "usage: bench_redis_herd_child settings redis_url account callers start_fd\n";
        return 2;
    }
    redis_options redis;
    if (parse_redis_url(argv[2], redis)) {
        std::cerr << "bad redis URL\n";
        return 2;
    }
    const std::string account = argv[3];
    const long callers = std::stol(argv[4]);
    const int start_fd = std::stoi(argv[5]);

    asio::io_context ioc{1};
    // TLS verification stays on, against the emulator's CA.
    client oauth{ioc.get_executor(), store_test::read_child_settings(argv[1])};
    auto store = make_redis_token_store(ioc.get_executor(), redis);
    token_cache cache{oauth, store};

    // Connects the store (AUTH, SELECT, FUNCTION LIST and, where the library is missing, FUNCTION LOAD)
    // before the parent resets Redis's counters.
    std::promise<error_code> warmed;
    store->async_load(account, [&](error_code ec, std::optional<stored_tokens>) { warmed.set_value(ec); });
    auto warm_up = warmed.get_future();
    while (warm_up.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
        if (ioc.run_one() == 0) {
            ioc.restart();  // momentarily out of work (between the connect's steps)
        }
    }
    ioc.restart();
    if (const auto ec = warm_up.get()) {
        std::cerr << "redis: " << ec.message() << '\n';
        return 2;
    }
    std::cout << "ready" << std::endl;

    wait_for_release(start_fd);
    const auto released = std::chrono::steady_clock::now();
    long served = 0, failed = 0;
    error_code shutdown_ec;
    // One thread runs the io_context, so the counters need no synchronisation.
    for (long i = 0; i < callers; ++i) {
        cache.async_get(account, [&](error_code ec, access_token) {
            ++(ec ? failed : served);
            if (served + failed < callers) {
                return;
            }
            const auto elapsed = std::chrono::steady_clock::now() - released;
            std::cout << "done served=" << served << " failed=" << failed
                      << " refreshes=" << cache.metrics().refreshes << " elapsed_us="
                      << std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count() << std::endl;
            // What a process that exits does: every rotated pair stored first.
            cache.async_shutdown(std::chrono::seconds(10), [&](error_code ec) {
                shutdown_ec = ec;
                ioc.stop();
            });
        });
    }
    ioc.run();
    return shutdown_ec ? 1 : 0;
} catch (const std::exception& e) {
    std::cerr << "bench_redis_herd_child: " << e.what() << '\n';
    return 2;
}
