// The token cache's driver: runs each account's sansio::account_fsm on its shard's strand and
// carries out the machine's actions (store calls, the refresh, timers, waking callers, hooks).
//
// No mutex guards the lifecycle: every event of an account (a caller arriving, a store or refresh
// completion, a timer, a cancellation) is posted to its shard's strand, and the machine is only
// touched there. The hot path never enters a strand: try_get and async_get's fast path read the
// snapshot the machine published (snapshot_table).
#pragma once

#include <apollo_oauth/token_cache.hpp>

#include "cache/handler_pool.hpp"
#include "cache/snapshot_table.hpp"
#include "cache/waiters.hpp"
#include "sansio/account_fsm.hpp"

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <array>
#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>

namespace apollo_oauth::detail {

class client_impl;

/// A caller of the diagnostics& overload: told what the server said before it is completed.
struct diag_waiter {
    waiter w;
    diagnostics* diag;
};

struct pending_store_call {
    boost::asio::any_io_executor ex;
    store_result_handler handler;
};

struct flush_operation;

/// One account's machine and what the driver keeps beside it. Touched on its shard's strand only.
struct account_slot {
    account_slot(std::string name, std::size_t hash, const sansio::account_fsm_config& config)
        : account(std::move(name)), hash(hash), fsm(config) {}
    /// An account that was set aside at rest, active again.
    account_slot(std::string name, std::size_t hash, const sansio::account_fsm_config& config,
                 sansio::account_rest&& rest)
        : account(std::move(name)), hash(hash), fsm(config, std::move(rest)) {}

    /// Nothing the driver holds for the account: no operation in flight, nobody waiting (in a
    /// queue or in the lot it answers for), no async_store caller, no flush share.
    bool driver_quiet() const noexcept {
        return busy == 0 && waiters.empty() && diag_waiters.empty() && lot == nullptr &&
               store_calls.empty() && !flush;
    }
    /// The driver is quiet and the machine can rest: the machine's rest alone may be kept.
    /// (last_refresh_diag goes with the slot: a machine that can rest has no failure to report,
    /// and a later failure brings its own.)
    bool idle() const noexcept { return driver_quiet() && fsm.can_rest(); }

    std::string account;
    std::size_t hash;
    sansio::account_fsm fsm;
    waiter_queue waiters;
    std::list<diag_waiter> diag_waiters;
    /// A list: empty it allocates nothing (a deque allocates ~600 bytes per account), and it
    /// never move-assigns the erased handlers (broken in Boost 1.81).
    std::list<pending_store_call> store_calls;
    std::unique_ptr<boost::asio::steady_timer> store_retry_timer;
    std::unique_ptr<boost::asio::steady_timer> renew_timer;  ///< renews the store's lease while held
    /// Cancels a wait for another holder's commit when the cache stops.
    std::unique_ptr<boost::asio::cancellation_signal> wait_cancel;
    /// What the server said to the last failed refresh. On the heap: most accounts never have a
    /// failed refresh, and inline it would cost each of them 152 bytes.
    sansio::heap_optional<diagnostics> last_refresh_diag;
    std::shared_ptr<flush_operation> flush;
    std::uint64_t busy = 0;  ///< operations in flight whose completion names this slot
    /// The account's parking lot (waiters.hpp) while it is open and the machine answers for it
    /// (its opener's get has arrived); null otherwise. The snapshot table owns the lot.
    parking_lot* lot = nullptr;
};

class cache_impl : public std::enable_shared_from_this<cache_impl> {
public:
    /// 2^shard_bits shards, each an account's strand and map: partition_of(hash, shard_bits).
    static constexpr unsigned shard_bits = 6;
    static_assert(shard_bits <= snapshot_table::max_partition_bits, "the table keeps a byte per account");

    cache_impl(boost::asio::any_io_executor ex, std::shared_ptr<token_refresher> refresher,
               std::shared_ptr<token_store> store, cache_config config);

    /// Where parked callers' handlers not held inline are boxed (parked_handler).
    handler_pool* pool() const noexcept { return pool_.get(); }

    const boost::asio::any_io_executor& executor() const noexcept { return ex_; }

    /// `miss`: what the caller's read learnt when it missed (token_cache.hpp's read_miss), or null.
    /// `account` is copied only when the get goes to the account's strand.
    void get(std::string_view account, waiter w, diagnostics* diag, const read_miss* miss = nullptr);
    std::optional<access_token> try_get(const std::string& account);
    /// The same into `out` (emptied on a miss): async_get's hot path reads into its completion.
    /// On a miss (the cache stopped included), `miss` (when given) gets the account's hash and
    /// parking lot.
    bool try_get(std::string_view account, access_token& out, read_miss* miss = nullptr);
    void store(std::string account, token_set tokens, boost::asio::any_io_executor ex,
               store_result_handler handler);
    void invalidate(const std::string& account, const access_token& rejected);
    std::size_t refreshes_in_flight() const noexcept { return refreshes_in_flight_.load(); }
    void stop();
    void shutdown(std::chrono::milliseconds deadline, boost::asio::any_io_executor ex,
                  store_result_handler handler);
    cache_metrics metrics() const;

    std::uint64_t next_waiter_id() noexcept { return ++waiter_ids_; }

    /// Callers of `account` that ever parked in its lot instead of entering its strand (tests).
    std::uint64_t parked_in_lot(const std::string& account);
    /// How many accounts are active and how many rest (tests: read while no thread runs the
    /// cache's io_context, for the shards' maps belong to their strands).
    struct account_census {
        std::size_t active = 0;
        std::size_t resting = 0;
        /// Resting accounts whose rest holds what it serves, its access token included (the
        /// others left that to their snapshot slot).
        std::size_t resting_with_their_token = 0;
    };
    account_census census() const;
    /// invalidate()'s first half only: the moment between a 401's mark and its event (tests).
    void reject_without_telling_the_machine(const std::string& account, std::uint64_t generation);

private:
    using strand_type = boost::asio::strand<boost::asio::any_io_executor>;
    struct shard {
        shard(const boost::asio::any_io_executor& ex, std::size_t index)
            : strand(boost::asio::make_strand(ex)), index(index) {}
        strand_type strand;
        std::size_t index;  ///< partition_of(hash, shard_bits) of its accounts
        /// The accounts with something going on (on the strand only). An idle one is not here:
        /// its machine rests, packed, in its snapshot slot (snapshot_table::rest_of), which is
        /// what nearly all of a million cached accounts do, at ~60 bytes (what it serves stays in
        /// the slot) instead of ~700 for an active slot and ~100 for a map entry.
        std::unordered_map<std::string, std::unique_ptr<account_slot>> active;
        /// The machine's actions for the event being fed (on the strand only): kept between
        /// events so that a caller parking in a herd does not allocate a list.
        sansio::action_list actions;
    };

    shard& shard_for(std::size_t hash) noexcept;
    static std::size_t hash_of(std::string_view account) noexcept;
    /// The account's active slot, made or woken from its rest (on the strand).
    account_slot& slot_for(shard& s, const std::string& account, std::size_t hash);
    /// The same for an account the shard knows (active or resting); nullptr otherwise.
    account_slot* find_slot(shard& s, const std::string& account, std::size_t hash);
    /// Makes the account's slot active: woken from `rest`, or new for none (on the strand).
    account_slot& activate(shard& s, const std::string& account, std::size_t hash, sansio::packed_rest* rest);
    /// The shard knows the account: it is active, or it rests.
    bool knows(const shard& s, const std::string& account, std::size_t hash);
    /// A resting account's rest, unpacked (what it serves taken from its snapshot slot when the
    /// rest left it there).
    sansio::account_rest unpack(const sansio::packed_rest& rest, const std::string& account,
                                std::size_t hash) const;
    /// The account's rest, if it rests; nullptr otherwise.
    sansio::packed_rest* rest_if_resting(const std::string& account, std::size_t hash) noexcept;
    /// The account's slot if it is active: a resting account has nobody waiting and nothing in
    /// flight, so nothing for a cancellation to find.
    account_slot* find_active(shard& s, const std::string& account);
    /// Forgets an account the store did not know, or (with `may_rest`) sets an idle one's
    /// machine aside. Called by each entry point on the strand once it is done with `slot`, which
    /// may then be gone.
    void settle(shard& s, account_slot& slot, bool may_rest = true);

    /// Feeds `ev` to the account's machine and carries out its actions (on the strand).
    /// `arriving` is the caller of a get event.
    void feed(shard& s, account_slot& slot, sansio::event ev, std::optional<diag_waiter>* arriving = nullptr);
    void execute(shard& s, account_slot& slot, sansio::action& a, std::optional<diag_waiter>* arriving);
    /// Posts a completion's event to the account's strand.
    void post_event(std::size_t hash, std::string account, sansio::event ev);
    /// A void(error_code) completion (a store call's, a timer's) that posts `what`'s event, with
    /// its error, `generation` and `lease_grant` (a renewal's ticket, handed back), to the
    /// account's strand. The completions hold the id as `account = std::string(account)`: a plain
    /// copy capture of a const reference makes a const member, which every move of the completion
    /// (into the store's type-erased handler, out of it to call it, into the posted event) copies
    /// again, a heap allocation each for an id past 15 bytes (Apollo's are 24).
    auto answer_with(sansio::event::kind what, std::size_t hash, const std::string& account,
                     std::uint64_t generation = 0, std::uint32_t lease_grant = 0) {
        return [self = shared_from_this(), hash, account = std::string(account), what, generation,
                lease_grant](error_code ec) mutable {
            auto ev = self->make_event(what);
            ev.ec = ec;
            ev.generation = generation;
            ev.lease_grant = lease_grant;
            self->post_event(hash, std::move(account), std::move(ev));
        };
    }
    sansio::event make_event(sansio::event::kind what) const;
    template <class MakeDone, class Start, class Fail>
    void start_call(account_slot& slot, MakeDone&& make_done, Start&& start, Fail&& fail);
    /// config_.clock() and config_.steady_clock(), or the system's clocks when they throw.
    std::chrono::system_clock::time_point wall_now() const noexcept;
    std::chrono::steady_clock::time_point steady_now() const noexcept;
    /// An invalidate event for a rejection the machine has not heard of yet (on the strand).
    std::optional<sansio::event> unheard_rejection(const account_slot& slot) const;
    /// A caller whose get threw on the strand before the machine took it: told operation_aborted.
    static void abandon_arrival(diag_waiter arriving) noexcept;
    /// Posts a get to the account's strand; `opened`: the lot this caller opened.
    void post_get(std::string account, std::size_t hash, waiter w, diagnostics* diag, parking_lot* opened);
    /// Closes `lot` and completes everyone parked in it with one outcome.
    void resolve_lot(parking_lot& lot, error_code ec, const access_token& token);
    /// The machine gave an arriving caller, or its waiters, an outcome: the lot it answers for
    /// (if any) gets the same one.
    void settle_lot(account_slot& slot, error_code ec, const access_token& token);
    void wake_waiters(account_slot& slot, error_code ec);
    void cancel_waiter(shard& s, const std::string& account, std::uint64_t id);
    void finish_flush(account_slot& slot, error_code ec);
    /// noexcept: out of memory for posting the shutdown's handlers, the process terminates rather
    /// than leave async_shutdown's callers waiting for good (as waiter_queue::complete_all).
    void flush_share_done(const std::shared_ptr<flush_operation>& op, error_code ec) noexcept;
    void start_flush(std::chrono::milliseconds deadline, std::shared_ptr<flush_operation> op);
    /// The shutdown's deadline passed: this shard's accounts still flushing for `op` give up.
    void end_flush_shares(shard& s, const std::shared_ptr<flush_operation>& op);

    boost::asio::any_io_executor ex_;
    std::shared_ptr<token_refresher> refresher_;
    std::shared_ptr<token_store> store_;
    cache_config config_;
    bool custom_clock_ = false;              ///< config.clock was given: the hot path must not read its own
    sansio::account_fsm_config fsm_config_;  ///< every account's machine refers to this one
    std::vector<std::unique_ptr<shard>> shards_;
    snapshot_table snapshots_{shard_bits};  ///< partitioned as the shards are
    std::atomic<bool> stopped_{false};
    std::atomic<std::size_t> refreshes_in_flight_{0};
    std::atomic<std::uint64_t> waiter_ids_{0};
    struct release_pool {
        void operator()(handler_pool* p) const noexcept { p->release_owner(); }
    };
    /// Released, not deleted, with this cache: a handler still holding a block keeps it alive.
    std::unique_ptr<handler_pool, release_pool> pool_{handler_pool::create()};

    std::mutex flush_mutex_;
    std::shared_ptr<flush_operation> flush_;  ///< the shutdown in progress (guarded by flush_mutex_)

    struct counters {
        std::atomic<std::uint64_t> refreshes{0}, rotations{0}, adopted{0}, refresh_failures{0}, waiters{0},
            waiting_now{0}, store_failures{0}, reauthorizations{0};
    };
    counters metrics_;
};

}  // namespace apollo_oauth::detail
