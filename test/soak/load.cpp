// The load phase: `concurrency` callers, each one API call at a time for a random account (hot
// accounts get herds and refresh-ahead, cold ones find their token expired), and a driver that
// expires or revokes current access tokens at the emulator (the next call gets a 401) and queues
// one-shot 5xx answers for the API and token routes.
#include "phases.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <array>
#include <future>
#include <random>
#include <vector>

namespace apollo_oauth::soak {
namespace {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

struct load_counters {
    std::atomic<std::uint64_t> started{0};
    std::atomic<std::uint64_t> completed{0};
    std::atomic<std::uint64_t> expired{0};
    std::atomic<std::uint64_t> revoked{0};
    std::atomic<std::uint64_t> api_faults{0};
    std::atomic<std::uint64_t> token_faults{0};
};

/// Picks accounts: a share of the picks from the hot set (the first accounts), the rest from all.
class account_picker {
public:
    account_picker(const options& o, std::uint64_t seed)
        : rng_(seed),
          hot_(o.hot_share),
          hot_accounts_(0, std::max<std::size_t>(1, static_cast<std::size_t>(static_cast<double>(o.accounts) *
                                                                             o.hot_fraction)) -
                               1),
          all_accounts_(0, o.accounts - 1) {}

    std::string next() { return account_name(hot_(rng_) ? hot_accounts_(rng_) : all_accounts_(rng_)); }
    std::mt19937_64& rng() { return rng_; }

private:
    std::mt19937_64 rng_;
    std::bernoulli_distribution hot_;
    std::uniform_int_distribution<std::size_t> hot_accounts_;
    std::uniform_int_distribution<std::size_t> all_accounts_;
};

asio::awaitable<void> caller(environment& env, tally& outcomes, load_counters& counters, std::uint64_t seed,
                             steady::time_point deadline) {
    account_picker picker(env.opts, seed);
    const std::string target = "/v1/tasks/bulk_create";
    const std::string body = R"({"contact_ids":["soak"]})";
    while (steady::now() < deadline) {
        api_request request{.method = boost::beast::http::verb::post, .target = target, .body = body};
        ++counters.started;
        auto [ec, response] = co_await env.api.async_request(picker.next(), std::move(request),
                                                             asio::as_tuple(asio::use_awaitable));
        ++counters.completed;
        outcomes.add_call(ec, response.status);
    }
}

asio::awaitable<void> chaos_driver(environment& env, load_counters& counters, std::uint64_t seed,
                                   steady::time_point deadline) {
    account_picker picker(env.opts, seed);
    auto& rng = picker.rng();
    std::bernoulli_distribution inject_fault(env.opts.fault_probability);
    constexpr std::array<unsigned, 3> statuses{500, 502, 503};
    asio::steady_timer tick(co_await asio::this_coro::executor);
    while (steady::now() < deadline) {
        tick.expires_after(env.opts.chaos_period);
        co_await tick.async_wait(asio::use_awaitable);
        // A token some caller may hold right now: the emulator stops accepting it.
        if (const auto current = env.cache.try_get(picker.next())) {
            const std::string value(current->value.reveal());
            if (rng() % 2 == 0) {
                env.server.expire_access_token(value);
                ++counters.expired;
            } else {
                env.server.revoke_access_token(value);
                ++counters.revoked;
            }
        }
        if (inject_fault(rng)) {
            emulator::fault f;
            f.what = emulator::fault::kind::http_status;
            f.status = statuses[rng() % statuses.size()];
            f.where = rng() % 4 == 0 ? emulator::route::token : emulator::route::api;
            ++(f.where == emulator::route::token ? counters.token_faults : counters.api_faults);
            env.server.inject(f);
        }
    }
}

}  // namespace

load_result run_load(environment& env, tally& outcomes) {
    load_counters counters;
    const auto start = steady::now();
    const auto deadline = start + env.opts.duration;
    std::vector<std::future<void>> tasks;
    for (std::size_t i = 0; i < env.opts.concurrency; ++i) {
        tasks.push_back(
            asio::co_spawn(env.ioc, caller(env, outcomes, counters, env.opts.seed * 1'000'003 + i, deadline),
                           asio::use_future));
    }
    tasks.push_back(
        asio::co_spawn(env.ioc, chaos_driver(env, counters, env.opts.seed, deadline), asio::use_future));
    for (auto& t : tasks) {
        t.get();
    }
    // Faults left in the queue would hit the verification's neighbours; they are not needed now.
    env.server.clear_faults();
    load_result r;
    r.seconds = std::chrono::duration<double>(steady::now() - start).count();
    r.calls_started = counters.started;
    r.calls_completed = counters.completed;
    r.tokens_expired = counters.expired;
    r.tokens_revoked = counters.revoked;
    r.api_faults = counters.api_faults;
    r.token_faults = counters.token_faults;
    return r;
}

}  // namespace apollo_oauth::soak
