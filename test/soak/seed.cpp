// Seeding plays the browser with the library's own HTTPS pool: the emulator's consent() opens a
// fresh TLS connection per call, which for 100k accounts costs minutes; keep-alive connections
// make the same GET of the authorize endpoint (same redirect, same code) cheap. Everything after
// the redirect is the real flow: verify_callback, async_exchange_code, async_store.
#include "phases.hpp"

#include <apollo_oauth/authorization.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <cstdio>
#include <future>
#include <vector>

namespace apollo_oauth::soak {
namespace {

namespace asio = boost::asio;

asio::awaitable<bool> seed_one(environment& env, authorization_flow& flow, std::size_t index) {
    auto url = flow.make_authorization_url({.any_browser = true});
    if (!url) {
        co_return false;
    }
    // The authorize endpoint takes no credentials; the pool's API call sends a placeholder one.
    const auto base = env.server.base_url();
    const secret_string no_token{"browser"};
    api_request consent{.method = boost::beast::http::verb::get, .target = url->url.substr(base.size())};
    auto [ec, page] = co_await env.oauth.async_api_request(no_token, std::move(consent),
                                                           asio::as_tuple(asio::use_awaitable));
    const auto location = page.header("Location");
    if (ec || page.status != 302 || !location) {
        co_return false;
    }
    auto grant = flow.verify_callback(*location);
    if (!grant) {
        co_return false;
    }
    auto [exchange_ec, tokens] =
        co_await env.oauth.async_exchange_code(std::move(*grant), asio::as_tuple(asio::use_awaitable));
    if (exchange_ec) {
        co_return false;
    }
    auto [store_ec] = co_await env.cache.async_store(account_name(index), std::move(tokens),
                                                     asio::as_tuple(asio::use_awaitable));
    co_return !store_ec;
}

asio::awaitable<seed_result> seed_worker(environment& env, authorization_flow& flow,
                                         std::atomic<std::size_t>& next) {
    seed_result result;
    for (std::size_t i = next++; i < env.opts.accounts; i = next++) {
        if (co_await seed_one(env, flow, i)) {
            ++result.seeded;
        } else {
            ++result.failed;
        }
    }
    co_return result;
}

}  // namespace

std::string account_name(std::size_t index) {
    char name[32];
    std::snprintf(name, sizeof name, "account-%07zu", index);
    return name;
}

seed_result seed_accounts(environment& env) {
    authorization_flow flow{env.oauth.config()};
    std::atomic<std::size_t> next{0};
    std::vector<std::future<seed_result>> workers;
    for (std::size_t i = 0; i < env.opts.seed_concurrency; ++i) {
        workers.push_back(asio::co_spawn(env.ioc, seed_worker(env, flow, next), asio::use_future));
    }
    seed_result total;
    for (auto& w : workers) {
        const auto r = w.get();
        total.seeded += r.seeded;
        total.failed += r.failed;
    }
    return total;
}

}  // namespace apollo_oauth::soak
