// Fixture for token cache tests: an emulator, a client, a movable clock, and a store wrapper that
// can fail on demand and shows what was saved.
#pragma once

#include <apollo_oauth/api_client.hpp>
#include <apollo_oauth/forwarding_token_store.hpp>
#include <apollo_oauth/token_cache.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "fixture.hpp"

namespace apollo_oauth::test {

/// system_clock plus an offset that tests move forward (thread-safe).
class movable_clock {
public:
    std::chrono::system_clock::time_point now() const {
        return std::chrono::system_clock::now() + std::chrono::seconds(offset_.load());
    }
    void advance(std::chrono::seconds by) { offset_ += by.count(); }
    std::function<std::chrono::system_clock::time_point()> function() {
        return [this] { return now(); };
    }
    /// steady_clock moved by the same offset (the cache's backoff deadlines use it).
    std::function<std::chrono::steady_clock::time_point()> steady_function() {
        return [this] { return std::chrono::steady_clock::now() + std::chrono::seconds(offset_.load()); };
    }

private:
    std::atomic<std::int64_t> offset_{0};
};

/// Delegates to a memory store (leases included); writes (saves and commits) fail with
/// store_failure while `failing` is set. Records the newest generation written per account,
/// readable synchronously by tests.
class observed_store : public forwarding_token_store {
public:
    explicit observed_store(boost::asio::any_io_executor ex)
        : forwarding_token_store(make_memory_token_store(std::move(ex))) {}

    std::atomic<bool> failing{false};
    /// The next write waits (is not even started) until release_held_save().
    std::atomic<bool> hold_next_save{false};
    std::atomic<int> saves{0};
    std::atomic<int> failed_saves{0};
    std::atomic<int> renewals{0};  ///< leases renewed (async_renew that succeeded)

    /// The holder named by each commit, in order (a write-back names none).
    std::vector<std::string> commit_holders() const {
        std::lock_guard lock{mutex_};
        return commit_holders_;
    }

    std::uint64_t saved_generation(const std::string& account) const {
        std::lock_guard lock{mutex_};
        auto it = saved_.find(account);
        return it == saved_.end() ? 0 : it->second;
    }

    bool has_held_save() const {
        std::lock_guard lock{mutex_};
        return held_.has_value();
    }

    void release_held_save() {
        std::optional<held_save> held;
        {
            std::lock_guard lock{mutex_};
            held.swap(held_);
        }
        if (held) {
            write(std::move(held->account), std::move(held->holder), std::move(held->record), held->expected,
                  std::move(held->handler));
        }
    }

    void async_save(std::string account, stored_tokens record, std::uint64_t expected,
                    save_handler handler) override {
        write(std::move(account), std::nullopt, std::move(record), expected, std::move(handler));
    }
    void async_commit(std::string account, std::string holder, stored_tokens record, std::uint64_t expected,
                      save_handler handler) override {
        {
            std::lock_guard lock{mutex_};
            commit_holders_.push_back(holder);
        }
        write(std::move(account), std::move(holder), std::move(record), expected, std::move(handler));
    }
    void async_renew(std::string account, std::string holder, std::uint64_t generation,
                     std::chrono::milliseconds ttl, lease_handler handler) override {
        inner().async_renew(std::move(account), std::move(holder), generation, ttl,
                            [this, h = std::move(handler)](error_code ec) mutable {
                                renewals += ec ? 0 : 1;
                                std::move(h)(ec);
                            });
    }

private:
    struct held_save {
        std::string account;
        std::optional<std::string> holder;
        stored_tokens record;
        std::uint64_t expected;
        save_handler handler;
    };

    // A save (no holder) or a commit (holder).
    void write(std::string account, std::optional<std::string> holder, stored_tokens record,
               std::uint64_t expected, save_handler handler) {
        if (hold_next_save.exchange(false)) {
            std::lock_guard lock{mutex_};
            held_.emplace(held_save{std::move(account), std::move(holder), std::move(record), expected,
                                    std::move(handler)});
            return;
        }
        ++saves;
        if (failing) {
            ++failed_saves;
            // Through the inner store's executor, like a real failure: never inline.
            return inner().async_load(
                std::move(account),
                [h = std::move(handler)](error_code, std::optional<stored_tokens>) mutable {
                    std::move(h)(errc::store_failure);
                });
        }
        const auto generation = record.generation;
        auto done = [this, account, generation, h = std::move(handler)](error_code ec) mutable {
            if (!ec) {
                std::lock_guard lock{mutex_};
                saved_[account] = std::max(saved_[account], generation);
            }
            std::move(h)(ec);
        };
        if (holder) {
            inner().async_commit(account, std::move(*holder), std::move(record), expected, std::move(done));
        } else {
            inner().async_save(account, std::move(record), expected, std::move(done));
        }
    }

    std::optional<held_save> held_;
    std::vector<std::string> commit_holders_;
    mutable std::mutex mutex_;
    std::map<std::string, std::uint64_t> saved_;
};

/// Runs `ioc` on `threads` threads (this one among them) until it runs dry, then restarts it.
inline void run_on_threads(boost::asio::io_context& ioc, int threads) {
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) {
        pool.emplace_back([&] { ioc.run(); });
    }
    ioc.run();
    for (auto& t : pool) {
        t.join();
    }
    ioc.restart();
}

/// What a herd of gets (herd()) was served.
struct served {
    std::atomic<int> ok{0};
    std::atomic<int> failed{0};
    std::mutex mutex;
    std::set<std::uint64_t> generations;
};

// `n` callers spread over `caches`, then the io_context on `threads` threads until it runs dry.
inline void herd(boost::asio::io_context& ioc, const std::vector<token_cache*>& caches,
                 const std::string& account, int n, int threads, served& out) {
    for (int i = 0; i < n; ++i) {
        caches[static_cast<std::size_t>(i) % caches.size()]->async_get(
            account, [&](error_code ec, access_token t) {
                if (ec) {
                    ++out.failed;
                    return;
                }
                ++out.ok;
                std::lock_guard lock{out.mutex};
                out.generations.insert(t.generation);
            });
    }
    run_on_threads(ioc, threads);
}

// Waits on the io_context's own timer until `done()` (bounded by the suite's timeout).
inline boost::asio::awaitable<void> until(std::function<bool()> done) {
    boost::asio::steady_timer timer{co_await boost::asio::this_coro::executor};
    while (!done()) {
        timer.expires_after(std::chrono::milliseconds(2));
        co_await timer.async_wait(boost::asio::use_awaitable);
    }
}

struct cache_fixture : emulator_fixture {
    movable_clock clock;
    std::shared_ptr<observed_store> store = std::make_shared<observed_store>(ioc.get_executor());

    cache_config cache_settings() {
        cache_config c;
        c.clock = clock.function();
        c.steady_clock = clock.steady_function();
        c.refresh_ahead_jitter = 0.0;  // deterministic refresh-ahead points
        return c;
    }

    /// Authorizes, exchanges and stores a pair for `account`.
    token_set seed(client& c, token_cache& cache, const std::string& account) {
        auto tokens = obtain_tokens(c);
        const auto ec = run([&]() -> boost::asio::awaitable<error_code> {
            auto [e] = co_await cache.async_store(account, tokens,
                                                  boost::asio::as_tuple(boost::asio::use_awaitable));
            co_return e;
        });
        BOOST_REQUIRE(!ec);
        return tokens;
    }

    /// Moves the clock past Apollo's 30-day lifetime: every pair in the cache is now expired.
    void expire_everything() { clock.advance(std::chrono::days(31)); }

    /// What reload_during_a_refresh saw.
    struct reload {
        token_set original;     ///< the pair seeded
        error_code old_caller;  ///< what the old cache's caller was told
        access_token token;     ///< what the new cache served
        std::unique_ptr<token_cache> new_cache;
    };
    /// A server reload: a cache with `settings` over `over` is seeded with "acme", the pair
    /// expires, and its refresh is held on the wire (the emulator's latency fault, after the
    /// endpoint rotated); then the cache is destroyed and a new one, with the same settings over
    /// the same store object, gets the token.
    reload reload_during_a_refresh(client& c, const std::shared_ptr<token_store>& over,
                                   const cache_config& settings) {
        reload out;
        auto old_cache = std::make_unique<token_cache>(c, over, settings);
        out.original = seed(c, *old_cache, "acme");
        expire_everything();
        server.inject({.what = emulator::fault::kind::latency,
                       .where = emulator::route::token,
                       .delay = std::chrono::milliseconds(300)});
        out.old_caller = boost::asio::error::would_block;
        old_cache->async_get("acme", [&](error_code ec, access_token) { out.old_caller = ec; });
        out.token = run([&]() -> boost::asio::awaitable<access_token> {
            co_await until([&] { return old_cache->metrics().refreshes == 1u; });  // on the wire now
            old_cache.reset();  // a reload: the old object goes, its refresh does not
            out.new_cache = std::make_unique<token_cache>(c, over, settings);
            co_return co_await out.new_cache->async_get("acme", boost::asio::use_awaitable);
        });
        return out;
    }
};

}  // namespace apollo_oauth::test
