// One process of the multi-process tests (test/lifecycle: a file-store directory; test/redis: one
// Redis): a token_cache over the store it shares with its siblings, asked for the account's token
// by batches of callers until it has seen the target generation and launched its share of
// callers. Built twice from this file: lifecycle_child (file store only) and redis_child (with
// STORE_CHILD_HAS_REDIS). Prints one line:
//   result launched=N served=N failed=N reauth=N max_generation=G refreshes=R rotations=R adopted=A
//
// Usage: <child> <settings file> <store: directory or redis URL without password> <account> <callers> <target
// generation>
//                        <start delay ms> <lease ttl ms> [<pause phase>]
// With a pause phase (before_mark_sent, after_mark_sent, after_answer, after_commit), the process
// prints "paused <phase>" when its first refresh reaches that point and stops itself (SIGSTOP), so
// that the test can kill it exactly there, or let its lease run out and continue it.
// The settings file (0600, written by the test) holds key=value lines: token_url, client_id,
// client_secret, redirect_uri, ca_file. Nothing secret is printed.
#include "store/child_settings.hpp"

#include <apollo_oauth/client.hpp>
#include <apollo_oauth/forwarding_token_store.hpp>
#ifdef STORE_CHILD_HAS_REDIS
#include <apollo_oauth/redis_token_store.hpp>
#endif
#include <apollo_oauth/token_cache.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <csignal>
#include <iostream>
#include <thread>

namespace asio = boost::asio;
using namespace apollo_oauth;

namespace {

struct tally {
    std::atomic<long> launched{0}, served{0}, failed{0}, reauth{0}, done{0};
    std::atomic<std::uint64_t> max_generation{0};
};

// The holder's phases, seen from the store: mark-sent is the last step before the token request,
// commit the first after its answer.
class phase_gate : public forwarding_token_store {
public:
    phase_gate(std::shared_ptr<token_store> inner, std::string phase)
        : forwarding_token_store(std::move(inner)), phase_(std::move(phase)) {}

    void async_mark_sent(std::string account, std::string holder, std::uint64_t generation,
                         std::chrono::milliseconds ttl, lease_handler handler) override {
        pause_at("before_mark_sent");
        inner().async_mark_sent(std::move(account), std::move(holder), generation, ttl,
                                [this, handler = std::move(handler)](error_code ec) mutable {
                                    if (!ec) {
                                        pause_at("after_mark_sent");
                                    }
                                    std::move(handler)(ec);
                                });
    }

    void async_commit(std::string account, std::string holder, stored_tokens record,
                      std::uint64_t expected_generation, save_handler handler) override {
        pause_at("after_answer");
        inner().async_commit(std::move(account), std::move(holder), std::move(record), expected_generation,
                             [this, handler = std::move(handler)](error_code ec) mutable {
                                 if (!ec) {
                                     pause_at("after_commit");
                                 }
                                 std::move(handler)(ec);
                             });
    }

private:
    // Only the first time: the test examines one refresh; the process then runs on normally.
    void pause_at(std::string_view phase) {
        if (phase == phase_ && !paused_.exchange(true)) {
            std::cout << "paused " << phase << std::endl;
            ::raise(SIGSTOP);  // every thread stops with it
        }
    }

    const std::string phase_;
    std::atomic<bool> paused_{false};
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 8 && argc != 9) {
        std::cerr << "usage: child settings store account callers target delay_ms lease_ms [phase]\n";
        return 2;
    }
    const std::string store_spec = argv[2];
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
    // The same scale for the wait a successor gives a holder that marked its request sent and went
    // silent (backoff_max: that holder's commit retry may be that far apart), and for backoffs.
    cc.backoff_max = std::chrono::seconds(2);
    std::shared_ptr<token_store> store;
    if (store_spec.starts_with("redis://") || store_spec.starts_with("rediss://")) {
#ifdef STORE_CHILD_HAS_REDIS
        redis_options redis;
        if (parse_redis_url(store_spec, redis)) {
            std::cerr << "bad redis URL\n";
            return 2;
        }
        store = make_redis_token_store(ioc.get_executor(), redis);
#else
        std::cerr << "this child was built without the Redis store\n";
        return 2;
#endif
    } else {
        store = make_file_token_store(ioc.get_executor(), store_spec);
    }
    if (argc == 9) {
        store = std::make_shared<phase_gate>(std::move(store), argv[8]);
    }
    token_cache cache{oauth, std::move(store), cc};

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
