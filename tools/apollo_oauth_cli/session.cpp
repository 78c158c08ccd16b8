// What the token-using commands share.
#include "session.hpp"

#include "files.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <iostream>

namespace apollo_oauth::cli {

cache_config cli_cache_config() {
    cache_config c;
    c.refresh_ahead_fraction = 1.0;
    c.refresh_ahead_jitter = 0.0;
    return c;
}

session::session(const settings& s, cache_config cache_settings)
    : oauth(ioc.get_executor(), s.config),
      store(make_file_token_store(ioc.get_executor(), s.token_dir)),
      cache(oauth, store, std::move(cache_settings)),
      api(oauth, cache) {}

boost::asio::awaitable<std::pair<error_code, std::optional<stored_tokens>>> load_record(token_store& store,
                                                                                        std::string account) {
    namespace asio = boost::asio;
    // A named lambda: g++ 12 mishandles a capturing lambda inside a co_await full-expression.
    auto load = [&store](auto handler, std::string name) {
        store.async_load(std::move(name), std::move(handler));
    };
    auto as_tuple = asio::as_tuple(asio::use_awaitable);
    auto [ec, record] =
        co_await asio::async_initiate<decltype(as_tuple), void(error_code, std::optional<stored_tokens>)>(
            load, as_tuple, std::move(account));
    co_return std::pair{ec, std::move(record)};
}

failure_context talking_to(const settings& s, std::initializer_list<endpoint_role> roles) {
    failure_context out{{}, s.config.tls.ca_file};
    for (const auto role : roles) {
        switch (role) {
            case endpoint_role::token:
                out.peers.push_back({"the token endpoint", s.config.endpoints.token_url});
                break;
            case endpoint_role::profile:
                out.peers.push_back({"the profile endpoint", s.config.endpoints.profile_url});
                break;
            case endpoint_role::api:
                out.peers.push_back({"the API", s.config.endpoints.api_base});
                break;
        }
    }
    return out;
}

// TO BE REMOVED with account_lock (files.hpp) once the file store's lease excludes other processes.
std::unique_ptr<account_lock> lock_account(const settings& s) {
    return std::make_unique<account_lock>(s.token_dir, s.account, [&](const std::filesystem::path& path) {
        std::cerr << "Waiting for another apollo-oauth process using account '" << s.account
                  << "' to finish (lock " << path.string() << ") ..." << std::endl;
    });
}

}  // namespace apollo_oauth::cli
