// What the token-using commands share: the client, the file store, a token cache and an API
// client for one account, all on one io_context, used while the account lock is held.
#pragma once

#include "output.hpp"
#include "settings.hpp"

#include <apollo_oauth/api_client.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/token_cache.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <initializer_list>
#include <memory>

namespace apollo_oauth::cli {

/// The cache configuration of a short-lived process: no refresh-ahead (a background refresh
/// could be cut off when the process exits, losing the rotated pair), so a refresh happens only
/// when the token is expired and the caller waits for it to be stored.
cache_config cli_cache_config();

struct session {
    explicit session(const settings& s, cache_config cache_settings = cli_cache_config());

    boost::asio::io_context ioc;  // first: destroyed last
    client oauth;
    std::shared_ptr<token_store> store;
    token_cache cache;
    api_client api;
};

/// The account's stored record (loaded from the store), or nullopt.
boost::asio::awaitable<std::pair<error_code, std::optional<stored_tokens>>> load_record(token_store& store,
                                                                                        std::string account);

enum class endpoint_role { token, profile, api };

/// What a failed step was talking to (for explain_failure): these endpoints of s.config, and the
/// CA file it trusted.
failure_context talking_to(const settings& s, std::initializer_list<endpoint_role> roles);

class account_lock;
/// Locks the account for this process (see account_lock), telling the user when it has to wait.
std::unique_ptr<account_lock> lock_account(const settings& s);

}  // namespace apollo_oauth::cli
