// token_cache: one current access token per account, one refresh per rotation.
//
// Thousands of in-flight API calls for one account share a single refresh: Apollo revokes the old
// pair on every refresh, so a duplicate refresh (or a lost rotated refresh token) locks the
// customer out. The invariants, each pinned by a test:
// - At most one refresh per account is in flight, whatever the number of callers, threads or
//   401s. A refresh that fails is reported to every waiter that joined it; transient failures
//   back off before the next attempt (no retry storm).
// - The rotated pair is written to the token_store before any waiter sees the new access token.
//   A failed write keeps the new pair in memory (it is used), reports the failure through
//   on_store_failure, and is retried; a rotated refresh token is never dropped, and never
//   overwritten by an older one (records are compared by generation, not time).
// - A valid token is returned without waiting and without a network hop.
// - invalidate(account, token) only acts when `token` is still current: a thousand 401s on the
//   same stale token cause one refresh.
// - invalid_grant on refresh: the grant is gone. The account becomes reauthorization_required,
//   waiters get that error, on_reauthorization_required runs once, and no further refresh is
//   tried until async_store puts new tokens.
// - A waiter cancelled (terminal, partial or total: leaving has no side effects) completes with
//   operation_aborted; the refresh goes on for the others. Completions run on each caller's
//   executor, never inline.
// - Refresh-ahead: past a jittered share of the lifetime, callers still get the current token
//   while one background refresh runs; only an expired token makes callers wait.
#pragma once

#include <apollo_oauth/client.hpp>
#include <apollo_oauth/detail/async_support.hpp>
#include <apollo_oauth/error.hpp>
#include <apollo_oauth/secret.hpp>
#include <apollo_oauth/token_set.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/system_executor.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

namespace apollo_oauth {

struct cache_config {
    /// Refresh in the background once this share of the lifetime has passed. Default 0.75, with
    /// each rotation's point drawn uniformly within ±refresh_ahead_jitter of it, so that accounts
    /// authorized in the same second do not all refresh in the same second.
    double refresh_ahead_fraction = 0.75;
    double refresh_ahead_jitter = 0.05;
    /// A token is treated as expired this long before expires_at, for clock skew and for the
    /// request still to be made with it. Default 60 s.
    std::chrono::seconds expiry_margin{60};
    /// After a transient refresh failure, callers with an expired token get that error at once
    /// until the backoff has passed; it starts at backoff_initial and doubles to backoff_max.
    /// A Retry-After from the token endpoint (429, 503) lengthens it, up to backoff_max.
    std::chrono::milliseconds backoff_initial{1'000};
    std::chrono::milliseconds backoff_max{60'000};
    /// Narrower scopes to request on every refresh (empty: keep the grant's scopes).
    std::vector<std::string> refresh_scopes;

    /// Called once when an account's grant is gone (invalid_grant on refresh). Runs on an
    /// internal thread; it must not block.
    std::function<void(const std::string& account)> on_reauthorization_required;
    /// Called for every new pair (code exchange stored, or rotation), after it is stored (or the
    /// store failed). Must not block.
    std::function<void(const std::string& account, const token_set& tokens)> on_rotation;
    /// Called when the store could not persist a pair; the cache keeps it and retries.
    std::function<void(const std::string& account, error_code ec)> on_store_failure;
    /// The clock for expiry decisions (tests move it); default system_clock::now.
    std::function<std::chrono::system_clock::time_point()> clock;
};

/// TEMP stub of Seam 4 (the lifecycle branch adds the real one): the cache's counters.
struct cache_metrics {
    std::uint64_t refreshes = 0;  ///< token requests sent
    std::uint64_t rotations = 0;  ///< new pairs committed by this cache
    std::uint64_t adopted = 0;    ///< newer pairs found in the store instead of refreshing
    std::uint64_t refresh_failures = 0;
    std::uint64_t waiters = 0;  ///< callers that had to wait (not served from the snapshot)
    std::uint64_t waiting_now = 0;
    std::uint64_t store_failures = 0;
    std::uint64_t reauthorizations = 0;
};

/// The access token handed to a caller, with the identity invalidate() compares.
struct access_token {
    secret_string value;
    std::uint64_t generation = 0;
};

class api_client;

namespace detail {
class cache_impl;
using access_token_handler = boost::asio::any_completion_handler<void(error_code, access_token)>;
using store_result_handler = boost::asio::any_completion_handler<void(error_code)>;
void cache_get_erased(const std::shared_ptr<cache_impl>& impl, std::string account,
                      boost::asio::any_io_executor handler_ex, access_token_handler handler);
void cache_store_erased(const std::shared_ptr<cache_impl>& impl, std::string account, token_set tokens,
                        boost::asio::any_io_executor handler_ex, store_result_handler handler);
boost::asio::any_io_executor cache_executor(const std::shared_ptr<cache_impl>& impl) noexcept;
std::optional<access_token> cache_try_get(const std::shared_ptr<cache_impl>& impl,
                                          const std::string& account);

/// Where an immediate completion runs: the handler's associated executor, or the cache's when
/// the handler has none (probed without building the fallback, which costs an executor copy).
template <class Handler>
boost::asio::any_io_executor immediate_executor(const Handler& handler,
                                                const std::shared_ptr<cache_impl>& impl) {
    using probe = boost::asio::associated_executor_t<Handler, boost::asio::system_executor>;
    if constexpr (std::is_same_v<probe, boost::asio::system_executor>) {
        return cache_executor(impl);
    } else {
        return boost::asio::get_associated_executor(handler);
    }
}
}  // namespace detail

/// Thread safety: every member may be called from any thread, concurrently.
class token_cache {
public:
    /// `oauth` refreshes; `store` persists. Both must outlive the cache's operations (the cache
    /// keeps shared ownership of the store; the client is copied by reference to its shared state).
    token_cache(client& oauth, std::shared_ptr<token_store> store, cache_config config = {});
    /// Completes every waiter with errc::shutting_down.
    ~token_cache();
    token_cache(const token_cache&) = delete;
    token_cache& operator=(const token_cache&) = delete;

    /// The current access token for `account`, refreshing it when it has expired or was
    /// invalidated. An account not in memory is loaded from the store first.
    ///
    /// Handler: void(error_code, access_token). Executor: the handler's, never inline.
    /// Cancellation: terminal, partial and total; the waiter leaves, a shared refresh goes on.
    /// Errors: errc::unknown_account (nothing stored), errc::reauthorization_required, the
    /// refresh's error (shared by every waiter of that refresh), the store's load error,
    /// errc::shutting_down.
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_get(std::string account, CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, access_token)>(
            initiate_get{impl_}, token, std::move(account));
    }

    /// The current token when it is valid and in memory, without waiting: the hot path for code
    /// that can fall back to async_get. Never starts a refresh except a background refresh-ahead.
    std::optional<access_token> try_get(const std::string& account);

    /// Makes `tokens` the account's pair (after a code exchange): writes it to the store with the
    /// next generation, then serves it. Clears reauthorization_required.
    ///
    /// Handler: void(error_code). Errors: the store's error (the pair is kept in memory and
    /// served all the same, and the write is retried). Cancellation: none (the write goes on).
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_store(std::string account, token_set tokens, CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            initiate_store{impl_}, token, std::move(account), std::move(tokens));
    }

    /// After a 401 with `rejected`: marks it expired when it is still the account's current token,
    /// so the next async_get refreshes. Does nothing for an older token.
    void invalidate(const std::string& account, const access_token& rejected);

    /// Refreshes in flight now, over all accounts (metrics, tests).
    std::size_t refreshes_in_flight() const;

    /// TEMP stub of Seam 4: the counters, read with relaxed atomics.
    cache_metrics metrics() const;

    /// Completes every waiter with errc::shutting_down and refuses new calls.
    void stop();

private:
    friend class api_client;

    struct initiate_get {
        std::shared_ptr<detail::cache_impl> impl;
        template <class Handler>
        void operator()(Handler&& handler, std::string account) const {
            // The hot path: a valid token in memory completes without type erasure, waiter or
            // cancellation hook. `defer`, not `post`: the completion continues the caller's own
            // work, so Asio queues it on the calling thread's private queue when that thread runs
            // the handler's io_context (no cross-thread wake-up). Never inline: a coroutine that
            // gets in a loop would otherwise nest resumptions until its stack overflows.
            if (auto current = detail::cache_try_get(impl, account)) {
                auto ex = detail::immediate_executor(handler, impl);
                boost::asio::defer(ex,
                                   [h = std::forward<Handler>(handler), t = std::move(*current)]() mutable {
                                       std::move(h)(error_code{}, std::move(t));
                                   });
                return;
            }
            auto ex = detail::handler_executor(handler, detail::cache_executor(impl));
            detail::cache_get_erased(impl, std::move(account), std::move(ex),
                                     detail::access_token_handler(std::forward<Handler>(handler)));
        }
    };
    struct initiate_store {
        std::shared_ptr<detail::cache_impl> impl;
        template <class Handler>
        void operator()(Handler&& handler, std::string account, token_set tokens) const {
            auto ex = detail::handler_executor(handler, detail::cache_executor(impl));
            detail::cache_store_erased(impl, std::move(account), std::move(tokens), std::move(ex),
                                       detail::store_result_handler(std::forward<Handler>(handler)));
        }
    };

    std::shared_ptr<detail::cache_impl> impl_;
};

}  // namespace apollo_oauth
