// account_fsm driven directly: every transition, and each numbered case of issue 11, without
// sockets, clocks or stores.
#include "sansio/account_fsm.hpp"
#include "sansio/packed_rest.hpp"

#include <boost/asio/error.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

using namespace apollo_oauth;
using namespace apollo_oauth::sansio;
using ak = action::kind;
using ek = event::kind;

namespace {

const sys_time t0 = std::chrono::system_clock::time_point(std::chrono::hours(24 * 365 * 50));
const steady_time s0 = steady_time(std::chrono::hours(1000));

stored_tokens pair_of(std::uint64_t generation, std::chrono::seconds lifetime = std::chrono::hours(1),
                      sys_time issued = t0) {
    stored_tokens r;
    r.generation = generation;
    r.tokens.access_token = secret_string("access-" + std::to_string(generation));
    r.tokens.refresh_token = secret_string("refresh-" + std::to_string(generation));
    r.tokens.token_type = "Bearer";
    r.tokens.expires_in = lifetime;
    r.tokens.created_at = issued;
    r.tokens.expires_at = issued + lifetime;
    return r;
}

token_set fresh_tokens(const std::string& tag, sys_time issued) {
    token_set t;
    t.access_token = secret_string("access-" + tag);
    t.refresh_token = secret_string("refresh-" + tag);
    t.token_type = "Bearer";
    t.expires_in = std::chrono::hours(1);
    t.created_at = issued;
    t.expires_at = issued + t.expires_in;
    return t;
}

// The machines refer to their settings (as every account of a cache refers to the cache's).
const account_fsm_config& config() {
    static const account_fsm_config c = [] {
        account_fsm_config made;
        made.expiry_margin = std::chrono::seconds(60);
        made.refresh_ahead_fraction = 0.75;
        made.refresh_ahead_jitter = 0.0;
        made.backoff_initial = std::chrono::seconds(1);
        made.backoff_max = std::chrono::seconds(60);
        return made;
    }();
    return c;
}

event at(ek what, sys_time now = t0, steady_time steady = s0) {
    event e;
    e.what = what;
    e.now = now;
    e.steady_now = steady;
    return e;
}

bool has(const action_list& a, ak k) {
    return std::any_of(a.begin(), a.end(), [k](const action& x) { return x.what == k; });
}

const action& find(const action_list& a, ak k) {
    const auto it = std::find_if(a.begin(), a.end(), [k](const action& x) { return x.what == k; });
    BOOST_REQUIRE(it != a.end());
    return *it;
}

std::size_t index_of(const action_list& a, ak k) {
    return static_cast<std::size_t>(
        std::find_if(a.begin(), a.end(), [k](const action& x) { return x.what == k; }) - a.begin());
}

// A machine with generation `g` loaded from the store (issued at t0, one hour).
account_fsm loaded(std::uint64_t g = 1) {
    account_fsm m{config()};
    auto a = m.resume(at(ek::get));
    BOOST_REQUIRE(has(a, ak::load));
    auto ev = at(ek::loaded);
    ev.record = pair_of(g);
    a = m.resume(ev);
    BOOST_REQUIRE(has(a, ak::publish));
    BOOST_REQUIRE(has(a, ak::wake_waiters));
    BOOST_REQUIRE(m.state() == account_state::ready);
    return m;
}

const sys_time expired = t0 + std::chrono::hours(2);

// Drives a machine that asked for the lease to `refreshing`: the lease granted with `stored` (the
// store's record), the request marked sent, at `now`.
void grant_and_send(account_fsm& m, stored_tokens stored, sys_time now) {
    const auto base = stored.generation;
    auto granted = at(ek::acquired, now);
    granted.lease.what = lease_outcome::kind::granted;
    granted.lease.record = std::move(stored);
    auto a = m.resume(granted);
    BOOST_REQUIRE(find(a, ak::mark_sent).generation == base);
    a = m.resume(at(ek::sent_marked, now));
    BOOST_REQUIRE(has(a, ak::refresh));
    BOOST_REQUIRE(m.state() == account_state::refreshing);
}

// Drives an expired machine to `refreshing` (lease granted with the stored record).
void to_refreshing(account_fsm& m, std::uint64_t base) {
    auto a = m.resume(at(ek::get, expired));
    BOOST_REQUIRE(has(a, ak::queue_waiter));
    BOOST_REQUIRE(find(a, ak::acquire).generation == base);
    grant_and_send(m, pair_of(base), expired);
}

// The token endpoint's answer to the refresh on the wire: the error `ec`.
event refresh_failed_with(error_code ec) {
    auto failed = at(ek::refreshed, expired);
    failed.ec = ec;
    return failed;
}

// The token endpoint's answer to the refresh on the wire: the pair tagged "2".
event refreshed_with_pair_2() {
    auto done = at(ek::refreshed, expired);
    done.tokens = fresh_tokens("2", expired);
    return done;
}

// The store's answer to a commit of `generation`: refused (a transient store failure).
event refused_commit_of(std::uint64_t generation) {
    auto failed = at(ek::committed, expired);
    failed.generation = generation;
    failed.ec = errc::store_failure;
    return failed;
}

// The same answer to a write-back.
event refused_write_back_of(std::uint64_t generation) {
    auto failed = refused_commit_of(generation);
    failed.what = ek::written_back;
    return failed;
}

// The store's answer to a release.
event released(error_code ec = {}) {
    auto ev = at(ek::released, expired);
    ev.ec = ec;
    return ev;
}

// A stopped, flushing machine whose last event's actions `a` give the lease back: the flush ends
// only once the store has answered that release.
void the_release_ends_the_flush(account_fsm& m, const action_list& a) {
    BOOST_TEST(has(a, ak::release));
    BOOST_TEST(!has(a, ak::flush_done));
    BOOST_TEST(!find(m.resume(released()), ak::flush_done).ec);
}

// Drives a loaded machine of generation 1 through a refresh that brings generation 2, whose
// commit the store refuses; returns the commit result's actions.
action_list rotate_and_refuse_the_commit(account_fsm& m) {
    to_refreshing(m, 1);
    m.resume(refreshed_with_pair_2());
    return m.resume(refused_commit_of(2));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(account_fsm_transitions)

BOOST_AUTO_TEST_CASE(first_get_loads_and_queues_then_serves_from_memory) {
    account_fsm m{config()};
    auto a = m.resume(at(ek::get));
    BOOST_TEST(has(a, ak::queue_waiter));
    BOOST_TEST((find(a, ak::load).purpose == load_purpose::first));
    BOOST_TEST((m.state() == account_state::loading));
    a = m.resume(at(ek::get));  // a second caller joins the load
    BOOST_TEST(a.size() == 1u);
    BOOST_TEST(has(a, ak::queue_waiter));
    auto ev = at(ek::loaded);
    ev.record = pair_of(1);
    a = m.resume(ev);
    BOOST_TEST(find(a, ak::publish).generation == 1u);
    BOOST_TEST(!find(a, ak::wake_waiters).ec);
    a = m.resume(at(ek::get));
    BOOST_TEST(a.size() == 1u);
    BOOST_TEST(has(a, ak::serve_waiter));
}

BOOST_AUTO_TEST_CASE(nothing_stored_is_unknown_account_and_forgotten) {
    account_fsm m{config()};
    m.resume(at(ek::get));
    const auto a = m.resume(at(ek::loaded));
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::unknown_account));
    BOOST_TEST((m.state() == account_state::unloaded));
    BOOST_TEST(m.quiescent());
}

BOOST_AUTO_TEST_CASE(the_full_refresh_cycle_persists_before_publishing) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    auto a = m.resume(refreshed_with_pair_2());
    // Committed first: nothing is published or woken until the store has the pair.
    const auto& commit = find(a, ak::commit);
    BOOST_TEST(commit.record->generation == 2u);
    BOOST_TEST(commit.expected == 1u);
    BOOST_TEST(!has(a, ak::publish));
    BOOST_TEST(!has(a, ak::wake_waiters));
    BOOST_TEST((m.state() == account_state::committing));
    auto committed = at(ek::committed, expired);
    committed.generation = 2;
    a = m.resume(committed);
    BOOST_TEST(index_of(a, ak::publish) < index_of(a, ak::wake_waiters));
    BOOST_TEST(has(a, ak::notify_rotation));
    BOOST_TEST(!has(a, ak::release));  // the commit cleared the lease
    BOOST_TEST(m.stored_generation() == 2u);
    BOOST_TEST(m.counters().refreshes == 1u);
    BOOST_TEST(m.counters().rotations == 1u);
    BOOST_TEST((m.state() == account_state::ready));
}

BOOST_AUTO_TEST_CASE(callers_during_a_refresh_join_it) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    const auto a = m.resume(at(ek::get, expired));
    BOOST_TEST(a.size() == 1u);
    BOOST_TEST(has(a, ak::queue_waiter));
}

BOOST_AUTO_TEST_CASE(refresh_ahead_serves_the_current_pair_and_starts_one_cycle) {
    auto m = loaded(1);
    const auto late = t0 + std::chrono::minutes(50);  // past 75 %, still usable
    auto a = m.resume(at(ek::refresh_ahead, late));
    BOOST_TEST(has(a, ak::acquire));
    a = m.resume(at(ek::get, late));
    BOOST_TEST(has(a, ak::serve_waiter));
    a = m.resume(at(ek::refresh_ahead, late));  // a second claim starts nothing
    BOOST_TEST(a.empty());
}

// A background refresh that fails while the pair is still good: the pair is published again with
// its refresh-ahead point past the backoff, so that a reader claims the refresh-ahead again (one
// claim per publication); without it the next refresh waited for the pair to expire.
BOOST_AUTO_TEST_CASE(a_failed_refresh_ahead_is_claimable_again_after_the_backoff) {
    auto m = loaded(1);
    const auto late = t0 + std::chrono::minutes(50);  // past 75 %, still usable
    auto a = m.resume(at(ek::refresh_ahead, late));
    grant_and_send(m, pair_of(1), late);
    auto failed = at(ek::refreshed, late);
    failed.ec = errc::temporarily_unavailable;
    a = m.resume(failed);
    const auto& again = find(a, ak::publish);
    BOOST_TEST(again.generation == 1u);
    BOOST_TEST((again.refresh_at == late + std::chrono::seconds(1)));  // backoff_initial
    BOOST_TEST((m.state() == account_state::ready));
    m.resume(released());  // the lease given back (no acquire is sent before this answer)
    // Within the backoff a claim starts nothing; after it, one cycle.
    BOOST_TEST(m.resume(at(ek::refresh_ahead, late, s0 + std::chrono::milliseconds(500))).empty());
    a = m.resume(at(ek::refresh_ahead, late + std::chrono::seconds(2), s0 + std::chrono::seconds(2)));
    BOOST_TEST(has(a, ak::acquire));
}

// The same, with the wall clock ahead of the steady one (stepped, or slewed): a claim past the
// refresh-ahead point arrives inside the backoff. It spent the publication's one claim, so the
// pair is published again, its point at the backoff's end; before, nothing was published, and no
// background refresh came before the pair expired.
BOOST_AUTO_TEST_CASE(a_claim_inside_the_backoff_by_a_wall_clock_ahead_is_published_again) {
    auto m = loaded(1);
    const auto late = t0 + std::chrono::minutes(50);
    m.resume(at(ek::refresh_ahead, late));
    grant_and_send(m, pair_of(1), late);
    auto failed = at(ek::refreshed, late);
    failed.ec = errc::temporarily_unavailable;
    m.resume(failed);  // backoff 1 s, refresh-ahead point late + 1 s
    m.resume(released());
    const auto ahead = late + std::chrono::seconds(5);
    auto a = m.resume(at(ek::refresh_ahead, ahead, s0 + std::chrono::milliseconds(400)));
    BOOST_TEST(!has(a, ak::acquire));
    BOOST_TEST((find(a, ak::publish).refresh_at == ahead + std::chrono::milliseconds(600)));
    a = m.resume(at(ek::refresh_ahead, ahead + std::chrono::seconds(1), s0 + std::chrono::seconds(1)));
    BOOST_TEST(has(a, ak::acquire));
}

// A refresh answered without a scope (none requested): the grant's scopes are unchanged (RFC 6749
// §6), so the rotated pair keeps those of the pair the refresh was sent from, instead of storing
// none. An answer that names its scopes (a narrowed refresh) is kept as it is.
BOOST_AUTO_TEST_CASE(a_rotation_answered_without_scope_keeps_the_grants_scopes) {
    const std::vector<std::string> granted_scopes{"contacts_search", "person_read"};
    for (const bool answer_names_scopes : {false, true}) {
        BOOST_TEST_CONTEXT("the answer names its scopes: " << answer_names_scopes) {
            auto m = loaded(1);
            m.resume(at(ek::get, expired));
            auto stored = pair_of(1);
            stored.tokens.scopes = granted_scopes;
            grant_and_send(m, std::move(stored), expired);
            auto done = at(ek::refreshed, expired);
            done.tokens = fresh_tokens("2", expired);
            if (answer_names_scopes) {
                done.tokens.scopes = {"person_read"};
            }
            const auto a = m.resume(done);
            const auto expected =
                answer_names_scopes ? std::vector<std::string>{"person_read"} : granted_scopes;
            BOOST_TEST(find(a, ak::commit).record->tokens.scopes == expected,
                       boost::test_tools::per_element());
        }
    }
}

// A claim made on an earlier publication that reaches the machine after a newer pair was adopted
// (its refresh-ahead point still ahead) starts nothing: no rotation of a pair just issued.
BOOST_AUTO_TEST_CASE(a_claim_made_before_the_pairs_refresh_ahead_point_starts_nothing) {
    auto m = loaded(1);  // refresh-ahead at 45 minutes
    BOOST_TEST(m.resume(at(ek::refresh_ahead, t0 + std::chrono::minutes(10))).empty());
    BOOST_TEST(has(m.resume(at(ek::refresh_ahead, t0 + std::chrono::minutes(46))), ak::acquire));
}

BOOST_AUTO_TEST_CASE(invalidate_acts_only_on_the_current_generation) {
    auto m = loaded(2);
    auto ev = at(ek::invalidate);
    ev.generation = 1;
    BOOST_TEST(m.resume(ev).empty());
    BOOST_TEST(has(m.resume(at(ek::get)), ak::serve_waiter));
    ev.generation = 2;
    BOOST_TEST(has(m.resume(ev), ak::withdraw));
    const auto a = m.resume(at(ek::get));
    BOOST_TEST(has(a, ak::queue_waiter));
    BOOST_TEST(find(a, ak::acquire).generation == 2u);
}

BOOST_AUTO_TEST_CASE(a_granted_lease_refreshes_with_the_stored_refresh_token) {
    auto m = loaded(1);
    m.resume(at(ek::get, expired));
    auto granted = at(ek::acquired, expired);
    granted.lease.what = lease_outcome::kind::granted;
    granted.lease.record = pair_of(1);
    granted.lease.record->tokens.refresh_token = secret_string("the-stored-one");
    m.resume(granted);
    const auto a = m.resume(at(ek::sent_marked, expired));
    BOOST_TEST(find(a, ak::refresh).record->tokens.refresh_token.reveal() == "the-stored-one");
}

BOOST_AUTO_TEST_CASE(a_lost_lease_sends_nothing_and_asks_again) {
    auto m = loaded(1);
    m.resume(at(ek::get, expired));
    auto granted = at(ek::acquired, expired);
    granted.lease.what = lease_outcome::kind::granted;
    granted.lease.record = pair_of(1);
    m.resume(granted);
    auto lost = at(ek::sent_marked, expired);
    lost.ec = errc::lease_lost;
    const auto a = m.resume(lost);
    BOOST_TEST(!has(a, ak::refresh));
    BOOST_TEST(has(a, ak::acquire));
}

BOOST_AUTO_TEST_CASE(an_unreachable_coordinator_fails_closed_with_backoff) {
    auto m = loaded(1);
    m.resume(at(ek::get, expired));
    auto down = at(ek::acquired, expired);
    down.ec = errc::coordination_unavailable;
    auto a = m.resume(down);
    BOOST_TEST(!has(a, ak::refresh));
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::coordination_unavailable));
    a = m.resume(at(ek::get, expired, s0 + std::chrono::milliseconds(500)));
    BOOST_TEST((find(a, ak::fail_waiter).ec == errc::coordination_unavailable));
}

BOOST_AUTO_TEST_CASE(a_transient_failure_reaches_the_waiters_then_backs_off) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    auto failed = refresh_failed_with(errc::temporarily_unavailable);
    failed.retry_after = std::chrono::seconds(5);
    auto a = m.resume(failed);
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::temporarily_unavailable));
    BOOST_TEST(has(a, ak::release));
    m.resume(released());
    // Retry-After lengthened the backoff to 5 s.
    a = m.resume(at(ek::get, expired, s0 + std::chrono::seconds(4)));
    BOOST_TEST(has(a, ak::fail_waiter));
    a = m.resume(at(ek::get, expired, s0 + std::chrono::seconds(6)));
    BOOST_TEST(has(a, ak::acquire));
    BOOST_TEST(m.counters().refresh_failures == 1u);
}

BOOST_AUTO_TEST_CASE(stop_fails_waiters_and_refuses_new_calls) {
    account_fsm m{config()};
    m.resume(at(ek::get));
    auto a = m.resume(at(ek::stop));
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::shutting_down));
    a = m.resume(at(ek::get));
    BOOST_TEST((find(a, ak::fail_waiter).ec == errc::shutting_down));
    auto store = at(ek::store_requested);
    store.tokens = fresh_tokens("x", t0);
    a = m.resume(store);
    BOOST_TEST((find(a, ak::complete_store).ec == errc::shutting_down));
}

// ---- issue 11, case 1: two processes sharing one store -------------------------------------

BOOST_AUTO_TEST_CASE(case1_a_busy_lease_waits_and_adopts_the_holders_pair_without_refreshing) {
    auto m = loaded(1);
    m.resume(at(ek::get, expired));
    auto busy = at(ek::acquired, expired);
    busy.lease.what = lease_outcome::kind::busy;
    busy.lease.time_left = std::chrono::milliseconds(1500);
    auto a = m.resume(busy);
    BOOST_TEST(find(a, ak::wait_for_change).delay.count() == 1500);
    BOOST_TEST((m.state() == account_state::waiting_for_holder));
    auto changed = at(ek::changed, expired);
    changed.record = pair_of(2, std::chrono::hours(1), expired);
    a = m.resume(changed);
    BOOST_TEST(!has(a, ak::refresh));
    BOOST_TEST(!find(a, ak::wake_waiters).ec);
    BOOST_TEST(m.current()->generation == 2u);
    BOOST_TEST(m.counters().refreshes == 0u);
    BOOST_TEST(m.counters().adopted == 1u);
}

// A holder that keeps renewing its lease and never commits (its pair unstored: a store that takes
// renewals and refuses writes) would keep this cache's callers waiting for as long as it lives.
// Past holder_wait_limit from the cycle's first busy answer they are told, nothing is sent, and
// the next get after the backoff asks again, with a limit of its own.
BOOST_AUTO_TEST_CASE(case1_callers_waiting_for_a_holder_that_never_commits_are_told) {
    const auto limit = holder_wait_limit(config());
    BOOST_TEST(limit.count() == 180'000);  // backoff_max 60 s + 2 lease_ttl (60 s)
    auto m = loaded(1);
    m.resume(at(ek::get, expired, s0));
    const auto busy_at = [](steady_time when) {
        auto e = at(ek::acquired, expired, when);
        e.lease.what = lease_outcome::kind::busy;
        e.lease.time_left = std::chrono::seconds(40);  // renewed: never runs out
        return e;
    };
    const auto lap = [&](steady_time when) {
        auto a = m.resume(busy_at(when));
        if (!has(a, ak::wait_for_change)) {
            return a;
        }
        a = m.resume(at(ek::changed, expired, when + std::chrono::seconds(40)));  // timed out
        BOOST_REQUIRE(has(a, ak::acquire));
        return a;
    };
    steady_time when = s0;
    for (; when + std::chrono::seconds(40) < s0 + limit; when += std::chrono::seconds(40)) {
        const auto a = lap(when);
        BOOST_TEST(!has(a, ak::wake_waiters));
        BOOST_TEST((m.state() == account_state::acquiring));
    }
    auto a = m.resume(busy_at(s0 + limit));
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::coordination_unavailable));
    BOOST_TEST(!has(a, ak::wait_for_change));
    BOOST_TEST(!has(a, ak::mark_sent));
    BOOST_TEST((m.state() == account_state::ready));
    BOOST_TEST(m.counters().refreshes == 0u);

    // Backed off like a failed refresh, then a new cycle, whose wait starts again.
    a = m.resume(at(ek::get, expired, s0 + limit + std::chrono::milliseconds(500)));
    BOOST_TEST((find(a, ak::fail_waiter).ec == errc::coordination_unavailable));
    const auto later = s0 + limit + std::chrono::minutes(2);
    a = m.resume(at(ek::get, expired, later));
    BOOST_TEST(has(a, ak::acquire));
    a = m.resume(busy_at(later));
    BOOST_TEST(has(a, ak::wait_for_change));
    a = m.resume(at(ek::changed, expired, later + std::chrono::seconds(40)));
    a = m.resume(busy_at(later + limit - std::chrono::seconds(1)));
    BOOST_TEST(has(a, ak::wait_for_change));
}

// The limit is for one unbroken run of busy answers: a cycle that was granted the lease in
// between (and lost it again: a renewal or mark-sent that found it gone) waits for the next holder
// afresh, rather than blaming a healthy holder for the time it waited for an earlier one.
BOOST_AUTO_TEST_CASE(case1_the_holder_wait_starts_again_after_a_grant) {
    const auto limit = holder_wait_limit(config());
    auto m = loaded(1);
    m.resume(at(ek::get, expired, s0));
    const auto busy_at = [](steady_time when) {
        auto e = at(ek::acquired, expired, when);
        e.lease.what = lease_outcome::kind::busy;
        e.lease.time_left = std::chrono::seconds(40);
        return e;
    };
    auto a = m.resume(busy_at(s0));
    BOOST_REQUIRE(has(a, ak::wait_for_change));
    a = m.resume(at(ek::changed, expired, s0 + std::chrono::seconds(100)));
    BOOST_REQUIRE(has(a, ak::acquire));
    auto granted = at(ek::acquired, expired, s0 + std::chrono::seconds(100));
    granted.lease.what = lease_outcome::kind::granted;
    granted.lease.record = pair_of(1);
    a = m.resume(granted);
    BOOST_REQUIRE(has(a, ak::mark_sent));
    auto lost = at(ek::sent_marked, expired, s0 + std::chrono::seconds(101));
    lost.ec = errc::lease_lost;
    a = m.resume(lost);
    BOOST_REQUIRE(has(a, ak::acquire));
    // Past the limit from the first busy answer, within it from the second run's first.
    const auto second_run = s0 + limit + std::chrono::seconds(10);
    a = m.resume(busy_at(second_run));
    BOOST_TEST(has(a, ak::wait_for_change));
    BOOST_TEST(!has(a, ak::wake_waiters));
    a = m.resume(at(ek::changed, expired, second_run + std::chrono::seconds(40)));
    a = m.resume(busy_at(second_run + limit));
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::coordination_unavailable));
    BOOST_TEST(m.counters().refreshes == 0u);
}

BOOST_AUTO_TEST_CASE(case1_a_newer_stored_pair_is_adopted_at_acquire) {
    auto m = loaded(1);
    m.resume(at(ek::get, expired));
    auto newer = at(ek::acquired, expired);
    newer.lease.what = lease_outcome::kind::newer;
    newer.lease.record = pair_of(3, std::chrono::hours(1), expired);
    const auto a = m.resume(newer);
    BOOST_TEST(!has(a, ak::mark_sent));
    BOOST_TEST(!find(a, ak::wake_waiters).ec);
    BOOST_TEST(m.stored_generation() == 3u);
}

BOOST_AUTO_TEST_CASE(case1_invalid_grant_with_a_newer_pair_stored_is_no_reauthorization) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    auto rejected = refresh_failed_with(errc::invalid_grant);
    auto a = m.resume(rejected);
    BOOST_TEST((find(a, ak::load).purpose == load_purpose::check_grant));
    auto reread = at(ek::loaded, expired);
    reread.purpose = load_purpose::check_grant;
    reread.record = pair_of(2, std::chrono::hours(1), expired);
    a = m.resume(reread);
    BOOST_TEST(!has(a, ak::notify_reauthorization));
    BOOST_TEST(!has(a, ak::mark_reauthorization));
    BOOST_TEST(!find(a, ak::wake_waiters).ec);
    BOOST_TEST((m.state() == account_state::ready));
}

BOOST_AUTO_TEST_CASE(case1_a_gone_grant_is_recorded_in_the_store_and_the_hook_runs_once) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    auto rejected = refresh_failed_with(errc::invalid_grant);
    m.resume(rejected);
    auto reread = at(ek::loaded, expired);
    reread.purpose = load_purpose::check_grant;
    reread.record = pair_of(1);
    auto a = m.resume(reread);
    BOOST_TEST(find(a, ak::mark_reauthorization).generation == 1u);
    a = m.resume(at(ek::reauthorization_marked, expired));
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::reauthorization_required));
    BOOST_TEST(has(a, ak::notify_reauthorization));
    BOOST_TEST(has(a, ak::release));
    BOOST_TEST((m.state() == account_state::reauthorization_required));
    // A later caller makes the machine look at the store once (has the customer authorized
    // again elsewhere?); the same grant is still gone.
    a = m.resume(at(ek::get, expired + std::chrono::hours(24)));
    BOOST_TEST_REQUIRE((find(a, ak::load).purpose == load_purpose::recheck_grant));
    reread.purpose = load_purpose::recheck_grant;
    reread.record->state = record_state::reauthorization_required;
    a = m.resume(reread);
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::reauthorization_required));
    BOOST_TEST(!has(a, ak::notify_reauthorization));
    BOOST_TEST(m.counters().reauthorizations == 1u);
}

BOOST_AUTO_TEST_CASE(case1_a_recorded_reauthorization_is_learned_without_a_refresh_or_a_hook) {
    account_fsm m{config()};
    m.resume(at(ek::get, expired));
    auto ev = at(ek::loaded, expired);
    ev.record = pair_of(1);
    ev.record->state = record_state::reauthorization_required;
    const auto a = m.resume(ev);
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::reauthorization_required));
    BOOST_TEST(!has(a, ak::acquire));
    BOOST_TEST(!has(a, ak::notify_reauthorization));
}

BOOST_AUTO_TEST_CASE(case1_a_mark_that_meets_a_newer_generation_adopts_it) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    auto rejected = refresh_failed_with(errc::invalid_grant);
    m.resume(rejected);
    auto reread = at(ek::loaded, expired);
    reread.purpose = load_purpose::check_grant;
    reread.record = pair_of(1);
    m.resume(reread);
    auto conflict = at(ek::reauthorization_marked, expired);
    conflict.ec = errc::generation_conflict;
    auto a = m.resume(conflict);
    BOOST_TEST((find(a, ak::load).purpose == load_purpose::check_grant));
    reread.record = pair_of(2, std::chrono::hours(1), expired);
    a = m.resume(reread);
    BOOST_TEST(!has(a, ak::notify_reauthorization));
    BOOST_TEST(m.current()->generation == 2u);
}

// The store lost the write of the refused pair's generation (a failover, a restored backup): it
// holds an older one. Marked at the cycle's generation, every store answered generation_conflict,
// and the re-read and the mark answered each other for ever, the callers never answered. The
// store's own pair may be a live new authorization, so it is not marked: this cache concludes
// for itself, told once (the hook), or learned when the store says so already (no hook).
BOOST_AUTO_TEST_CASE(case1_a_store_behind_the_refused_pair_is_left_alone_and_the_callers_told) {
    for (const bool marked_already : {false, true}) {
        BOOST_TEST_CONTEXT("the stored record marked already: " << marked_already) {
            auto m = loaded(3);
            to_refreshing(m, 3);
            m.resume(refresh_failed_with(errc::invalid_grant));
            auto reread = at(ek::loaded, expired);
            reread.purpose = load_purpose::check_grant;
            reread.record = pair_of(2);  // the write of generation 3 was lost
            if (marked_already) {
                reread.record->state = record_state::reauthorization_required;
            }
            const auto a = m.resume(reread);
            BOOST_TEST(!has(a, ak::mark_reauthorization));
            BOOST_TEST((find(a, ak::wake_waiters).ec == errc::reauthorization_required));
            BOOST_TEST(has(a, ak::notify_reauthorization) == !marked_already);
            BOOST_TEST(has(a, ak::release));
            BOOST_TEST((m.state() == account_state::reauthorization_required));
            BOOST_TEST(m.counters().reauthorizations == (marked_already ? 0u : 1u));
        }
    }
}

// ---- case 2: a cache re-created while the old one's refresh is on the wire -------------------

BOOST_AUTO_TEST_CASE(case2_a_new_machine_loads_the_old_generation_and_waits_for_the_holder) {
    account_fsm m{config()};
    m.resume(at(ek::get, expired));
    auto ev = at(ek::loaded, expired);
    ev.record = pair_of(1);
    auto a = m.resume(ev);  // expired: a cycle starts at once
    BOOST_TEST(find(a, ak::acquire).generation == 1u);
    auto busy = at(ek::acquired, expired);
    busy.lease.what = lease_outcome::kind::busy;
    busy.lease.time_left = std::chrono::seconds(30);
    m.resume(busy);
    // The wait times out (the old cache is slow), the lease is asked for again: still busy.
    a = m.resume(at(ek::changed, expired));
    BOOST_TEST(has(a, ak::acquire));
    m.resume(busy);
    auto changed = at(ek::changed, expired);
    changed.record = pair_of(2, std::chrono::hours(1), expired);
    a = m.resume(changed);
    BOOST_TEST(!find(a, ak::wake_waiters).ec);
    BOOST_TEST(m.counters().refreshes == 0u);
    BOOST_TEST((m.state() == account_state::ready));
}

// ---- case 3: stop plus a transient store failure --------------------------------------------

BOOST_AUTO_TEST_CASE(case3_a_rotated_pair_the_store_refused_is_served_retried_and_flushed) {
    auto m = loaded(1);
    auto a = rotate_and_refuse_the_commit(m);
    // Served anyway (the server revoked generation 1), reported, and retried.
    BOOST_TEST(!find(a, ak::wake_waiters).ec);
    BOOST_TEST((find(a, ak::notify_store_failure).ec == errc::store_failure));
    BOOST_TEST(has(a, ak::schedule_store_retry));
    BOOST_TEST(!has(a, ak::release));  // nobody else may refresh with the revoked token
    BOOST_TEST(m.dirty());
    m.resume(at(ek::stop, expired));
    a = m.resume(at(ek::flush, expired));
    BOOST_TEST(find(a, ak::write_back).record->generation == 2u);  // at once, not at the timer
    BOOST_TEST(!has(a, ak::flush_done));
    auto again = at(ek::written_back, expired);
    again.generation = 2;
    again.ec = errc::store_failure;
    a = m.resume(again);
    BOOST_TEST(has(a, ak::notify_store_failure));
    BOOST_TEST(!has(a, ak::flush_done));
    a = m.resume(at(ek::store_retry_due, expired));  // the timer armed at the first failure
    BOOST_TEST(has(a, ak::write_back));
    again.ec = {};
    a = m.resume(again);
    BOOST_TEST(!m.dirty());
    the_release_ends_the_flush(m, a);  // the lease kept for the unstored pair
}

BOOST_AUTO_TEST_CASE(case3_past_the_deadline_the_loss_is_reported_never_silent) {
    auto m = loaded(1);
    rotate_and_refuse_the_commit(m);
    m.resume(at(ek::stop, expired));
    m.resume(at(ek::flush, expired));
    m.resume(refused_write_back_of(2));  // the flush's write is refused too
    const auto a = m.resume(at(ek::flush_deadline, expired));
    BOOST_TEST((find(a, ak::notify_store_failure).ec == errc::shutting_down));
    BOOST_TEST((find(a, ak::flush_done).ec == errc::store_failure));
    BOOST_TEST(m.resume(at(ek::store_retry_due, expired)).empty());  // given up: nothing more
}

// A rotated pair whose write is retried at the backoff's pace when the flush starts (up to
// backoff_max, a minute, past a flush's whole deadline): the flush writes at once, and brings the
// retry forward to its own pace, should that write fail too.
BOOST_AUTO_TEST_CASE(case3_a_flush_brings_a_store_retry_forward_to_its_own_pace) {
    auto m = loaded(1);
    auto a = rotate_and_refuse_the_commit(m);
    BOOST_TEST_REQUIRE(find(a, ak::schedule_store_retry).delay == std::chrono::seconds(1));
    m.resume(at(ek::stop, expired));
    a = m.resume(at(ek::flush, expired));
    BOOST_TEST(has(a, ak::write_back));
    BOOST_TEST(find(a, ak::schedule_store_retry).delay == std::chrono::milliseconds(100));
}

BOOST_AUTO_TEST_CASE(case3_a_flush_waits_for_a_refresh_on_the_wire) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    m.resume(at(ek::stop, expired));
    auto a = m.resume(at(ek::flush, expired));
    BOOST_TEST(!has(a, ak::flush_done));
    a = m.resume(refreshed_with_pair_2());
    BOOST_TEST(has(a, ak::commit));  // the pair the server issued is still committed
    auto committed = at(ek::committed, expired);
    committed.generation = 2;
    a = m.resume(committed);
    BOOST_TEST(!find(a, ak::flush_done).ec);
}

// ---- case 4: async_store racing a refresh, with a store completing out of order --------------

BOOST_AUTO_TEST_CASE(case4_the_new_authorization_lands_first_and_the_rotation_is_dropped) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    auto store = at(ek::store_requested, expired);
    store.tokens = fresh_tokens("new-grant", expired);
    auto a = m.resume(store);
    // Above the generation the refresh on the wire may bring: never two pairs under one number.
    BOOST_TEST(find(a, ak::save).record->generation == 3u);
    BOOST_TEST(find(a, ak::save).expected == 1u);
    a = m.resume(refreshed_with_pair_2());
    BOOST_TEST(find(a, ak::commit).record->generation == 2u);
    // The store completes the save first...
    a = m.resume(at(ek::saved, expired));
    BOOST_TEST(!find(a, ak::complete_store).ec);
    BOOST_TEST(m.current()->generation == 3u);
    // ...and refuses the commit, which was behind it.
    auto conflict = at(ek::committed, expired);
    conflict.generation = 2;
    conflict.ec = errc::generation_conflict;
    a = m.resume(conflict);
    BOOST_TEST((find(a, ak::load).purpose == load_purpose::commit_conflict));
    auto reread = at(ek::loaded, expired);
    reread.purpose = load_purpose::commit_conflict;
    reread.record = stored_tokens{fresh_tokens("new-grant", expired), 3, record_state::ok};
    BOOST_TEST(has(m.resume(reread), ak::release));
    m.resume(released());
    BOOST_TEST(m.current()->generation == 3u);
    BOOST_TEST(m.current()->tokens.refresh_token.reveal() == "refresh-new-grant");
    BOOST_TEST(m.stored_generation() == 3u);
    BOOST_TEST(!m.dirty());
    // The next rotation starts from the new authorization.
    a = m.resume(at(ek::get, expired + std::chrono::hours(2)));
    BOOST_TEST(find(a, ak::acquire).generation == 3u);
}

BOOST_AUTO_TEST_CASE(case4_the_rotation_lands_first_and_the_new_authorization_goes_above_it) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    auto store = at(ek::store_requested, expired);
    store.tokens = fresh_tokens("new-grant", expired);
    m.resume(store);
    m.resume(refreshed_with_pair_2());
    auto committed = at(ek::committed, expired);
    committed.generation = 2;
    m.resume(committed);
    auto conflict = at(ek::saved, expired);
    conflict.ec = errc::generation_conflict;
    auto a = m.resume(conflict);
    BOOST_TEST((find(a, ak::load).purpose == load_purpose::store_conflict));
    auto reread = at(ek::loaded, expired);
    reread.purpose = load_purpose::store_conflict;
    reread.record = pair_of(2);
    a = m.resume(reread);
    BOOST_TEST(find(a, ak::save).record->generation == 3u);
    BOOST_TEST(find(a, ak::save).expected == 2u);
    a = m.resume(at(ek::saved, expired));
    BOOST_TEST(!find(a, ak::complete_store).ec);
    BOOST_TEST(m.current()->tokens.refresh_token.reveal() == "refresh-new-grant");
    BOOST_TEST(m.stored_generation() == 3u);
}

// A caller queued behind an async_store whose write is then given up (the conflict's re-read
// failed): nothing in flight would ever wake it. The machine answers it as it would a caller
// arriving now: here the pair has expired, so a refresh cycle starts.
BOOST_AUTO_TEST_CASE(a_caller_queued_behind_a_dropped_store_is_not_stranded) {
    auto m = loaded(1);
    auto store = at(ek::store_requested, expired);
    store.tokens = fresh_tokens("new-grant", t0);
    auto a = m.resume(store);
    BOOST_TEST_REQUIRE(has(a, ak::save));
    a = m.resume(at(ek::get, expired));
    BOOST_TEST_REQUIRE(has(a, ak::queue_waiter));  // the save decides first
    auto conflict = at(ek::saved, expired);
    conflict.ec = errc::generation_conflict;
    a = m.resume(conflict);
    BOOST_TEST_REQUIRE((find(a, ak::load).purpose == load_purpose::store_conflict));
    auto reread = at(ek::loaded, expired);
    reread.purpose = load_purpose::store_conflict;
    reread.ec = errc::store_failure;
    a = m.resume(reread);
    BOOST_TEST((find(a, ak::complete_store).ec == errc::store_failure));
    BOOST_TEST(find(a, ak::acquire).generation == 1u);  // the queued caller's refresh
    BOOST_TEST(!has(a, ak::wake_waiters));
    BOOST_TEST((m.state() == account_state::acquiring));
}

// A new account: the store held nothing, and its first authorization is being written. A get or a
// second authorization then waits for that write instead of loading again (a second load that
// failed used to answer every store call, the one in flight included, whose own answer then found
// none to take).
BOOST_AUTO_TEST_CASE(a_get_while_a_new_accounts_first_authorization_is_written_waits_for_it) {
    account_fsm m{config()};
    auto store = at(ek::store_requested);
    store.tokens = fresh_tokens("first", t0);
    auto a = m.resume(store);
    BOOST_TEST_REQUIRE((find(a, ak::load).purpose == load_purpose::first));
    a = m.resume(at(ek::loaded));  // nothing stored yet
    BOOST_TEST_REQUIRE(find(a, ak::save).record->generation == 1u);
    a = m.resume(at(ek::get));
    BOOST_TEST(has(a, ak::queue_waiter));
    BOOST_TEST(!has(a, ak::load));
    a = m.resume(at(ek::saved));
    BOOST_TEST(!find(a, ak::complete_store).ec);
    BOOST_TEST(find(a, ak::publish).generation == 1u);
    BOOST_TEST(!find(a, ak::wake_waiters).ec);  // the caller is served the new pair
    BOOST_TEST((m.state() == account_state::ready));
}

BOOST_AUTO_TEST_CASE(a_second_authorization_while_a_new_accounts_first_is_written_goes_after_it) {
    account_fsm m{config()};
    auto first = at(ek::store_requested);
    first.tokens = fresh_tokens("first", t0);
    m.resume(first);
    auto a = m.resume(at(ek::loaded));  // nothing stored yet
    BOOST_TEST_REQUIRE(find(a, ak::save).record->generation == 1u);
    auto second = at(ek::store_requested);
    second.tokens = fresh_tokens("second", t0);
    a = m.resume(second);
    BOOST_TEST(a.empty());  // no second load, no second write while the first is in flight
    a = m.resume(at(ek::saved));
    BOOST_TEST(!find(a, ak::complete_store).ec);
    const auto& next = find(a, ak::save);
    BOOST_TEST(next.record->generation == 2u);
    BOOST_TEST(next.expected == 1u);
    BOOST_TEST(next.record->tokens.refresh_token.reveal() == "refresh-second");
    a = m.resume(at(ek::saved));
    BOOST_TEST(!find(a, ak::complete_store).ec);
    BOOST_TEST(find(a, ak::publish).generation == 2u);
}

BOOST_AUTO_TEST_CASE(case4_a_new_authorization_clears_reauthorization) {
    account_fsm m{config()};
    m.resume(at(ek::get));
    auto ev = at(ek::loaded);
    ev.record = pair_of(4);
    ev.record->state = record_state::reauthorization_required;
    m.resume(ev);
    auto store = at(ek::store_requested);
    store.tokens = fresh_tokens("again", t0);
    auto a = m.resume(store);
    BOOST_TEST(find(a, ak::save).record->generation == 5u);
    BOOST_TEST((find(a, ak::save).record->state == record_state::ok));
    a = m.resume(at(ek::saved));
    BOOST_TEST(has(a, ak::publish));
    BOOST_TEST((m.state() == account_state::ready));
    BOOST_TEST(has(m.resume(at(ek::get)), ak::serve_waiter));
}

// ---- case 5: steady-clock backoff; no hook from a caller's call ------------------------------

BOOST_AUTO_TEST_CASE(case5_backoff_ignores_the_wall_clock) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    m.resume(refresh_failed_with(errc::server_error));
    m.resume(released());
    // The wall clock stepped back half an hour (the pair is still expired): the backoff, 1 s of
    // steady time, is not lengthened.
    auto a = m.resume(at(ek::get, expired - std::chrono::minutes(30), s0 + std::chrono::milliseconds(1001)));
    BOOST_TEST(has(a, ak::acquire));
    // And a wall clock stepped forward does not shorten it.
    auto m2 = loaded(1);
    to_refreshing(m2, 1);
    m2.resume(refresh_failed_with(errc::server_error));
    a = m2.resume(at(ek::get, expired + std::chrono::hours(48), s0 + std::chrono::milliseconds(10)));
    BOOST_TEST((find(a, ak::fail_waiter).ec == errc::server_error));
}

BOOST_AUTO_TEST_CASE(case5_a_pair_without_refresh_token_never_calls_the_hook_from_a_get) {
    account_fsm m{config()};
    m.resume(at(ek::get, expired));
    auto ev = at(ek::loaded, expired);
    ev.record = pair_of(1);
    ev.record->tokens.refresh_token.clear();
    auto a = m.resume(ev);
    BOOST_TEST(has(a, ak::acquire));
    a = m.resume(at(ek::get, expired));  // a caller's own event: never a hook
    BOOST_TEST(!has(a, ak::notify_reauthorization));
    auto granted = at(ek::acquired, expired);
    granted.lease.what = lease_outcome::kind::granted;
    granted.lease.record = ev.record;
    a = m.resume(granted);
    BOOST_TEST(!has(a, ak::mark_sent));  // nothing to send
    BOOST_TEST((find(a, ak::load).purpose == load_purpose::check_grant));
    auto reread = at(ek::loaded, expired);
    reread.purpose = load_purpose::check_grant;
    reread.record = ev.record;
    m.resume(reread);
    a = m.resume(at(ek::reauthorization_marked, expired));
    BOOST_TEST(has(a, ak::notify_reauthorization));  // from the store's completion, on the strand
}

// ---- keeping the lease while it is needed -------------------------------------------------------

namespace {

// The refresh of `m` (in `refreshing` from generation 1) comes back; returns its commit.
action refreshed_to_commit(account_fsm& m) {
    const auto a = m.resume(refreshed_with_pair_2());
    BOOST_REQUIRE(has(a, ak::commit));
    return find(a, ak::commit);
}

event committed(std::uint64_t generation, error_code ec = {}) {
    auto ev = at(ek::committed, expired);
    ev.generation = generation;
    ev.ec = ec;
    return ev;
}

event written_back(std::uint64_t generation, error_code ec = {}) {
    auto ev = committed(generation, ec);
    ev.what = ek::written_back;
    return ev;
}

// The store's answer `ec` to the renewal `renew`: the driver hands back its generation and the
// grant it was sent under.
event renewal_answered(const action& renew, error_code ec = {}) {
    BOOST_REQUIRE(renew.what == ak::renew);
    auto ev = at(ek::renewed, expired);
    ev.generation = renew.generation;
    ev.lease_grant = renew.lease_grant;
    ev.ec = ec;
    return ev;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_lease_is_renewed_while_the_request_is_slow_and_the_timer_cancelled_after) {
    auto m = loaded(1);
    auto a = m.resume(at(ek::get, expired));
    BOOST_TEST(!has(a, ak::schedule_renew));  // asking for the lease is not holding it
    auto granted = at(ek::acquired, expired);
    granted.lease.what = lease_outcome::kind::granted;
    granted.lease.record = pair_of(1);
    a = m.resume(granted);
    BOOST_TEST(m.lease_held());
    BOOST_TEST(find(a, ak::schedule_renew).delay.count() == (config().lease_ttl / 3).count());
    a = m.resume(at(ek::sent_marked, expired));
    BOOST_TEST(has(a, ak::refresh));
    BOOST_TEST(!has(a, ak::schedule_renew));  // one timer at a time
    // The token request outlasts a third of the lease: renewed for the generation it refreshes.
    a = m.resume(at(ek::renew_due, expired));
    BOOST_TEST(find(a, ak::renew).generation == 1u);
    BOOST_TEST(has(a, ak::schedule_renew));
    a = m.resume(renewal_answered(find(a, ak::renew)));
    BOOST_TEST(a.empty());
    BOOST_TEST(m.lease_held());
    // A re-armed or cancelled timer's completion changes nothing.
    auto aborted = at(ek::renew_due, expired);
    aborted.ec = boost::asio::error::operation_aborted;
    BOOST_TEST(m.resume(aborted).empty());
    // The commit clears the lease in the store: the renewals stop.
    const auto commit = refreshed_to_commit(m);
    a = m.resume(committed(commit.record->generation));
    BOOST_TEST(has(a, ak::cancel_renew));
    BOOST_TEST(!m.lease_held());
    // A firing that raced the cancel renews nothing.
    a = m.resume(at(ek::renew_due, expired));
    BOOST_TEST(!has(a, ak::renew));
    BOOST_TEST(!has(a, ak::schedule_renew));
}

BOOST_AUTO_TEST_CASE(a_renewal_that_finds_the_lease_lost_stops_renewing_and_releases_nothing) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    auto a = m.resume(at(ek::renew_due, expired));
    BOOST_TEST_REQUIRE(has(a, ak::renew));
    a = m.resume(renewal_answered(find(a, ak::renew), errc::lease_lost));
    BOOST_TEST(has(a, ak::cancel_renew));
    BOOST_TEST(!m.lease_held());
    // The request already sent still ends in a compare-and-set on the generation.
    const auto commit = refreshed_to_commit(m);
    BOOST_TEST(commit.expected == 1u);
    a = m.resume(committed(commit.record->generation, errc::generation_conflict));
    BOOST_TEST(!has(a, ak::release));  // never somebody else's lease
}

BOOST_AUTO_TEST_CASE(a_refused_commit_keeps_the_lease_renewed_until_the_pair_is_stored) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    const auto commit = refreshed_to_commit(m);
    // The server rotated; the store refused the write. Another process granted the lease now
    // would send the refresh token the server has just revoked: the lease is kept.
    auto a = m.resume(committed(commit.record->generation, errc::store_failure));
    BOOST_TEST(has(a, ak::schedule_store_retry));
    BOOST_TEST(!has(a, ak::cancel_renew));
    BOOST_TEST(m.lease_held());
    a = m.resume(at(ek::renew_due, expired));
    BOOST_TEST(find(a, ak::renew).generation == 1u);
    a = m.resume(at(ek::store_retry_due, expired));
    BOOST_TEST(find(a, ak::write_back).record->generation == commit.record->generation);
    a = m.resume(written_back(commit.record->generation));
    BOOST_TEST(has(a, ak::release));  // the write-back clears no lease: it is given back
    BOOST_TEST(has(a, ak::cancel_renew));
    BOOST_TEST(!m.lease_held());
}

BOOST_AUTO_TEST_CASE(a_flush_that_gives_up_stops_renewing_so_nothing_keeps_the_io_context) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    const auto commit = refreshed_to_commit(m);
    auto a = m.resume(committed(commit.record->generation, errc::store_failure));
    BOOST_TEST(m.lease_held());
    m.resume(at(ek::stop, expired));
    m.resume(at(ek::flush, expired));
    a = m.resume(at(ek::flush_deadline, expired));
    BOOST_TEST(has(a, ak::notify_store_failure));  // the loss is told
    BOOST_TEST(has(a, ak::cancel_renew));
    BOOST_TEST(!has(m.resume(at(ek::renew_due, expired)), ak::renew));
}

BOOST_AUTO_TEST_CASE(a_write_that_fails_after_the_flush_gave_up_adds_no_report_after_the_loss) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    const auto commit = refreshed_to_commit(m);
    m.resume(committed(commit.record->generation, errc::store_failure));
    m.resume(at(ek::stop, expired));
    auto a = m.resume(at(ek::flush, expired));
    BOOST_REQUIRE(has(a, ak::write_back));  // the flush writes again at once; the write hangs
    a = m.resume(at(ek::flush_deadline, expired));
    BOOST_TEST((find(a, ak::notify_store_failure).ec == errc::shutting_down));
    // The hung write fails now: the shutting_down report stays the last one.
    a = m.resume(written_back(commit.record->generation, errc::store_failure));
    BOOST_TEST(!has(a, ak::notify_store_failure));
    BOOST_TEST(!has(a, ak::schedule_store_retry));
}

// A refresh on the wire at the flush deadline: the deadline can only say shutting_down (nothing
// was unstored then). When the pair the server issued later fails to be written, that loss is
// reported, once, and nothing is retried (the io_context must be free to stop).
BOOST_AUTO_TEST_CASE(a_pair_rotated_after_the_flush_gave_up_whose_write_fails_is_reported_once) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    m.resume(at(ek::stop, expired));
    m.resume(at(ek::flush, expired));
    auto a = m.resume(at(ek::flush_deadline, expired));
    BOOST_TEST((find(a, ak::flush_done).ec == errc::shutting_down));
    BOOST_TEST(!has(a, ak::notify_store_failure));
    const auto commit = refreshed_to_commit(m);
    a = m.resume(committed(commit.record->generation, errc::store_failure));
    BOOST_TEST((find(a, ak::notify_store_failure).ec == errc::shutting_down));
    BOOST_TEST(!has(a, ak::schedule_store_retry));
    BOOST_TEST(m.resume(at(ek::store_retry_due, expired)).empty());
}

// A store refuses (invalid_argument) a record it cannot hold: too large for it (a file record
// over 1 MiB), a string that is not UTF-8, a generation past its range. Every write of that pair
// gets the same answer: it used to be retried on the backoff's timer, and refused and reported
// again, for as long as the process lived. It is reported once and not written again; the pair
// is still served, and the lease kept for it (another process granted it would send the refresh
// token the server has revoked); a flush reports it lost at its deadline.
BOOST_AUTO_TEST_CASE(a_pair_the_store_refuses_to_hold_is_reported_once_and_not_written_again) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    const auto commit = refreshed_to_commit(m);
    auto a = m.resume(committed(commit.record->generation, errc::invalid_argument));
    BOOST_TEST(!find(a, ak::wake_waiters).ec);  // served: the server revoked generation 1
    BOOST_TEST((find(a, ak::notify_store_failure).ec == errc::invalid_argument));
    BOOST_TEST(!has(a, ak::schedule_store_retry));
    BOOST_TEST(!has(a, ak::write_back));
    BOOST_TEST(!has(a, ak::release));
    BOOST_TEST(m.dirty());
    BOOST_TEST(m.lease_held());
    BOOST_TEST(m.counters().store_failures == 1u);
    // Nothing writes it again: the events of a quiet account, a caller, the lease's renewal.
    a = m.resume(at(ek::get, expired));
    BOOST_TEST(has(a, ak::serve_waiter));
    BOOST_TEST(!has(a, ak::write_back));
    a = m.resume(at(ek::renew_due, expired));
    BOOST_TEST(find(a, ak::renew).generation == 1u);  // the lease is kept for the unstored pair
    BOOST_TEST(!has(a, ak::write_back));
    BOOST_TEST(m.resume(renewal_answered(find(a, ak::renew))).empty());
    // Once it expires, a refresh cycle finds the store behind and tries it once (catching_up):
    // refused again, its callers are told, and nothing is retried on a timer.
    const sys_time later = expired + std::chrono::hours(2);
    a = m.resume(at(ek::get, later));
    BOOST_TEST_REQUIRE(find(a, ak::acquire).generation == 2u);
    auto granted = at(ek::acquired, later);
    granted.lease.what = lease_outcome::kind::granted;
    granted.lease.record = pair_of(1);
    a = m.resume(granted);
    BOOST_TEST_REQUIRE(find(a, ak::commit).record->generation == 2u);
    BOOST_TEST_REQUIRE((m.state() == account_state::catching_up));
    a = m.resume(committed(2, errc::invalid_argument));
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::invalid_argument));
    BOOST_TEST((find(a, ak::notify_store_failure).ec == errc::invalid_argument));
    BOOST_TEST(!has(a, ak::schedule_store_retry));
    BOOST_TEST(!has(a, ak::write_back));
    BOOST_TEST(m.lease_held());
    // Nor does a flush write it: it reports the pair lost at its deadline.
    m.resume(at(ek::stop, expired));
    a = m.resume(at(ek::flush, expired));
    BOOST_TEST(!has(a, ak::write_back));
    BOOST_TEST(!has(a, ak::schedule_store_retry));
    BOOST_TEST(!has(a, ak::flush_done));
    a = m.resume(at(ek::flush_deadline, expired));
    BOOST_TEST((find(a, ak::notify_store_failure).ec == errc::shutting_down));
    BOOST_TEST((find(a, ak::flush_done).ec == errc::store_failure));
    BOOST_TEST(m.counters().store_failures == 2u);  // the commit and the catch-up, nothing else
}

// A pair whose write failed for a passing reason (store_failure) is retried; when the retry is
// refused as more than the store can hold, the retries end there. A newer pair, a new
// authorization, is written as usual, and once it is stored the lease kept for the refused one is
// given back.
BOOST_AUTO_TEST_CASE(a_write_back_the_store_refuses_to_hold_ends_the_retries_but_not_a_newer_pairs_write) {
    auto m = loaded(1);
    auto a = rotate_and_refuse_the_commit(m);
    BOOST_TEST_REQUIRE(has(a, ak::schedule_store_retry));
    a = m.resume(at(ek::store_retry_due, expired));
    BOOST_TEST_REQUIRE(find(a, ak::write_back).record->generation == 2u);
    a = m.resume(written_back(2, errc::invalid_argument));
    BOOST_TEST((find(a, ak::notify_store_failure).ec == errc::invalid_argument));
    BOOST_TEST(!has(a, ak::schedule_store_retry));
    BOOST_TEST(!has(a, ak::write_back));
    BOOST_TEST(m.dirty());
    BOOST_TEST(m.resume(at(ek::store_retry_due, expired)).empty());  // a stray firing writes nothing

    auto store = at(ek::store_requested, expired);
    store.tokens = fresh_tokens("new-grant", expired);
    a = m.resume(store);
    BOOST_TEST(find(a, ak::save).record->generation == 3u);
    a = m.resume(at(ek::saved, expired));
    BOOST_TEST(!find(a, ak::complete_store).ec);
    BOOST_TEST(!m.dirty());
    BOOST_TEST(has(a, ak::release));
    BOOST_TEST(!m.lease_held());
}

// A new authorization the store refuses to hold (async_store's caller is told invalid_argument):
// served, as any pair whose write failed, and not written again.
BOOST_AUTO_TEST_CASE(a_new_authorization_the_store_refuses_to_hold_is_not_written_again) {
    auto m = loaded(1);
    auto store = at(ek::store_requested);
    store.tokens = fresh_tokens("new-grant", t0);
    auto a = m.resume(store);
    BOOST_TEST_REQUIRE(find(a, ak::save).record->generation == 2u);
    auto refused = at(ek::saved);
    refused.ec = errc::invalid_argument;
    a = m.resume(refused);
    BOOST_TEST((find(a, ak::complete_store).ec == errc::invalid_argument));
    BOOST_TEST((find(a, ak::notify_store_failure).ec == errc::invalid_argument));
    BOOST_TEST(m.current()->generation == 2u);
    BOOST_TEST(!has(a, ak::schedule_store_retry));
    BOOST_TEST(!has(a, ak::write_back));
    BOOST_TEST(!has(m.resume(at(ek::get)), ak::write_back));
}

// ---- a store behind memory, and the lease across processes --------------------------------------

namespace {

event granted_with(std::optional<stored_tokens> stored, bool previous_holder_sent = false) {
    auto ev = at(ek::acquired, expired);
    ev.lease.what = lease_outcome::kind::granted;
    ev.lease.record = std::move(stored);
    ev.lease.previous_holder_sent = previous_holder_sent;
    return ev;
}

}  // namespace

// Stopped while its mark-sent is out, and told the lease was lost: a stopped machine asks for no
// lease (its callers were told shutting_down), and the flush ends at once. It used to ask again,
// and the flush waited for that acquire and its release.
BOOST_AUTO_TEST_CASE(a_lost_lease_after_a_stop_asks_for_nothing) {
    auto m = loaded(1);
    m.resume(at(ek::get, expired));
    BOOST_TEST_REQUIRE(has(m.resume(granted_with(pair_of(1))), ak::mark_sent));
    m.resume(at(ek::stop, expired));
    BOOST_TEST(!has(m.resume(at(ek::flush, expired)), ak::flush_done));  // the mark-sent is out
    auto lost = at(ek::sent_marked, expired);
    lost.ec = errc::lease_lost;
    const auto a = m.resume(lost);
    BOOST_TEST(!has(a, ak::acquire));
    BOOST_TEST(!has(a, ak::refresh));
    BOOST_TEST(!find(a, ak::flush_done).ec);
}

// A store that lost its last writes (a restart without persistence, a failover that missed them)
// grants the lease on the generation it holds. Marking ours sent would be refused, and the
// machine asked again at once, forever; and whoever got the lease next would send the older
// refresh token, which the server has revoked. So this pair is committed first, then the refresh.
BOOST_AUTO_TEST_CASE(a_store_behind_memory_gets_this_pair_first_then_the_refresh) {
    for (const bool store_empty : {false, true}) {
        BOOST_TEST_CONTEXT("store empty: " << store_empty) {
            auto m = loaded(3);
            m.resume(at(ek::get, expired));
            auto a = m.resume(granted_with(store_empty ? std::nullopt : std::optional(pair_of(1))));
            BOOST_TEST(!has(a, ak::mark_sent));
            const auto& commit = find(a, ak::commit);
            BOOST_TEST(commit.record->generation == 3u);
            BOOST_TEST(commit.expected == (store_empty ? 0u : 1u));
            BOOST_TEST((m.state() == account_state::catching_up));
            BOOST_TEST(m.dirty());
            a = m.resume(committed(3));
            BOOST_TEST(find(a, ak::acquire).generation == 3u);
            BOOST_TEST(!m.dirty());
            a = m.resume(granted_with(pair_of(3)));
            BOOST_TEST(find(a, ak::mark_sent).generation == 3u);
        }
    }
}

// The catch-up commit is refused: the pair is still unstored, so the lease stays (whoever is
// granted it next would send generation 1's refresh token, which the server has revoked), renewed
// on the generation the store's lease is on, until the write-back lands.
BOOST_AUTO_TEST_CASE(a_catch_up_commit_the_store_refuses_keeps_the_lease_until_the_write_back_lands) {
    auto m = loaded(3);
    m.resume(at(ek::get, expired));
    auto a = m.resume(granted_with(pair_of(1)));
    BOOST_TEST(has(a, ak::schedule_renew));
    a = m.resume(committed(3, errc::store_failure));
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::store_failure));
    BOOST_TEST(has(a, ak::notify_store_failure));
    BOOST_TEST(!has(a, ak::release));
    BOOST_TEST(m.lease_held());
    BOOST_TEST(has(a, ak::schedule_store_retry));
    BOOST_TEST((m.state() == account_state::ready));
    a = m.resume(at(ek::renew_due, expired));
    BOOST_TEST(find(a, ak::renew).generation == 1u);  // the store's lease: generation 1, not 3
    a = m.resume(at(ek::store_retry_due, expired));
    BOOST_TEST(find(a, ak::write_back).expected == 1u);
    a = m.resume(written_back(3));
    BOOST_TEST(has(a, ak::release));
    BOOST_TEST(!m.lease_held());
}

// Stopped while catching up, and the catch-up commit meets another generation: the pair is
// written back (its conflict then settled by a re-read), not left unstored with nothing pending
// until the flush's deadline.
BOOST_AUTO_TEST_CASE(a_catch_up_that_meets_another_generation_after_a_stop_is_written_back) {
    auto m = loaded(3);
    m.resume(at(ek::get, expired));
    m.resume(granted_with(pair_of(1)));
    m.resume(at(ek::stop, expired));
    auto a = m.resume(at(ek::flush, expired));
    BOOST_TEST_REQUIRE(!has(a, ak::flush_done));
    a = m.resume(committed(3, errc::generation_conflict));
    BOOST_TEST(find(a, ak::write_back).record->generation == 3u);
    BOOST_TEST(!has(a, ak::flush_done));
    the_release_ends_the_flush(m, m.resume(written_back(3)));  // the lease kept for the unstored pair
}

BOOST_AUTO_TEST_CASE(a_store_that_grants_and_then_denies_the_lease_is_given_up_on_until_the_backoff) {
    auto m = loaded(1);
    m.resume(at(ek::get, expired));
    auto lost = at(ek::sent_marked, expired);
    lost.ec = errc::lease_lost;
    action_list a;
    for (int restart = 0; restart < 4; ++restart) {
        m.resume(granted_with(pair_of(1)));
        a = m.resume(lost);
        BOOST_TEST_REQUIRE(has(a, ak::acquire));
    }
    m.resume(granted_with(pair_of(1)));
    a = m.resume(lost);
    BOOST_TEST(!has(a, ak::acquire));
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::coordination_unavailable));
    a = m.resume(at(ek::get, expired, s0 + std::chrono::milliseconds(500)));
    BOOST_TEST((find(a, ak::fail_waiter).ec == errc::coordination_unavailable));
    a = m.resume(at(ek::get, expired, s0 + std::chrono::seconds(61)));  // past the backoff: again
    BOOST_TEST(find(a, ak::acquire).generation == 1u);
}

// A holder marked its request sent and went silent past its lease and grace. It may be cut off
// from the store, alive, its commit retried at the backoff's pace: the refresh token it sent
// must not be sent again before that retry had its chance (the server would revoke the grant).
BOOST_AUTO_TEST_CASE(a_holder_that_sent_and_went_silent_gets_a_backoff_to_commit_before_anyone_sends) {
    auto m = loaded(1);
    m.resume(at(ek::get, expired));
    auto a = m.resume(granted_with(pair_of(1), true));
    BOOST_TEST(!has(a, ak::mark_sent));
    BOOST_TEST(find(a, ak::wait_for_change).delay == config().backoff_max);
    BOOST_TEST(m.lease_held());  // held, and renewed, so nobody else sends meanwhile
    BOOST_TEST(has(a, ak::schedule_renew));
    // Nothing came: once per cycle, the refresh goes out (the holder may have died before sending).
    a = m.resume(at(ek::changed, expired));
    BOOST_TEST(find(a, ak::acquire).generation == 1u);
    a = m.resume(granted_with(pair_of(1), true));
    BOOST_TEST(has(a, ak::mark_sent));
}

// A store whose wait fails (its notifications or reads down) while its acquire still answers busy
// used to be asked for the lease again at once, and again, in a tight loop until holder_wait_limit.
// The failed wait fails the cycle closed, as a failed acquire does: the callers are told the
// store's error, nothing more is asked of the store, and the next get after the backoff asks again.
BOOST_AUTO_TEST_CASE(case1_a_wait_that_fails_tells_the_callers_instead_of_asking_again) {
    auto m = loaded(1);
    m.resume(at(ek::get, expired, s0));
    auto busy = at(ek::acquired, expired, s0);
    busy.lease.what = lease_outcome::kind::busy;
    busy.lease.time_left = std::chrono::seconds(30);
    BOOST_TEST_REQUIRE(has(m.resume(busy), ak::wait_for_change));
    auto failed = at(ek::changed, expired, s0);
    failed.ec = errc::store_failure;
    auto a = m.resume(failed);
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::store_failure));
    BOOST_TEST(!has(a, ak::acquire));
    BOOST_TEST(!has(a, ak::release));  // a busy answer left this cache nothing to give back
    BOOST_TEST((m.state() == account_state::ready));
    a = m.resume(at(ek::get, expired, s0 + std::chrono::milliseconds(500)));
    BOOST_TEST((find(a, ak::fail_waiter).ec == errc::store_failure));
    a = m.resume(at(ek::get, expired, s0 + std::chrono::seconds(2)));
    BOOST_TEST(has(a, ak::acquire));

    // Waiting for a silent sender, the cycle holds the lease: a failed wait gives it back.
    auto holder = loaded(1);
    holder.resume(at(ek::get, expired));
    BOOST_TEST_REQUIRE(has(holder.resume(granted_with(pair_of(1), true)), ak::wait_for_change));
    failed = at(ek::changed, expired);
    failed.ec = errc::coordination_unavailable;
    a = holder.resume(failed);
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::coordination_unavailable));
    BOOST_TEST(has(a, ak::release));
    BOOST_TEST(!has(a, ak::mark_sent));
    BOOST_TEST(holder.counters().refreshes == 0u);
}

// The wait for a silent sender is once per sender, not once per cycle: a cycle that waited for one,
// and whose lease may have gone to another holder meanwhile (told by a busy answer, by a renewal
// that found it lost, or by a renewal that failed in an outage, which may have let it lapse), may
// be granted with previous_holder_sent again for that other holder's request, which gets its own
// wait. It used to send at once, spending the refresh token the other holder's request may have
// spent.
BOOST_AUTO_TEST_CASE(a_second_silent_sender_gets_a_wait_of_its_own) {
    for (const auto& [why, renewal] :
         {std::pair{"re-acquire busy", error_code{}}, std::pair{"renewal lost", error_code{errc::lease_lost}},
          std::pair{"renewal failed", error_code{errc::coordination_unavailable}}}) {
        const bool told_by_renewal = renewal.failed();
        BOOST_TEST_CONTEXT(why) {
            auto m = loaded(1);
            m.resume(at(ek::get, expired));
            auto a = m.resume(granted_with(pair_of(1), true));
            BOOST_TEST_REQUIRE(find(a, ak::wait_for_change).delay == config().backoff_max);
            if (told_by_renewal) {
                a = m.resume(at(ek::renew_due, expired));
                BOOST_TEST_REQUIRE(has(a, ak::renew));
                m.resume(renewal_answered(find(a, ak::renew), renewal));
            }
            a = m.resume(at(ek::changed, expired));
            BOOST_TEST_REQUIRE(has(a, ak::acquire));
            if (!told_by_renewal) {
                auto busy = at(ek::acquired, expired);
                busy.lease.what = lease_outcome::kind::busy;
                busy.lease.time_left = std::chrono::milliseconds(5'000);
                a = m.resume(busy);
                BOOST_TEST_REQUIRE(has(a, ak::wait_for_change));
                a = m.resume(at(ek::changed, expired));
                BOOST_TEST_REQUIRE(has(a, ak::acquire));
            }
            a = m.resume(granted_with(pair_of(1), true));
            BOOST_TEST(!has(a, ak::mark_sent));
            BOOST_TEST(find(a, ak::wait_for_change).delay == config().backoff_max);
            // That wait over with nothing stored, the refresh goes out.
            a = m.resume(at(ek::changed, expired));
            a = m.resume(granted_with(pair_of(1), true));
            BOOST_TEST(has(a, ak::mark_sent));
        }
    }
    // The same when marking the request sent finds the lease lost: another holder has it.
    auto m = loaded(1);
    m.resume(at(ek::get, expired));
    m.resume(granted_with(pair_of(1), true));
    m.resume(at(ek::changed, expired));
    auto a = m.resume(granted_with(pair_of(1), true));
    BOOST_TEST_REQUIRE(has(a, ak::mark_sent));
    auto lost = at(ek::sent_marked, expired);
    lost.ec = errc::lease_lost;
    a = m.resume(lost);
    BOOST_TEST_REQUIRE(has(a, ak::acquire));
    a = m.resume(granted_with(pair_of(1), true));
    BOOST_TEST(!has(a, ak::mark_sent));
    BOOST_TEST(find(a, ak::wait_for_change).delay == config().backoff_max);
}

// The cache asks for the lease again while it holds it (here: after waiting for a silent sender),
// and the store answers on its own threads, so a renewal sent before that re-acquire could be
// answered after its grant. Told lease_lost there, it said the lease had lapsed meanwhile and may
// have gone to another holder that marked its own request sent; the grant then reported
// previous_holder_sent for that holder, but the machine, having waited once already (for the
// first sender), sent the refresh token that holder may have spent: the server revokes the grant.
// (Ignoring that late answer, as a ticket on each renewal did, kept the lease but not the wait.)
// So no acquire goes while a renewal is unanswered: the answer is heard first, and the grant that
// follows waits for the new sender.
BOOST_AUTO_TEST_CASE(a_re_acquire_waits_for_the_renewal_in_flight_and_a_lost_one_owes_a_new_sender_a_wait) {
    auto m = loaded(1);
    m.resume(at(ek::get, expired));
    auto a = m.resume(granted_with(pair_of(1), true));  // held while the silent sender gets its time
    BOOST_TEST_REQUIRE(has(a, ak::wait_for_change));
    a = m.resume(at(ek::renew_due, expired));
    BOOST_TEST_REQUIRE(has(a, ak::renew));
    const action renewal = find(a, ak::renew);
    a = m.resume(at(ek::changed, expired));  // the wait is over; the renewal is unanswered
    BOOST_TEST(!has(a, ak::acquire));
    BOOST_TEST((m.state() == account_state::acquiring));
    a = m.resume(renewal_answered(renewal, errc::lease_lost));  // the lease lapsed meanwhile
    BOOST_TEST(!m.lease_held());
    BOOST_TEST_REQUIRE(find(a, ak::acquire).generation == 1u);
    // Another holder was granted the lapsed lease and marked its own request sent.
    a = m.resume(granted_with(pair_of(1), true));
    BOOST_TEST(!has(a, ak::mark_sent));
    BOOST_TEST(find(a, ak::wait_for_change).delay == config().backoff_max);
    // While acquiring, the timer sends no renewal (the acquire itself renews a lease still ours).
    a = m.resume(at(ek::changed, expired));
    BOOST_TEST_REQUIRE(has(a, ak::acquire));
    BOOST_TEST(!has(m.resume(at(ek::renew_due, expired)), ak::renew));
}

// The same when a cycle begins while the lease is kept (and renewed) for an unstored pair: its
// acquire waits for the renewal's answer. The catch-up commit is refused, so the pair is still
// unstored and the lease kept for it; a flush then waits for its release once the write-back lands.
BOOST_AUTO_TEST_CASE(a_cycle_begun_while_the_kept_lease_is_renewed_asks_once_the_renewal_is_answered) {
    auto m = loaded(1);
    rotate_and_refuse_the_commit(m);
    BOOST_TEST_REQUIRE(m.lease_held());
    auto a = m.resume(at(ek::renew_due, expired));
    BOOST_TEST_REQUIRE(find(a, ak::renew).generation == 1u);
    const action renewal = find(a, ak::renew);
    const sys_time later = expired + std::chrono::hours(2);
    a = m.resume(at(ek::get, later));  // generation 2 expired: a cycle, the lease still held
    BOOST_TEST(!has(a, ak::acquire));  // not while the renewal is unanswered
    a = m.resume(renewal_answered(renewal));
    BOOST_TEST_REQUIRE(find(a, ak::acquire).generation == 2u);
    auto granted = granted_with(pair_of(1));
    granted.now = later;
    a = m.resume(granted);
    BOOST_TEST_REQUIRE(find(a, ak::commit).record->generation == 2u);  // catching_up, lease on 1
    BOOST_TEST(m.lease_held());
    a = m.resume(committed(2, errc::store_failure));
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::store_failure));
    BOOST_TEST(!has(a, ak::release));
    BOOST_TEST(m.lease_held());  // kept for the unstored pair
    BOOST_TEST(has(m.resume(at(ek::renew_due, later)), ak::renew));
    m.resume(at(ek::stop, later));
    a = m.resume(at(ek::flush, later));
    BOOST_TEST_REQUIRE(find(a, ak::write_back).record->generation == 2u);
    the_release_ends_the_flush(m, m.resume(written_back(2)));
}

// A renewal sent after the grant the lease is held from, told lost, is about that lease: it is
// dropped (not renewed, not released: it may be another holder's now), re-acquire or not.
BOOST_AUTO_TEST_CASE(a_renewal_sent_after_a_re_acquires_grant_and_told_lost_drops_the_lease) {
    auto m = loaded(1);
    m.resume(at(ek::get, expired));
    auto a = m.resume(granted_with(pair_of(1), true));
    BOOST_TEST_REQUIRE(has(a, ak::wait_for_change));
    a = m.resume(at(ek::renew_due, expired));
    BOOST_TEST(m.resume(renewal_answered(find(a, ak::renew))).empty());  // renewed: nothing to say
    a = m.resume(at(ek::changed, expired));
    BOOST_TEST_REQUIRE(has(a, ak::acquire));
    a = m.resume(granted_with(pair_of(1), true));
    BOOST_TEST_REQUIRE(has(a, ak::mark_sent));
    a = m.resume(at(ek::sent_marked, expired));
    BOOST_TEST_REQUIRE(has(a, ak::refresh));
    a = m.resume(at(ek::renew_due, expired));
    BOOST_TEST_REQUIRE(has(a, ak::renew));
    a = m.resume(renewal_answered(find(a, ak::renew), errc::lease_lost));
    BOOST_TEST(has(a, ak::cancel_renew));
    BOOST_TEST(!m.lease_held());
    BOOST_TEST(!has(m.resume(at(ek::renew_due, expired)), ak::renew));
    a = m.resume(refresh_failed_with(errc::temporarily_unavailable));
    BOOST_TEST(!has(a, ak::release));  // never somebody else's lease
    BOOST_TEST(m.releases_in_flight() == 0u);
}

BOOST_AUTO_TEST_CASE(a_silent_holders_commit_that_lands_meanwhile_is_adopted_and_the_lease_given_back) {
    auto m = loaded(1);
    m.resume(at(ek::get, expired));
    m.resume(granted_with(pair_of(1), true));
    auto changed = at(ek::changed, expired);
    changed.record = pair_of(2, std::chrono::hours(1), expired);
    const auto a = m.resume(changed);
    BOOST_TEST(!find(a, ak::wake_waiters).ec);
    BOOST_TEST(has(a, ak::release));
    BOOST_TEST(!m.lease_held());
    BOOST_TEST(m.counters().refreshes == 0u);
}

// The lease kept for a rotated pair the store refused: another process's new authorization
// supersedes that pair. Renewed on, the lease would keep every other process waiting forever.
BOOST_AUTO_TEST_CASE(the_lease_kept_for_an_unstored_pair_is_given_back_when_another_pair_supersedes_it) {
    auto m = loaded(1);
    rotate_and_refuse_the_commit(m);
    BOOST_TEST_REQUIRE(m.lease_held());
    auto a = m.resume(at(ek::store_retry_due, expired));
    BOOST_TEST_REQUIRE(has(a, ak::write_back));
    a = m.resume(written_back(2, errc::generation_conflict));
    BOOST_TEST_REQUIRE((find(a, ak::load).purpose == load_purpose::write_back_conflict));
    auto reread = at(ek::loaded, expired);
    reread.purpose = load_purpose::write_back_conflict;
    reread.record = pair_of(3, std::chrono::hours(1), expired);
    a = m.resume(reread);
    BOOST_TEST(m.current()->generation == 3u);
    BOOST_TEST(has(a, ak::release));
    BOOST_TEST(has(a, ak::cancel_renew));
    BOOST_TEST(!m.lease_held());
}

// A cycle that ends in the event in which the next begins (the commit met a newer pair that has
// expired too, and a caller waits): the lease goes back, and the next cycle asks for it only once
// the store has answered that release (a store need not carry out one holder's calls in order: a
// release carried out after the new grant would delete it).
BOOST_AUTO_TEST_CASE(a_cycle_begun_as_the_last_ends_asks_for_the_lease_after_giving_it_back) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    m.resume(refreshed_with_pair_2());
    auto conflict = at(ek::committed, expired);
    conflict.generation = 2;
    conflict.ec = errc::generation_conflict;
    BOOST_TEST_REQUIRE((find(m.resume(conflict), ak::load).purpose == load_purpose::commit_conflict));
    auto reread = at(ek::loaded, expired);
    reread.purpose = load_purpose::commit_conflict;
    reread.record = pair_of(3);  // issued at t0 for an hour: expired by now
    auto a = m.resume(reread);
    BOOST_TEST(m.current()->generation == 3u);
    BOOST_TEST_REQUIRE(has(a, ak::release));
    BOOST_TEST(!has(a, ak::acquire));
    BOOST_TEST((m.state() == account_state::acquiring));
    BOOST_TEST(m.lease_held() == false);
    a = m.resume(released());
    BOOST_TEST(std::count_if(a.begin(), a.end(), [](const action& x) { return x.what == ak::acquire; }) == 1);
    BOOST_TEST(find(a, ak::acquire).generation == 3u);
}

namespace {

// A machine whose rotated generation 2 the store refused, invalidated by a 401: a caller's cycle
// asks for the lease (acquire in flight) while the retry timer's write-back of 2 is in flight.
account_fsm asking_for_the_lease_with_a_write_back_in_flight() {
    auto m = loaded(1);
    rotate_and_refuse_the_commit(m);
    auto invalid = at(ek::invalidate, expired);
    invalid.generation = 2;
    m.resume(invalid);
    BOOST_REQUIRE(has(m.resume(at(ek::get, expired)), ak::acquire));
    BOOST_REQUIRE(has(m.resume(at(ek::store_retry_due, expired)), ak::write_back));
    return m;
}

}  // namespace

// A write-back's conflict resolved while the cycle asks for the lease, the store holding a record
// marked reauthorization_required: adopted there, it would end the cycle and leave the lease the
// acquire is granting nobody's to release. The cycle's own acquire decides.
BOOST_AUTO_TEST_CASE(a_write_back_conflict_during_a_cycle_adopts_nothing) {
    auto m = asking_for_the_lease_with_a_write_back_in_flight();
    BOOST_TEST_REQUIRE(has(m.resume(written_back(2, errc::generation_conflict)), ak::load));
    auto reread = at(ek::loaded, expired);
    reread.purpose = load_purpose::write_back_conflict;
    reread.record = pair_of(2, std::chrono::hours(1), expired);  // another record at our generation
    reread.record->state = record_state::reauthorization_required;
    const auto a = m.resume(reread);
    BOOST_TEST(!has(a, ak::withdraw));
    BOOST_TEST(!has(a, ak::wake_waiters));  // nor are its waiters answered from under it
    BOOST_TEST((m.state() == account_state::acquiring));
}

// The same, with the store found behind ours: the cycle writes the pair itself when its grant
// shows that (catching_up); a write here would race the one the cycle makes.
BOOST_AUTO_TEST_CASE(a_write_back_conflict_during_a_cycle_writes_nothing) {
    auto m = asking_for_the_lease_with_a_write_back_in_flight();
    BOOST_TEST_REQUIRE(has(m.resume(written_back(2, errc::generation_conflict)), ak::load));
    auto reread = at(ek::loaded, expired);
    reread.purpose = load_purpose::write_back_conflict;
    reread.record = pair_of(1);
    const auto a = m.resume(reread);
    BOOST_TEST(!has(a, ak::write_back));
    BOOST_TEST((m.state() == account_state::acquiring));
}

// A write-back whose write landed but whose answer was lost (a failure), after a grant showed
// the store holding its pair: nothing is unstored, so nothing is reported or retried.
BOOST_AUTO_TEST_CASE(a_failed_write_back_of_a_pair_known_stored_meanwhile_is_not_reported) {
    auto m = asking_for_the_lease_with_a_write_back_in_flight();
    grant_and_send(m, pair_of(2), expired);
    BOOST_TEST_REQUIRE(!m.dirty());
    const auto a = m.resume(written_back(2, errc::store_failure));
    BOOST_TEST(!has(a, ak::notify_store_failure));
    BOOST_TEST(!has(a, ak::schedule_store_retry));
}

// A flush re-arms the retry timer to its own pace; the wait it replaced completes at once
// (operation_aborted). That is not the retry: taken as one, it cleared the flag with the new
// wait armed, and every failed write after re-armed it again, each a retry at once.
BOOST_AUTO_TEST_CASE(the_retry_wait_a_flush_replaced_is_not_a_retry) {
    auto m = loaded(1);
    rotate_and_refuse_the_commit(m);
    m.resume(at(ek::stop, expired));
    auto a = m.resume(at(ek::flush, expired));
    BOOST_TEST_REQUIRE(has(a, ak::write_back));
    BOOST_TEST_REQUIRE(has(a, ak::schedule_store_retry));
    auto replaced = at(ek::store_retry_due, expired);
    replaced.ec = boost::asio::error::operation_aborted;
    a = m.resume(replaced);
    BOOST_TEST(a.empty());
    a = m.resume(written_back(2, errc::store_failure));
    BOOST_TEST(has(a, ak::notify_store_failure));
    BOOST_TEST(!has(a, ak::schedule_store_retry));   // the flush's wait is still armed
    a = m.resume(at(ek::store_retry_due, expired));  // that wait
    BOOST_TEST(has(a, ak::write_back));
}

namespace {

// The store's generation 1, marked reauthorization_required (as a load answers it).
event loaded_gone() {
    auto gone = at(ek::loaded, expired);
    gone.record = pair_of(1);
    gone.record->state = record_state::reauthorization_required;
    return gone;
}

// A new machine that loaded that record: reauthorization_required.
account_fsm loaded_gone_machine() {
    account_fsm m{config()};
    m.resume(at(ek::get, expired));
    m.resume(loaded_gone());
    BOOST_REQUIRE((m.state() == account_state::reauthorization_required));
    return m;
}

}  // namespace

// Back in reauthorization_required after a look found a new authorization: the next caller looks
// at once, as it would after the machine was set aside and woken (not at the old look's pace).
BOOST_AUTO_TEST_CASE(a_grant_gone_again_is_looked_for_at_the_next_caller) {
    auto m = loaded_gone_machine();
    m.resume(at(ek::get, t0, s0));
    auto back = at(ek::loaded, t0);
    back.purpose = load_purpose::recheck_grant;
    back.record = pair_of(2);
    m.resume(back);
    BOOST_TEST_REQUIRE((m.state() == account_state::ready));
    m.resume(at(ek::get, expired, s0));
    auto reauth = at(ek::acquired, expired);
    reauth.lease.what = lease_outcome::kind::reauthorization_required;
    m.resume(reauth);
    BOOST_TEST_REQUIRE((m.state() == account_state::reauthorization_required));
    const auto a = m.resume(at(ek::get, expired, s0 + std::chrono::milliseconds(1)));
    BOOST_TEST((find(a, ak::load).purpose == load_purpose::recheck_grant));
}

// A replica that learned the grant was gone: the customer authorized again through another
// process. The first caller after that makes this one look, and the new pair is served.
BOOST_AUTO_TEST_CASE(a_reauthorization_stored_elsewhere_is_found_by_the_next_caller_at_a_bounded_pace) {
    auto m = loaded_gone_machine();
    auto a = m.resume(at(ek::get, expired, s0));
    BOOST_TEST(has(a, ak::queue_waiter));
    BOOST_TEST_REQUIRE((find(a, ak::load).purpose == load_purpose::recheck_grant));
    auto gone = loaded_gone();
    gone.purpose = load_purpose::recheck_grant;
    a = m.resume(gone);  // still gone
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::reauthorization_required));
    // Within backoff_initial of that look: no other.
    a = m.resume(at(ek::get, expired, s0 + std::chrono::milliseconds(999)));
    BOOST_TEST((find(a, ak::fail_waiter).ec == errc::reauthorization_required));
    BOOST_TEST(!has(a, ak::load));
    a = m.resume(at(ek::get, expired, s0 + std::chrono::seconds(1)));
    BOOST_TEST_REQUIRE(has(a, ak::load));
    auto back = at(ek::loaded, expired);
    back.purpose = load_purpose::recheck_grant;
    back.record = pair_of(2, std::chrono::hours(1), expired);
    a = m.resume(back);
    BOOST_TEST(!find(a, ak::wake_waiters).ec);
    BOOST_TEST(has(a, ak::publish));
    BOOST_TEST((m.state() == account_state::ready));
    BOOST_TEST(m.current()->generation == 2u);
}

// invalid_grant, and the store cannot be read: whether another process rotated first is unknown,
// so nothing is concluded (a reauthorization told to the application cannot be taken back).
BOOST_AUTO_TEST_CASE(an_unreadable_store_after_invalid_grant_concludes_nothing) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    m.resume(refresh_failed_with(errc::invalid_grant));
    auto reread = at(ek::loaded, expired);
    reread.purpose = load_purpose::check_grant;
    reread.ec = errc::coordination_unavailable;
    const auto a = m.resume(reread);
    BOOST_TEST(!has(a, ak::mark_reauthorization));
    BOOST_TEST(!has(a, ak::notify_reauthorization));
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::coordination_unavailable));
    BOOST_TEST(has(a, ak::release));
    BOOST_TEST((m.state() == account_state::ready));
}

// ---- a shutdown and the store's lease ------------------------------------------------------------
//
// The process exits once its shutdown completes: a lease operation still outstanding then (an
// acquire whose grant lands later, a release not delivered yet) leaves the lease held in the
// store, and every other process sharing it sees the account busy for up to lease_ttl.

namespace {

// A loaded machine of generation 1 whose expired pair sent it asking for the lease, then stopped
// and flushing; returns the flush's actions.
action_list flushing_while_acquiring(account_fsm& m) {
    BOOST_REQUIRE(has(m.resume(at(ek::get, expired)), ak::acquire));
    m.resume(at(ek::stop, expired));
    return m.resume(at(ek::flush, expired));
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_flush_while_acquiring_waits_for_the_grant_and_the_release_it_brings) {
    auto m = loaded(1);
    auto a = flushing_while_acquiring(m);
    BOOST_TEST(!has(a, ak::flush_done));  // the answer may be a grant
    a = m.resume(granted_with(pair_of(1)));
    BOOST_TEST(has(a, ak::release));  // stopped: given straight back, nothing sent
    BOOST_TEST(!has(a, ak::mark_sent));
    BOOST_TEST(!has(a, ak::flush_done));  // the release has not reached the store yet
    BOOST_TEST(m.releases_in_flight() == 1u);
    a = m.resume(released());
    BOOST_TEST(!find(a, ak::flush_done).ec);
    BOOST_TEST(m.releases_in_flight() == 0u);
}

BOOST_AUTO_TEST_CASE(a_flush_while_acquiring_ends_at_an_answer_that_grants_nothing) {
    auto m = loaded(1);
    flushing_while_acquiring(m);
    auto busy = at(ek::acquired, expired);
    busy.lease.what = lease_outcome::kind::busy;
    busy.lease.time_left = std::chrono::seconds(5);
    const auto a = m.resume(busy);
    BOOST_TEST(!has(a, ak::release));
    BOOST_TEST(!has(a, ak::wait_for_change));
    BOOST_TEST(!find(a, ak::flush_done).ec);
}

BOOST_AUTO_TEST_CASE(a_flush_while_a_release_is_in_flight_ends_when_it_is_answered) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    auto a = m.resume(refresh_failed_with(errc::temporarily_unavailable));
    BOOST_TEST_REQUIRE(has(a, ak::release));
    BOOST_TEST(!m.can_rest());  // its answer must find this machine
    m.resume(at(ek::stop, expired));
    a = m.resume(at(ek::flush, expired));
    BOOST_TEST(!has(a, ak::flush_done));
    // A release that failed is not sent again (the lease lapses at its ttl): it ends the wait.
    a = m.resume(released(errc::store_failure));
    BOOST_TEST(!find(a, ak::flush_done).ec);
    BOOST_TEST(!has(a, ak::release));
}

BOOST_AUTO_TEST_CASE(a_flush_waits_for_a_lease_held_while_waiting_for_a_silent_sender) {
    auto m = loaded(1);
    m.resume(at(ek::get, expired));
    auto a = m.resume(granted_with(pair_of(1), /*previous_holder_sent=*/true));
    BOOST_TEST_REQUIRE((m.state() == account_state::waiting_for_holder));
    BOOST_TEST_REQUIRE(m.lease_held());
    m.resume(at(ek::stop, expired));
    a = m.resume(at(ek::flush, expired));
    BOOST_TEST(!has(a, ak::flush_done));
    auto cancelled = at(ek::changed, expired);  // the driver cancels the wait at the stop
    cancelled.ec = boost::asio::error::operation_aborted;
    the_release_ends_the_flush(m, m.resume(cancelled));
}

BOOST_AUTO_TEST_CASE(a_flush_waits_for_a_grant_checked_after_invalid_grant) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    m.resume(refresh_failed_with(errc::invalid_grant));
    BOOST_TEST_REQUIRE((m.state() == account_state::checking_grant));
    m.resume(at(ek::stop, expired));
    auto a = m.resume(at(ek::flush, expired));
    BOOST_TEST(!has(a, ak::flush_done));
    auto reread = at(ek::loaded, expired);
    reread.purpose = load_purpose::check_grant;
    reread.record = pair_of(1);
    a = m.resume(reread);
    BOOST_TEST_REQUIRE(has(a, ak::mark_reauthorization));
    BOOST_TEST(!has(a, ak::flush_done));
    the_release_ends_the_flush(m, m.resume(at(ek::reauthorization_marked, expired)));
}

// A store that never answers the acquire: the deadline still ends the flush, as for a refresh on
// the wire (nothing was unstored: shutting_down), and a grant that lands later is given back
// without a second report.
BOOST_AUTO_TEST_CASE(the_flush_deadline_ends_a_wait_for_an_acquire_that_is_never_answered) {
    auto m = loaded(1);
    flushing_while_acquiring(m);
    auto a = m.resume(at(ek::flush_deadline, expired));
    BOOST_TEST((find(a, ak::flush_done).ec == errc::shutting_down));
    BOOST_TEST(!has(a, ak::notify_store_failure));
    a = m.resume(granted_with(pair_of(1)));
    BOOST_TEST(has(a, ak::release));
    BOOST_TEST(!has(a, ak::flush_done));
    BOOST_TEST(!has(m.resume(released()), ak::flush_done));
}

BOOST_AUTO_TEST_CASE(the_flush_deadline_ends_a_wait_for_a_release_that_is_never_answered) {
    auto m = loaded(1);
    flushing_while_acquiring(m);
    m.resume(granted_with(pair_of(1)));
    const auto a = m.resume(at(ek::flush_deadline, expired));
    BOOST_TEST((find(a, ak::flush_done).ec == errc::shutting_down));
}

// A release is counted until its answer; the machine rests only after it, and a stray answer
// changes nothing. (No second release can be sent before the first is answered: no acquire is.)
BOOST_AUTO_TEST_CASE(releases_in_flight_are_counted_and_the_machine_rests_after_the_last_answer) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    m.resume(refresh_failed_with(errc::temporarily_unavailable));
    BOOST_TEST_REQUIRE(m.releases_in_flight() == 1u);
    BOOST_TEST(!m.quiescent());
    BOOST_TEST(!m.can_rest());
    m.resume(released());
    BOOST_TEST(m.releases_in_flight() == 0u);
    BOOST_TEST(m.quiescent());
    BOOST_TEST(m.resume(released()).empty());  // a stray answer changes nothing
    BOOST_TEST(m.releases_in_flight() == 0u);
}

// ---- no acquire while a release is unanswered --------------------------------------------------
// The token_store contract does not order one holder's calls: a store running them on a pool (or
// the file store, whose calls that wait for its directory lock retry on timers) may carry out a
// release after an acquire sent later, and the release, a compare-and-delete on the holder, then
// deletes the new lease: this cache refreshes believing it holds the lease, another is granted it
// and sends the same refresh token, and the server revokes the grant. Every acquire waits for the
// last release's answer.

namespace {

std::size_t acquires_in(const action_list& a) {
    return static_cast<std::size_t>(
        std::count_if(a.begin(), a.end(), [](const action& x) { return x.what == ak::acquire; }));
}

const steady_time after_backoff = s0 + std::chrono::seconds(2);

// A loaded machine of generation 1 whose refresh failed (transient): the cycle gave the lease back,
// and the release is not answered yet.
account_fsm with_a_release_in_flight() {
    auto m = loaded(1);
    to_refreshing(m, 1);
    BOOST_REQUIRE(has(m.resume(refresh_failed_with(errc::temporarily_unavailable)), ak::release));
    BOOST_REQUIRE(m.releases_in_flight() == 1u);
    return m;
}

// The machine waits, in acquiring, for the release's answer; then asks once, from generation `base`.
void the_acquire_waits_for_the_release(account_fsm& m, const action_list& a, std::uint64_t base = 1) {
    BOOST_TEST(acquires_in(a) == 0u);
    BOOST_TEST((m.state() == account_state::acquiring));
    BOOST_TEST(!m.quiescent());
    BOOST_TEST(!m.can_rest());
    const auto answered = m.resume(released());
    BOOST_TEST(acquires_in(answered) == 1u);
    if (acquires_in(answered) == 1u) {
        BOOST_TEST(find(answered, ak::acquire).generation == base);
    }
    BOOST_TEST(m.resume(released()).empty());  // a stray answer sends nothing more
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_get_that_needs_a_refresh_asks_for_the_lease_only_once_the_release_is_answered) {
    auto m = with_a_release_in_flight();
    auto a = m.resume(at(ek::get, expired, after_backoff));
    BOOST_TEST(has(a, ak::queue_waiter));
    // More callers join the deferred cycle (nothing else asked of the store), and an answer the
    // store cannot have given to an acquire never sent changes nothing.
    const auto joined = m.resume(at(ek::get, expired, after_backoff));
    BOOST_TEST(has(joined, ak::queue_waiter));
    BOOST_TEST(acquires_in(joined) == 0u);
    BOOST_TEST(m.resume(granted_with(pair_of(1))).empty());
    BOOST_TEST(!m.lease_held());
    the_acquire_waits_for_the_release(m, a);
    // Then the cycle runs as ever.
    grant_and_send(m, pair_of(1), expired);
}

// A failed release is an answer too (the lease lapses at its ttl): the acquire goes then.
BOOST_AUTO_TEST_CASE(a_release_that_failed_lets_the_deferred_acquire_go) {
    auto m = with_a_release_in_flight();
    BOOST_TEST(acquires_in(m.resume(at(ek::get, expired, after_backoff))) == 0u);
    const auto a = m.resume(released(errc::store_failure));
    BOOST_TEST(acquires_in(a) == 1u);
}

BOOST_AUTO_TEST_CASE(a_refresh_ahead_asks_for_the_lease_only_once_the_release_is_answered) {
    auto m = loaded(1);
    // A background refresh whose request failed while the pair is still usable: the lease goes back.
    const auto ahead = t0 + std::chrono::minutes(50);  // past the refresh-ahead point, still usable
    auto a = m.resume(at(ek::refresh_ahead, ahead));
    BOOST_TEST_REQUIRE(has(a, ak::acquire));
    grant_and_send(m, pair_of(1), ahead);
    auto failed = at(ek::refreshed, ahead);
    failed.ec = errc::temporarily_unavailable;
    BOOST_TEST_REQUIRE(has(m.resume(failed), ak::release));
    // Claimed again past the backoff (the failure published the pair again for that).
    const auto later = ahead + std::chrono::seconds(5);
    a = m.resume(at(ek::refresh_ahead, later, after_backoff + std::chrono::seconds(5)));
    the_acquire_waits_for_the_release(m, a);
}

// A grant found gone gives the lease back; a caller then finds a new authorization stored elsewhere,
// already expired, and the waiters' cycle begins in the load's event: it too waits for the release.
BOOST_AUTO_TEST_CASE(
    a_cycle_begun_after_a_reauthorization_asks_for_the_lease_only_once_the_release_is_answered) {
    auto m = loaded(1);
    to_refreshing(m, 1);
    m.resume(refresh_failed_with(errc::invalid_grant));
    auto reread = at(ek::loaded, expired);
    reread.purpose = load_purpose::check_grant;
    reread.record = pair_of(1);
    BOOST_TEST_REQUIRE(has(m.resume(reread), ak::mark_reauthorization));
    BOOST_TEST_REQUIRE(has(m.resume(at(ek::reauthorization_marked, expired)), ak::release));
    BOOST_TEST_REQUIRE(m.releases_in_flight() == 1u);
    BOOST_TEST_REQUIRE(
        (find(m.resume(at(ek::get, expired)), ak::load).purpose == load_purpose::recheck_grant));
    auto back = at(ek::loaded, expired);
    back.purpose = load_purpose::recheck_grant;
    back.record = pair_of(5);  // issued at t0 for an hour: expired
    const auto a = m.resume(back);
    BOOST_TEST(m.current()->generation == 5u);
    the_acquire_waits_for_the_release(m, a, 5);
}

// After the deferred acquire, the cycle's own re-acquires (a busy holder's wait ended; a lost
// mark) go out at once: no release is sent within a cycle, so none is unanswered then.
BOOST_AUTO_TEST_CASE(the_re_acquires_of_a_cycle_that_waited_for_a_release_go_out_at_once) {
    auto m = with_a_release_in_flight();
    the_acquire_waits_for_the_release(m, m.resume(at(ek::get, expired, after_backoff)));
    auto busy = at(ek::acquired, expired, after_backoff);
    busy.lease.what = lease_outcome::kind::busy;
    busy.lease.time_left = std::chrono::seconds(5);
    BOOST_TEST_REQUIRE(has(m.resume(busy), ak::wait_for_change));
    const auto timed_out = at(ek::changed, expired, after_backoff);  // max_wait passed: nullopt
    BOOST_TEST(acquires_in(m.resume(timed_out)) == 1u);
    auto granted = granted_with(pair_of(1));
    granted.steady_now = after_backoff;
    BOOST_TEST_REQUIRE(has(m.resume(granted), ak::mark_sent));
    auto lost = at(ek::sent_marked, expired, after_backoff);
    lost.ec = errc::lease_lost;
    BOOST_TEST(acquires_in(m.resume(lost)) == 1u);
    BOOST_TEST(m.releases_in_flight() == 0u);
}

// A stop while the acquire waits: nothing is asked of the store, the callers are told, and a flush
// waits only for the release's answer.
BOOST_AUTO_TEST_CASE(a_stop_while_the_acquire_waits_for_a_release_asks_for_nothing) {
    auto m = with_a_release_in_flight();
    BOOST_TEST(acquires_in(m.resume(at(ek::get, expired, after_backoff))) == 0u);
    auto a = m.resume(at(ek::stop, expired));
    BOOST_TEST((find(a, ak::wake_waiters).ec == errc::shutting_down));
    BOOST_TEST((m.state() == account_state::ready));
    a = m.resume(at(ek::flush, expired));
    BOOST_TEST(!has(a, ak::flush_done));
    a = m.resume(released());
    BOOST_TEST(acquires_in(a) == 0u);
    BOOST_TEST(!find(a, ak::flush_done).ec);
    BOOST_TEST(m.quiescent());
}

BOOST_AUTO_TEST_SUITE_END()

// ---- setting an idle machine aside (account_rest) -------------------------------------------
//
// A cache keeps only an idle account's rest and rebuilds its machine on the next event. The
// rebuilt machine must answer every event exactly as the original would have: each scenario
// below feeds the same events to a machine and to its rebuilt twin and compares every action.

namespace {

std::string describe(const action& a) {
    std::ostringstream os;
    os << static_cast<int>(a.what) << " ec=" << a.ec.value() << " purpose=" << static_cast<int>(a.purpose)
       << " generation=" << a.generation << " expected=" << a.expected << " delay=" << a.delay.count()
       << " newest=" << a.newest << " usable_until=" << a.usable_until.time_since_epoch().count()
       << " refresh_at=" << a.refresh_at.time_since_epoch().count();
    if (a.record) {
        os << " record=" << a.record->generation << "/" << a.record->tokens.access_token.reveal() << "/"
           << a.record->tokens.refresh_token.reveal();
    }
    return os.str();
}

std::vector<std::string> describe(const action_list& list) {
    std::vector<std::string> out;
    for (const auto& a : list) {
        out.push_back(describe(a));
    }
    return out;
}

/// A machine at rest and its twin rebuilt from a copy of its rest, packed and unpacked on the way
/// as the cache keeps it (test/lifecycle/packed_rest_test.cpp covers the block's other form).
struct twins {
    account_fsm original;
    account_fsm rebuilt;

    explicit twins(account_fsm&& m) : original(std::move(m)), rebuilt(config(), copy_of_rest(original)) {}

    static account_rest copy_of_rest(const account_fsm& m) {
        BOOST_REQUIRE(m.can_rest());
        account_fsm copy = m;
        // As the cache packs it: what it serves left to the keeper (the snapshot slot).
        const auto rest = std::move(copy).rest();
        const auto slot = served_of(rest);
        const packed_rest packed(rest, &slot);
        BOOST_REQUIRE(!packed.holds_served_snapshot());
        return packed.unpack(slot);
    }

    /// Feeds `ev` to both; both must answer the same, and end in the same state.
    action_list feed(const event& ev) {
        auto a = original.resume(ev);
        const auto b = rebuilt.resume(ev);
        BOOST_TEST(describe(a) == describe(b), boost::test_tools::per_element());
        BOOST_TEST((original.state() == rebuilt.state()));
        BOOST_TEST(original.can_rest() == rebuilt.can_rest());
        BOOST_TEST(original.dirty() == rebuilt.dirty());
        return a;
    }
};

event granted_with(std::uint64_t generation, sys_time now) {
    auto e = at(ek::acquired, now);
    e.lease.what = lease_outcome::kind::granted;
    e.lease.record = pair_of(generation);
    return e;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(account_fsm_at_rest)

BOOST_AUTO_TEST_CASE(a_loaded_idle_machine_can_rest_and_a_busy_one_cannot) {
    auto m = loaded(1);
    BOOST_TEST(m.can_rest());
    m.resume(at(ek::get, expired));  // a caller queued, the lease asked for
    BOOST_TEST(!m.can_rest());
    account_fsm fresh{config()};
    BOOST_TEST(!fresh.can_rest());  // nothing known: nothing to keep (the cache forgets it)
}

BOOST_AUTO_TEST_CASE(a_rebuilt_machine_serves_and_refreshes_as_the_original) {
    twins t{loaded(1)};
    t.feed(at(ek::get));  // served from memory
    auto a = t.feed(at(ek::get, expired));
    BOOST_TEST(find(a, ak::acquire).generation == 1u);
    t.feed(granted_with(1, expired));
    a = t.feed(at(ek::sent_marked, expired));
    BOOST_TEST(a.at(0).record->tokens.refresh_token.reveal() == "refresh-1");
    t.feed(refreshed_with_pair_2());
    auto committed = at(ek::committed, expired);
    committed.generation = 2;
    a = t.feed(committed);
    BOOST_TEST(find(a, ak::publish).generation == 2u);
    BOOST_TEST(t.original.can_rest());  // the cycle is over: it may rest again
}

BOOST_AUTO_TEST_CASE(a_rebuilt_machine_keeps_the_refresh_ahead_point_and_a_rejection) {
    twins t{loaded(1)};
    const auto past_refresh_ahead = t0 + std::chrono::minutes(50);
    auto a = t.feed(at(ek::refresh_ahead, past_refresh_ahead));
    BOOST_TEST(has(a, ak::acquire));

    twins u{loaded(3)};
    auto rejected = at(ek::invalidate);
    rejected.generation = 3;
    u.feed(rejected);
    a = u.feed(at(ek::get));  // the rejected pair is not served
    BOOST_TEST(!has(a, ak::serve_waiter));
}

BOOST_AUTO_TEST_CASE(a_rebuilt_machine_stores_stops_and_flushes_as_the_original) {
    twins t{loaded(1)};
    auto store = at(ek::store_requested);
    store.tokens = fresh_tokens("new", t0);
    auto a = t.feed(store);
    BOOST_TEST(find(a, ak::save).expected == 1u);
    auto saved = at(ek::saved);
    t.feed(saved);
    BOOST_TEST(t.original.can_rest());

    twins u{std::move(t.original)};  // rested again after a save
    a = u.feed(at(ek::stop));
    BOOST_TEST(has(a, ak::withdraw));
    BOOST_TEST(u.original.can_rest());  // a stopped, clean machine may rest: stopped_ is kept
    twins v{std::move(u.original)};
    a = v.feed(at(ek::flush));
    BOOST_TEST(has(a, ak::flush_done));
    a = v.feed(at(ek::get));
    BOOST_TEST((find(a, ak::fail_waiter).ec == errc::shutting_down));
}

BOOST_AUTO_TEST_CASE(a_machine_backing_off_or_holding_an_unstored_pair_does_not_rest) {
    auto failing = loaded(1);
    to_refreshing(failing, 1);
    failing.resume(refresh_failed_with(errc::temporarily_unavailable));
    BOOST_TEST((failing.state() == account_state::ready));
    BOOST_TEST(!failing.can_rest());  // its backoff would be forgotten

    auto unstored = loaded(1);
    rotate_and_refuse_the_commit(unstored);
    BOOST_TEST(unstored.dirty());
    BOOST_TEST(!unstored.can_rest());  // the rotated pair must still be written
}

BOOST_AUTO_TEST_SUITE_END()
