// Benchmark 4, many accounts: heap per cached account with 1M accounts (a store that keeps
// nothing, so only the cache's own memory is counted; a global-mutex map of the same tokens is
// weighed alongside), and refresh-ahead spreading: 100k accounts issued at the same instant, the
// clock stepped through their lifetime, and the histogram of when each account's background
// refresh started. Jitter must spread them instead of sending 100k refreshes in one instant.
#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/post.hpp>

#include <atomic>
#include <fstream>
#include <iostream>
#include <unordered_map>

#include "bench_support.hpp"
#include "heap_counter.hpp"

namespace apollo_oauth::bench {
namespace {

using std::chrono::system_clock;

/// Accepts every write and keeps nothing: the cache's memory alone is weighed.
class discarding_store final : public token_store {
public:
    explicit discarding_store(asio::any_io_executor ex) : ex_(std::move(ex)) {}
    void async_load(std::string, load_handler handler) override {
        asio::post(ex_, [h = std::move(handler)]() mutable { std::move(h)(error_code{}, std::nullopt); });
    }
    void async_save(std::string, stored_tokens, std::uint64_t, save_handler handler) override {
        asio::post(ex_, [h = std::move(handler)]() mutable { std::move(h)(error_code{}); });
    }

    asio::any_io_executor get_executor() const override { return ex_; }

private:
    asio::any_io_executor ex_;
};

std::string token_text(std::size_t i, char tag) {
    auto t = std::string(43, tag);  // Apollo's length: 32 random bytes, base64url
    const auto digits = std::to_string(i);
    t.replace(0, digits.size(), digits);
    return t;
}

std::string account_name(std::size_t i) {
    return "5f0c1e2d3b4a59" + std::to_string(1'000'000'000 + i);  // 24 characters, like Apollo's ids
}

token_set tokens_issued_at(std::size_t i, system_clock::time_point issued, std::chrono::seconds lifetime) {
    token_set t;
    t.access_token = secret_string{token_text(i, 'a')};
    t.refresh_token = secret_string{token_text(i, 'r')};
    t.token_type = "Bearer";
    t.expires_in = lifetime;
    t.created_at = issued;
    t.expires_at = issued + lifetime;
    return t;
}

struct memory_figures {
    double cache_bytes_per_account = 0;
    double mutex_map_bytes_per_account = 0;
    std::size_t served = 0;  ///< accounts whose stored token try_get returned after weighing
    double shutdown_s = 0;   ///< async_shutdown of the whole cache (every account woken and stopped)
};

memory_figures weigh(std::size_t accounts, const emulator_setup& env) {
    asio::io_context ioc{1};
    memory_figures f;
    const auto issued = system_clock::now();
    {
        client oauth{ioc.get_executor(), env.config()};
        auto store = std::make_shared<discarding_store>(ioc.get_executor());
        const auto before = live_heap_bytes();
        auto cache = std::make_unique<token_cache>(oauth, store);
        run_coroutine(ioc, [&]() -> asio::awaitable<int> {
            for (std::size_t i = 0; i < accounts; ++i) {
                co_await cache->async_store(account_name(i),
                                            tokens_issued_at(i, issued, std::chrono::hours(24)),
                                            asio::use_awaitable);
            }
            co_return 0;
        });
        f.cache_bytes_per_account =
            static_cast<double>(live_heap_bytes() - before) / static_cast<double>(accounts);
        // Weighed, then read back: a cache that lost accounts on the way would weigh less.
        for (std::size_t i = 0; i < accounts; ++i) {
            const auto token = cache->try_get(account_name(i));
            f.served += token && token->value.reveal() == token_text(i, 'a');
        }
        const auto start = bench_clock::now();
        run_coroutine(ioc, [&]() -> asio::awaitable<int> {
            co_await cache->async_shutdown(std::chrono::minutes(5), asio::use_awaitable);
            co_return 0;
        });
        f.shutdown_s = seconds_since(start);
    }
    {
        struct record {
            std::string token;
            system_clock::time_point expires_at;
        };
        const auto before = live_heap_bytes();
        auto map = std::make_unique<std::unordered_map<std::string, record>>();
        for (std::size_t i = 0; i < accounts; ++i) {
            (*map)[account_name(i)] = {token_text(i, 'a'), issued + std::chrono::hours(24)};
        }
        f.mutex_map_bytes_per_account =
            static_cast<double>(live_heap_bytes() - before) / static_cast<double>(accounts);
    }
    return f;
}

/// Refresh starts per step of 1% of the lifetime, from 60% to 90% of it.
std::vector<std::size_t> spreading(std::size_t accounts, emulator_setup& env, double& elapsed_s) {
    asio::io_context ioc{1};
    const auto lifetime = std::chrono::hours(1);
    const auto issued = system_clock::now();
    auto now = issued;
    std::size_t reauthorizations = 0;
    client oauth{ioc.get_executor(), env.config()};
    // A store that keeps the pairs: the cache commits its pair before it refreshes when the store
    // holds an older one, or none (lifecycle.md), so over a store that keeps nothing no refresh
    // would ever start. (Nothing is weighed here.)
    auto store = make_memory_token_store(ioc.get_executor());
    cache_config config;
    config.clock = [&now] { return now; };
    // The refresh tokens are made up, so the emulator answers invalid_grant: each account's one
    // background refresh is counted by this hook, which runs once per account.
    config.on_reauthorization_required = [&](const std::string&) { ++reauthorizations; };
    token_cache cache{oauth, store, config};
    std::vector<std::string> names;
    for (std::size_t i = 0; i < accounts; ++i) {
        names.push_back(account_name(i));
    }
    run_coroutine(ioc, [&]() -> asio::awaitable<int> {
        for (std::size_t i = 0; i < accounts; ++i) {
            co_await cache.async_store(names[i], tokens_issued_at(i, issued, lifetime), asio::use_awaitable);
        }
        co_return 0;
    });
    std::vector<std::size_t> starts;
    const auto start = bench_clock::now();
    for (int percent = 60; percent <= 90; ++percent) {
        now = issued + std::chrono::duration_cast<system_clock::duration>(std::chrono::seconds(lifetime) *
                                                                          percent / 100);
        const auto seen = reauthorizations;
        for (const auto& name : names) {
            (void)cache.try_get(name);  // starts the background refresh once past its point
        }
        ioc.run();  // until every refresh started in this step has been answered
        ioc.restart();
        starts.push_back(reauthorizations - seen);
    }
    elapsed_s = seconds_since(start);
    return starts;
}

}  // namespace
}  // namespace apollo_oauth::bench

int main(int argc, char** argv) try {
    using namespace apollo_oauth::bench;
    const auto opts = options::parse(argc, argv);
    const auto weighed = static_cast<std::size_t>(opts.integer("accounts", opts.quick ? 20'000 : 1'000'000));
    const auto spread =
        static_cast<std::size_t>(opts.integer("spread-accounts", opts.quick ? 2'000 : 100'000));
    emulator_setup env;
    report out("accounts");

    std::vector<double> cache_bytes, map_bytes, shutdown_s;
    std::size_t fewest_served = weighed;
    for (int round = 0; round < std::min(opts.rounds, 3); ++round) {
        const auto f = weigh(weighed, env);
        cache_bytes.push_back(f.cache_bytes_per_account);
        map_bytes.push_back(f.mutex_map_bytes_per_account);
        fewest_served = std::min(fewest_served, f.served);
        shutdown_s.push_back(f.shutdown_s);
    }
    out.row("memory",
            std::to_string(weighed) + " accounts: " + fixed(median(cache_bytes)) +
                " heap bytes per cached account (a mutex map of the access tokens alone: " +
                fixed(median(map_bytes)) + ")",
            {{"accounts", weighed},
             {"cache_bytes_per_account", median(cache_bytes)},
             {"mutex_map_bytes_per_account", median(map_bytes)}});
    out.row("shutdown",
            "async_shutdown of those " + std::to_string(weighed) +
                " accounts (each woken, stopped, set aside): " + fixed(median(shutdown_s) * 1e3) + " ms",
            {{"accounts", weighed}, {"seconds", median(shutdown_s)}});

    double elapsed = 0;
    const auto starts = spreading(spread, env, elapsed);
    std::size_t total = 0, busiest = 0, steps_used = 0;
    boost::json::array histogram;
    std::ofstream plot_data;
    if (!opts.json_path.empty()) {
        plot_data.open(opts.json_path + ".dat");
        plot_data << "# percent_of_lifetime refreshes_started\n";
    }
    for (std::size_t i = 0; i < starts.size(); ++i) {
        total += starts[i];
        busiest = std::max(busiest, starts[i]);
        steps_used += starts[i] != 0 ? 1 : 0;
        histogram.push_back(boost::json::array{60 + static_cast<int>(i), starts[i]});
        if (plot_data.is_open()) {
            plot_data << 60 + i << ' ' << starts[i] << '\n';
        }
    }
    std::string bars;
    for (std::size_t i = 0; i < starts.size(); ++i) {
        if (starts[i] != 0) {
            bars += "\n    " + std::to_string(60 + i) + "% " +
                    std::string(starts[i] * 50 / std::max<std::size_t>(busiest, 1), '#') + " " +
                    std::to_string(starts[i]);
        }
    }
    out.row("spreading",
            std::to_string(spread) + " accounts issued at once: " + std::to_string(total) +
                " background refreshes over " + std::to_string(steps_used) +
                " steps of 1% of the lifetime; busiest step " + std::to_string(busiest) + bars,
            {{"accounts", spread},
             {"refreshes", total},
             {"steps_with_refreshes", steps_used},
             {"busiest_step", busiest},
             {"histogram_percent_count", histogram},
             {"seconds", elapsed}});
    out.target("heap per cached account / a plain map of the access tokens",
               median(cache_bytes) / median(map_bytes), "<=", 1.5);
    out.check("weighed accounts served their token afterwards", static_cast<double>(fewest_served),
              ">=", static_cast<double>(weighed));
    out.check("refresh-ahead: every account refreshed once", static_cast<double>(total),
              ">=", static_cast<double>(spread));
    out.target("refresh-ahead: busiest 1% step / accounts",
               static_cast<double>(busiest) / static_cast<double>(spread), "<=", 0.2);
    return out.finish(opts);
} catch (const std::exception& e) {
    std::cerr << "accounts: " << e.what() << '\n';
    return 2;
}
