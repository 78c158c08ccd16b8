// account_fsm: one account's life in the token cache, as a sans-io state machine.
//
// Events go in (a caller wants a token, the store answered, the refresh came back, a timer fired),
// actions come out (load, take the lease, send the refresh, commit, publish, wake the waiters, ...)
// in the order the driver must carry them out, like Boost.Redis's exec_fsm. The machine does no
// I/O, reads no clock and holds no lock: the cache runs each account's machine on a strand and
// feeds every completion back in as an event, and unit tests drive it directly.
//
// The refresh cycle (docs/lifecycle.md has the diagram):
//   ready --(expired, invalidated or refresh-ahead)--> acquiring --granted--> marking_sent
//     --> refreshing --ok--> committing --ok--> ready (publish, wake, on_rotation)
//   acquiring --newer--> ready (adopt the stored pair; nothing is sent)
//   acquiring --granted, the store behind memory--> catching_up --stored--> acquiring
//   acquiring --granted, an earlier holder sent--> waiting_for_holder (once per cycle)
//   acquiring --busy--> waiting_for_holder --change or timeout--> ready / acquiring
//   refreshing --invalid_grant--> checking_grant --newer stored--> ready (adopt)
//                                                --same generation--> marking_reauthorization
//                                                --> reauthorization_required (hook once)
// A rotated pair that could not be committed is still used (the server revoked the old one) and
// is written again on a timer until it lands (a write-back, which leaves every lease as it is);
// flush waits for that. One the store refused as more than it can hold (invalid_argument) is not
// written again on the timer: no retry would change the answer. Outside a cycle the lease is kept
// only while such a pair is unstored. A flush also waits for every lease operation whose outcome
// may leave this cache's lease held in the store (an acquire in flight, a grant being handled, a
// release not answered yet): the process exits after it, and nobody would give the lease back.
// An account whose grant is gone looks at the store again, at most once per backoff_initial,
// when a caller asks for it: another process may have stored a new authorization.
#pragma once

#include <apollo_oauth/error.hpp>
#include <apollo_oauth/token_store.hpp>

#include "sansio/heap_optional.hpp"
#include "sansio/refresh_policy.hpp"

#include <chrono>
#include <cstdint>
#include <list>
#include <optional>
#include <vector>

namespace apollo_oauth::sansio {

using steady_time = std::chrono::steady_clock::time_point;

struct account_fsm_config {
    std::chrono::seconds expiry_margin{60};
    double refresh_ahead_fraction = 0.75;
    double refresh_ahead_jitter = 0.05;
    std::chrono::milliseconds backoff_initial{1'000};
    std::chrono::milliseconds backoff_max{60'000};
    /// How long a lease lasts: longer than a refresh's hard deadline plus the commit.
    std::chrono::milliseconds lease_ttl{60'000};
    /// Attempts of async_store's compare-and-set before its conflict is reported.
    unsigned max_store_attempts = 4;
};

/// How long a refresh cycle waits for other holders of the account's lease before its callers
/// are told coordination_unavailable: the longest a healthy holder keeps it (its wait for a
/// silent sender, then a refresh and its commit within a lease), and one lease more.
constexpr std::chrono::milliseconds holder_wait_limit(const account_fsm_config& c) noexcept {
    return c.backoff_max + 2 * c.lease_ttl;
}

enum class account_state {
    unloaded,                  ///< nothing known yet (or the store had nothing: a later call looks again)
    loading,                   ///< the first load from the store is in flight
    ready,                     ///< a pair is known; no refresh cycle is running
    acquiring,                 ///< async_acquire (lease + re-read) in flight
    catching_up,               ///< granted, the store behind memory: this pair is committed first
    waiting_for_holder,        ///< another holder refreshes: async_wait_for_change in flight
    marking_sent,              ///< async_mark_sent in flight
    refreshing,                ///< the token request is on the wire
    committing,                ///< the rotated pair's compare-and-set is in flight
    checking_grant,            ///< invalid_grant came back: re-reading the store before declaring
    marking_reauthorization,   ///< async_mark_reauthorization in flight
    reauthorization_required,  ///< the grant is gone; only async_store brings the account back
};

const char* to_string(account_state s) noexcept;

/// Why a load was asked for; the answer comes back with the same purpose.
enum class load_purpose {
    first,                ///< the account is not in memory
    check_grant,          ///< invalid_grant: is a newer pair stored?
    commit_conflict,      ///< our commit met another generation
    store_conflict,       ///< async_store's compare-and-set met another generation
    write_back_conflict,  ///< a write-back of an unstored pair met another generation
    recheck_grant,        ///< reauthorization_required: has a new authorization been stored?
};

struct event {
    enum class kind {
        get,                     ///< a caller wants a token (the driver holds the waiter until told)
        refresh_ahead,           ///< a reader claimed the snapshot's refresh-ahead point
        invalidate,              ///< a 401 with `generation`'s access token
        store_requested,         ///< async_store(tokens): the driver keeps its handler in FIFO order
        loaded,                  ///< async_load completed (ec, record, purpose)
        acquired,                ///< async_acquire completed (ec, lease)
        sent_marked,             ///< async_mark_sent completed (ec)
        refreshed,               ///< the token request completed (ec, tokens, retry_after)
        committed,               ///< async_commit under the lease completed (ec, generation)
        written_back,            ///< a write-back completed (ec, generation)
        saved,                   ///< async_save of a new authorization completed (ec)
        reauthorization_marked,  ///< async_mark_reauthorization completed (ec)
        changed,                 ///< async_wait_for_change completed (ec, record)
        store_retry_due,         ///< the store-retry timer fired
        renew_due,               ///< the lease-renewal timer fired (ec: operation_aborted when cancelled)
        renewed,                 ///< async_renew completed (ec, generation, lease_grant)
        released,                ///< async_release completed (ec): given back, or it lapses at its ttl
        stop,                    ///< no new work; waiters get shutting_down
        flush,                   ///< report flush_done once nothing rotated is left unstored
        flush_deadline,          ///< give up flushing: report what was not stored
    };
    kind what = kind::get;
    error_code ec;
    std::optional<stored_tokens> record;
    lease_outcome lease;
    token_set tokens;
    std::optional<std::chrono::seconds> retry_after;
    std::uint64_t generation = 0;
    /// renewed: the renew action's lease_grant, handed back unchanged.
    std::uint32_t lease_grant = 0;
    load_purpose purpose = load_purpose::first;
    sys_time now{};
    steady_time steady_now{};
    /// refresh_ahead_point's uniform draw in [-1, 1] for a pair adopted by this event.
    double jitter_draw = 0.0;
};

struct action {
    enum class kind {
        serve_waiter,            ///< complete the caller of this `get` with the current token
        fail_waiter,             ///< complete the caller of this `get` with `ec`
        queue_waiter,            ///< keep the caller of this `get` until wake_waiters
        wake_waiters,            ///< complete every queued caller: `ec`, or the current token
        load,                    ///< async_load (purpose)
        acquire,                 ///< async_acquire(known = generation)
        mark_sent,               ///< async_mark_sent(generation)
        refresh,                 ///< send the token request with record->tokens.refresh_token
        commit,                  ///< async_commit(record, expected) under the lease: it clears the lease
        write_back,              ///< async_commit(record, expected) with no holder: no lease is touched
        save,                    ///< async_save(record, expected): a new authorization
        release,                 ///< async_release; its completion comes back as `released`
        mark_reauthorization,    ///< async_mark_reauthorization(generation)
        wait_for_change,         ///< async_wait_for_change(generation, delay)
        schedule_store_retry,    ///< fire store_retry_due after `delay`
        schedule_renew,          ///< fire renew_due after `delay` (re-arming cancels an armed one)
        cancel_renew,            ///< the lease is no longer held: cancel the renewal timer
        renew,                   ///< async_renew(generation): keep the lease while it is needed;
                                 ///< its `renewed` carries generation and lease_grant back
        publish,                 ///< publish `snapshot` for readers
        withdraw,                ///< withdraw the snapshot: readers miss
        notify_rotation,         ///< on_rotation(record->tokens)
        notify_store_failure,    ///< on_store_failure(ec)
        notify_reauthorization,  ///< on_reauthorization_required
        complete_store,          ///< complete the oldest async_store caller (the newest: `newest`) with `ec`
        flush_done,              ///< the flush is over: `ec` empty (everything stored) or the loss
    };
    kind what = kind::serve_waiter;
    error_code ec;
    load_purpose purpose = load_purpose::first;
    std::uint64_t generation = 0;
    std::uint64_t expected = 0;
    /// renew: which of the machine's grants the renewal was sent under (the driver hands it back
    /// in `renewed`): an answer to a renewal sent before the grant now held is not about it.
    std::uint32_t lease_grant = 0;
    std::optional<stored_tokens> record;
    std::chrono::milliseconds delay{0};
    bool newest = false;
    sys_time usable_until{};
    sys_time refresh_at{};
};

using action_list = std::vector<action>;

/// Counters the cache sums into cache_metrics (the machine counts, the driver reads).
struct account_counters {
    std::uint64_t refreshes = 0;
    std::uint64_t rotations = 0;
    std::uint64_t adopted = 0;
    std::uint64_t refresh_failures = 0;
    std::uint64_t store_failures = 0;
    std::uint64_t reauthorizations = 0;
    /// store_requested events taken: queued, or answered at once. A driver whose feed of one threw
    /// (no memory) compares it to learn whether the machine will answer that async_store call.
    std::uint64_t store_requests = 0;
};

/// What an idle account keeps while its driver sets the machine aside (a million cached accounts
/// are a million machines, nearly all of them idle): the fields of a machine at rest that a new
/// machine would not have. account_fsm::can_rest says when nothing else differs.
struct account_rest {
    stored_tokens current;
    std::uint64_t stored_generation = 0;
    std::uint64_t invalidated_generation = 0;
    std::uint64_t refresh_base = 0;
    sys_time usable_until{};
    sys_time refresh_at{};
    unsigned save_attempts = 0;
    bool stopped = false;
};

class account_fsm {
public:
    /// `config` is referred to, not copied, and must outlive the machine: a cache holds one set of
    /// settings for all its accounts, and an idle account should not carry a copy of them.
    explicit account_fsm(const account_fsm_config& config) : config_(&config) {}
    account_fsm(account_fsm_config&&) = delete;  // a temporary would not outlive the machine
    /// Rebuilds a machine that was set aside with rest(): it answers every event as the machine
    /// it was would have. Only its counters start again at zero (a driver reads them as the
    /// difference across one event).
    account_fsm(const account_fsm_config& config, account_rest&& rest);
    account_fsm(account_fsm_config&&, account_rest&&) = delete;

    /// Feeds one event in; returns what to do, in order.
    action_list resume(const event& ev);
    /// As above, into `out` (cleared first): a driver that keeps one list per thread of control
    /// reuses its capacity instead of allocating a list for every event.
    void resume(const event& ev, action_list& out);

    account_state state() const noexcept { return state_; }
    const std::optional<stored_tokens>& current() const noexcept { return current_; }
    std::uint64_t stored_generation() const noexcept { return stored_generation_; }
    /// A rotated pair is in memory that the store does not hold yet.
    bool dirty() const noexcept { return current_ && current_->generation > stored_generation_; }
    /// Nothing in flight and nothing unstored: the account may be forgotten.
    bool quiescent() const noexcept;
    /// Ready, and nothing in flight, queued, failing, leased or flushing: every field but those
    /// account_rest keeps is as in a new machine, so a driver may keep only the rest.
    bool can_rest() const noexcept;
    /// What a machine that can_rest() keeps; the machine is left without its pair.
    account_rest rest() && noexcept;
    bool stopped() const noexcept { return stopped_; }
    /// This cache holds the account's lease in the store (and renews it every lease_ttl / 3).
    bool lease_held() const noexcept { return lease_held_; }
    /// Releases sent whose completion has not come back: until it does, the store may still
    /// hold the lease for this cache (a flush waits for it; the account does not rest).
    unsigned releases_in_flight() const noexcept { return releases_in_flight_; }
    const account_counters& counters() const noexcept { return counters_; }
    /// async_store calls queued: an event may answer each of them (a stop, a failed first load).
    std::size_t queued_stores() const noexcept { return pending_stores_.size(); }

private:
    void on_get(const event& ev, action_list& out);
    void on_refresh_ahead(const event& ev, action_list& out);
    void on_invalidate(const event& ev, action_list& out);
    void on_store_requested(const event& ev, action_list& out);
    void on_loaded(const event& ev, action_list& out);
    void on_acquired(const event& ev, action_list& out);
    void on_sent_marked(const event& ev, action_list& out);
    void on_refreshed(const event& ev, action_list& out);
    void on_committed(const event& ev, action_list& out);
    void on_caught_up(const event& ev, action_list& out);
    void on_written_back(const event& ev, action_list& out);
    void on_saved(const event& ev, action_list& out);
    void on_reauthorization_marked(const event& ev, action_list& out);
    void on_changed(const event& ev, action_list& out);
    void on_store_retry_due(const event& ev, action_list& out);
    void on_renew_due(const event& ev, action_list& out);
    void on_renewed(const event& ev, action_list& out);
    void keep_lease_alive(action_list& out);
    void release_lease_left_over(action_list& out);
    /// Gives the lease back (the one place a release is sent) and counts it until `released`.
    void give_lease_back(action_list& out);
    void on_released(action_list& out);
    /// Asks for the lease (the one place an acquire is sent), or defers the ask until the last
    /// release and renewal in flight are answered (see acquire_deferred_).
    void ask_for_lease(action_list& out);
    /// A deferred acquire goes once nothing it waits for is in flight.
    void ask_if_deferred(action_list& out);
    void keep_write_back_pending(action_list& out);
    /// Back to acquiring after the store moved under the cycle; a cycle that keeps losing that
    /// race gives up with coordination_unavailable, and backs off (a store that grants and then
    /// denies must not spin the machine).
    void acquire_again(const event& ev, action_list& out);
    void answer_stranded_waiters(const event& ev, action_list& out);
    void on_stop(action_list& out);
    void on_flush(action_list& out);
    void on_flush_deadline(action_list& out);

    bool usable(sys_time now) const noexcept;
    /// What a caller of a ready account with nothing in flight gets now: on_get's answer, and the
    /// one given to callers left queued with nothing in flight (answer_stranded_waiters).
    enum class rest_answer { serve, backoff_error, refresh };
    rest_answer answer_at_rest(const event& ev) const noexcept;
    bool in_cycle() const noexcept;
    void adopt(stored_tokens record, const event& ev, action_list& out);
    void adopt_stored(const stored_tokens& record, const event& ev, action_list& out);
    void begin_cycle(action_list& out);
    void end_cycle(action_list& out);
    void start_next_store(action_list& out);
    void start_write_back(action_list& out);
    void fail_transient(error_code ec, const event& ev, action_list& out);
    void become_reauthorization_required(bool discovered_here, action_list& out);
    void wake(error_code ec, action_list& out);
    /// Publishes the current pair with its usable-until and refresh-ahead points.
    void publish_current(action_list& out);
    void report_store_failure(error_code ec, action_list& out);
    /// Remembers a write of `generation` the store refused as one it cannot hold.
    void note_refusal(error_code ec, std::uint64_t generation) noexcept;
    /// The unstored pair is one the store refused to hold: no write of it is retried.
    bool refused() const noexcept;
    void schedule_store_retry(action_list& out);
    /// The next write's wait: the backoff, or the flush's quick pace while flushing.
    std::chrono::milliseconds store_retry_delay() const noexcept;
    void check_flush(action_list& out);
    bool flush_pending() const noexcept;
    std::uint64_t highest_generation() const noexcept;

    const account_fsm_config* config_;
    account_state state_ = account_state::unloaded;
    std::optional<stored_tokens> current_;
    std::uint64_t stored_generation_ = 0;  ///< the newest generation the store is known to hold
    sys_time usable_until_{};
    sys_time refresh_at_{};
    std::uint64_t invalidated_generation_ = 0;  ///< 0: none
    steady_time retry_not_before_{};
    unsigned consecutive_failures_ = 0;
    error_code last_error_;
    bool waiters_ = false;  ///< some caller is queued
    bool lease_held_ = false;
    bool renew_scheduled_ = false;  ///< a renew_due is armed for the lease we hold
    /// In acquiring, the acquire not sent yet: a release or a renewal of this holder is
    /// unanswered (ask_for_lease says why). Sent at the last answer.
    bool acquire_deferred_ = false;
    /// Releases sent and not yet answered. No acquire is sent while one is (acquire_deferred_),
    /// so at most one is in flight; a count all the same, each answer counted once.
    std::uint16_t releases_in_flight_ = 0;
    /// Renewals sent and not yet answered (none is sent while acquiring): no acquire is sent
    /// while one is either.
    std::uint16_t renewals_in_flight_ = 0;
    std::uint64_t refresh_base_ = 0;  ///< the generation a refresh cycle started from
    unsigned cycle_restarts_ = 0;     ///< acquire_again calls in this cycle
    /// Grants received (wrapping): the one the lease is now held from is the latest, and each
    /// renewal carries the count at its sending (see on_renewed).
    std::uint32_t lease_grant_ = 0;
    std::uint64_t lease_generation_ = 0;         ///< the generation the store's lease is on (renewals)
    bool waited_for_sender_ = false;             ///< waited for a sender, lease held since
    steady_time holder_busy_since_{};            ///< this cycle's first busy answer ({}: none yet)
    steady_time recheck_not_before_{};           ///< reauthorization_required: next look at the store
    heap_optional<stored_tokens> refresh_from_;  ///< the record whose refresh token is sent
    heap_optional<stored_tokens> rotated_;       ///< the refresh's new pair while it is committed
    bool commit_in_flight_ = false;              ///< a write-back of the dirty pair is in flight
    bool store_retry_scheduled_ = false;
    unsigned store_failures_ = 0;
    std::uint64_t refused_generation_ = 0;  ///< the last pair the store refused (invalid_argument)
    /// async_store calls, oldest first. A list, not a deque: an empty one allocates nothing, where
    /// libstdc++'s deque allocates about 600 bytes on construction, in every cached account.
    std::list<token_set> pending_stores_;
    bool save_in_flight_ = false;
    heap_optional<stored_tokens> saving_;  ///< the new authorization being written
    unsigned save_attempts_ = 0;
    bool stopped_ = false;
    bool flushing_ = false;
    bool gave_up_ = false;        ///< the flush deadline passed: failed writes are reported, not retried
    bool loss_reported_ = false;  ///< after gave_up_: the one shutting_down report was made
    account_counters counters_;
};

}  // namespace apollo_oauth::sansio
