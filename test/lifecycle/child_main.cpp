// One process of the multi-process lifecycle test: a token_cache over a file store shared with
// its siblings, asked for the account's token by batches of callers until it has seen the target
// generation and launched its share of callers. Prints one line:
//   result launched=N served=N failed=N reauth=N max_generation=G refreshes=R rotations=R adopted=A
//
// Usage: lifecycle_child <settings file> <store dir> <account> <callers> <target generation>
//                        <start delay ms> <lease ttl ms>
// The settings file (0600, written by the test) holds key=value lines: token_url, client_id,
// client_secret, redirect_uri, ca_file. Nothing secret is printed.
#include "store/child_settings.hpp"

#include <apollo_oauth/client.hpp>
#include <apollo_oauth/token_cache.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <iostream>
#include <thread>

namespace asio = boost::asio;
using namespace apollo_oauth;

namespace {

struct tally {
    std::atomic<long> launched{0}, served{0}, failed{0}, reauth{0}, done{0};
    std::atomic<std::uint64_t> max_generation{0};
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 8) {
        std::cerr << "usage: lifecycle_child settings dir account callers target delay_ms lease_ms\n";
        return 2;
    }
    const std::string directory = argv[2];
    const std::string account = argv[3];
    const long callers = std::stol(argv[4]);
    const std::uint64_t target = std::stoull(argv[5]);
    // The staggered start is the workload's shape (processes of a fleet start at different times).
    std::this_thread::sleep_for(std::chrono::milliseconds(std::stol(argv[6])));
    const std::chrono::milliseconds lease_ttl{std::stol(argv[7])};

    asio::io_context ioc;
    auto config = store_test::read_child_settings(argv[1]);
    // The emulator's pairs live 2 s so that rotations come quickly; the default 60 s floor would
    // stretch each rotation to a minute and the run would end, on its three-minute limit, far short
    // of its target generation.
    config.minimum_lifetime = std::chrono::seconds(1);
    client oauth{ioc.get_executor(), config};
    cache_config cc;
    cc.lease_ttl = lease_ttl;
    token_cache cache{oauth, make_file_token_store(ioc.get_executor(), directory), cc};

    tally t;
    const long batch = std::max(1L, callers / 40);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(3);
    error_code shutdown_ec;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer timer{ioc};
            while ((t.launched < callers || t.max_generation < target) && t.reauth == 0 &&
                   std::chrono::steady_clock::now() < give_up) {
                for (long i = 0; i < batch; ++i) {
                    ++t.launched;
                    cache.async_get(account, [&](error_code ec, access_token token) {
                        if (ec) {
                            ++t.failed;
                            t.reauth += ec == errc::reauthorization_required;
                        } else {
                            ++t.served;
                            auto seen = t.max_generation.load();
                            while (seen < token.generation &&
                                   !t.max_generation.compare_exchange_weak(seen, token.generation)) {
                            }
                        }
                        ++t.done;
                    });
                }
                timer.expires_after(std::chrono::milliseconds(50));
                co_await timer.async_wait(asio::use_awaitable);
            }
            while (t.done < t.launched) {  // the last batch
                timer.expires_after(std::chrono::milliseconds(5));
                co_await timer.async_wait(asio::use_awaitable);
            }
            // What a process that exits must do: every rotated pair stored, or its loss told.
            auto [ec] =
                co_await cache.async_shutdown(std::chrono::seconds(10), asio::as_tuple(asio::use_awaitable));
            shutdown_ec = ec;
        },
        asio::detached);
    std::thread second([&] { ioc.run(); });
    ioc.run();
    second.join();
    const auto m = cache.metrics();
    std::cout << "result launched=" << t.launched << " served=" << t.served << " failed=" << t.failed
              << " reauth=" << t.reauth << " max_generation=" << t.max_generation
              << " refreshes=" << m.refreshes << " rotations=" << m.rotations << " adopted=" << m.adopted
              << " shutdown=" << (shutdown_ec ? 1 : 0) << std::endl;
    return 0;
}
