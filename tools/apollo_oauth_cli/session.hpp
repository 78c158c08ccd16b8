// What the token-using commands share: the client, the chosen token store, a token cache and an
// API client for one account, all on one io_context. Processes coordinate through the store's
// lease (the cache holds it around re-read -> refresh -> commit), so no lock of the tool's own.
#pragma once

#include "output.hpp"
#include "run.hpp"
#include "settings.hpp"

#include <apollo_oauth/api_client.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/token_cache.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <initializer_list>
#include <memory>

namespace apollo_oauth::cli {

/// The cache configuration of the tool: the library's defaults (refresh-ahead included: every
/// command ends with finish(), which waits for a background refresh's pair to be stored).
cache_config cli_cache_config();

/// How long finish() waits for rotated pairs to be stored before giving up on them.
inline constexpr std::chrono::milliseconds shutdown_deadline{15'000};

struct session {
    explicit session(const settings& s, cache_config cache_settings = cli_cache_config());

    boost::asio::io_context ioc;  // first: destroyed last
    client oauth;
    std::shared_ptr<token_store> store;
    token_cache cache;
    api_client api;

    /// co_awaited by every command before it exits: cache.async_shutdown(shutdown_deadline), so a
    /// pair the server rotated (the only key to the grant) is stored before the process ends.
    /// errc::store_failure / errc::shutting_down when a pair could not be stored in time.
    boost::asio::awaitable<error_code> finish();
};

namespace detail {
template <class MakeOp>
boost::asio::awaitable<int> op_then_finish(session& ses, MakeOp& make_op, boost::asio::any_io_executor ex,
                                           error_code& finished) {
    co_await make_op(std::move(ex));
    finished = co_await ses.finish();
    co_return 0;
}
}  // namespace detail

/// Runs the command's coroutine (made by `make_op(executor)`, returning awaitable<int>) on
/// ses.ioc, then ses.finish(); returns finish()'s error. Rethrows the coroutine's exception.
template <class MakeOp>
error_code run_session(session& ses, MakeOp make_op) {
    error_code finished;
    run_to_completion<int>(ses.ioc, [&](boost::asio::any_io_executor ex) {
        return detail::op_then_finish(ses, make_op, std::move(ex), finished);
    });
    return finished;
}

/// The failure finish() reported, in words (for out.fail).
std::string unstored_pair_message(const settings& s);

/// The account's stored record (loaded from the store), or nullopt.
boost::asio::awaitable<std::pair<error_code, std::optional<stored_tokens>>> load_record(token_store& store,
                                                                                        std::string account);

enum class endpoint_role { token, profile, api };

/// What a failed step was talking to (for explain_failure): these endpoints of s.config, and the
/// CA file it trusted.
failure_context talking_to(const settings& s, std::initializer_list<endpoint_role> roles);

}  // namespace apollo_oauth::cli
