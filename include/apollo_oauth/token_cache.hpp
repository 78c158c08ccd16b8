// token_cache: one current access token per account, one refresh per rotation, across every
// cache that shares a token_store (and, with the file or Redis store, across processes).
//
// Thousands of in-flight API calls for one account share a single refresh: Apollo revokes the old
// pair on every refresh, so a duplicate refresh (or a lost rotated refresh token) locks the
// customer out. Each account's life is a state machine (src/sansio/account_fsm.hpp, drawn in
// docs/lifecycle.md) run on a strand; readers never enter it, they read the token it published.
// The invariants, each pinned by a test:
// - At most one refresh per account is in flight, whatever the number of callers, threads, 401s,
//   caches sharing the store, or processes sharing a file store: before a refresh the cache takes
//   the store's lease and re-reads the record, and adopts a newer pair instead of refreshing. A
//   refresh that fails is reported to every waiter that joined it; transient failures back off
//   (steady_clock) before the next attempt (no retry storm).
// - The rotated pair is committed to the token_store (compare-and-set on the generation) before
//   any waiter sees the new access token. A failed write keeps the new pair in memory (it is
//   used), reports the failure through on_store_failure, and is retried until it lands;
//   async_shutdown waits for it. (A pair the store refuses as more than it can hold,
//   errc::invalid_argument, is not written again on the timer, since every write of it would be
//   refused; a refresh cycle that finds the store behind still tries it once.) A rotated
//   refresh token is never dropped silently, and never overwritten by an older one.
// - A valid token is returned without waiting and without a network hop.
// - invalidate(account, token) only acts when `token` is still current: a thousand 401s on the
//   same stale token cause one refresh.
// - invalid_grant on refresh: the store is re-read first (another cache may have rotated); when
//   nothing newer is there, the grant is gone: reauthorization_required is recorded in the store
//   (other processes learn it without spending a refresh), waiters get that error,
//   on_reauthorization_required runs once, and no further refresh is tried until async_store
//   puts new tokens.
// - A waiter cancelled (terminal, partial or total: leaving has no side effects) completes with
//   operation_aborted; the refresh goes on for the others. Completions run on each caller's
//   executor, never inline.
// - Refresh-ahead: past a jittered share of the lifetime, callers still get the current token
//   while one background refresh runs; only an expired token makes callers wait.
#pragma once

#include <apollo_oauth/account_id.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/detail/async_support.hpp>
#include <apollo_oauth/detail/completion_batch.hpp>
#include <apollo_oauth/detail/handler_allocator.hpp>
#include <apollo_oauth/detail/parked_handler.hpp>
#include <apollo_oauth/error.hpp>
#include <apollo_oauth/secret.hpp>
#include <apollo_oauth/token_set.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/system_executor.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

namespace apollo_oauth {

/// What the cache asks of an OAuth client: one refresh_token grant. client implements it (see
/// make_client_refresher); an application may wrap it (metrics, a circuit breaker), and tests
/// inject their own to run the cache without TLS.
class token_refresher {
public:
    using refresh_handler = boost::asio::any_completion_handler<void(error_code, token_set)>;
    virtual ~token_refresher() = default;
    /// Sends one refresh. `diag`, when not null, is filled with what the server said before the
    /// handler runs, and stays valid until then. Handler: may run on any thread, never inline.
    /// Errors: those of client::async_refresh (errc::invalid_grant means the grant is gone).
    virtual void async_refresh(secret_string refresh_token, std::vector<std::string> scopes,
                               diagnostics* diag, refresh_handler handler) = 0;
};

/// The refresher of `oauth` (shares its state: the client object may go away first).
std::shared_ptr<token_refresher> make_client_refresher(client& oauth);

/// Counters of one cache since it was made (Prometheus-style counters, plus one gauge).
struct cache_metrics {
    std::uint64_t refreshes = 0;         ///< token requests sent
    std::uint64_t rotations = 0;         ///< new pairs committed by this cache
    std::uint64_t adopted = 0;           ///< newer pairs found in the store instead of refreshing
    std::uint64_t refresh_failures = 0;  ///< refreshes that did not bring a pair (any error)
    std::uint64_t waiters = 0;           ///< callers that had to wait (not served from the snapshot)
    std::uint64_t waiting_now = 0;       ///< callers waiting now (a gauge)
    std::uint64_t store_failures = 0;    ///< failed writes of a pair (each retry counts)
    std::uint64_t reauthorizations = 0;  ///< grants this cache found gone (and recorded so)
};

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
    /// backoff_initial is also how often, at most, an account whose grant is gone reads the store
    /// again when a caller asks for it (another process may have stored a new authorization);
    /// backoff_max is also how long the cache waits, holding the lease, for the commit of a holder
    /// that marked its request sent and went silent, before it sends that refresh token itself.
    std::chrono::milliseconds backoff_initial{1'000};
    std::chrono::milliseconds backoff_max{60'000};
    /// Narrower scopes to request on every refresh (empty: keep the grant's scopes).
    std::vector<std::string> refresh_scopes{};

    /// How long the store's refresh lease lasts: more than a refresh's hard deadline plus the
    /// commit. While the cache holds it, it renews it every lease_ttl / 3 (a slow request or a
    /// refused commit keeps it). A holder that dies is replaced after it (the file store: at once,
    /// the kernel drops its flock); one that had marked its request sent is then given
    /// backoff_max to commit before its successor sends (its answer may still come). Default 60 s. A cache
    /// whose callers wait for another holder tells them coordination_unavailable after backoff_max + 2 *
    /// lease_ttl (a holder that keeps renewing a pair its store will not take), and never refreshes
    /// meanwhile.
    std::chrono::milliseconds lease_ttl{60'000};
    /// How long stop() and the destructor go on writing rotated pairs the store refused, before
    /// each one still unstored is reported through on_store_failure(account, shutting_down).
    std::chrono::milliseconds stop_flush_timeout{10'000};

    // Hooks. Each runs on the cache's executor (the client's), inside the account's strand, never
    // inline from a call of the application's; they must not block, and must not wait for this
    // cache (they may call it). An exception a hook throws is caught and dropped: the cache's
    // work around it (a refused pair's next write, a caller's answer) goes on.
    /// Called once when this cache finds an account's grant gone (invalid_grant on refresh, and no
    /// newer pair stored). Caches that learn it from the store do not call it again.
    std::function<void(const std::string& account)> on_reauthorization_required{};
    /// Called for every new pair (code exchange stored, or rotation), after it is stored (or the
    /// store failed). Must not block.
    std::function<void(const std::string& account, const token_set& tokens)> on_rotation{};
    /// Called when the store could not persist a pair; the cache keeps it and retries. With
    /// errc::invalid_argument: the store refuses the pair as more than it can hold (a token not
    /// UTF-8, a file record over 1 MiB): kept and served, not written again on the timer (no
    /// write of it would land); each refresh cycle that finds the store behind tries it once
    /// more and reports it again.
    /// With errc::shutting_down: the stop's deadline passed and the pair was never stored (lost).
    std::function<void(const std::string& account, error_code ec)> on_store_failure{};
    /// The clock for expiry decisions (tests move it); default system_clock::now. When it throws,
    /// the cache's own steps read system_clock instead (a refresh's answer is never dropped for
    /// it); a get that reads it at once (try_get, async_get's first look) passes the exception on.
    std::function<std::chrono::system_clock::time_point()> clock{};
    /// The clock for backoff deadlines (tests move it); default steady_clock::now. A step of the
    /// wall clock never lengthens a backoff. When it throws, steady_clock is read instead.
    std::function<std::chrono::steady_clock::time_point()> steady_clock{};
    /// A label for this cache's name in the store's leases, which the cache always makes its
    /// own: the label, "-", then the pid, a count of the process's caches and random bytes (only
    /// those without a label). Never shared: two caches under one name would each be granted
    /// the other's lease and both send the account's refresh token. At most 256 bytes, and no
    /// control characters (stores write it into their leases as a line: trim a name read from
    /// /etc/hostname); the cache's constructor refuses any other with errc::invalid_configuration.
    std::string holder{};
};

/// The access token handed to a caller, with the identity invalidate() compares.
struct access_token {
    secret_string value;
    std::uint64_t generation = 0;
};

class token_cache;

namespace detail {
class cache_impl;
/// The shared state behind `c`, for the library's higher layers (src/, never users).
std::shared_ptr<cache_impl> impl_of(const token_cache& c) noexcept;
/// A caller's handler while it waits (held inline when small: parked_handler.hpp).
using access_token_handler = parked_handler<void(error_code, access_token)>;
using store_result_handler = boost::asio::any_completion_handler<void(error_code)>;
struct parking_lot;
/// What async_get's read learnt when it missed, handed to the get that follows so that it does
/// not hash and look the account up a second time (a herd's every caller misses).
struct read_miss {
    std::size_t hash = 0;
    parking_lot* lot = nullptr;  ///< the account's parking lot when it had one; null: look it up
};
/// `account` is read during the call only (a caller that parks never needs a copy of it).
void cache_get_erased(const std::shared_ptr<cache_impl>& impl, std::string_view account,
                      boost::asio::any_io_executor handler_ex, access_token_handler handler,
                      diagnostics* diag = nullptr, const read_miss* miss = nullptr);
void cache_shutdown_erased(const std::shared_ptr<cache_impl>& impl, std::chrono::milliseconds deadline,
                           boost::asio::any_io_executor handler_ex, store_result_handler handler);
void cache_store_erased(const std::shared_ptr<cache_impl>& impl, std::string account, token_set tokens,
                        boost::asio::any_io_executor handler_ex, store_result_handler handler);
boost::asio::any_io_executor cache_executor(const std::shared_ptr<cache_impl>& impl) noexcept;
/// The pool that a parked caller's handler is boxed in when it is not held inline and has no
/// allocator of its own (handler_allocator.hpp, parked_handler.hpp).
handler_pool* cache_handler_pool(const std::shared_ptr<cache_impl>& impl) noexcept;
inline handler_allocator<void> pool_allocator(const std::shared_ptr<cache_impl>& impl) noexcept {
    return handler_allocator<void>(cache_handler_pool(impl));
}
/// try_get into `out` (left empty on a miss): true when it holds the account's valid token. On a
/// miss, `miss` (when given) learns what the get that follows can reuse.
bool cache_try_get_into(const std::shared_ptr<cache_impl>& impl, std::string_view account, access_token& out,
                        read_miss* miss = nullptr);

/// Where a completion runs: the handler's associated executor, or the cache's when the handler
/// has none (probed without building the fallback, which costs an executor copy). Not
/// work-tracked: a parked caller's is tracked by the cache, once per group (waiters.hpp).
template <class Handler>
boost::asio::any_io_executor completion_executor(const Handler& handler,
                                                 const std::shared_ptr<cache_impl>& impl) {
    using probe = boost::asio::associated_executor_t<Handler, boost::asio::system_executor>;
    if constexpr (std::is_same_v<probe, boost::asio::system_executor>) {
        return cache_executor(impl);
    } else {
        return boost::asio::get_associated_executor(handler);
    }
}

/// async_get's hot-path completion: the handler and the token it is given. The token is read
/// straight into this object (cache_try_get_into), so it is not moved once more into a lambda.
template <class Handler>
struct hot_completion {
    Handler handler;
    access_token token;
    void operator()() { std::move(handler)(error_code{}, std::move(token)); }
};

/// Runs `completion` through its handler's executor, never inline. `defer`, not `post`: the
/// completion continues the caller's own work, so Asio queues it on the calling thread's private
/// queue when that thread runs the handler's io_context (no cross-thread wake-up). On such a
/// thread the completions it makes are queued together, as one operation (completion_batch.hpp).
template <class Handler>
void defer_completion(hot_completion<Handler>&& completion, const std::shared_ptr<cache_impl>& impl) {
    auto ex = completion_executor(completion.handler, impl);
    // A coroutine on an io_context (the usual caller) has a type-erased executor wrapping the
    // io_context's own. Deferring on that one directly skips the erased executor's property
    // copies and the extra type-erased function around the completion: one queued operation
    // holding the completion itself, so the token is moved twice fewer (each move of a token is
    // a copy and a wipe of its buffer). Same semantics: blocking.never, relationship.continuation
    // (a completion that joins a batch runs inside the batch's operation, which is deferred so).
    if (const auto* io = ex.template target<boost::asio::io_context::executor_type>()) {
        // On a thread running that io_context, the completions the thread makes run together, in
        // one queued operation (completion_batch.hpp); elsewhere one each, as before.
        defer_in_batch(*io, std::move(completion), [&impl] { return pool_allocator(impl); });
        return;
    }
    boost::asio::defer(ex, std::move(completion));
}
}  // namespace detail

/// Thread safety: every member may be called from any thread, concurrently.
///
/// Lifetime: as with Asio's I/O objects, the cache must outlive the *initiation* of each of its
/// asynchronous operations. An operation made with `deferred` (the default token) or
/// `use_awaitable` refers to the cache until it is launched (co_awaited); launch it before the
/// cache is destroyed. Once launched, an
/// operation keeps what it needs: destroying the cache then completes it (errc::shutting_down
/// for a caller still waiting) instead of leaving it dangling.
class token_cache {
public:
    /// `oauth` refreshes; `store` persists and coordinates. The cache keeps shared ownership of
    /// both (the client by its shared state). Completions and hooks use the client's executor.
    /// Both constructors throw boost::system::system_error (errc::invalid_configuration, the
    /// message naming the field) for a cache_config::holder past 256 bytes or with a control
    /// character.
    token_cache(client& oauth, std::shared_ptr<token_store> store, cache_config config = {});
    /// `refresher` refreshes (a wrapped client, or a test's); `ex` runs the cache's strands,
    /// timers and hooks.
    token_cache(boost::asio::any_io_executor ex, std::shared_ptr<token_refresher> refresher,
                std::shared_ptr<token_store> store, cache_config config = {});
    /// stop(). Rotated pairs the store refused are still written for up to
    /// cache_config::stop_flush_timeout (the io_context must run); what is never written is
    /// reported through on_store_failure. A process that exits calls async_shutdown first.
    ~token_cache();
    token_cache(const token_cache&) = delete;
    token_cache& operator=(const token_cache&) = delete;

    /// The current access token for `account`, refreshing it when it has expired or was
    /// invalidated. An account not in memory is loaded from the store first.
    ///
    /// Handler: void(error_code, access_token). Executor: the handler's, never inline; the
    /// valid-token completions one thread makes for an io_context it runs are queued as one
    /// operation and run together, a herd's in chunks of 2,048 that the io_context's other threads
    /// may take (detail/completion_batch.hpp). On an io_context run by several
    /// threads, that operation may already be running on another one, so the handler may start
    /// there before the handler that called async_get has returned (a plain `defer` would wait for
    /// it): a callback sharing state with its caller needs a strand, as Asio requires anyway of
    /// handlers on several threads. A coroutine needs nothing: it is suspended before the call.
    /// Cancellation: terminal, partial and total; the waiter leaves, a shared refresh goes on.
    /// Errors: errc::unknown_account (nothing stored), errc::reauthorization_required, the
    /// refresh's error (shared by every waiter of that refresh), the store's load error,
    /// errc::shutting_down, errc::invalid_argument (an id longer than max_account_id_bytes),
    /// operation_aborted when the cache ran out of memory for this caller (for its place in the
    /// queue, or for its copy of a long token; the bad_alloc leaves io_context::run), and then
    /// also for the callers that parked behind it, waiting for its outcome.
    ///
    /// `account` is copied into the operation (an id of up to 32 bytes without allocating:
    /// account_id.hpp), so the caller's string need not outlive the call.
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_get(account_id account, CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, access_token)>(
            initiate_get{&impl_}, token, std::move(account));
    }

    /// As above; on a failed refresh `diag` receives what the server said (HTTP status, RFC 6749
    /// error and description, Retry-After), and is cleared otherwise. `diag` must stay valid, and
    /// untouched, until the handler runs.
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_get(account_id account, diagnostics& diag, CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, access_token)>(
            initiate_get_diag{&impl_, &diag}, token, std::move(account));
    }

    /// Stops the cache (as stop()) and completes once every rotated pair is stored and every
    /// lease this cache may hold in the store is given back (an acquire in flight answered, and
    /// the release it brings delivered), or once `deadline` has passed. What a process must call
    /// before it exits: a pair the server issued and the store has not got is the only key to the
    /// customer's grant, and a lease left behind keeps every other process sharing the store
    /// waiting for up to lease_ttl.
    ///
    /// Handler: void(error_code). Executor: the handler's. Errors: none when everything was
    /// stored; errc::store_failure when a pair could not be stored by the deadline (each one is
    /// reported through on_store_failure with errc::shutting_down); errc::shutting_down when a
    /// refresh was still on the wire at the deadline (its pair is still written when it comes,
    /// once, and reported through on_store_failure with errc::shutting_down if that write fails),
    /// or a lease operation was still unanswered (the lease then lapses at lease_ttl).
    /// Cancellation: none. A second call joins the first one's deadline.
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_shutdown(std::chrono::milliseconds deadline, CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(initiate_shutdown{&impl_},
                                                                              token, deadline);
    }

    /// The counters (relaxed reads; never on the hot path).
    cache_metrics metrics() const;

    /// The current token when it is valid and in memory, without waiting: the hot path for code
    /// that can fall back to async_get. Never starts a refresh except a background refresh-ahead.
    std::optional<access_token> try_get(const std::string& account);

    /// Makes `tokens` the account's pair (after a code exchange): writes it to the store with the
    /// next generation, then serves it. Clears reauthorization_required.
    ///
    /// Handler: void(error_code). Errors: the store's error (the pair is kept in memory and
    /// served all the same, and the write is retried on a timer, unless the error is
    /// invalid_argument: a pair the store cannot hold); errc::invalid_argument for an id longer
    /// than max_account_id_bytes (nothing kept). Cancellation: none (the write goes on).
    template <class CompletionToken = boost::asio::deferred_t>
    auto async_store(std::string account, token_set tokens, CompletionToken&& token = {}) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            initiate_store{&impl_}, token, std::move(account), std::move(tokens));
    }

    /// After a 401 with `rejected`: marks it expired when it is still the account's current token,
    /// so the next async_get refreshes. Does nothing for an older token, nor for one this cache
    /// never served for the account (a newer generation: another account's token, or another
    /// cache's).
    void invalidate(const std::string& account, const access_token& rejected);

    /// Refreshes in flight now, over all accounts (metrics, tests).
    std::size_t refreshes_in_flight() const;

    /// Completes every waiter with errc::shutting_down and refuses new calls. Refreshes on the
    /// wire finish and their pairs are committed; see the destructor for pairs the store refuses.
    void stop();

private:
    friend std::shared_ptr<detail::cache_impl> detail::impl_of(const token_cache& c) noexcept;
    friend std::shared_ptr<token_refresher> make_client_refresher(client& oauth);
    static std::shared_ptr<token_refresher> refresher_of(client& oauth);

    // The initiations hold the address of the cache's own pointer, not a copy of it: a copy is an
    // atomic increment and decrement of one shared counter on every get, which two threads
    // reading the cache would pass back and forth between their cores (measured: async_get on two
    // io_contexts scaled 1.5x instead of 1.8x). Hence the lifetime rule in the class comment. A
    // pointer rather than a reference member, so that a deferred operation stays assignable.
    struct initiate_get {
        const std::shared_ptr<detail::cache_impl>* cache;
        // `account` by const reference: it is only read (one move fewer per get), and a named
        // deferred operation, launched as an lvalue or more than once, passes a const one.
        template <class Handler>
        void operator()(Handler&& handler, const account_id& account) const {
            const auto& impl = *cache;
            // The hot path: a valid token in memory completes without type erasure, waiter or
            // cancellation hook, through the handler's executor. Never inline: a coroutine that
            // gets in a loop would otherwise nest resumptions until its stack overflows.
            detail::hot_completion<std::decay_t<Handler>> completion{std::forward<Handler>(handler), {}};
            detail::read_miss miss;  // filled by a miss, which is what the rest of this needs
            if (detail::cache_try_get_into(impl, account.view(), completion.token, &miss)) {
                detail::defer_completion(std::move(completion), impl);
                return;
            }
            // Not work-tracked: the cache tracks work once per group of parked callers
            // (src/cache/waiters.hpp), not once per caller.
            auto ex = detail::completion_executor(completion.handler, impl);
            detail::cache_get_erased(
                impl, account.view(), std::move(ex),
                detail::access_token_handler(std::move(completion.handler), detail::pool_allocator(impl)),
                nullptr, &miss);
        }
    };
    struct initiate_get_diag {
        const std::shared_ptr<detail::cache_impl>* cache;
        diagnostics* diag;
        template <class Handler>
        void operator()(Handler&& handler, const account_id& account) const {
            const auto& impl = *cache;
            // Tracked for this caller alone (diagnostics callers are rare, never a herd), so the
            // cache holds no work of its own for it (waiters.hpp).
            auto ex = detail::handler_executor(handler, detail::cache_executor(impl));
            detail::cache_get_erased(
                impl, account.view(), std::move(ex),
                detail::access_token_handler(std::forward<Handler>(handler), detail::pool_allocator(impl)),
                diag);
        }
    };
    struct initiate_shutdown {
        const std::shared_ptr<detail::cache_impl>* cache;
        template <class Handler>
        void operator()(Handler&& handler, std::chrono::milliseconds deadline) const {
            const auto& impl = *cache;
            auto ex = detail::handler_executor(handler, detail::cache_executor(impl));
            detail::cache_shutdown_erased(impl, deadline, std::move(ex),
                                          detail::store_result_handler(std::forward<Handler>(handler)));
        }
    };
    struct initiate_store {
        const std::shared_ptr<detail::cache_impl>* cache;
        template <class Handler>
        void operator()(Handler&& handler, std::string account, token_set tokens) const {
            const auto& impl = *cache;
            auto ex = detail::handler_executor(handler, detail::cache_executor(impl));
            detail::cache_store_erased(impl, std::move(account), std::move(tokens), std::move(ex),
                                       detail::store_result_handler(std::forward<Handler>(handler)));
        }
    };

    std::shared_ptr<detail::cache_impl> impl_;
};

}  // namespace apollo_oauth
