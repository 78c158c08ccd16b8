// The soak's phases: seed the accounts through the code flow, load them while a driver breaks
// tokens and injects 5xx, then compare what the store holds with what the emulator issued.
#pragma once

#include <apollo_oauth/api_client.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/emulator/server.hpp>
#include <apollo_oauth/token_cache.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "options.hpp"
#include "tally.hpp"

namespace apollo_oauth::soak {

struct environment {
    const options& opts;
    emulator::server& server;
    boost::asio::io_context& ioc;  ///< run by the client threads
    client& oauth;
    std::shared_ptr<token_store> store;
    token_cache& cache;
    api_client& api;
};

std::string account_name(std::size_t index);

struct seed_result {
    std::uint64_t seeded = 0;
    std::uint64_t failed = 0;
};

/// Authorizes every account: authorize URL, consent at the emulator, callback verified, code
/// exchanged, pair stored in the cache. Blocks until done.
seed_result seed_accounts(environment& env);

struct load_result {
    std::uint64_t calls_started = 0;
    std::uint64_t calls_completed = 0;
    std::uint64_t tokens_expired = 0;  ///< by the driver, at the emulator
    std::uint64_t tokens_revoked = 0;
    std::uint64_t api_faults = 0;    ///< 5xx queued for the API route
    std::uint64_t token_faults = 0;  ///< 5xx queued for the token route
    double seconds = 0;
};

/// Runs `concurrency` callers and the chaos driver until the duration has passed, then waits
/// for every caller's last call. Outcomes go to `outcomes`.
load_result run_load(environment& env, tally& outcomes);

struct verify_result {
    std::uint64_t checked = 0;
    std::uint64_t lost_rotations = 0;  ///< stored refresh token is not the grant's newest
    std::uint64_t missing = 0;         ///< nothing stored, or the store failed to load
};

/// Loads every account's record from the store and asks the emulator whether its refresh token
/// is the newest of its grant. Runs `env.ioc` on the calling thread until done.
verify_result verify_accounts(environment& env);

}  // namespace apollo_oauth::soak
