// The token cache's shared state.
//
// Why mutex shards rather than a strand: the hot path (a valid token) must answer without a
// hop, from any thread, and scale across threads; a strand would cost two posts per call and
// serialise every account. Each shard's mutex guards its entries, critical sections are a few
// field reads and never do I/O, and a refresh, a load or a store write runs outside the lock and
// re-enters it to publish its result. Cancellation of a waiter, from whatever thread its slot is
// signalled, is a removal under the same mutex.
#pragma once

#include <apollo_oauth/token_cache.hpp>

#include "cache/waiters.hpp"
#include "sansio/refresh_policy.hpp"

#include <boost/asio/steady_timer.hpp>

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>

namespace apollo_oauth::detail {

class client_impl;

/// One account. Guarded by its shard's mutex.
struct cache_entry {
    std::string account;
    std::optional<stored_tokens> current;  ///< the newest pair known here
    std::uint64_t stored_generation = 0;   ///< what the store is known to hold
    bool loading = false;
    bool refreshing = false;
    bool invalidated = false;
    bool reauth_required = false;
    bool saving = false;  ///< a catch-up write of `current` is in flight
    sansio::sys_time usable_until{};
    sansio::sys_time refresh_at{};
    sansio::sys_time retry_not_before{};
    unsigned consecutive_failures = 0;
    error_code last_error;
    unsigned store_failures = 0;
    std::unique_ptr<boost::asio::steady_timer> save_retry_timer;
    waiter_list waiters;
    bool waiters_share_executor = true;  ///< every queued waiter completes on one executor

    /// Memory holds a pair the store does not have yet.
    bool dirty() const noexcept { return current && stored_generation < current->generation; }
};

class cache_impl : public std::enable_shared_from_this<cache_impl> {
public:
    cache_impl(std::shared_ptr<client_impl> oauth, std::shared_ptr<token_store> store, cache_config config);

    const boost::asio::any_io_executor& executor() const noexcept;

    void get(std::string account, waiter w);
    std::optional<access_token> try_get(const std::string& account);
    void store(std::string account, token_set tokens, boost::asio::any_io_executor ex,
               store_result_handler handler);
    void invalidate(const std::string& account, const access_token& rejected);
    void cancel_waiter(const std::string& account, std::uint64_t waiter_id);
    std::size_t refreshes_in_flight() const noexcept { return refreshes_in_flight_.load(); }

    // TEMP stub of Seam 4's counters.
    struct stub_counters {
        std::atomic<std::uint64_t> refreshes{0}, rotations{0}, refresh_failures{0}, store_failures{0},
            reauthorizations{0};
    };
    mutable stub_counters counters;
    void stop();

    std::uint64_t next_waiter_id() noexcept { return ++waiter_ids_; }

private:
    // The hot path hashes an account once: the same hash picks the shard and the map's bucket
    // (heterogeneous lookup with the hash carried along).
    struct hashed_account {
        std::string_view name;
        std::size_t hash;
    };
    struct account_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view name) const noexcept {
            return std::hash<std::string_view>{}(name);
        }
        std::size_t operator()(const hashed_account& key) const noexcept { return key.hash; }
    };
    struct account_equal {
        using is_transparent = void;
        bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
        bool operator()(const hashed_account& a, std::string_view b) const noexcept { return a.name == b; }
        bool operator()(std::string_view a, const hashed_account& b) const noexcept { return a == b.name; }
    };
    struct shard {
        std::mutex mutex;
        std::unordered_map<std::string, std::shared_ptr<cache_entry>, account_hash, account_equal> entries;
    };
    using lock_type = std::unique_lock<std::mutex>;

    shard& shard_for(std::size_t hash) noexcept;
    shard& shard_for(const std::string& account);
    std::shared_ptr<cache_entry> find_or_create(shard& s, const std::string& account);
    sansio::entry_snapshot snapshot(const cache_entry& e) const;
    sansio::sys_time now() const;
    void adopt(cache_entry& e, stored_tokens record);
    access_token token_of(const cache_entry& e) const;
    /// Empties the entry's queue (lock held).
    static waiter_batch take_waiters(cache_entry& e);

    // Each of these is called with the shard unlocked, and locks it to publish.
    void start_load(std::shared_ptr<cache_entry> e);
    void on_loaded(std::shared_ptr<cache_entry> e, error_code ec, std::optional<stored_tokens> record);
    void start_refresh(std::shared_ptr<cache_entry> e, secret_string refresh_token,
                       std::uint64_t base_generation);
    void on_refreshed(std::shared_ptr<cache_entry> e, std::uint64_t base_generation, error_code ec,
                      token_set tokens, std::optional<std::chrono::seconds> retry_after);
    void persist_rotation(std::shared_ptr<cache_entry> e, stored_tokens record, std::uint64_t expected,
                          std::uint64_t base_generation);
    void on_rotation_persisted(std::shared_ptr<cache_entry> e, stored_tokens record,
                               std::uint64_t base_generation, error_code ec);
    void schedule_save_retry(const std::shared_ptr<cache_entry>& e);
    void retry_save(std::shared_ptr<cache_entry> e);
    void store_with_generation(std::string account, token_set tokens, std::uint64_t expected,
                               unsigned attempt, boost::asio::any_io_executor ex,
                               store_result_handler handler);

    // Decides for a waiter (or the fast path) with the lock held; may leave a follow-up for after.
    enum class follow_up { none, load, refresh };
    follow_up admit(const std::shared_ptr<cache_entry>& e, waiter& w, lock_type& lock);

    void notify_rotation(const std::string& account, const token_set& tokens) const;
    void notify_store_failure(const std::string& account, error_code ec) const;

    std::shared_ptr<client_impl> oauth_;
    std::shared_ptr<token_store> store_;
    cache_config config_;
    std::array<shard, 64> shards_;
    std::atomic<bool> stopped_{false};
    std::atomic<std::size_t> refreshes_in_flight_{0};
    std::atomic<std::uint64_t> waiter_ids_{0};
};

}  // namespace apollo_oauth::detail
