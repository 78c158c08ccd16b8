// Blocking calls of the token_store interface for test bodies: each waits on a promise that the
// handler fulfils (no sleeps).
#pragma once

#include "test_support.hpp"

#include <apollo_oauth/token_store.hpp>

#include <future>
#include <tuple>

namespace apollo_oauth::redis_test {

template <class... Args, class Start>
std::tuple<Args...> call(Start start) {
    std::promise<std::tuple<Args...>> promise;
    auto future = promise.get_future();
    start([promise = std::move(promise)](Args... args) mutable { promise.set_value({std::move(args)...}); });
    return future.get();
}

inline stored_tokens make_record(std::uint64_t generation, std::string_view tag = "a") {
    stored_tokens r;
    r.generation = generation;
    r.tokens.access_token = secret_string("access-" + std::string(tag) + "-" + std::to_string(generation));
    r.tokens.refresh_token = secret_string("refresh-" + std::string(tag) + "-" + std::to_string(generation));
    r.tokens.token_type = "Bearer";
    r.tokens.scopes = {"contacts_search", "person_read"};
    r.tokens.expires_in = std::chrono::seconds(2592000);
    r.tokens.created_at = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
    r.tokens.expires_at = r.tokens.created_at + r.tokens.expires_in;
    return r;
}

/// Blocking wrappers of one store.
struct sync_store {
    std::shared_ptr<token_store> store;
    using ms = std::chrono::milliseconds;

    std::tuple<error_code, std::optional<stored_tokens>> load(std::string account) {
        return call<error_code, std::optional<stored_tokens>>(
            [&](auto h) { store->async_load(account, std::move(h)); });
    }
    error_code save(std::string account, stored_tokens r, std::uint64_t expected) {
        return std::get<0>(call<error_code>(
            [&](auto h) { store->async_save(account, std::move(r), expected, std::move(h)); }));
    }
    std::tuple<error_code, lease_outcome> acquire(std::string account, std::string holder,
                                                  std::uint64_t known, ms ttl = ms(10'000)) {
        return call<error_code, lease_outcome>(
            [&](auto h) { store->async_acquire(account, holder, known, ttl, std::move(h)); });
    }
    error_code mark_sent(std::string account, std::string holder, std::uint64_t gen, ms ttl = ms(10'000)) {
        return std::get<0>(call<error_code>(
            [&](auto h) { store->async_mark_sent(account, holder, gen, ttl, std::move(h)); }));
    }
    error_code renew(std::string account, std::string holder, std::uint64_t gen, ms ttl = ms(10'000)) {
        return std::get<0>(
            call<error_code>([&](auto h) { store->async_renew(account, holder, gen, ttl, std::move(h)); }));
    }
    error_code commit(std::string account, std::string holder, stored_tokens r, std::uint64_t expected) {
        return std::get<0>(call<error_code>(
            [&](auto h) { store->async_commit(account, holder, std::move(r), expected, std::move(h)); }));
    }
    error_code release(std::string account, std::string holder) {
        return std::get<0>(
            call<error_code>([&](auto h) { store->async_release(account, holder, std::move(h)); }));
    }
    error_code mark_reauth(std::string account, std::uint64_t gen) {
        return std::get<0>(
            call<error_code>([&](auto h) { store->async_mark_reauthorization(account, gen, std::move(h)); }));
    }
    std::tuple<error_code, std::optional<stored_tokens>> wait(std::string account, std::uint64_t known,
                                                              ms max_wait) {
        return call<error_code, std::optional<stored_tokens>>(
            [&](auto h) { store->async_wait_for_change(account, known, max_wait, std::move(h)); });
    }
};

}  // namespace apollo_oauth::redis_test
