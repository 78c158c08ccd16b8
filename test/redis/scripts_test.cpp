// Every coordination step (the Redis Functions), table-driven against a real redis-server: each
// outcome of acquire, mark-sent and renew after the lease was lost, commit conflicts and retries,
// release by a non-owner, mark-reauthorization after the generation moved.
//
// A lease running out is simulated by deleting the lease key (what PX expiry does), and a silent
// holder's grace period passing by zeroing its f_until: no test waits for a clock.
#include "store/redis/record.hpp"
#include "store_support.hpp"

#include <boost/test/unit_test.hpp>

#include <functional>
#include <future>

using namespace apollo_oauth;
using namespace apollo_oauth::redis_test;
using kind = lease_outcome::kind;
using ms = std::chrono::milliseconds;

namespace {

// Not named account_id: that is apollo_oauth::account_id, which the using-directive above brings in.
const std::string the_account = "acct-1";
const std::string rec_key = "test:{acct-1}";
const std::string lease_key = "test:{acct-1}:lease";

struct store_fixture : pool_fixture {
    redis_server server;
    sync_store s{make_redis_token_store(executor(), store_options(server))};
    redis::connection raw{executor(), plain_config(server)};

    std::tuple<error_code, std::optional<stored_tokens>> load_current() { return s.load(the_account); }
    void expire_lease() { exec(raw, {"DEL", lease_key}); }
    void end_grace() { exec(raw, {"HSET", rec_key, "f_until", "0"}); }
    void store_generation(std::uint64_t gen) {
        for (std::uint64_t g = 1; g <= gen; ++g) {
            BOOST_REQUIRE(!s.save(the_account, make_record(g), g - 1));
        }
    }
    // Generation 1, whose lease A took and marked sent, and then went silent past the grace.
    void a_silent_sender() {
        store_generation(1);
        s.acquire(the_account, "A", 1);
        BOOST_REQUIRE(!s.mark_sent(the_account, "A", 1));
        expire_lease();
        end_grace();
    }
};

struct acquire_case {
    const char* name;
    std::function<void(store_fixture&)> setup;
    std::uint64_t known;
    kind expected;
    std::optional<std::uint64_t> record_generation;  // of the outcome's record
    bool previous_holder_sent = false;
};

const acquire_case acquire_cases[] = {
    {"nothing stored: granted without a record", [](store_fixture&) {}, 0, kind::granted, std::nullopt},
    {"first pair stored meanwhile: newer", [](store_fixture& f) { f.store_generation(1); }, 0, kind::newer,
     1},
    {"a rotation since the caller read (the waiting replica's case): newer",
     [](store_fixture& f) { f.store_generation(2); }, 1, kind::newer, 2},
    {"current and free: granted with that generation's record",
     [](store_fixture& f) { f.store_generation(1); }, 1, kind::granted, 1},
    // The store behind the caller (a restart that lost the last writes, a failover to a replica
    // that missed them): granted on what it holds, so that the caller commits its own newer pair
    // first (the catch-up), under the lease.
    {"store behind the caller: granted with the older record",
     [](store_fixture& f) { f.store_generation(1); }, 3, kind::granted, 1},
    {"store lost the account the caller holds: granted without a record", [](store_fixture&) {}, 2,
     kind::granted, std::nullopt},
    {"store behind the caller, held by another: busy",
     [](store_fixture& f) {
         f.store_generation(1);
         BOOST_REQUIRE(std::get<1>(f.s.acquire(the_account, "A", 1)).what == kind::granted);
     },
     3, kind::busy, std::nullopt},
    {"held by another: busy",
     [](store_fixture& f) {
         f.store_generation(1);
         BOOST_REQUIRE(std::get<1>(f.s.acquire(the_account, "A", 1)).what == kind::granted);
     },
     1, kind::busy, std::nullopt},
    {"held by the caller itself: granted again",
     [](store_fixture& f) {
         f.store_generation(1);
         f.s.acquire(the_account, "B", 1);
     },
     1, kind::granted, 1},
    {"grant gone: reauthorization_required",
     [](store_fixture& f) {
         f.store_generation(1);
         BOOST_REQUIRE(!f.s.mark_reauth(the_account, 1));
     },
     1, kind::reauthorization_required, std::nullopt},
    {"holder marked sent, lease ran out, inside the grace: busy",
     [](store_fixture& f) {
         f.store_generation(1);
         f.s.acquire(the_account, "A", 1);
         BOOST_REQUIRE(!f.s.mark_sent(the_account, "A", 1));
         f.expire_lease();
     },
     1, kind::busy, std::nullopt},
    {"holder marked sent and went silent past the grace: granted, previous_holder_sent",
     [](store_fixture& f) { f.a_silent_sender(); }, 1, kind::granted, 1, true},
    // A holder gives the lease back only with no rotated pair left to commit (its request failed,
    // or its mark-sent's reply was lost and it never sent), and its release reached Redis: it is
    // neither cut off nor about to commit, so nobody is to wait for it. (Told previous_holder_sent,
    // the next holder's cache held the lease for backoff_max, a minute, waiting for no one.)
    {"holder marked sent then released (outcome known): granted at once, nothing to wait for",
     [](store_fixture& f) {
         f.store_generation(1);
         f.s.acquire(the_account, "A", 1);
         BOOST_REQUIRE(!f.s.mark_sent(the_account, "A", 1));
         BOOST_REQUIRE(!f.s.release(the_account, "A"));
     },
     1, kind::granted, 1, false},
    // The same when the release reaches Redis after the holder's lease ran out (a refresh slower
    // than the lease, an outage): the mark of the cycle it names ends all the same. (It was left:
    // every process waited out the grace, then backoff_max, for a commit that could not come.)
    {"holder marked sent, its lease ran out, then released: granted at once, nothing to wait for",
     [](store_fixture& f) {
         f.store_generation(1);
         f.s.acquire(the_account, "A", 1);
         BOOST_REQUIRE(!f.s.mark_sent(the_account, "A", 1));
         f.expire_lease();
         BOOST_REQUIRE(!f.s.release(the_account, "A"));
     },
     1, kind::granted, 1, false},
    // And after another holder took the lease over and gave it back (told previous_holder_sent,
    // it waited for A): A's release, arriving then, still ends A's mark for whoever comes next.
    {"a silent sender's release arrives after a successor gave the lease back: granted at once",
     [](store_fixture& f) {
         f.a_silent_sender();
         BOOST_REQUIRE(std::get<1>(f.s.acquire(the_account, "C", 1)).previous_holder_sent);
         BOOST_REQUIRE(!f.s.release(the_account, "C"));
         BOOST_REQUIRE(!f.s.release(the_account, "A"));
     },
     1, kind::granted, 1, false},
    {"holder leased but never sent, lease ran out: granted, nothing spent",
     [](store_fixture& f) {
         f.store_generation(1);
         f.s.acquire(the_account, "A", 1);
         f.expire_lease();
     },
     1, kind::granted, 1, false},
    {"a successor of a silent sender dies before sending: the next still learns it was sent",
     [](store_fixture& f) {
         f.a_silent_sender();
         BOOST_REQUIRE(std::get<1>(f.s.acquire(the_account, "C", 1)).previous_holder_sent);
         f.expire_lease();
     },
     1, kind::granted, 1, true},
    // Only the sender's own release clears its mark: C gave back a lease on a token A may have spent.
    {"a successor of a silent sender gives the lease back: the next still learns it was sent",
     [](store_fixture& f) {
         f.a_silent_sender();
         BOOST_REQUIRE(std::get<1>(f.s.acquire(the_account, "C", 1)).previous_holder_sent);
         BOOST_REQUIRE(!f.s.release(the_account, "C"));
     },
     1, kind::granted, 1, true},
    // A's late release of its earlier cycle (a timed-out command delivered after all) is no
    // release of the lease A holds now: the request A's current cycle marked sent stays marked.
    {"a late release of the sender's earlier cycle leaves the mark",
     [](store_fixture& f) {
         f.store_generation(1);
         f.s.acquire(the_account, "A", 1);
         const std::string first = exec(f.raw, {"GET", lease_key}).text;
         BOOST_REQUIRE(!f.s.release(the_account, "A"));
         f.s.acquire(the_account, "A", 1);
         BOOST_REQUIRE(!f.s.mark_sent(the_account, "A", 1));
         BOOST_REQUIRE(exec(f.raw, {"FCALL", "apollo_oauth_v8_release", "2", rec_key, lease_key, "A",
                                    first.substr(first.rfind('|') + 1)})
                           .text == "ok");
         f.expire_lease();
         f.end_grace();
     },
     1, kind::granted, 1, true},
    // Nor once the lease of A's current cycle ran out: the mark is that cycle's, not the late one's.
    {"a late release of the sender's earlier cycle after its lease ran out leaves the mark",
     [](store_fixture& f) {
         f.store_generation(1);
         f.s.acquire(the_account, "A", 1);
         const std::string first = exec(f.raw, {"GET", lease_key}).text;
         BOOST_REQUIRE(!f.s.release(the_account, "A"));
         f.s.acquire(the_account, "A", 1);
         BOOST_REQUIRE(!f.s.mark_sent(the_account, "A", 1));
         f.expire_lease();
         BOOST_REQUIRE(exec(f.raw, {"FCALL", "apollo_oauth_v8_release", "2", rec_key, lease_key, "A",
                                    first.substr(first.rfind('|') + 1), "test:changed"})
                           .text == "ok");
         f.end_grace();
     },
     1, kind::granted, 1, true},
};

}  // namespace

BOOST_AUTO_TEST_SUITE(scripts)

BOOST_AUTO_TEST_CASE(acquire_outcomes) {
    for (const auto& c : acquire_cases) {
        BOOST_TEST_CONTEXT(c.name) {
            store_fixture f;
            c.setup(f);
            const auto [ec, outcome] = f.s.acquire(the_account, "B", c.known);
            BOOST_TEST(!ec);
            BOOST_TEST((outcome.what == c.expected));
            BOOST_TEST(outcome.record.has_value() == c.record_generation.has_value());
            if (outcome.record && c.record_generation) {
                BOOST_TEST(outcome.record->generation == *c.record_generation);
                // The refresh token to send is the stored one of that generation.
                BOOST_TEST(outcome.record->tokens.refresh_token ==
                           make_record(*c.record_generation).tokens.refresh_token);
            }
            BOOST_TEST(outcome.previous_holder_sent == c.previous_holder_sent);
            if (c.expected == kind::busy) {
                BOOST_TEST(outcome.time_left.count() > 0);
            }
        }
    }
}

// What a waiter reads: the lease is free exactly when an acquire by a holder that holds nothing
// would not be told busy (no lease, and no silent sender's grace running), so that a waiter which
// finds it free and asks again is granted it (or told of a newer pair), never sent back to wait
// in a loop; and the record comes with it.
BOOST_AUTO_TEST_CASE(probe_finds_the_lease_free_exactly_when_an_acquire_would_not_be_busy) {
    for (const auto& c : acquire_cases) {
        BOOST_TEST_CONTEXT(c.name) {
            store_fixture f;
            c.setup(f);
            const auto stored = std::get<1>(f.load_current());  // (connects: the functions are loaded)
            const auto probe =
                exec(f.raw, {"FCALL_RO", "apollo_oauth_v8_probe", "2", rec_key, lease_key, "5000"});
            BOOST_REQUIRE(probe.is_array());
            BOOST_REQUIRE(probe.elements.size() == 2u);
            const bool free = probe.elements[0].integer == 1;
            std::optional<stored_tokens> record;
            BOOST_TEST(!redis::decode_record(probe.elements[1], record));
            BOOST_REQUIRE(record.has_value() == stored.has_value());
            if (record) {
                BOOST_TEST(record->generation == stored->generation);
                BOOST_TEST((record->state == stored->state));
                BOOST_TEST((record->tokens.refresh_token == stored->tokens.refresh_token));
            }
            const auto [ec, outcome] = f.s.acquire(the_account, "a-holder-of-nothing", c.known);
            BOOST_REQUIRE(!ec);
            BOOST_TEST(free == (outcome.what != kind::busy));
        }
    }
}

BOOST_FIXTURE_TEST_CASE(mark_sent_and_renew_need_the_lease, store_fixture) {
    store_generation(1);
    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::granted));
    BOOST_TEST(!s.renew(the_account, "A", 1));
    BOOST_TEST(!s.mark_sent(the_account, "A", 1));
    BOOST_TEST(!s.renew(the_account, "A", 1));
    BOOST_TEST(s.renew(the_account, "B", 1) == errc::lease_lost);      // not the owner
    BOOST_TEST(s.mark_sent(the_account, "A", 2) == errc::lease_lost);  // not that generation

    // The lease ran out: A must not send.
    expire_lease();
    BOOST_TEST(s.mark_sent(the_account, "A", 1) == errc::lease_lost);
    BOOST_TEST(s.renew(the_account, "A", 1) == errc::lease_lost);

    // The lease ran out and B holds it now.
    end_grace();
    BOOST_TEST((std::get<1>(s.acquire(the_account, "B", 1)).what == kind::granted));
    BOOST_TEST(s.mark_sent(the_account, "A", 1) == errc::lease_lost);
    BOOST_TEST(!s.mark_sent(the_account, "B", 1));

    // B's pair landed: A's lease would name an older generation.
    BOOST_TEST(!s.commit(the_account, "B", make_record(2, "b"), 1));
    BOOST_TEST(s.mark_sent(the_account, "B", 1) == errc::lease_lost);
}

// Generation 0 (nothing stored) has no record to mark: marking its lease sent leaves the account
// as it was, so the first pair can still be saved and read back (it was left a corrupt record).
BOOST_FIXTURE_TEST_CASE(marking_sent_with_nothing_stored_leaves_no_record, store_fixture) {
    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", 0)).what == kind::granted));
    BOOST_TEST(!s.mark_sent(the_account, "A", 0));
    BOOST_TEST((exec(raw, {"EXISTS", rec_key}).integer == 0));
    BOOST_TEST(!s.save(the_account, make_record(1), 0));
    const auto [ec, record] = load_current();
    BOOST_TEST(!ec);
    BOOST_REQUIRE(record);
    BOOST_TEST(record->generation == 1u);
}

BOOST_FIXTURE_TEST_CASE(commit_is_compare_and_set_and_idempotent, store_fixture) {
    store_generation(1);
    s.acquire(the_account, "A", 1);
    s.mark_sent(the_account, "A", 1);
    BOOST_TEST(!s.commit(the_account, "A", make_record(2, "a"), 1));
    // A retry after an unknown outcome finds its own record: success, nothing changes.
    BOOST_TEST(!s.commit(the_account, "A", make_record(2, "a"), 1));
    // Another writer's pair of the same generation: refused by the fence.
    BOOST_TEST(s.commit(the_account, "X", make_record(2, "x"), 1) == errc::generation_conflict);
    // An older writer: refused.
    BOOST_TEST(s.commit(the_account, "X", make_record(2, "x"), 0) == errc::generation_conflict);
    const auto [ec, record] = load_current();
    BOOST_TEST(!ec);
    BOOST_REQUIRE(record);
    BOOST_TEST(record->generation == 2u);
    BOOST_TEST(record->tokens.access_token == make_record(2, "a").tokens.access_token);
    // The lease was cleared by the commit.
    BOOST_TEST((exec(raw, {"EXISTS", lease_key}).integer == 0));
    // A store never goes back.
    BOOST_TEST(s.commit(the_account, "A", make_record(2, "a"), 2) == errc::invalid_argument);
    BOOST_TEST(s.save(the_account, make_record(1, "a"), 2) == errc::invalid_argument);
}

BOOST_FIXTURE_TEST_CASE(a_lapsed_holder_commits_when_the_generation_did_not_move, store_fixture) {
    store_generation(1);
    s.acquire(the_account, "A", 1);
    s.mark_sent(the_account, "A", 1);
    expire_lease();
    end_grace();
    BOOST_TEST((std::get<1>(s.acquire(the_account, "B", 1)).what == kind::granted));
    // A's late answer is the only live pair: it lands, and B may no longer send.
    BOOST_TEST(!s.commit(the_account, "A", make_record(2, "a"), 1));
    BOOST_TEST(s.mark_sent(the_account, "B", 1) == errc::lease_lost);
    const auto [ec, outcome] = s.acquire(the_account, "B", 1);
    BOOST_TEST((outcome.what == kind::newer));
    // Had B committed first, A's late commit would have been refused.
    BOOST_TEST(!s.commit(the_account, "B", make_record(3, "b"), 2));
    BOOST_TEST(s.commit(the_account, "A", make_record(3, "a"), 2) == errc::generation_conflict);
}

BOOST_FIXTURE_TEST_CASE(release_is_compare_and_delete, store_fixture) {
    store_generation(1);
    s.acquire(the_account, "A", 1);
    BOOST_TEST(!s.release(the_account, "B"));  // not the owner: nothing happens
    BOOST_TEST((std::get<1>(s.acquire(the_account, "B", 1)).what == kind::busy));
    BOOST_TEST(!s.release(the_account, "A"));
    BOOST_TEST((std::get<1>(s.acquire(the_account, "B", 1)).what == kind::granted));
    BOOST_TEST(!s.release(the_account, "nobody"));
    BOOST_TEST(!s.release("no-such-account", "A"));
}

// A holder's command that timed out may still reach the server later (its connection was given
// up, and the kernel delivered the bytes after all). Here A's release of one cycle arrives again
// after A acquired anew and marked its next request sent: it must not free the lease, nor end the
// grace that keeps B off the refresh token A's request is spending. (It did both: a lease named
// only its holder, so B was granted at once, and would refresh with the token A's request spends.)
BOOST_FIXTURE_TEST_CASE(a_late_command_of_an_earlier_cycle_leaves_the_next_cycle_alone, store_fixture) {
    store_generation(1);
    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::granted));
    const std::string first_cycle_lease = exec(raw, {"GET", lease_key}).text;
    const std::string first_cycle = first_cycle_lease.substr(first_cycle_lease.rfind('|') + 1);
    BOOST_REQUIRE(!first_cycle.empty());
    BOOST_TEST(!s.release(the_account, "A"));

    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::granted));  // the next cycle
    BOOST_TEST(exec(raw, {"GET", lease_key}).text != first_cycle_lease);
    BOOST_TEST(!s.mark_sent(the_account, "A", 1));

    // The first cycle's commands, late: the release finds no lease of its own; a mark-sent or renew
    // of that cycle is lost.
    BOOST_TEST(
        exec(raw, {"FCALL", "apollo_oauth_v8_release", "2", rec_key, lease_key, "A", first_cycle}).text ==
        "ok");
    BOOST_TEST(
        exec(raw, {"FCALL", "apollo_oauth_v8_renew", "2", rec_key, lease_key, "A", "1", "60000", first_cycle})
            .text == "lost");
    BOOST_TEST((std::get<1>(s.acquire(the_account, "B", 1)).what == kind::busy));

    // The lease itself still names A's current cycle, which renews it.
    BOOST_TEST(!s.renew(the_account, "A", 1));

    // A late acquire of the first cycle takes the lease back to it (A's current cycle can no longer
    // renew), but the request A marked sent stays marked: once the lease runs out, B is kept off
    // by the grace, not granted with only previous_holder_sent.
    BOOST_TEST(exec(raw, {"FCALL", "apollo_oauth_v8_acquire", "2", rec_key, lease_key, "A", "1", "60000",
                          "60000", first_cycle})
                   .elements.front()
                   .text == "granted");
    BOOST_TEST(s.renew(the_account, "A", 1) == errc::lease_lost);
    expire_lease();
    BOOST_TEST((std::get<1>(s.acquire(the_account, "B", 1)).what == kind::busy));
}

// Two late commands of an ended cycle together: its acquire names that cycle on the lease again,
// after the holder's next cycle marked its request sent, and then its release arrives and finds
// the lease of its own cycle. It gives the lease back, but the mark the next cycle made stays,
// and its grace keeps B off. (v7's release ended it: B was granted with nothing said, and would
// send the refresh token A's request was spending; the server would then revoke the grant.)
BOOST_FIXTURE_TEST_CASE(a_late_acquire_and_release_of_an_ended_cycle_leave_the_next_cycles_mark,
                        store_fixture) {
    store_generation(1);
    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::granted));
    const std::string first_cycle_lease = exec(raw, {"GET", lease_key}).text;
    const std::string first_cycle = first_cycle_lease.substr(first_cycle_lease.rfind('|') + 1);
    BOOST_TEST(!s.release(the_account, "A"));
    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::granted));  // the next cycle
    BOOST_TEST(!s.mark_sent(the_account, "A", 1));

    BOOST_TEST(exec(raw, {"FCALL", "apollo_oauth_v8_acquire", "2", rec_key, lease_key, "A", "1", "60000",
                          "60000", first_cycle})
                   .elements.front()
                   .text == "granted");
    BOOST_TEST(
        exec(raw, {"FCALL", "apollo_oauth_v8_release", "2", rec_key, lease_key, "A", first_cycle}).text ==
        "ok");
    BOOST_TEST(exec(raw, {"EXISTS", lease_key}).integer == 0);  // given back
    BOOST_TEST(exec(raw, {"HGET", rec_key, "sent_by"}).text == "A");
    BOOST_TEST(exec(raw, {"HGET", rec_key, "f_phase"}).text == "sent");
    const auto [ec, b] = s.acquire(the_account, "B", 1);
    BOOST_TEST(!ec);
    BOOST_TEST((b.what == kind::busy));  // the grace of A's request

    // The marking cycle's own release still ends it (no lease of its own left: the second branch).
    BOOST_TEST(!s.release(the_account, "A"));
    BOOST_TEST(exec(raw, {"HGET", rec_key, "f_phase"}).text == "released");
}

// A release publishes the lease's key, on the channel of the changes, only when it gave a lease
// back: the waiters it wakes ask for the lease again, which one that freed nothing must not make
// them do. Redis counts the commands a function runs, so INFO commandstats shows each PUBLISH.
BOOST_FIXTURE_TEST_CASE(only_a_release_that_gives_the_lease_back_publishes_it, store_fixture) {
    const auto publishes = [&] { return command_calls(raw, "publish"); };
    const auto release = [&](const std::string& holder, const std::string& cycle) {
        return exec(raw, {"FCALL", "apollo_oauth_v8_release", "2", rec_key, lease_key, holder, cycle,
                          "test:changed"})
            .text;
    };
    store_generation(1);
    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::granted));
    const std::string lease = exec(raw, {"GET", lease_key}).text;
    const std::string cycle = lease.substr(lease.rfind('|') + 1);
    exec(raw, {"CONFIG", "RESETSTAT"});
    BOOST_TEST(release("B", cycle) == "ok");             // not the holder
    BOOST_TEST(release("A", "an-earlier-one") == "ok");  // the holder's late release of another cycle
    BOOST_TEST(exec(raw, {"GET", lease_key}).text == lease);
    BOOST_TEST(publishes() == 0);
    BOOST_TEST(!s.release(the_account, "A"));
    BOOST_TEST(exec(raw, {"EXISTS", lease_key}).integer == 0);
    BOOST_TEST(publishes() == 1);

    // Called without the channel, it gives the lease back and publishes nothing (v3's release).
    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::granted));
    const std::string next = exec(raw, {"GET", lease_key}).text;
    BOOST_TEST(exec(raw, {"FCALL", "apollo_oauth_v8_release", "2", rec_key, lease_key, "A",
                          next.substr(next.rfind('|') + 1)})
                   .text == "ok");
    BOOST_TEST(exec(raw, {"EXISTS", lease_key}).integer == 0);
    BOOST_TEST(publishes() == 1);
}

// A release that arrives after its lease ran out gives no lease back, but it ends the grace its
// cycle's mark kept running (acquire_outcomes): that is published too, so that the waiters kept
// off by the grace ask again at once. One that ends nothing (no mark of its cycle) publishes
// nothing.
BOOST_FIXTURE_TEST_CASE(a_release_that_ends_its_marks_grace_after_its_lease_ran_out_publishes_it,
                        store_fixture) {
    const auto publishes = [&] { return command_calls(raw, "publish"); };
    store_generation(1);
    BOOST_REQUIRE((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::granted));
    expire_lease();
    exec(raw, {"CONFIG", "RESETSTAT"});
    BOOST_TEST(!s.release(the_account, "A"));  // never marked sent
    BOOST_TEST(publishes() == 0);

    BOOST_REQUIRE((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::granted));
    BOOST_REQUIRE(!s.mark_sent(the_account, "A", 1));
    expire_lease();
    BOOST_REQUIRE((std::get<1>(s.acquire(the_account, "B", 1)).what == kind::busy));  // the grace
    BOOST_TEST(!s.release(the_account, "A"));
    BOOST_TEST(publishes() == 1);
    BOOST_TEST(exec(raw, {"HGET", rec_key, "f_phase"}).text == "released");
    BOOST_TEST((exec(raw, {"HEXISTS", rec_key, "sent_by"}).integer == 0));
    BOOST_TEST((exec(raw, {"HEXISTS", rec_key, "sent_cycle"}).integer == 0));
}

// A holder that acquires again while it holds the lease (the cache does, keeping the lease while a
// rotated pair is unstored) stays in its cycle: a re-acquire that fails, or answers that the grant
// is gone, must leave the lease it holds renewable and releasable. (Each acquire drew a new cycle:
// one that never reached Redis made the next renew lease_lost, and one answered "reauth" forgot
// the held lease, which then kept every other host out until it ran out.)
BOOST_FIXTURE_TEST_CASE(acquiring_again_while_holding_keeps_the_cycle, store_fixture) {
    store_generation(1);
    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::granted));
    const std::string held = exec(raw, {"GET", lease_key}).text;
    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::granted));
    BOOST_TEST(exec(raw, {"GET", lease_key}).text == held);
    BOOST_TEST(!s.renew(the_account, "A", 1));

    BOOST_REQUIRE(!s.mark_reauth(the_account, 1));
    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::reauthorization_required));
    BOOST_TEST(!s.release(the_account, "A"));
    BOOST_TEST((exec(raw, {"EXISTS", lease_key}).integer == 0));
}

// A holder told that its lease is gone ends that lease's cycle: its next acquire draws a new one,
// so that a late command of the lost lease (here its release, delivered after all) cannot act on
// the lease granted next. (The cycle was kept, and the next grant named it again: that late
// release freed the new lease, and B was granted it while A was about to send its request.) A
// lease_lost about another generation's lease says nothing of the one held: that cycle stays.
BOOST_FIXTURE_TEST_CASE(a_lease_told_gone_ends_its_cycle_and_the_next_grant_draws_a_new_one, store_fixture) {
    store_generation(1);
    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::granted));
    const std::string first = exec(raw, {"GET", lease_key}).text;
    const std::string first_cycle = first.substr(first.rfind('|') + 1);
    BOOST_REQUIRE(!first_cycle.empty());
    BOOST_TEST(s.mark_sent(the_account, "A", 2) == errc::lease_lost);  // not that generation
    BOOST_TEST(!s.renew(the_account, "A", 1));                         // still in its cycle

    expire_lease();
    BOOST_TEST((std::get<1>(s.acquire(the_account, "B", 1)).what == kind::granted));
    BOOST_TEST(s.mark_sent(the_account, "A", 1) == errc::lease_lost);
    BOOST_TEST(!s.release(the_account, "B"));
    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::granted));
    const std::string next = exec(raw, {"GET", lease_key}).text;
    BOOST_TEST(next.substr(next.rfind('|') + 1) != first_cycle);

    BOOST_TEST(
        exec(raw, {"FCALL", "apollo_oauth_v8_release", "2", rec_key, lease_key, "A", first_cycle}).text ==
        "ok");
    BOOST_TEST(exec(raw, {"GET", lease_key}).text == next);
    BOOST_TEST((std::get<1>(s.acquire(the_account, "B", 1)).what == kind::busy));
    BOOST_TEST(!s.mark_sent(the_account, "A", 1));
}

// A cycle whose mark-sent landed is kept after its lease was told lost (the holder may have spent
// the refresh token, and the mark keeps others off it; store_test's
// an_unanswered_acquire_after_a_lease_lost_past_its_sent_mark_leaves_the_mark), but only until the
// mark is moot: a commit through this store of a newer generation (a retry that finds its pair
// stored too: its first attempt moved the generation), or an acquire told newer. Then the next
// grant draws a cycle of its own, as after any lease told gone.
BOOST_FIXTURE_TEST_CASE(a_cycle_kept_for_its_sent_mark_ends_once_the_generation_moves, store_fixture) {
    const auto cycle_of_lease = [&] {
        const std::string lease = exec(raw, {"GET", lease_key}).text;
        return lease.substr(lease.rfind('|') + 1);
    };
    enum class moved { by_commit, by_a_retried_commit, by_another_host };
    for (const auto how : {moved::by_commit, moved::by_a_retried_commit, moved::by_another_host}) {
        BOOST_TEST_CONTEXT((how == moved::by_commit ? "a write-back commit through this store"
                            : how == moved::by_a_retried_commit
                                ? "a retried write-back finding its pair stored"
                                : "an acquire told newer")) {
            exec(raw, {"DEL", rec_key, lease_key});
            store_generation(1);
            BOOST_REQUIRE((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::granted));
            const std::string first_cycle = cycle_of_lease();
            BOOST_REQUIRE(!s.mark_sent(the_account, "A", 1));
            expire_lease();
            BOOST_REQUIRE(s.renew(the_account, "A", 1) == errc::lease_lost);
            // Written by another host: this store hears of it only through its next answer. (Or
            // this store's own write whose reply was lost, which a retry then finds stored.)
            sync_store other{make_redis_token_store(executor(), store_options(server))};
            if (how == moved::by_commit) {
                BOOST_REQUIRE(!s.commit(the_account, "", make_record(2), 1));
            } else if (how == moved::by_a_retried_commit) {
                BOOST_REQUIRE(!other.save(the_account, make_record(2), 1));
                BOOST_REQUIRE(!s.commit(the_account, "", make_record(2), 1));
            } else {
                BOOST_REQUIRE(!other.save(the_account, make_record(2), 1));
                BOOST_REQUIRE((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::newer));
            }
            BOOST_REQUIRE((std::get<1>(s.acquire(the_account, "A", 2)).what == kind::granted));
            BOOST_TEST(cycle_of_lease() != first_cycle);
            BOOST_REQUIRE(!s.release(the_account, "A"));
        }
    }
}

// But a retried write-back that finds its pair stored does not end a cycle kept for a mark on that
// very generation: the mark came after the first attempt, and the retry moved nothing past it. The
// next acquire asks in the same cycle (store_test's
// a_retried_write_back_that_finds_its_pair_stored_leaves_a_later_mark_on_it: what a fresh one
// risked).
BOOST_FIXTURE_TEST_CASE(a_retried_write_back_keeps_a_cycle_kept_for_a_mark_on_its_generation, store_fixture) {
    store_generation(1);
    BOOST_REQUIRE(!s.commit(the_account, "", make_record(2), 1));  // the first attempt
    BOOST_REQUIRE((std::get<1>(s.acquire(the_account, "A", 2)).what == kind::granted));
    const std::string lease = exec(raw, {"GET", lease_key}).text;
    BOOST_REQUIRE(!s.mark_sent(the_account, "A", 2));
    expire_lease();
    BOOST_REQUIRE(s.renew(the_account, "A", 2) == errc::lease_lost);
    BOOST_REQUIRE(!s.commit(the_account, "", make_record(2), 1));  // the retry: the same pair, stored
    BOOST_TEST(exec(raw, {"HGET", rec_key, "sent_by"}).text == "A");
    BOOST_REQUIRE((std::get<1>(s.acquire(the_account, "A", 2)).what == kind::granted));
    BOOST_TEST(exec(raw, {"GET", lease_key}).text == lease);
    BOOST_REQUIRE(!s.release(the_account, "A"));
}

// A renewal and a re-acquire of one cycle in flight together (the cache renews on a timer while it
// acquires again): Redis runs the renewal first, told lost (the lease ran out), then the acquire,
// granted. Whichever of their answers the store hears first, the lease is held: the lost renewal
// must not end the cycle the later acquire was granted in (its renewals would then be lease_lost,
// and the lease left to run out with nobody to give it back).
BOOST_FIXTURE_TEST_CASE(a_renewal_told_lost_before_a_re_acquire_granted_leaves_the_cycle_held,
                        store_fixture) {
    store_generation(1);
    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", 1)).what == kind::granted));
    expire_lease();
    std::promise<error_code> renewed;
    std::promise<std::pair<error_code, lease_outcome>> acquired;
    s.store->async_renew(the_account, "A", 1, ms(10'000), [&](error_code ec) { renewed.set_value(ec); });
    s.store->async_acquire(the_account, "A", 1, ms(10'000), [&](error_code ec, lease_outcome outcome) {
        acquired.set_value({ec, std::move(outcome)});
    });
    BOOST_TEST(renewed.get_future().get() == errc::lease_lost);
    const auto [ec, outcome] = acquired.get_future().get();
    BOOST_TEST(!ec);
    BOOST_TEST((outcome.what == kind::granted));
    BOOST_TEST(!s.renew(the_account, "A", 1));
    BOOST_TEST((std::get<1>(s.acquire(the_account, "B", 1)).what == kind::busy));
    BOOST_TEST(!s.release(the_account, "A"));
    BOOST_TEST((std::get<1>(s.acquire(the_account, "B", 1)).what == kind::granted));
}

// Generations are exact up to 2^53 - 1 (record_codec.hpp). The functions wrote them into the
// lease with Lua's `..`, which prints a number with %.14g: from 10^14 on the lease read
// "A|1e+14|cycle", which the owner pattern (digits) did not match, so the holder's second acquire
// was told busy by its own lease, and its mark-sent, renew and release found no lease of theirs.
BOOST_FIXTURE_TEST_CASE(generations_up_to_2_to_the_53_minus_1_name_their_lease_exactly, store_fixture) {
    for (const std::uint64_t gen : {std::uint64_t{100'000'000'000'000}, (std::uint64_t{1} << 53) - 1}) {
        BOOST_TEST_CONTEXT("generation " << gen) {
            exec(raw, {"DEL", rec_key, lease_key});
            BOOST_REQUIRE(!s.save(the_account, make_record(gen), 0));
            BOOST_TEST((std::get<1>(s.acquire(the_account, "A", gen)).what == kind::granted));
            const std::string lease = exec(raw, {"GET", lease_key}).text;
            BOOST_TEST(lease.starts_with("A|" + std::to_string(gen) + "|"));
            BOOST_TEST((std::get<1>(s.acquire(the_account, "A", gen)).what == kind::granted));  // its own
            BOOST_TEST((std::get<1>(s.acquire(the_account, "B", gen)).what == kind::busy));
            BOOST_TEST(!s.mark_sent(the_account, "A", gen));
            BOOST_TEST(exec(raw, {"HGET", rec_key, "f_gen"}).text == std::to_string(gen));
            BOOST_TEST(exec(raw, {"HGET", rec_key, "sent_gen"}).text == std::to_string(gen));
            BOOST_TEST(!s.renew(the_account, "A", gen));
            BOOST_TEST(!s.release(the_account, "A"));
            BOOST_TEST(exec(raw, {"EXISTS", lease_key}).integer == 0);
            BOOST_TEST((std::get<1>(s.acquire(the_account, "B", gen)).what == kind::granted));
            BOOST_TEST(!s.release(the_account, "B"));
        }
    }
    // A commit from 10^14 stores the next generation exactly.
    const std::uint64_t gen = 100'000'000'000'000;
    exec(raw, {"DEL", rec_key, lease_key});
    BOOST_REQUIRE(!s.save(the_account, make_record(gen), 0));
    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", gen)).what == kind::granted));
    BOOST_TEST(!s.mark_sent(the_account, "A", gen));
    BOOST_TEST(!s.commit(the_account, "A", make_record(gen + 1), gen));
    BOOST_TEST(exec(raw, {"HGET", rec_key, "gen"}).text == std::to_string(gen + 1));
    BOOST_TEST(exec(raw, {"EXISTS", lease_key}).integer == 0);
    const auto [ec, record] = load_current();
    BOOST_REQUIRE(record);
    BOOST_TEST(record->generation == gen + 1);
}

BOOST_FIXTURE_TEST_CASE(mark_reauthorization_only_when_the_generation_did_not_move, store_fixture) {
    BOOST_TEST(s.mark_reauth(the_account, 1) == errc::unknown_account);
    store_generation(2);
    BOOST_TEST(s.mark_reauth(the_account, 1) == errc::generation_conflict);  // someone has a newer pair
    BOOST_TEST(!s.mark_reauth(the_account, 2));
    auto [ec, record] = load_current();
    BOOST_REQUIRE(record);
    BOOST_TEST((record->state == record_state::reauthorization_required));
    BOOST_TEST((std::get<1>(s.acquire(the_account, "A", 2)).what == kind::reauthorization_required));
    // A new authorization (code exchange) clears it.
    BOOST_TEST(!s.save(the_account, make_record(3), 2));
    std::tie(ec, record) = load_current();
    BOOST_TEST((record->state == record_state::ok));
}

BOOST_FIXTURE_TEST_CASE(records_round_trip, store_fixture) {
    const auto [none_ec, none] = s.load(the_account);
    BOOST_TEST(!none_ec);
    BOOST_TEST(!none.has_value());
    stored_tokens r = make_record(1);
    r.tokens.scopes = {};
    BOOST_TEST(!s.save(the_account, r, 0));
    BOOST_TEST(s.save(the_account, make_record(1, "other"), 0) == errc::generation_conflict);
    const auto [ec, back] = load_current();
    BOOST_REQUIRE(back);
    BOOST_TEST(back->tokens.refresh_token == r.tokens.refresh_token);
    BOOST_TEST(back->tokens.token_type == "Bearer");
    BOOST_TEST(back->tokens.scopes.empty());
    BOOST_TEST((back->tokens.expires_at == r.tokens.expires_at));
    BOOST_TEST((back->tokens.created_at == r.tokens.created_at));
    BOOST_TEST(back->tokens.expires_in.count() == r.tokens.expires_in.count());
    // An account id with the hash tag's braces and binary bytes stays one account.
    const std::string odd("a}b{c\0d", 7);
    BOOST_TEST(!s.save(odd, make_record(1, "odd"), 0));
    const auto [odd_ec, odd_back] = s.load(odd);
    BOOST_REQUIRE(odd_back);
    BOOST_TEST(odd_back->tokens.access_token == make_record(1, "odd").tokens.access_token);
}

BOOST_AUTO_TEST_SUITE_END()
