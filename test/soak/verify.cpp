#include "phases.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <tuple>

namespace apollo_oauth::soak {
namespace {

namespace asio = boost::asio;

using loaded_record = std::tuple<error_code, std::optional<stored_tokens>>;

asio::awaitable<loaded_record> async_load(token_store& store, std::string account) {
    auto token = asio::as_tuple(asio::use_awaitable);
    auto initiation = [&store](auto handler, std::string name) {
        store.async_load(std::move(name), token_store::load_handler(std::move(handler)));
    };
    co_return co_await asio::async_initiate<decltype(token), void(error_code, std::optional<stored_tokens>)>(
        initiation, token, std::move(account));
}

asio::awaitable<verify_result> verify_all(environment& env) {
    verify_result result;
    for (std::size_t i = 0; i < env.opts.accounts; ++i) {
        auto [ec, record] = co_await async_load(*env.store, account_name(i));
        ++result.checked;
        if (ec || !record) {
            ++result.missing;
            continue;
        }
        const std::string stored(record->tokens.refresh_token.reveal());
        // Empty when the emulator forgot the token (retain_revoked off): it was rotated away too.
        if (env.server.newest_refresh_token_of(stored) != stored) {
            ++result.lost_rotations;
        }
    }
    co_return result;
}

}  // namespace

verify_result verify_accounts(environment& env) {
    env.ioc.restart();
    auto done = asio::co_spawn(env.ioc, verify_all(env), asio::use_future);
    env.ioc.run();
    return done.get();
}

}  // namespace apollo_oauth::soak
