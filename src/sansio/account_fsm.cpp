// account_fsm's transitions. Every handler leaves the machine in a state from which each
// outstanding operation's completion is expected exactly once.
#include "sansio/account_fsm.hpp"

#include <algorithm>
#include <type_traits>

namespace apollo_oauth::sansio {

const char* to_string(account_state s) noexcept {
    switch (s) {
        case account_state::unloaded:
            return "unloaded";
        case account_state::loading:
            return "loading";
        case account_state::ready:
            return "ready";
        case account_state::acquiring:
            return "acquiring";
        case account_state::catching_up:
            return "catching_up";
        case account_state::waiting_for_holder:
            return "waiting_for_holder";
        case account_state::marking_sent:
            return "marking_sent";
        case account_state::refreshing:
            return "refreshing";
        case account_state::committing:
            return "committing";
        case account_state::checking_grant:
            return "checking_grant";
        case account_state::marking_reauthorization:
            return "marking_reauthorization";
        case account_state::reauthorization_required:
            return "reauthorization_required";
    }
    return "?";
}

namespace {

action make(action::kind k) {
    action a;
    a.what = k;
    return a;
}

action make(action::kind k, error_code ec) {
    action a;
    a.what = k;
    a.ec = ec;
    return a;
}

}  // namespace

action_list account_fsm::resume(const event& ev) {
    action_list out;
    resume(ev, out);
    return out;
}

void account_fsm::resume(const event& ev, action_list& out) {
    out.clear();
    using k = event::kind;
    switch (ev.what) {
        case k::get:
            on_get(ev, out);
            break;
        case k::refresh_ahead:
            on_refresh_ahead(ev, out);
            break;
        case k::invalidate:
            on_invalidate(ev, out);
            break;
        case k::store_requested:
            on_store_requested(ev, out);
            break;
        case k::loaded:
            on_loaded(ev, out);
            break;
        case k::acquired:
            on_acquired(ev, out);
            break;
        case k::sent_marked:
            on_sent_marked(ev, out);
            break;
        case k::refreshed:
            on_refreshed(ev, out);
            break;
        case k::committed:
            on_committed(ev, out);
            break;
        case k::written_back:
            on_written_back(ev, out);
            break;
        case k::saved:
            on_saved(ev, out);
            break;
        case k::reauthorization_marked:
            on_reauthorization_marked(ev, out);
            break;
        case k::changed:
            on_changed(ev, out);
            break;
        case k::store_retry_due:
            on_store_retry_due(ev, out);
            break;
        case k::renew_due:
            on_renew_due(ev, out);
            break;
        case k::renewed:
            on_renewed(ev, out);
            ask_if_deferred(out);  // after the answer is heard: it may say the lease went elsewhere
            break;
        case k::released:
            on_released(out);
            break;
        case k::stop:
            on_stop(out);
            break;
        case k::flush:
            flushing_ = true;
            on_flush(out);
            break;
        case k::flush_deadline:
            on_flush_deadline(out);
            break;
    }
    answer_stranded_waiters(ev, out);
    keep_write_back_pending(out);
    check_flush(out);
    release_lease_left_over(out);
    keep_lease_alive(out);
}

// An unstored pair at rest always has a write in flight or armed: some endings of a cycle (a
// catch-up commit that met another generation after a stop, a cycle that gave up after its
// restarts) leave one unstored with neither, and the flush would wait for its deadline.
void account_fsm::keep_write_back_pending(action_list& out) {
    if (state_ == account_state::ready && dirty() && !commit_in_flight_ && !store_retry_scheduled_ &&
        !gave_up_) {
        start_write_back(out);
    }
}

// Invariant, checked after every event: a queued caller always has an operation in flight that
// ends in wake() (the first load, a refresh cycle, a save). Some endings leave callers queued with
// nothing in flight (an async_store whose conflict could not be resolved, a newer pair adopted
// from the store that is itself unusable): they are answered here the way a caller arriving now
// would be. Before the cache's parking lot this only delayed them until the next get reached the
// machine; with it, the callers behind them park instead, and nothing else would ever come.
void account_fsm::answer_stranded_waiters(const event& ev, action_list& out) {
    if (!waiters_ || stopped_ || state_ == account_state::loading || in_cycle() || save_in_flight_) {
        return;
    }
    switch (state_) {
        case account_state::reauthorization_required:
            return wake(errc::reauthorization_required, out);
        case account_state::ready:
            if (!current_) {
                return wake(errc::unknown_account, out);
            }
            switch (answer_at_rest(ev)) {  // as on_get answers a caller arriving now
                case rest_answer::serve:
                    return wake({}, out);
                case rest_answer::backoff_error:
                    return wake(last_error_, out);
                case rest_answer::refresh:
                    return begin_cycle(out);
            }
            return;
        default:  // unloaded: nothing is known, so nothing to wait for
            return wake(errc::unknown_account, out);
    }
}

bool account_fsm::quiescent() const noexcept {
    const bool resting = state_ == account_state::unloaded || state_ == account_state::ready ||
                         state_ == account_state::reauthorization_required;
    return resting && !dirty() && !save_in_flight_ && pending_stores_.empty() && !commit_in_flight_ &&
           releases_in_flight_ == 0;
}

// Every field is named here: one added to the machine must be either kept by account_rest
// (current_, stored_generation_, usable_until_, refresh_at_, invalidated_generation_,
// refresh_base_, save_attempts_, stopped_) or required below to be as a new machine has it, or
// a machine set aside would forget it. counters_ start again at zero (see the constructor).
// cycle_restarts_, waited_for_sender_ and holder_busy_since_ are set by begin_cycle before they are read,
// lease_generation_ is read only while the lease is held (never at rest), as is lease_grant_ (a
// rebuilt machine counts its grants from zero again: no renewal's answer from before is fed to it,
// as a driver sets a machine aside only with no store call in flight), refused_generation_
// only for an unstored pair (never at rest; one stored later is of a higher generation, as
// generations only grow), and recheck_not_before_ is cleared on entering reauthorization_required.
// releases_in_flight_ (in quiescent()) must be zero: the release's answer is fed to this machine,
// and a rebuilt one would not know to expect it, nor renewals_in_flight_ (required zero below).
// acquire_deferred_ is set only in acquiring (never at rest; required false below all the same). They sit in
// padding, so the size below stayed; so does lease_grant_ (beside cycle_restarts_).
#if defined(__GLIBCXX__) && defined(__x86_64__)
// The list's tripwire: a field added to the machine usually changes its size, and whoever adds
// it must then decide whether account_rest keeps it (and update this figure). Not proof: a small
// field can fit into padding; the twins tests (account_fsm_at_rest) are the check of behaviour.
static_assert(sizeof(account_fsm) == 528, "a field was added to account_fsm: see can_rest");
#endif

bool account_fsm::can_rest() const noexcept {
    // quiescent(): nothing unstored (dirty), no save, commit, release or async_store pending.
    return state_ == account_state::ready && current_.has_value() && quiescent() &&
           retry_not_before_ == steady_time{} && consecutive_failures_ == 0 && !last_error_ && !waiters_ &&
           !lease_held_ && !renew_scheduled_ && !acquire_deferred_ && renewals_in_flight_ == 0 &&
           !refresh_from_ && !rotated_ && !store_retry_scheduled_ && store_failures_ == 0 && !saving_ &&
           !flushing_ && !gave_up_;
}

static_assert(std::is_nothrow_move_constructible_v<stored_tokens> &&
              std::is_nothrow_move_assignable_v<stored_tokens>);

account_rest account_fsm::rest() && noexcept {
    account_rest r{.current = std::move(*current_),
                   .stored_generation = stored_generation_,
                   .invalidated_generation = invalidated_generation_,
                   .refresh_base = refresh_base_,
                   .usable_until = usable_until_,
                   .refresh_at = refresh_at_,
                   .save_attempts = save_attempts_,
                   .stopped = stopped_};
    current_.reset();
    state_ = account_state::unloaded;
    return r;
}

account_fsm::account_fsm(const account_fsm_config& config, account_rest&& rest)
    : config_(&config),
      state_(account_state::ready),
      current_(std::move(rest.current)),
      stored_generation_(rest.stored_generation),
      usable_until_(rest.usable_until),
      refresh_at_(rest.refresh_at),
      invalidated_generation_(rest.invalidated_generation),
      refresh_base_(rest.refresh_base),
      save_attempts_(rest.save_attempts),
      stopped_(rest.stopped) {}

bool account_fsm::usable(sys_time now) const noexcept {
    return current_ && state_ != account_state::reauthorization_required && now < usable_until_ &&
           invalidated_generation_ != current_->generation;
}

bool account_fsm::in_cycle() const noexcept {
    switch (state_) {
        case account_state::acquiring:
        case account_state::catching_up:
        case account_state::waiting_for_holder:
        case account_state::marking_sent:
        case account_state::refreshing:
        case account_state::committing:
        case account_state::checking_grant:
        case account_state::marking_reauthorization:
            return true;
        default:
            return false;
    }
}

std::uint64_t account_fsm::highest_generation() const noexcept {
    std::uint64_t g = stored_generation_;
    if (current_) {
        g = std::max(g, current_->generation);
    }
    if (rotated_) {
        g = std::max(g, rotated_->generation);
    }
    // A refresh cycle may still bring base + 1: never share that generation.
    if (in_cycle()) {
        g = std::max(g, refresh_base_ + 1);
    }
    return g;
}

// Makes `record` the account's pair, derives its deadlines and publishes it. The caller decides
// what the store holds (stored_generation_) and the state.
void account_fsm::adopt(stored_tokens record, const event& ev, action_list& out) {
    const auto& t = record.tokens;
    const auto issued_at = t.expires_at - t.expires_in;
    usable_until_ = t.expires_at - effective_margin(config_->expiry_margin, t.expires_in);
    refresh_at_ = refresh_ahead_point(issued_at, t.expires_in, config_->refresh_ahead_fraction,
                                      config_->refresh_ahead_jitter, ev.jitter_draw);
    current_ = std::move(record);
    invalidated_generation_ = 0;
    consecutive_failures_ = 0;
    retry_not_before_ = {};
    last_error_ = {};
    if (current_->state == record_state::reauthorization_required || stopped_) {
        out.push_back(make(action::kind::withdraw));
        return;
    }
    publish_current(out);
}

// A newer pair another process stored (its rotation, a new authorization): adopted, nothing sent.
// The waiters get it when it is usable, and reauthorization_required when it is so marked.
void account_fsm::adopt_stored(const stored_tokens& record, const event& ev, action_list& out) {
    stored_generation_ = record.generation;
    ++counters_.adopted;
    state_ = account_state::ready;
    adopt(record, ev, out);
    if (current_->state == record_state::reauthorization_required) {
        return become_reauthorization_required(false, out);
    }
    if (usable(ev.now)) {
        wake({}, out);
    }
}

void account_fsm::publish_current(action_list& out) {
    action a = make(action::kind::publish);
    a.record = current_;
    a.generation = current_->generation;
    a.usable_until = usable_until_;
    a.refresh_at = refresh_at_;
    out.push_back(std::move(a));
}

void account_fsm::wake(error_code ec, action_list& out) {
    if (waiters_) {
        waiters_ = false;
        out.push_back(make(action::kind::wake_waiters, ec));
    }
}

// After a pair was adopted in state ready: serve the waiters, or refresh for them when the pair
// is already unusable (a store record that expired meanwhile).
void account_fsm::begin_cycle(action_list& out) {
    state_ = account_state::acquiring;
    refresh_base_ = current_->generation;
    cycle_restarts_ = 0;
    waited_for_sender_ = false;
    holder_busy_since_ = {};
    ask_for_lease(out);
}

// Every acquire goes through here. A release of this holder still unanswered may be carried out by
// the store after an acquire sent now: the token_store contract does not order one holder's calls
// (a store may run them on a pool; the file store retries those that wait for its directory lock
// on timers), and a release is a compare-and-delete on the holder, so it would delete the lease
// just granted. This machine would refresh believing it holds the lease while the store has none,
// and another process, granted it, would send the same refresh token: the server takes that for
// reuse and revokes the grant. So the acquire waits in acquiring for the last `released` (a failed
// release counts: the driver always answers one), and is then sent as it would have been. Callers
// stay queued meanwhile (in_cycle()), no busy answer has come, so the holder wait's limit does not
// run, and a stop ends the wait (on_stop): a stopped machine asks for no lease.
// A renewal unanswered defers it too: told lease_lost, it says the lease this cache held may have
// lapsed and gone to another holder that marked its own request sent, and the grant that follows
// may then report previous_holder_sent for that holder. Heard before the acquire is sent, that
// answer resets waited_for_sender_ and the grant waits for the new sender (on_renewed); heard after
// the grant, it would come too late, and a cache that had waited for an earlier sender would send
// a refresh token the other holder may have spent. No renewal is sent while acquiring
// (on_renew_due), so no renewal's answer straddles a grant.
void account_fsm::ask_for_lease(action_list& out) {
    state_ = account_state::acquiring;
    if (releases_in_flight_ > 0 || renewals_in_flight_ > 0) {
        acquire_deferred_ = true;
        return;
    }
    acquire_deferred_ = false;
    action a = make(action::kind::acquire);
    a.generation = refresh_base_;
    out.push_back(std::move(a));
}

void account_fsm::end_cycle(action_list& out) {
    state_ = account_state::ready;
    refresh_from_.reset();
    // Now, not only at the end of the event: a cycle that begins in the same event (a caller
    // waiting) must not acquire the lease it still holds.
    release_lease_left_over(out);
}

namespace {
bool superseded_cycle(const std::optional<stored_tokens>& current, std::uint64_t base) {
    return !current || current->generation != base;
}

/// How often one refresh cycle may go back to acquiring after the store moved under it (a lost
/// lease, a catch-up commit) before it gives up until the backoff: each restart needs the store
/// to have changed, so a live store needs one or two; more is a store that grants and then denies.
constexpr unsigned max_cycle_restarts = 4;
}  // namespace

// ---- callers ----------------------------------------------------------------------------------

void account_fsm::on_get(const event& ev, action_list& out) {
    if (stopped_) {
        return out.push_back(make(action::kind::fail_waiter, errc::shutting_down));
    }
    switch (state_) {
        case account_state::unloaded:
            waiters_ = true;
            out.push_back(make(action::kind::queue_waiter));
            if (save_in_flight_) {
                // A new account's first authorization is being written (the store held nothing):
                // that write decides. A second first load would race it, and one that failed would
                // answer the store calls, the one in flight included.
                return;
            }
            state_ = account_state::loading;
            out.push_back([] {
                action a = make(action::kind::load);
                a.purpose = load_purpose::first;
                return a;
            }());
            return;
        case account_state::loading:
            waiters_ = true;
            return out.push_back(make(action::kind::queue_waiter));
        case account_state::reauthorization_required:
            if (save_in_flight_) {  // a new authorization is being written: it decides
                waiters_ = true;
                return out.push_back(make(action::kind::queue_waiter));
            }
            if (ev.steady_now >= recheck_not_before_) {
                // The customer may have authorized again through another process, whose store
                // this one never hears of: look, at most once per backoff_initial, and only for an
                // account somebody asks for (a dead account costs one read per interval, not one
                // per call, and none while nobody wants it).
                recheck_not_before_ = ev.steady_now + config_->backoff_initial;
                state_ = account_state::loading;
                waiters_ = true;
                out.push_back(make(action::kind::queue_waiter));
                action a = make(action::kind::load);
                a.purpose = load_purpose::recheck_grant;
                return out.push_back(std::move(a));
            }
            return out.push_back(make(action::kind::fail_waiter, errc::reauthorization_required));
        default:
            break;
    }
    if (in_cycle() || save_in_flight_) {
        if (usable(ev.now)) {
            return out.push_back(make(action::kind::serve_waiter));
        }
        waiters_ = true;
        return out.push_back(make(action::kind::queue_waiter));
    }
    switch (answer_at_rest(ev)) {
        case rest_answer::serve:
            return out.push_back(make(action::kind::serve_waiter));
        case rest_answer::backoff_error:
            return out.push_back(make(action::kind::fail_waiter, last_error_));
        case rest_answer::refresh:
            waiters_ = true;
            out.push_back(make(action::kind::queue_waiter));
            return begin_cycle(out);
    }
}

account_fsm::rest_answer account_fsm::answer_at_rest(const event& ev) const noexcept {
    if (usable(ev.now)) {
        return rest_answer::serve;
    }
    // The pair is expired or invalidated.
    if (consecutive_failures_ > 0 && ev.steady_now < retry_not_before_) {
        return rest_answer::backoff_error;
    }
    return rest_answer::refresh;
}

void account_fsm::on_refresh_ahead(const event& ev, action_list& out) {
    if (stopped_ || state_ != account_state::ready || save_in_flight_ || !usable(ev.now)) {
        return;
    }
    if (ev.now < refresh_at_) {
        // A claim made on an earlier publication, reaching the machine after a newer pair (or
        // a later refresh-ahead point) was adopted: no rotation of a pair just issued.
        return;
    }
    if (consecutive_failures_ > 0 && ev.steady_now < retry_not_before_) {
        // Claimed past the refresh-ahead point but inside the backoff: the wall clock stepped or
        // ran ahead of the steady one the backoff counts on. The claim, one per publication, is
        // spent: the pair is published again with its point at the backoff's end, or no
        // background refresh would come before the pair expires and every caller waits.
        refresh_at_ = std::max(refresh_at_, ev.now + (retry_not_before_ - ev.steady_now));
        return publish_current(out);
    }
    begin_cycle(out);
}

void account_fsm::on_invalidate(const event& ev, action_list& out) {
    // Identity is the generation: the 401s of requests that used an older token change nothing.
    if (current_ && current_->generation == ev.generation && invalidated_generation_ != ev.generation) {
        invalidated_generation_ = ev.generation;
        out.push_back(make(action::kind::withdraw));
    }
}

// ---- loading ----------------------------------------------------------------------------------

void account_fsm::on_loaded(const event& ev, action_list& out) {
    switch (ev.purpose) {
        case load_purpose::first: {
            if (ev.ec || !ev.record) {
                // Nothing usable: everyone hears it, and a later call looks again.
                state_ = account_state::unloaded;
                const error_code ec = ev.ec ? ev.ec : error_code{errc::unknown_account};
                wake(ec, out);
                if (ev.ec && ev.ec != errc::corrupt_record) {
                    while (!pending_stores_.empty()) {
                        pending_stores_.pop_front();
                        out.push_back(make(action::kind::complete_store, ev.ec));
                    }
                    return;
                }
                stored_generation_ = 0;
                return start_next_store(out);
            }
            stored_generation_ = ev.record->generation;
            adopt(*ev.record, ev, out);
            if (current_->state == record_state::reauthorization_required) {
                become_reauthorization_required(false, out);
            } else {
                state_ = account_state::ready;
                if (usable(ev.now)) {
                    wake({}, out);
                } else if (waiters_) {
                    begin_cycle(out);
                }
            }
            return start_next_store(out);
        }
        case load_purpose::check_grant: {
            if (state_ != account_state::checking_grant) {
                return;
            }
            if (superseded_cycle(current_, refresh_base_)) {
                end_cycle(out);
                return;
            }
            if (ev.ec) {
                // Whether another process rotated first is unknown: conclude nothing (a
                // reauthorization told to the application is not taken back). The pair is kept;
                // the next refresh, after the backoff, asks the store again.
                end_cycle(out);
                return fail_transient(ev.ec, ev, out);
            }
            if (!ev.ec && ev.record && ev.record->generation > refresh_base_) {
                // Another cache rotated first: its pair is the live one; no reauthorization.
                stored_generation_ =
                    ev.record->generation;  // first: end_cycle keeps an unstored pair's lease
                end_cycle(out);
                return adopt_stored(*ev.record, ev, out);
            }
            if (!ev.ec && ev.record && ev.record->generation == refresh_base_ &&
                ev.record->state == record_state::reauthorization_required) {
                return become_reauthorization_required(false, out);
            }
            if (!ev.ec && ev.record && ev.record->generation < refresh_base_) {
                // A record older than the refused pair: the store lost the writes since (a
                // failover, a restored backup). The refusal says nothing of that record's own
                // pair: rotated away long ago, or a new authorization stored by a process that
                // knew nothing newer. So the store is left alone (a mark could end a live
                // authorization for every process; and marked at the cycle's generation, every
                // store answers generation_conflict, and the re-read and the mark would answer
                // each other for ever). This cache concludes for itself: the grant it refreshed
                // from is gone (told once), or the store says so already (learned, not told).
                // A cache that loads the stored pair finds out about it for itself.
                return become_reauthorization_required(
                    ev.record->state != record_state::reauthorization_required, out);
            }
            state_ = account_state::marking_reauthorization;
            action a = make(action::kind::mark_reauthorization);
            a.generation = refresh_base_;
            return out.push_back(std::move(a));
        }
        case load_purpose::commit_conflict: {
            // The rotation's commit met another generation.
            if (state_ != account_state::committing || !rotated_) {
                return;
            }
            const std::uint64_t ours = rotated_->generation;
            if (ev.ec) {
                // Cannot tell: keep ours and try again later.
                return on_committed(
                    [&] {
                        event e = ev;
                        e.what = event::kind::committed;
                        e.generation = ours;
                        return e;
                    }(),
                    out);
            }
            const std::uint64_t stored = ev.record ? ev.record->generation : 0;
            if (stored >= ours) {
                // Someone stored a pair at least as new (a new authorization): it wins.
                stored_generation_ = stored;
                rotated_.reset();
                end_cycle(out);
                if (!current_ || current_->generation <= stored) {
                    adopt(*ev.record, ev, out);
                    ++counters_.adopted;
                }
                if (current_->state == record_state::reauthorization_required) {
                    return become_reauthorization_required(false, out);
                }
                return;  // the waiters: answer_stranded_waiters, as a caller arriving now
            }
            // The store is behind ours: compare-and-set against what it holds now.
            stored_generation_ = stored;
            action a = make(action::kind::commit);
            a.record = rotated_;
            a.expected = stored;
            return out.push_back(std::move(a));
        }
        case load_purpose::write_back_conflict: {
            if (!commit_in_flight_) {
                return;
            }
            commit_in_flight_ = false;
            if (ev.ec) {
                return schedule_store_retry(out);  // cannot tell: keep ours and try again later
            }
            const std::uint64_t stored = ev.record ? ev.record->generation : 0;
            const std::uint64_t ours = current_ ? current_->generation : 0;
            if (in_cycle()) {
                // The cycle learns what the store holds through its own acquire or commit, and
                // writes this pair itself if the store is behind (catching_up). Adopted here, a
                // pair could end the cycle from under a request on the wire (one marked
                // reauthorization_required releases the lease); written here, a pair moving the
                // generation would end the cycle's lease in the store.
                stored_generation_ = std::max(stored_generation_, stored);
                return;
            }
            stored_generation_ = stored;
            if (stored < ours) {
                // The store is behind ours: compare-and-set against what it holds now.
                return start_write_back(out);
            }
            if (!ev.record) {
                return;
            }
            // Someone stored a pair at least as new (a new authorization): it wins. Its waiters
            // are answered by answer_stranded_waiters, as a caller arriving now (the adopted pair
            // may be unusable too).
            adopt(*ev.record, ev, out);
            ++counters_.adopted;
            if (current_->state == record_state::reauthorization_required) {
                return become_reauthorization_required(false, out);
            }
            return;  // the waiters: answer_stranded_waiters, as a caller arriving now
        }
        case load_purpose::recheck_grant: {
            if (state_ != account_state::loading) {
                return;
            }
            const std::uint64_t known = current_ ? current_->generation : 0;
            if (!ev.ec && ev.record && ev.record->generation > known) {
                // A new authorization, stored by another process. Unusable too, the waiters get a
                // refresh from it: answer_stranded_waiters.
                adopt_stored(*ev.record, ev, out);
            } else {
                // The same grant (or nothing readable): still gone.
                state_ = account_state::reauthorization_required;
                wake(errc::reauthorization_required, out);
            }
            return start_next_store(out);
        }
        case load_purpose::store_conflict: {
            if (!ev.ec) {
                stored_generation_ = ev.record ? ev.record->generation : 0;
            }
            if (ev.ec || ++save_attempts_ > config_->max_store_attempts) {
                save_in_flight_ = false;
                saving_.reset();
                pending_stores_.pop_front();
                out.push_back(make(action::kind::complete_store,
                                   ev.ec ? ev.ec : error_code{errc::generation_conflict}));
                return start_next_store(out);
            }
            saving_->generation = highest_generation() + 1;
            action a = make(action::kind::save);
            a.record = saving_;
            a.expected = stored_generation_;
            return out.push_back(std::move(a));
        }
    }
}

// ---- the refresh cycle ------------------------------------------------------------------------

void account_fsm::on_acquired(const event& ev, action_list& out) {
    if (state_ != account_state::acquiring || acquire_deferred_) {
        return;  // acquire_deferred_: no acquire is in flight, so this answer is no cycle's
    }
    const auto& lease = ev.lease;
    if (!ev.ec && lease.what == lease_outcome::kind::granted) {
        lease_held_ = true;
        ++lease_grant_;           // renewals sent before this grant are not about it (on_renewed)
        holder_busy_since_ = {};  // the wait's limit is for one unbroken run of busy answers
        // The store's lease is on the generation it holds, below the cycle's when it is behind.
        lease_generation_ = lease.record ? lease.record->generation : 0;
    }
    if (stopped_ || superseded_cycle(current_, refresh_base_)) {
        end_cycle(out);
        return;
    }
    if (ev.ec) {
        // The coordinator cannot be reached: fail closed (no uncoordinated refresh).
        state_ = account_state::ready;
        return fail_transient(ev.ec, ev, out);
    }
    switch (lease.what) {
        case lease_outcome::kind::newer:
            adopt_stored(*lease.record, ev, out);
            if (state_ == account_state::ready && waiters_) {
                begin_cycle(out);  // the stored pair is no better: go again from it
            }
            return;
        case lease_outcome::kind::busy: {
            // A holder that keeps renewing its lease without committing (its pair unstored: a
            // store that takes renewals and refuses writes) would keep this cycle's callers
            // waiting for as long as it lives, told nothing. No healthy holder takes longer than
            // its wait for a silent sender (backoff_max) and a refresh and commit (lease_ttl):
            // past that and one lease more (holder_wait_limit), the callers are told, and the next
            // get after the backoff asks again. This cache never refreshes while another holds
            // the lease.
            if (holder_busy_since_ == steady_time{}) {
                holder_busy_since_ = ev.steady_now;
            } else if (ev.steady_now - holder_busy_since_ >= holder_wait_limit(*config_)) {
                end_cycle(out);
                return fail_transient(errc::coordination_unavailable, ev, out);
            }
            // Another holder has the lease now, and may mark its own request sent: a grant told
            // previous_holder_sent after it is owed a wait of its own, not the one this cycle
            // gave an earlier holder.
            waited_for_sender_ = false;
            state_ = account_state::waiting_for_holder;
            action a = make(action::kind::wait_for_change);
            a.generation = refresh_base_;
            a.delay = std::max(lease.time_left, std::chrono::milliseconds(10));
            return out.push_back(std::move(a));
        }
        case lease_outcome::kind::reauthorization_required:
            current_->state = record_state::reauthorization_required;
            return become_reauthorization_required(false, out);
        case lease_outcome::kind::granted:
            break;
    }
    const std::uint64_t stored = lease.record ? lease.record->generation : 0;
    if (stored == refresh_base_) {
        stored_generation_ = std::max(stored_generation_, stored);  // a write-back landed unseen
    }
    if (stored < refresh_base_) {
        // The store is behind memory: this pair's write-back has not landed, or the store lost its
        // last writes (a restart without persistence, a failover that missed them). The lease is
        // on the stored generation, so marking ours sent would be refused, and whoever is granted
        // it after us would send the older refresh token, which the server has revoked. This pair
        // is committed first, under the lease (which the commit clears); then the cycle asks again.
        stored_generation_ = stored;
        state_ = account_state::catching_up;
        action a = make(action::kind::commit);
        a.record = current_;
        a.expected = stored;
        return out.push_back(std::move(a));
    }
    if (lease.previous_holder_sent && !waited_for_sender_) {
        // A holder marked a request sent with this generation's refresh token and never committed.
        // It may be alive and cut off from the store, its commit retried at the backoff's pace (up
        // to backoff_max): sending the token now, if the server rotated it, would make the server
        // revoke the whole grant, that holder's new pair included. So the lease is held (and
        // renewed) while that holder gets as long as its retry needs to land; then, once per
        // cycle, the refresh goes out (the holder may have died before its request left). Once
        // per cycle and sender: a busy answer, a renewal that failed or a mark-sent told lost
        // since (the lease may have gone to another holder, which may have sent too) resets it.
        waited_for_sender_ = true;
        state_ = account_state::waiting_for_holder;
        action a = make(action::kind::wait_for_change);
        a.generation = refresh_base_;
        a.delay = config_->backoff_max;
        return out.push_back(std::move(a));
    }
    // The stored record of our generation holds the refresh token to send.
    if (lease.record && lease.record->generation == refresh_base_) {
        refresh_from_ = lease.record;
    } else {
        refresh_from_ = current_;
    }
    if (refresh_from_->tokens.refresh_token.empty()) {
        // A grant without a refresh token cannot be renewed: the same outcome as invalid_grant.
        state_ = account_state::checking_grant;
        action a = make(action::kind::load);
        a.purpose = load_purpose::check_grant;
        return out.push_back(std::move(a));
    }
    state_ = account_state::marking_sent;
    action a = make(action::kind::mark_sent);
    a.generation = refresh_base_;
    out.push_back(std::move(a));
}

void account_fsm::on_sent_marked(const event& ev, action_list& out) {
    if (state_ != account_state::marking_sent) {
        return;
    }
    if (ev.ec == errc::lease_lost) {
        // Someone took the lease over (ours lapsed), or the store moved: ask again; it decides.
        // That someone may mark its own request sent: owed a wait of its own (see on_renewed).
        lease_held_ = false;
        waited_for_sender_ = false;
        return acquire_again(ev, out);
    }
    if (ev.ec || stopped_ || superseded_cycle(current_, refresh_base_)) {
        end_cycle(out);
        if (ev.ec && !stopped_) {
            fail_transient(ev.ec, ev, out);
        }
        return;
    }
    state_ = account_state::refreshing;
    ++counters_.refreshes;
    action a = make(action::kind::refresh);
    a.record = refresh_from_;
    a.generation = refresh_base_;
    out.push_back(std::move(a));
}

void account_fsm::on_refreshed(const event& ev, action_list& out) {
    if (state_ != account_state::refreshing) {
        return;
    }
    if (!ev.ec) {
        if (superseded_cycle(current_, refresh_base_)) {
            // async_store put a new authorization meanwhile: it wins; this rotation of the old
            // grant is not needed.
            end_cycle(out);
            return;
        }
        // Persist before anyone sees it: the waiters stay queued until the commit completes.
        rotated_ = stored_tokens{ev.tokens, refresh_base_ + 1, record_state::ok};
        if (rotated_->tokens.scopes.empty() && refresh_from_) {
            // No scope in the answer and none requested (a narrowed refresh names its scopes, and
            // an answer without scope then keeps those): RFC 6749 §6, the grant's scopes are
            // unchanged, so the pair the refresh was sent from says what they are. Left empty, the
            // store would lose them at the first rotation.
            rotated_->tokens.scopes = refresh_from_->tokens.scopes;
        }
        state_ = account_state::committing;
        action a = make(action::kind::commit);
        a.record = rotated_;
        a.expected = stored_generation_;
        return out.push_back(std::move(a));
    }
    ++counters_.refresh_failures;
    if (ev.ec == errc::invalid_grant && !superseded_cycle(current_, refresh_base_)) {
        // Maybe another cache rotated with this token first: look before telling anyone.
        state_ = account_state::checking_grant;
        action a = make(action::kind::load);
        a.purpose = load_purpose::check_grant;
        return out.push_back(std::move(a));
    }
    end_cycle(out);
    if (superseded_cycle(current_, refresh_base_)) {
        return;
    }
    fail_transient(ev.ec, ev, out);
}

void account_fsm::fail_transient(error_code ec, const event& ev, action_list& out) {
    last_error_ = ec;
    ++consecutive_failures_;
    // A server's Retry-After (429, 503) is honoured up to backoff_max, so that a hostile value
    // cannot lock the account out for longer than the cache's own worst case.
    auto wait = backoff_after(consecutive_failures_, config_->backoff_initial, config_->backoff_max);
    if (ev.retry_after) {
        wait = std::max(wait, std::min<std::chrono::milliseconds>(*ev.retry_after, config_->backoff_max));
    }
    retry_not_before_ = ev.steady_now + wait;
    wake(ec, out);
    if (usable(ev.now) && !stopped_) {
        // A background refresh that failed while the pair is still good: the pair is published
        // again with its refresh-ahead point past the backoff. The table lets one reader claim
        // the refresh-ahead per publication, so without this no reader would claim it again, and
        // the next refresh would wait for the pair to expire, with every caller waiting on it.
        refresh_at_ = std::max(refresh_at_, ev.now + wait);
        publish_current(out);
    }
}

void account_fsm::acquire_again(const event& ev, action_list& out) {
    if (stopped_) {
        // Its callers were told shutting_down: nothing is asked of the store now, and a flush
        // need not wait for an acquire and the release it would bring.
        return end_cycle(out);
    }
    if (++cycle_restarts_ > max_cycle_restarts) {
        end_cycle(out);
        return fail_transient(errc::coordination_unavailable, ev, out);
    }
    ask_for_lease(out);
}

// The commit of this cache's pair to a store that was behind it (catching_up).
void account_fsm::on_caught_up(const event& ev, action_list& out) {
    const bool failed = ev.ec && ev.ec != errc::generation_conflict;
    if (!ev.ec) {
        stored_generation_ = std::max(stored_generation_, ev.generation);
        store_failures_ = 0;
        lease_held_ = false;  // the commit cleared it
    }
    if (failed) {
        ++counters_.store_failures;
        note_refusal(ev.ec, ev.generation);
        report_store_failure(ev.ec, out);
    }
    if (stopped_ || superseded_cycle(current_, refresh_base_)) {
        end_cycle(out);
    } else if (!failed) {
        // Stored, or the store moved meanwhile (a write-back of this pair, another process):
        // either way the next acquire says what it holds now.
        return acquire_again(ev, out);
    } else {
        end_cycle(out);
        fail_transient(ev.ec, ev, out);
    }
    if (failed) {
        schedule_store_retry(out);
    }
}

// A write-back of the unstored pair. It leaves every lease as it is: release_lease_left_over
// gives back one kept for the pair once it is stored.
void account_fsm::on_written_back(const event& ev, action_list& out) {
    commit_in_flight_ = false;
    if (!ev.ec) {
        stored_generation_ = std::max(stored_generation_, ev.generation);
        store_failures_ = 0;
        return start_write_back(out);  // a newer pair, if one failed meanwhile
    }
    if (ev.generation <= stored_generation_) {
        // Its pair is known stored meanwhile (its write landed and only the answer was lost, as a
        // later grant showed): nothing to report or retry. A newer unstored pair, if any, gets
        // its own write (keep_write_back_pending).
        return;
    }
    if (ev.ec == errc::generation_conflict) {
        commit_in_flight_ = true;
        action a = make(action::kind::load);
        a.purpose = load_purpose::write_back_conflict;
        return out.push_back(std::move(a));
    }
    ++counters_.store_failures;
    note_refusal(ev.ec, ev.generation);
    report_store_failure(ev.ec, out);
    schedule_store_retry(out);
}

void account_fsm::on_committed(const event& ev, action_list& out) {
    if (state_ == account_state::catching_up) {
        return on_caught_up(ev, out);
    }
    if (state_ != account_state::committing || !rotated_ || ev.generation != rotated_->generation) {
        return;
    }
    if (ev.ec == errc::generation_conflict) {
        action a = make(action::kind::load);
        a.purpose = load_purpose::commit_conflict;
        return out.push_back(std::move(a));
    }
    stored_tokens record = std::move(*rotated_);
    rotated_.reset();
    state_ = account_state::ready;
    refresh_from_.reset();
    const bool superseded = superseded_cycle(current_, refresh_base_);
    if (!ev.ec) {
        stored_generation_ = std::max(stored_generation_, record.generation);
        lease_held_ = false;  // the commit cleared it
    }
    if (superseded) {
        // A new authorization was adopted meanwhile; it stays current.
        if (lease_held_) {
            end_cycle(out);
        }
        return;
    }
    ++counters_.rotations;
    auto for_hook = record;
    // Used whether or not it was stored: the server has already revoked the old pair.
    adopt(std::move(record), ev, out);
    wake({}, out);
    if (ev.ec) {
        // The lease stays with us (not released): another process granted it now would send the
        // refresh token the server just revoked. It is given back once the write-back lands
        // (release_lease_left_over), or lapses.
        ++counters_.store_failures;
        note_refusal(ev.ec, ev.generation);
        report_store_failure(ev.ec, out);
        schedule_store_retry(out);
    }
    action hook = make(action::kind::notify_rotation);
    hook.record = std::move(for_hook);
    out.push_back(std::move(hook));
}

// Before the flush gave up, every failed write is reported. After, nothing is retried, and the
// loss is reported once, as shutting_down: by the deadline when a pair was unstored then, or by
// the first failed write of a pair rotated since (a refresh still on the wire at the deadline,
// whose flush_done said only shutting_down): never silent, never twice.
void account_fsm::report_store_failure(error_code ec, action_list& out) {
    if (!gave_up_) {
        return out.push_back(make(action::kind::notify_store_failure, ec));
    }
    if (!loss_reported_) {
        loss_reported_ = true;
        out.push_back(make(action::kind::notify_store_failure, errc::shutting_down));
    }
}

// A store that refused the pair as one it cannot hold (invalid_argument: too large, a string that
// is not UTF-8, a generation past its range) refuses every write of it: retried on a timer, it was
// refused and reported again for as long as the process lived. So the timer no longer writes it
// (nor a flush); it is still served, and the lease kept for it, as for any unstored pair, and a
// flush reports it lost at its deadline. A refresh cycle still tries it once (catching_up: the
// store is behind), its callers told the error. A newer pair is written as usual.
void account_fsm::note_refusal(error_code ec, std::uint64_t generation) noexcept {
    if (ec == errc::invalid_argument) {
        refused_generation_ = generation;
    }
}

bool account_fsm::refused() const noexcept {
    return dirty() && current_->generation == refused_generation_;
}

void account_fsm::schedule_store_retry(action_list& out) {
    if (store_retry_scheduled_ || commit_in_flight_ || gave_up_ || refused()) {
        return;
    }
    store_retry_scheduled_ = true;
    ++store_failures_;
    action a = make(action::kind::schedule_store_retry);
    a.delay = store_retry_delay();
    out.push_back(std::move(a));
}

std::chrono::milliseconds account_fsm::store_retry_delay() const noexcept {
    return flushing_ ? std::min(config_->backoff_initial, std::chrono::milliseconds(100))
                     : backoff_after(store_failures_, config_->backoff_initial, config_->backoff_max);
}

void account_fsm::start_write_back(action_list& out) {
    // A commit under the lease (the rotation's, or catching_up's) is this write already.
    if (!dirty() || refused() || commit_in_flight_ || state_ == account_state::committing ||
        state_ == account_state::catching_up) {
        return;
    }
    commit_in_flight_ = true;
    action a = make(action::kind::write_back);
    a.record = current_;
    a.expected = stored_generation_;
    out.push_back(std::move(a));
}

void account_fsm::on_store_retry_due(const event& ev, action_list& out) {
    if (ev.ec) {
        // The wait a re-arming replaced (a flush brings the retry forward): the new wait is the
        // retry. Taken as one, it would clear the flag while that wait is armed, and every
        // failure after would re-arm it again, each a retry at once: no backoff at all.
        return;
    }
    store_retry_scheduled_ = false;
    if (gave_up_) {
        return;
    }
    start_write_back(out);
}

// ---- keeping the lease --------------------------------------------------------------------------

// The lease must outlive everything done under it: a token request slower than lease_ttl, and a
// rotated pair whose commit the store refused and which is retried (another process granted the
// lease then would send the refresh token the server just revoked). So while it is held it is
// renewed every third of its ttl; once it is not (committed, released, lost, or the flush gave up
// and the pair is reported lost), the timer is cancelled so that nothing keeps the io_context.
void account_fsm::keep_lease_alive(action_list& out) {
    const bool wanted = lease_held_ && !gave_up_;
    if (wanted && !renew_scheduled_) {
        renew_scheduled_ = true;
        action a = make(action::kind::schedule_renew);
        a.delay = std::max(config_->lease_ttl / 3, std::chrono::milliseconds(1));
        out.push_back(std::move(a));
    } else if (!wanted && renew_scheduled_) {
        renew_scheduled_ = false;
        out.push_back(make(action::kind::cancel_renew));
    }
}

// Outside a refresh cycle the lease is kept for one reason: a rotated pair the store refused,
// which another process granted the lease would make worthless by refreshing with the revoked
// token. Once that pair is stored, or superseded by another process's store, it is given back:
// renewed forever, it would keep every other process waiting on this one.
// The one place that gives the lease back: once no cycle needs it. It is kept while this cache's
// pair is unstored, and given back once it is stored: whoever is granted it next would send a
// refresh token the server has revoked.
void account_fsm::release_lease_left_over(action_list& out) {
    if (lease_held_ && !in_cycle() && !dirty()) {
        give_lease_back(out);
    }
}

// A release is not fire and forget: until its answer comes back the store may still hold the
// lease for this cache, and a process that exits then leaves every other process sharing the store
// to see the account busy for up to lease_ttl. So it is counted, and a flush waits for its answer.
void account_fsm::give_lease_back(action_list& out) {
    lease_held_ = false;
    ++releases_in_flight_;
    out.push_back(make(action::kind::release));
}

// Any answer ends the wait, a failure too: a release is not retried, for the lease lapses at its
// ttl anyway, and a store that cannot be reached now would keep a shutdown waiting for nothing.
// The last answer lets a deferred acquire go (ask_for_lease).
void account_fsm::on_released(action_list& out) {
    if (releases_in_flight_ > 0) {
        --releases_in_flight_;
    }
    ask_if_deferred(out);
}

void account_fsm::ask_if_deferred(action_list& out) {
    if (acquire_deferred_ && releases_in_flight_ == 0 && renewals_in_flight_ == 0) {
        ask_for_lease(out);
    }
}

void account_fsm::on_renew_due(const event& ev, action_list& out) {
    if (ev.ec) {
        return;  // cancelled (or re-armed): whatever replaced it is already accounted for
    }
    renew_scheduled_ = false;  // keep_lease_alive arms the next one while the lease is held
    // Not while acquiring: the acquire renews a lease still ours, and a renewal answered after its
    // grant could not say which lease it was about (ask_for_lease). The next one is armed as usual.
    if (lease_held_ && !gave_up_ && state_ != account_state::acquiring) {
        action a = make(action::kind::renew);
        a.generation = lease_generation_;
        a.lease_grant = lease_grant_;
        ++renewals_in_flight_;
        out.push_back(std::move(a));
    }
}

// Only an answer to a renewal sent under the grant the lease is held from says anything about
// it. (A second guard: ask_for_lease sends no acquire while a renewal is unanswered, and no
// renewal is sent while acquiring, so no answer should straddle a grant.) The cache asks for the lease again
// while it holds it (a cycle begun while the lease is kept for an unstored pair, a re-acquire after waiting
// for a silent sender, one after a catch-up commit), and the store answers on its own threads: a renewal sent
// before that re-acquire may be answered after its grant, lease_lost (the old lease had lapsed; the new one
// may be on the same generation, so the generation cannot tell them apart). Honoured, it would drop the lease
// just granted: no more renewals, nothing released, a flush that does not wait for it, and during a refresh
// longer than lease_ttl another process granted it would send the same refresh token, which the server takes
// for reuse and answers by revoking the grant. So each renewal carries the count of grants at its sending,
// and one sent under an earlier grant is ignored, whatever its error: a failure then said the earlier lease
// may have gone to another holder, which the grant since has already told (previous_holder_sent) and handled.
// The lease's own renewals, sent from now on, say whether it lapses. Mark-sent needs no such ticket: it is
// sent only right after a grant and answered in marking_sent, which nothing else leaves, so no acquire is
// sent while one is unanswered. (A machine set aside and rebuilt starts the count again: its driver sets it
// aside only with no store call in flight, so no answer from before reaches the new one.)
void account_fsm::on_renewed(const event& ev, action_list&) {
    if (renewals_in_flight_ > 0) {
        --renewals_in_flight_;
    }
    if (!ev.ec || !lease_held_ || ev.lease_grant != lease_grant_ || ev.generation != lease_generation_) {
        return;
    }
    // A renewal that failed, told lost or not answered at all (the store cut off): the lease may
    // have lapsed and gone to a holder that then marked its own request sent. Held while waiting
    // for a silent sender, the next grant told previous_holder_sent may be that other holder's,
    // which is owed a wait too before this cycle sends (as after a busy answer). This machine is
    // never told who the sender was, so it assumes the worst: a wait more, in an outage.
    waited_for_sender_ = false;
    if (ev.ec == errc::lease_lost) {
        // It lapsed or was taken over. The request already sent cannot be recalled; its commit is
        // still a compare-and-set on the generation, and nothing is released that is not ours.
        lease_held_ = false;
    }
    // Other errors (the store unreachable for a moment): the next renewal tries again.
}

// ---- the grant is gone ------------------------------------------------------------------------

void account_fsm::on_reauthorization_marked(const event& ev, action_list& out) {
    if (state_ != account_state::marking_reauthorization) {
        return;
    }
    if (superseded_cycle(current_, refresh_base_)) {
        end_cycle(out);
        return;
    }
    if (ev.ec == errc::generation_conflict) {
        // A newer generation was stored since the check: adopt it instead.
        state_ = account_state::checking_grant;
        action a = make(action::kind::load);
        a.purpose = load_purpose::check_grant;
        return out.push_back(std::move(a));
    }
    // Recorded (or the store could not record it: this process knows all the same).
    become_reauthorization_required(true, out);
}

void account_fsm::become_reauthorization_required(bool discovered_here, action_list& out) {
    if (lease_held_) {
        give_lease_back(out);
    }
    refresh_from_.reset();
    state_ = account_state::reauthorization_required;
    recheck_not_before_ = {};  // as a machine set aside and woken: the first caller looks
    if (current_) {
        current_->state = record_state::reauthorization_required;
    }
    out.push_back(make(action::kind::withdraw));
    wake(errc::reauthorization_required, out);
    if (discovered_here) {
        // Once, by the cache that learned it; the others read it from the store.
        ++counters_.reauthorizations;
        out.push_back(make(action::kind::notify_reauthorization));
    }
}

void account_fsm::on_changed(const event& ev, action_list& out) {
    if (state_ != account_state::waiting_for_holder) {
        return;
    }
    if (stopped_ || superseded_cycle(current_, refresh_base_) ||
        ev.ec == boost::asio::error::operation_aborted) {
        state_ = account_state::ready;
        return;
    }
    if (ev.ec) {
        // The store could not wait (its reads or its notifications failed). Asking for the lease
        // again at once would spin: a store whose acquire says busy while its wait fails at once
        // would be asked in a tight loop until holder_wait_limit. Failed closed, as an acquire
        // that fails: the callers are told the store's error, a lease this cycle holds (the wait
        // for a silent sender) is given back, and the next get after the backoff asks again.
        end_cycle(out);
        return fail_transient(ev.ec, ev, out);
    }
    if (ev.record && ev.record->generation > refresh_base_) {
        adopt_stored(*ev.record, ev, out);
        if (state_ == account_state::ready && waiters_) {
            begin_cycle(out);  // the stored pair is no better: go again from it
        }
        return;
    }
    if (ev.record && ev.record->generation == refresh_base_ &&
        ev.record->state == record_state::reauthorization_required) {
        return become_reauthorization_required(false, out);
    }
    // The holder's lease ran out or was given back without a commit (or the wait timed out): ask again.
    ask_for_lease(out);
}

// ---- new authorizations -----------------------------------------------------------------------

void account_fsm::on_store_requested(const event& ev, action_list& out) {
    if (stopped_) {
        action a = make(action::kind::complete_store, errc::shutting_down);
        a.newest = true;  // this call, behind any still queued
        out.push_back(std::move(a));
        ++counters_.store_requests;  // answered: once the answer is on the list, not before
        return;
    }
    pending_stores_.push_back(ev.tokens);
    // Taken: the call will be answered.
    ++counters_.store_requests;
    if (state_ == account_state::unloaded && !save_in_flight_) {  // in flight: it goes next (on_get)
        // The next generation depends on what the store holds.
        state_ = account_state::loading;
        action a = make(action::kind::load);
        a.purpose = load_purpose::first;
        return out.push_back(std::move(a));
    }
    if (state_ != account_state::loading) {
        start_next_store(out);
    }
}

void account_fsm::start_next_store(action_list& out) {
    if (save_in_flight_ || pending_stores_.empty()) {
        return;
    }
    save_in_flight_ = true;
    save_attempts_ = 1;
    // Above every generation this cache knows or may produce: a rotation in flight keeps its own.
    saving_ = stored_tokens{pending_stores_.front(), highest_generation() + 1, record_state::ok};
    action a = make(action::kind::save);
    a.record = saving_;
    a.expected = stored_generation_;
    out.push_back(std::move(a));
}

void account_fsm::on_saved(const event& ev, action_list& out) {
    if (!save_in_flight_) {
        return;
    }
    if (ev.ec == errc::generation_conflict) {
        action a = make(action::kind::load);
        a.purpose = load_purpose::store_conflict;
        return out.push_back(std::move(a));
    }
    save_in_flight_ = false;
    pending_stores_.pop_front();
    stored_tokens record = std::move(*saving_);
    saving_.reset();
    if (!ev.ec) {
        stored_generation_ = std::max(stored_generation_, record.generation);
    }
    const std::uint64_t generation = record.generation;  // `record` is moved from below
    const bool newest = !current_ || current_->generation < generation;
    if (newest) {
        auto for_hook = record;
        adopt(std::move(record), ev, out);
        if (state_ == account_state::reauthorization_required || state_ == account_state::unloaded ||
            state_ == account_state::loading) {
            state_ = account_state::ready;
        }
        wake({}, out);
        action hook = make(action::kind::notify_rotation);
        hook.record = std::move(for_hook);
        out.push_back(std::move(hook));
    }
    if (ev.ec) {
        ++counters_.store_failures;
        note_refusal(ev.ec, generation);
        out.push_back(make(action::kind::notify_store_failure, ev.ec));
        if (newest) {
            schedule_store_retry(out);
        }
    }
    out.push_back(make(action::kind::complete_store, ev.ec));
    start_next_store(out);
}

// ---- stopping ---------------------------------------------------------------------------------

void account_fsm::on_stop(action_list& out) {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    out.push_back(make(action::kind::withdraw));
    wake(errc::shutting_down, out);
    if (acquire_deferred_) {
        // Nothing was asked of the store yet: the cycle ends here, holding nothing (a flush still
        // waits for the release in flight).
        acquire_deferred_ = false;
        state_ = account_state::ready;
    }
    // Calls not started yet are refused; the write in flight (if any) finishes.
    const std::size_t keep = save_in_flight_ ? 1 : 0;
    while (pending_stores_.size() > keep) {
        pending_stores_.pop_back();
        action a = make(action::kind::complete_store, errc::shutting_down);
        a.newest = true;
        out.push_back(std::move(a));
    }
}

void account_fsm::on_flush(action_list& out) {
    // Do not wait for the retry timer: write now. A retry armed at the backoff's pace (up to
    // backoff_max, past a flush's whole deadline) is brought forward to the flush's, should this
    // write fail too.
    if (store_retry_scheduled_) {
        action a = make(action::kind::schedule_store_retry);
        a.delay = store_retry_delay();
        out.push_back(std::move(a));
    }
    start_write_back(out);
}

// What a flush waits for: a pair not stored yet (unstored, rotated, being saved, or a refresh that
// may bring one), and anything that may leave this cache's lease held in the store once the process
// has exited, which every other process sharing the store would see busy for up to lease_ttl:
// - acquiring: the answer may be a grant (after a stop, on_acquired gives it straight back);
// - lease_held_: a grant being handled, whatever the state (catching_up, checking_grant,
//   marking_reauthorization, waiting_for_holder for a silent sender, marking_sent, and ready with
//   an unstored pair); each of them ends after a stop by committing (which clears the lease) or
//   by a release. waiting_for_holder without the lease holds nothing (its wait is cancelled at the
//   stop), nor does a lease the store told lost;
// - a release sent and not answered (releases_in_flight_): the lease is held until it lands.
// After a stop no new cycle begins, so each of these ends within a few store round trips (a wait
// for a silent sender is cancelled at the stop), or at the flush's deadline for a store that never
// answers (flush_done then says shutting_down: no pair was lost, and the lease lapses at its ttl).
bool account_fsm::flush_pending() const noexcept {
    return dirty() || rotated_ || save_in_flight_ || lease_held_ || releases_in_flight_ > 0 ||
           state_ == account_state::acquiring || state_ == account_state::marking_sent ||
           state_ == account_state::refreshing || state_ == account_state::committing;
}

void account_fsm::check_flush(action_list& out) {
    if (flushing_ && !flush_pending()) {
        flushing_ = false;
        out.push_back(make(action::kind::flush_done));
    }
}

void account_fsm::on_flush_deadline(action_list& out) {
    if (!flushing_) {
        return;
    }
    flushing_ = false;
    gave_up_ = true;
    if (dirty() || rotated_) {
        // Never silent: the pair the server issued is not stored, and nobody will retry.
        loss_reported_ = true;
        out.push_back(make(action::kind::notify_store_failure, errc::shutting_down));
        out.push_back(make(action::kind::flush_done, errc::store_failure));
        return;
    }
    out.push_back(make(action::kind::flush_done, errc::shutting_down));
}

}  // namespace apollo_oauth::sansio
