// The coordination half of the token_store contract (leases, commit, reauthorization, waiting for
// a change) on the memory and file stores, the lease rules also on token_store's defaults (a store
// that implements only load and save), and the file store's lease across processes.
#include "child_process.hpp"
#include "load_save_store.hpp"
#include "store/posix_file.hpp"
#include "store/record_files.hpp"
#include "store_test_support.hpp"

#include <apollo_oauth/token_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/mpl/list.hpp>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace apollo_oauth::store_test {
namespace {

using namespace std::chrono_literals;

// peer(): what another cache sharing `first` uses. The memory store itself (one process); for the
// file store, another store object on the same directory, with descriptors of its own, as another
// process would have.
struct memory_store {
    std::shared_ptr<token_store> make(boost::asio::io_context& ioc) {
        return make_memory_token_store(ioc.get_executor());
    }
    std::shared_ptr<token_store> peer(boost::asio::io_context&, const std::shared_ptr<token_store>& first) {
        return first;
    }
};
struct file_store {
    temp_dir dir;
    std::shared_ptr<token_store> make(boost::asio::io_context& ioc) {
        return make_file_token_store(ioc.get_executor(), dir.path() / "tokens");
    }
    std::shared_ptr<token_store> peer(boost::asio::io_context& ioc, const std::shared_ptr<token_store>&) {
        return make(ioc);
    }
};
// A custom store that implements only async_load and async_save: token_store's default
// coordination, whose leases exclude the caches sharing the store object (peer(): that object).
struct load_save_kind {
    std::shared_ptr<token_store> make(boost::asio::io_context& ioc) {
        return std::make_shared<test::load_save_store>(ioc.get_executor());
    }
    std::shared_ptr<token_store> peer(boost::asio::io_context&, const std::shared_ptr<token_store>& first) {
        return first;
    }
};
using store_kinds = boost::mpl::list<memory_store, file_store>;
// The lease rules hold on the defaults too (what they do not persist, a reauthorization, is not).
using lease_kinds = boost::mpl::list<memory_store, file_store, load_save_kind>;

template <class Kind>
struct fixture {
    Kind kind;
    boost::asio::io_context ioc;
    std::shared_ptr<token_store> store = kind.make(ioc);

    lease_outcome acquire(const std::string& holder, std::uint64_t known,
                          std::chrono::milliseconds ttl = 30s) {
        return acquire_on(*store, holder, known, ttl);
    }
    lease_outcome acquire_on(token_store& s, const std::string& holder, std::uint64_t known,
                             std::chrono::milliseconds ttl = 30s) {
        lease_outcome out;
        error_code result = boost::asio::error::would_block;
        s.async_acquire("acct", holder, known, ttl, [&](error_code ec, lease_outcome o) {
            result = ec;
            out = std::move(o);
        });
        run();
        BOOST_TEST(!result);
        return out;
    }
    // Asks until the lease is not busy: for a lease whose time bound is what is waited for.
    lease_outcome acquire_once_lapsed(token_store& s, const std::string& holder, std::uint64_t known) {
        auto out = acquire_on(s, holder, known);
        for (int i = 0; i < 5000 && out.what == lease_outcome::kind::busy; ++i) {
            std::this_thread::sleep_for(1ms);  // the lease's time bound is what is waited for
            out = acquire_on(s, holder, known);
        }
        return out;
    }
    error_code mark_sent(const std::string& holder, std::uint64_t generation,
                         std::chrono::milliseconds ttl = 30s) {
        return mark_sent_on(*store, holder, generation, ttl);
    }
    error_code mark_sent_on(token_store& s, const std::string& holder, std::uint64_t generation,
                            std::chrono::milliseconds ttl) {
        error_code result = boost::asio::error::would_block;
        s.async_mark_sent("acct", holder, generation, ttl, [&](error_code ec) { result = ec; });
        run();
        return result;
    }
    error_code commit(const std::string& holder, const stored_tokens& r, std::uint64_t expected) {
        error_code result = boost::asio::error::would_block;
        store->async_commit("acct", holder, r, expected, [&](error_code ec) { result = ec; });
        run();
        return result;
    }
    error_code mark_reauthorization(std::uint64_t generation) {
        error_code result = boost::asio::error::would_block;
        store->async_mark_reauthorization("acct", generation, [&](error_code ec) { result = ec; });
        run();
        return result;
    }
    void release(const std::string& holder) { release_on(*store, holder); }
    void release_on(token_store& s, const std::string& holder) {
        s.async_release("acct", holder, [](error_code) {});
        run();
    }
    void run() {
        ioc.restart();
        ioc.run();
    }
    // Waits on `s` with `max_wait`, doing `meanwhile()` once the wait has begun: what the wait
    // completed with, and how long it took.
    struct timed_wait {
        std::optional<stored_tokens> record;
        std::chrono::steady_clock::duration took{};
    };
    template <class Meanwhile>
    timed_wait wait_on(token_store& s, std::uint64_t known, std::chrono::milliseconds max_wait,
                       Meanwhile meanwhile) {
        timed_wait out;
        bool done = false;
        const auto start = std::chrono::steady_clock::now();
        s.async_wait_for_change("acct", known, max_wait, [&](error_code ec, std::optional<stored_tokens> r) {
            BOOST_TEST(!ec);
            out.record = std::move(r);
            out.took = std::chrono::steady_clock::now() - start;
            done = true;
        });
        meanwhile();
        run();
        BOOST_TEST(done);
        return out;
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(store_leases)

BOOST_AUTO_TEST_CASE_TEMPLATE(one_holder_at_a_time_and_a_commit_frees_the_lease, Kind, lease_kinds) {
    fixture<Kind> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    auto a = f.acquire("a", 1);
    BOOST_TEST((a.what == lease_outcome::kind::granted));
    BOOST_REQUIRE(a.record.has_value());
    BOOST_TEST(a.record->generation == 1u);  // the stored record: its refresh token is the one to send
    auto b = f.acquire("b", 1);
    BOOST_TEST((b.what == lease_outcome::kind::busy));
    BOOST_TEST(b.time_left.count() > 0);
    BOOST_TEST((f.acquire("a", 1).what == lease_outcome::kind::granted));  // the holder again: renewed
    BOOST_TEST(f.mark_sent("b", 1) == errc::lease_lost);                   // not the holder: send nothing
    BOOST_TEST(!f.mark_sent("a", 1));
    BOOST_TEST(!f.commit("a", make_record(2, "second"), 1));
    // The waiter asks again: the new generation is handed back, not the lease.
    b = f.acquire("b", 1);
    BOOST_TEST((b.what == lease_outcome::kind::newer));
    BOOST_TEST(b.record->generation == 2u);
    BOOST_TEST((f.acquire("b", 2).what == lease_outcome::kind::granted));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_commit_is_compare_and_set_and_idempotent, Kind, lease_kinds) {
    fixture<Kind> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    f.acquire("a", 1);
    const auto second = make_record(2, "second");
    BOOST_TEST(!f.commit("a", second, 1));
    BOOST_TEST(!f.commit("a", second, 1));  // a retry after an unknown outcome finds its own record
    BOOST_TEST(f.commit("a", make_record(2, "other"), 1) == errc::generation_conflict);
    auto loaded = load(*f.store, f.ioc, "acct");
    check_same(*loaded.record, second);
}

// The cache writes back a pair whose first write failed naming no holder: a refresh cycle of its
// own may hold the lease by then, its request on the wire, and a retry that finds its record
// already stored must not clear that lease. (A write that moves the generation ends every lease
// on the older one: a_lease_on_a_generation_a_write_moved_past_is_spent.)
BOOST_AUTO_TEST_CASE_TEMPLATE(a_retried_commit_naming_no_holder_leaves_the_holders_lease, Kind, lease_kinds) {
    fixture<Kind> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    const auto second = make_record(2, "second");
    BOOST_TEST(!f.commit("", second, 1));
    BOOST_TEST((f.acquire("a", 2).what == lease_outcome::kind::granted));
    BOOST_TEST(!f.commit("", second, 1));  // the same write again: its first reply was lost
    BOOST_TEST((f.acquire("b", 2).what == lease_outcome::kind::busy));
    BOOST_TEST(!f.mark_sent("a", 2));
}

// A holder that asks again for the lease it holds, after marking its request sent, stays marked:
// whoever is granted the lease after it lapses must be told the token may be spent.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_holder_asking_again_keeps_its_sent_mark, Kind, lease_kinds) {
    fixture<Kind> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    BOOST_REQUIRE((f.acquire("a", 1).what == lease_outcome::kind::granted));
    BOOST_REQUIRE(!f.mark_sent("a", 1));
    BOOST_REQUIRE((f.acquire("a", 1, 1ms).what == lease_outcome::kind::granted));
    auto b = f.acquire("b", 1);
    for (int i = 0; i < 1000 && b.what == lease_outcome::kind::busy; ++i) {
        std::this_thread::sleep_for(1ms);  // the lease's time bound is what is waited for
        b = f.acquire("b", 1);
    }
    BOOST_TEST_REQUIRE((b.what == lease_outcome::kind::granted));
    BOOST_TEST(b.previous_holder_sent);
}

// A commit retried after an unknown outcome (its first attempt landed, the reply was lost) ends
// its holder's lease as the first attempt did: kept, it would keep every other process busy.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_retried_commit_that_finds_its_record_ends_the_holders_lease, Kind,
                              lease_kinds) {
    fixture<Kind> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    BOOST_REQUIRE((f.acquire("a", 1).what == lease_outcome::kind::granted));
    const auto second = make_record(2, "second");
    BOOST_TEST(!f.commit("a", second, 1));
    BOOST_TEST((f.acquire("a", 2).what == lease_outcome::kind::granted));
    BOOST_TEST(!f.commit("a", second, 1));  // the retry finds its record: success, lease ended
    BOOST_TEST((f.acquire("b", 2).what == lease_outcome::kind::granted));
}

// A write moves the stored generation past a held lease's (a write-back, a new authorization):
// that lease's refresh token is no longer the stored one. Its holder can no longer mark a request
// sent, and it keeps nobody else waiting.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_lease_on_a_generation_a_write_moved_past_is_spent, Kind, lease_kinds) {
    fixture<Kind> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    BOOST_REQUIRE((f.acquire("a", 1).what == lease_outcome::kind::granted));
    BOOST_TEST(!f.commit("", make_record(2, "second"), 1));
    BOOST_TEST(f.mark_sent("a", 1) == errc::lease_lost);
    BOOST_TEST((f.acquire("b", 2).what == lease_outcome::kind::granted));
}

// The holder of such a lease asks again: granted on the stored generation, it can mark that one
// sent (the file store kept the old generation for its own holder's lease).
BOOST_AUTO_TEST_CASE_TEMPLATE(a_holder_granted_again_after_a_write_moved_the_generation_marks_sent, Kind,
                              lease_kinds) {
    fixture<Kind> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    BOOST_REQUIRE((f.acquire("a", 1).what == lease_outcome::kind::granted));
    BOOST_TEST(!f.commit("", make_record(2, "second"), 1));
    BOOST_TEST((f.acquire("a", 2).what == lease_outcome::kind::granted));
    BOOST_TEST(!f.mark_sent("a", 2));
}

// Scenario: S marks its request for generation 1 sent (the server may have rotated, the answer
// sitting in S's socket) and is frozen past its lease; C1 takes the lapsed lease over and is told;
// then C1 gives the lease back (its cache restarted) without a commit. C2, granted next, must be
// told too: S may still commit, and R1 may be spent. It was not (the mark lived in S's lease only):
// C2 sent R1 at once, which a revoke-on-reuse server answers by revoking the grant.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_silent_senders_mark_outlives_a_successor_that_gives_the_lease_back, Kind,
                              lease_kinds) {
    fixture<Kind> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    const auto& s = f.store;
    const auto c1 = f.kind.peer(f.ioc, s);
    const auto c2 = f.kind.peer(f.ioc, s);
    BOOST_REQUIRE((f.acquire_on(*s, "S", 1, 100ms).what == lease_outcome::kind::granted));
    BOOST_REQUIRE(!f.mark_sent_on(*s, "S", 1, 100ms));
    const auto taken_over = f.acquire_once_lapsed(*c1, "C1", 1);
    BOOST_TEST_REQUIRE((taken_over.what == lease_outcome::kind::granted));
    BOOST_TEST(taken_over.previous_holder_sent);
    // C1 asking again, while it holds the lease, is still told (as by the Redis store).
    BOOST_TEST(f.acquire_on(*c1, "C1", 1).previous_holder_sent);
    // S, cut off, gives back a lease it no longer holds: that changes nothing.
    f.release_on(*s, "S");
    f.release_on(*c1, "C1");
    const auto next = f.acquire_on(*c2, "C2", 1);
    BOOST_TEST_REQUIRE((next.what == lease_outcome::kind::granted));
    BOOST_TEST(next.previous_holder_sent);
    // A commit moves the generation: the mark was about R1, and goes.
    BOOST_TEST(!f.commit("C2", make_record(2, "second"), 1));
    const auto after = f.acquire_on(*c1, "C1", 2);
    BOOST_TEST_REQUIRE((after.what == lease_outcome::kind::granted));
    BOOST_TEST(!after.previous_holder_sent);
}

// The same, C1's process dying instead (its store destroyed: the kernel drops its flock), with
// the lease it took over from S still live.
BOOST_AUTO_TEST_CASE(a_silent_senders_mark_outlives_a_successor_that_dies) {
    fixture<file_store> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    auto c1 = f.kind.peer(f.ioc, f.store);
    const auto c2 = f.kind.peer(f.ioc, f.store);
    BOOST_REQUIRE((f.acquire_on(*f.store, "S", 1, 100ms).what == lease_outcome::kind::granted));
    BOOST_REQUIRE(!f.mark_sent_on(*f.store, "S", 1, 100ms));
    const auto taken_over = f.acquire_once_lapsed(*c1, "C1", 1);
    BOOST_TEST_REQUIRE((taken_over.what == lease_outcome::kind::granted));
    BOOST_TEST(taken_over.previous_holder_sent);
    BOOST_TEST((f.acquire_on(*c2, "C2", 1).what == lease_outcome::kind::busy));  // C1's, for 30 s
    c1.reset();
    const auto next = f.acquire_on(*c2, "C2", 1);
    BOOST_TEST_REQUIRE((next.what == lease_outcome::kind::granted));
    BOOST_TEST(next.previous_holder_sent);
}

// A rolling upgrade: processes of the previous version share the directory. Their lease (no
// sent_by / sent_gen lines) marked sent is read as its holder's own mark; and a lease written now
// keeps the four lines they read, with phase=sent whenever it carries a mark for its generation
// (whoever set it), so that one of them granted the lease next is told previous_holder_sent too.
BOOST_AUTO_TEST_CASE(file_leases_are_read_by_and_from_the_previous_version) {
    fixture<file_store> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    const auto lease = f.kind.dir.path() / "tokens" / (store::account_key("acct") + ".lease");
    write_file(lease, "holder=old\ngeneration=1\ndeadline_ns=0\nphase=sent\npad=  \n");  // no flock: dead
    const auto out = f.acquire("new", 1);
    BOOST_TEST_REQUIRE((out.what == lease_outcome::kind::granted));
    BOOST_TEST(out.previous_holder_sent);
    const std::string text = read_file(lease);
    BOOST_TEST(text.starts_with("holder=new\ngeneration=1\ndeadline_ns="));
    BOOST_TEST(text.find("\nphase=sent\nsent_by=old\nsent_gen=1\npad=") != std::string::npos);
    // Given back by a holder that did not set the mark, the file still says so.
    f.release("new");
    BOOST_TEST(read_file(lease).find("\nphase=sent\nsent_by=old\nsent_gen=1\npad=") != std::string::npos);
}

// The sender's own release ends its mark (the Redis store's rule): a holder gives its lease back
// only with no rotated pair left to commit, so nobody would come to commit, and the next holder
// would hold the lease for backoff_max for nothing. Its mark also survives its own acquire again.
BOOST_AUTO_TEST_CASE_TEMPLATE(the_senders_own_release_ends_its_mark, Kind, lease_kinds) {
    fixture<Kind> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    const auto other = f.kind.peer(f.ioc, f.store);
    BOOST_REQUIRE((f.acquire("S", 1).what == lease_outcome::kind::granted));
    BOOST_REQUIRE(!f.mark_sent("S", 1));
    const auto again = f.acquire("S", 1);
    BOOST_TEST_REQUIRE((again.what == lease_outcome::kind::granted));
    BOOST_TEST(!again.previous_holder_sent);  // its own mark: nobody else to wait for
    f.release("S");
    const auto next = f.acquire_on(*other, "C", 1);
    BOOST_TEST_REQUIRE((next.what == lease_outcome::kind::granted));
    BOOST_TEST(!next.previous_holder_sent);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_lapsed_lease_is_taken_over, Kind, lease_kinds) {
    fixture<Kind> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    f.acquire("a", 1, 1ms);
    auto b = f.acquire("b", 1);
    for (int i = 0; i < 1000 && b.what == lease_outcome::kind::busy; ++i) {
        std::this_thread::sleep_for(1ms);  // the lease's time bound is what is waited for
        b = f.acquire("b", 1);
    }
    BOOST_TEST((b.what == lease_outcome::kind::granted));
    BOOST_TEST(f.mark_sent("a", 1) == errc::lease_lost);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(reauthorization_is_recorded_for_its_generation_only, Kind, store_kinds) {
    fixture<Kind> f;
    BOOST_TEST(f.mark_reauthorization(1) == errc::unknown_account);
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(2, "second"), 1));
    BOOST_TEST(f.mark_reauthorization(1) == errc::generation_conflict);  // someone has a newer pair
    BOOST_TEST(!f.mark_reauthorization(2));
    auto loaded = load(*f.store, f.ioc, "acct");
    BOOST_TEST((loaded.record->state == record_state::reauthorization_required));
    BOOST_TEST(loaded.record->generation == 2u);
    BOOST_TEST((f.acquire("x", 2).what == lease_outcome::kind::reauthorization_required));
    // A new authorization clears it.
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(3, "again"), 2));
    loaded = load(*f.store, f.ioc, "acct");
    BOOST_TEST((loaded.record->state == record_state::ok));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(wait_for_change_sees_a_commit_or_times_out, Kind, lease_kinds) {
    fixture<Kind> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    f.acquire("a", 1);
    std::optional<stored_tokens> seen;
    bool done = false;
    f.store->async_wait_for_change("acct", 1, 10s, [&](error_code ec, std::optional<stored_tokens> r) {
        BOOST_TEST(!ec);
        seen = std::move(r);
        done = true;
    });
    BOOST_TEST(!done);
    BOOST_TEST(!f.commit("a", make_record(2, "second"), 1));  // runs until the wait has seen it
    f.run();
    BOOST_TEST(done);
    BOOST_REQUIRE(seen.has_value());
    BOOST_TEST(seen->generation == 2u);
    done = false;
    // Held by another, so that only the time ends the wait (a free lease would end it at once).
    BOOST_REQUIRE((f.acquire("b", 2).what == lease_outcome::kind::granted));
    f.store->async_wait_for_change("acct", 2, 1ms, [&](error_code ec, std::optional<stored_tokens> r) {
        BOOST_TEST(!ec);
        BOOST_TEST(!r.has_value());
        done = true;
    });
    f.run();
    BOOST_TEST(done);
}

// A holder that gives its lease back without a commit (its refresh failed with a known outcome)
// wakes the caches waiting for it at once: they ask again instead of waiting out the lease's time.
// The release and the commit behind it are both made before the io_context runs: a wait woken by
// the release completes with nothing, one the release did not wake sees the commit's record.
BOOST_AUTO_TEST_CASE(a_memory_store_wait_ends_when_the_holder_gives_the_lease_back) {
    fixture<memory_store> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    BOOST_REQUIRE((f.acquire("a", 1).what == lease_outcome::kind::granted));
    BOOST_REQUIRE((f.acquire("b", 1).what == lease_outcome::kind::busy));
    const auto wait_release_then_commit = [&](const std::string& releasing, std::uint64_t generation) {
        std::optional<std::optional<stored_tokens>> seen;
        f.store->async_wait_for_change("acct", generation, 10s,
                                       [&](error_code ec, std::optional<stored_tokens> r) {
                                           BOOST_TEST(!ec);
                                           seen = std::move(r);
                                       });
        error_code committed = boost::asio::error::would_block;
        f.store->async_release("acct", releasing, [](error_code) {});
        f.store->async_commit("acct", "b", make_record(generation + 1, "next"), generation,
                              [&](error_code ec) { committed = ec; });
        f.run();
        BOOST_TEST(!committed);
        BOOST_REQUIRE(seen.has_value());
        return *seen;
    };
    // Not the holder: nothing was given back, so only the commit ends the wait.
    const auto after_a_stranger_released = wait_release_then_commit("b", 1);
    BOOST_REQUIRE(after_a_stranger_released.has_value());
    BOOST_TEST(after_a_stranger_released->generation == 2u);
    BOOST_REQUIRE((f.acquire("a", 2).what == lease_outcome::kind::granted));
    BOOST_TEST(!wait_release_then_commit("a", 2).has_value());
}

// A lease given back between a cache's busy acquire and its wait (the release's wake-up went by
// before the wait began) ends the wait at once: it used to last until the lease would have run
// out. The commit made before the io_context runs tells: a wait that stayed sees its record.
BOOST_AUTO_TEST_CASE(a_memory_store_wait_that_begins_on_a_free_lease_ends_at_once) {
    fixture<memory_store> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    BOOST_REQUIRE((f.acquire("a", 1).what == lease_outcome::kind::granted));
    BOOST_REQUIRE((f.acquire("b", 1).what == lease_outcome::kind::busy));
    f.store->async_release("acct", "a", [](error_code) {});
    std::optional<std::optional<stored_tokens>> seen;
    f.store->async_wait_for_change("acct", 1, 10s, [&](error_code ec, std::optional<stored_tokens> r) {
        BOOST_TEST(!ec);
        seen = std::move(r);
    });
    error_code committed = boost::asio::error::would_block;
    f.store->async_commit("acct", "c", make_record(2, "second"), 1, [&](error_code ec) { committed = ec; });
    f.run();
    BOOST_TEST(!committed);
    BOOST_REQUIRE(seen.has_value());
    BOOST_TEST(!seen->has_value());
}

// The file store's waiter reads the lease as well as the record: a holder that gives the lease back,
// or dies (the kernel drops its flock), ends another process's wait within a poll (50 to 150 ms),
// not when the lease would have run out. The waiter used to poll the record alone: its wait (the
// cache's max_wait is the lease's time left, up to lease_ttl) lasted until max_wait.
BOOST_AUTO_TEST_CASE(a_file_store_wait_ends_when_the_holder_gives_the_lease_back_or_dies) {
    fixture<file_store> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    auto holder = f.kind.peer(f.ioc, f.store);  // as another process
    BOOST_REQUIRE((f.acquire_on(*holder, "A", 1, 60s).what == lease_outcome::kind::granted));
    BOOST_REQUIRE((f.acquire("B", 1).what == lease_outcome::kind::busy));
    // Held: the wait lasts until max_wait (time is what is tested here).
    const auto held = f.wait_on(*f.store, 1, 300ms, [] {});
    BOOST_TEST(!held.record.has_value());
    BOOST_TEST(held.took >= 300ms);
    // Given back: a guard far below max_wait.
    const auto released =
        f.wait_on(*f.store, 1, 4s, [&] { holder->async_release("acct", "A", [](error_code) {}); });
    BOOST_TEST(!released.record.has_value());
    BOOST_TEST(released.took < 2s);
    BOOST_REQUIRE((f.acquire_on(*holder, "A", 1, 60s).what == lease_outcome::kind::granted));
    BOOST_REQUIRE((f.acquire("B", 1).what == lease_outcome::kind::busy));
    // Its process gone (the store destroyed: its descriptors closed, as the kernel does for a dead one).
    const auto died = f.wait_on(*f.store, 1, 4s, [&] { holder.reset(); });
    BOOST_TEST(!died.record.has_value());
    BOOST_TEST(died.took < 2s);
    BOOST_TEST((f.acquire("B", 1).what == lease_outcome::kind::granted));  // free, as the wait said
}

// A waiter on the store object that holds the lease may be that holder, waiting for a silent
// sender's commit before it sends the token itself: only that commit, or max_wait, may end its
// wait, even once its own lease has lapsed (which makes the lease free to any other process).
BOOST_AUTO_TEST_CASE(a_file_store_wait_on_the_store_holding_the_lease_ends_only_at_a_commit_or_max_wait) {
    fixture<file_store> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    BOOST_REQUIRE((f.acquire("B", 1, 50ms).what == lease_outcome::kind::granted));
    // Lapsed 50 ms into the wait: the rest of it is what is tested (time itself).
    const auto lapsed = f.wait_on(*f.store, 1, 400ms, [] {});
    BOOST_TEST(!lapsed.record.has_value());
    BOOST_TEST(lapsed.took >= 400ms);
    const auto other = f.kind.peer(f.ioc, f.store);
    const auto committed = f.wait_on(*f.store, 1, 4s, [&] {
        other->async_commit("acct", "", make_record(2, "second"), 1, [](error_code ec) { BOOST_TEST(!ec); });
    });
    BOOST_REQUIRE(committed.record.has_value());
    BOOST_TEST(committed.record->generation == 2u);
    BOOST_TEST(committed.took < 2s);
}

// The file store's lease across processes. Every run restarts the io_context: the previous run
// left it stopped, and io_context::run on a stopped context returns at once without running the
// handler (which is how this test once "saw" a grant that the store never made).
struct cross_process {
    temp_dir dir;
    boost::asio::io_context ioc;
    std::filesystem::path tokens = dir.path() / "tokens";
    std::shared_ptr<token_store> store = make_file_token_store(ioc.get_executor(), tokens);

    std::vector<std::string> holder_argv(const std::string& holder, const std::string& ttl_ms = {}) const {
        std::vector<std::string> argv{TOKEN_STORE_WRITER, "--hold-lease", tokens.string(), "acct", holder};
        if (!ttl_ms.empty()) {
            argv.push_back(ttl_ms);
        }
        return argv;
    }
    lease_outcome acquire(token_store& s, const std::string& holder, std::uint64_t known_generation = 1) {
        lease_outcome out;
        error_code result = boost::asio::error::would_block;
        s.async_acquire("acct", holder, known_generation, 30s, [&](error_code ec, lease_outcome o) {
            result = ec;
            out = std::move(o);
        });
        ioc.restart();
        ioc.run();
        BOOST_TEST(!result);  // would_block: the handler never ran
        return out;
    }
    void release(const std::string& holder) {
        store->async_release("acct", holder, [](error_code) {});
        ioc.restart();
        ioc.run();
    }
};

BOOST_AUTO_TEST_CASE(a_dead_holders_file_lease_is_free_at_once_and_says_it_had_sent) {
    cross_process f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    child_process holder(f.holder_argv("child"));
    BOOST_REQUIRE(holder.read_line() == std::optional<std::string>("held"));  // its lease is written
    auto out = f.acquire(*f.store, "parent");
    BOOST_TEST(static_cast<int>(out.what) ==
               static_cast<int>(lease_outcome::kind::busy));  // alive, within its ten minutes
    BOOST_TEST(out.time_left > 60s);
    holder.kill();
    holder.wait();
    out = f.acquire(*f.store, "parent");
    BOOST_TEST((out.what == lease_outcome::kind::granted));  // the kernel dropped its flock
    BOOST_TEST(out.previous_holder_sent);                    // the refresh token may be spent
}

// A holder alive but past its time bound is replaced by a lease file renamed over its own. Its
// flock stays on the old inode; the replacement must be the one that excludes everyone else.
BOOST_AUTO_TEST_CASE(a_lapsed_file_lease_of_a_live_process_is_replaced_and_the_replacement_excludes) {
    cross_process f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    child_process holder(f.holder_argv("child", "1"));
    BOOST_REQUIRE(holder.read_line() == std::optional<std::string>("held"));
    auto out = f.acquire(*f.store, "parent");
    for (int i = 0; i < 1000 && out.what == lease_outcome::kind::busy; ++i) {
        std::this_thread::sleep_for(1ms);  // the lease's time bound is what is waited for
        out = f.acquire(*f.store, "parent");
    }
    BOOST_REQUIRE((out.what == lease_outcome::kind::granted));  // the child lives, but has lapsed
    BOOST_TEST(out.previous_holder_sent);
    // Another store (its own descriptors, as another process would have) finds the parent's lease
    // held, while the child still holds its flock on the replaced file and after it has died.
    auto other = make_file_token_store(f.ioc.get_executor(), f.tokens);
    out = f.acquire(*other, "third");
    BOOST_TEST(static_cast<int>(out.what) == static_cast<int>(lease_outcome::kind::busy));
    holder.kill();
    holder.wait();
    out = f.acquire(*other, "third");
    BOOST_TEST(static_cast<int>(out.what) == static_cast<int>(lease_outcome::kind::busy));
    f.release("parent");
    out = f.acquire(*other, "third");
    BOOST_TEST((out.what == lease_outcome::kind::granted));
    // The parent sent nothing, but the child did, and never committed: its mark outlives the
    // parent's lease, given back (only the sender's own release ends it).
    BOOST_TEST(out.previous_holder_sent);
}

// A live process's lease on a generation that a write has since moved past (a write-back naming
// no holder, a new authorization) holds a refresh token that is no longer the stored one: it keeps
// nobody waiting, though its process lives and holds its flock. Its "sent" mark was for that spent
// token, so the new holder is not told to wait for it.
// Under a strict umask too: the replacement lease file is made 0600, or the next process to open it
// for writing (not root) would be refused.
BOOST_AUTO_TEST_CASE(a_live_processs_lease_on_a_generation_a_write_moved_past_is_taken_over) {
    cross_process f;
    const umask_guard strict_umask(0377);
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    child_process holder(f.holder_argv("child"));  // ten minutes, marked sent, on generation 1
    BOOST_REQUIRE(holder.read_line() == std::optional<std::string>("held"));
    BOOST_REQUIRE(static_cast<int>(f.acquire(*f.store, "parent").what) ==
                  static_cast<int>(lease_outcome::kind::busy));
    error_code committed = boost::asio::error::would_block;
    f.store->async_commit("acct", "", make_record(2, "second"), 1, [&](error_code ec) { committed = ec; });
    f.ioc.restart();
    f.ioc.run();
    BOOST_REQUIRE(!committed);
    auto out = f.acquire(*f.store, "parent", 2);
    BOOST_TEST((out.what == lease_outcome::kind::granted));
    BOOST_TEST(!out.previous_holder_sent);
    BOOST_TEST(mode_of(f.tokens / (store::account_key("acct") + ".lease")) == 0600u);
    // The replacement excludes as any lease does: another store (as another process) waits for it.
    auto other = make_file_token_store(f.ioc.get_executor(), f.tokens);
    out = f.acquire(*other, "third", 2);
    BOOST_TEST(static_cast<int>(out.what) == static_cast<int>(lease_outcome::kind::busy));
}

// A process that fork()s without exec (a pre-fork server's workers, daemon(), a sandbox helper)
// while it holds a lease gives the child the lease file's open file description, and with it the
// flock, for as long as the child lives. This child shares every descriptor of the test's process
// at the fork, does `in_child` (then the constructor returns), and blocks reading a pipe until the
// test closes it.
class forked_child {
public:
    explicit forked_child(const std::function<void()>& in_child = {}) {
        int fds[2];
        int ready[2];
        BOOST_REQUIRE(::pipe(fds) == 0);
        BOOST_REQUIRE(::pipe(ready) == 0);
        pid_ = ::fork();
        BOOST_REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::close(fds[1]);
            ::close(ready[0]);
            if (in_child) {
                in_child();
            }
            char c = 0;
            (void)!::write(ready[1], &c, 1);
            while (::read(fds[0], &c, 1) < 0 && errno == EINTR) {
            }
            ::_exit(0);
        }
        ::close(fds[0]);
        ::close(ready[1]);
        release_ = fds[1];
        char c = 0;
        ssize_t n = -1;
        while ((n = ::read(ready[0], &c, 1)) < 0 && errno == EINTR) {
        }
        ::close(ready[0]);
        BOOST_REQUIRE(n == 1);
    }
    ~forked_child() {
        ::close(release_);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
    forked_child(const forked_child&) = delete;
    forked_child& operator=(const forked_child&) = delete;

private:
    pid_t pid_ = -1;
    int release_ = -1;
};

// What another process is answered when it asks for the lease once (token_store_writer --acquire).
std::string acquire_in_another_process(const cross_process& f, std::uint64_t known) {
    child_process other(
        {TOKEN_STORE_WRITER, "--acquire", f.tokens.string(), "acct", "other", std::to_string(known)});
    const auto line = other.read_line();
    BOOST_TEST(other.wait() == 0);
    return line.value_or("(no answer)");
}

// Whether anyone holds an flock on `p` (another open file description: this process too).
bool lock_is_free(const std::filesystem::path& p) {
    const store::unique_fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
    BOOST_REQUIRE(fd);
    return ::flock(fd.get(), LOCK_EX | LOCK_NB) == 0;
}

// The commit emptied the lease file, and the child's flock kept it locked: every acquire from any
// process then found it held and unreadable, busy for ever, and the account was never refreshed
// again while the child lived. The commit leaves a lease that has run out: taken over by rename.
BOOST_AUTO_TEST_CASE(a_lease_committed_while_a_forked_child_keeps_its_flock_is_free_to_other_processes) {
    cross_process f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    BOOST_REQUIRE((f.acquire(*f.store, "parent").what == lease_outcome::kind::granted));
    const forked_child child;
    error_code committed = boost::asio::error::would_block;
    f.store->async_commit("acct", "parent", make_record(2, "second"), 1,
                          [&](error_code ec) { committed = ec; });
    f.ioc.restart();
    f.ioc.run();
    BOOST_REQUIRE(!committed);
    // Given back explicitly: the child shares the descriptor, not the lock.
    BOOST_TEST(lock_is_free(f.tokens / (store::account_key("acct") + ".lease")));
    BOOST_TEST(acquire_in_another_process(f, 2) == "granted");
    // Taken over by a new lease file: it excludes as any lease does (this process, as another).
    BOOST_TEST((f.acquire(*f.store, "parent", 2).what == lease_outcome::kind::granted));  // the writer exited
    BOOST_TEST(acquire_in_another_process(f, 2) == "busy");
}

// The same for a lease given back: it was left live for the rest of its ttl (30 s here).
BOOST_AUTO_TEST_CASE(a_lease_given_back_while_a_forked_child_keeps_its_flock_is_free_to_other_processes) {
    cross_process f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    BOOST_REQUIRE((f.acquire(*f.store, "parent").what == lease_outcome::kind::granted));
    const forked_child child;
    f.release("parent");
    BOOST_TEST(lock_is_free(f.tokens / (store::account_key("acct") + ".lease")));
    BOOST_TEST(acquire_in_another_process(f, 1) == "granted");
}

// The account's <key>.lock is held for the length of one store call, on the store's thread: a
// thread that forks meanwhile gave the child its descriptor, and the child kept the lock after the
// call, so that every later call of every process on the account failed with store_failure (after
// waiting 2 s for it) while the child lived. The store's locks are given back explicitly, and only
// by the process that took them: a forked child that destroys its copy leaves its parent's alone.
BOOST_AUTO_TEST_CASE(a_lock_given_back_is_free_though_a_forked_child_shares_its_descriptor) {
    temp_dir dir;
    const auto path = dir.path() / (store::account_key("acct") + ".lock");
    write_file(path, "");
    std::optional<store::flocked_fd> lock(std::in_place,
                                          store::unique_fd(::open(path.c_str(), O_RDWR | O_CLOEXEC)));
    BOOST_REQUIRE(store::try_lock_exclusive(lock->get()));
    const forked_child sharer;                            // keeps its copy of the descriptor
    const forked_child destroyer([&] { lock.reset(); });  // its copy destroyed in the child
    BOOST_TEST(!lock_is_free(path));                      // still the parent's
    lock.reset();
    BOOST_TEST(lock_is_free(path));
}

// Takes `lease`'s flock and forks `child` holding it, then closes this process's descriptor: the
// child alone keeps the flock, as a child forked without exec while its parent held the lease.
void leave_its_flock_to_a_forked_child(const std::filesystem::path& lease,
                                       std::optional<forked_child>& child) {
    const int fd = ::open(lease.c_str(), O_RDWR | O_CLOEXEC);
    BOOST_REQUIRE(fd >= 0);
    BOOST_REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
    child.emplace();
    ::close(fd);
}

void written_a_minute_ago(const std::filesystem::path& file) {
    const timespec a_minute_ago[2] = {{::time(nullptr) - 60, 0}, {::time(nullptr) - 60, 0}};
    BOOST_REQUIRE(::utimensat(AT_FDCWD, file.c_str(), a_minute_ago, 0) == 0);
}

// A lease file that cannot be read, whose flock a forked child keeps (emptied by a process of the
// previous version giving its lease back, or by a rewrite that failed): busy while it may be
// being written, and run out once it was last written the acquirer's ttl ago (30 s), not never.
BOOST_AUTO_TEST_CASE(an_unreadable_lease_whose_flock_a_forked_child_keeps_runs_out) {
    cross_process f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    const auto lease = f.tokens / (store::account_key("acct") + ".lease");
    write_file(lease, "");
    std::optional<forked_child> child;
    leave_its_flock_to_a_forked_child(lease, child);
    BOOST_TEST(acquire_in_another_process(f, 1) == "busy");  // written just now
    written_a_minute_ago(lease);
    BOOST_TEST(acquire_in_another_process(f, 1) == "granted");
}

// Taken over unreadable, a lease says nothing of whether its holder marked a request sent (its
// renewal's write torn by ENOSPC while its refresh was on the wire, say): the next holder is told
// previous_holder_sent, and waits for that holder's commit before it sends the refresh token it
// may have spent. Told nothing, it sent it at once, and a server that detects reuse revokes the grant.
BOOST_AUTO_TEST_CASE(a_lease_taken_over_unreadable_is_taken_for_one_whose_holder_sent) {
    cross_process f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "first"), 0));
    const auto lease = f.tokens / (store::account_key("acct") + ".lease");
    write_file(lease, "holder=a\ngener");  // torn mid-write
    std::optional<forked_child> child;
    leave_its_flock_to_a_forked_child(lease, child);
    written_a_minute_ago(lease);
    std::optional<lease_outcome> got;
    f.store->async_acquire("acct", "b", 1, 30s, [&](error_code ec, lease_outcome o) {
        BOOST_TEST(!ec);
        got = std::move(o);
    });
    f.ioc.restart();
    f.ioc.run();
    BOOST_REQUIRE(got.has_value());
    BOOST_TEST((got->what == lease_outcome::kind::granted));
    BOOST_TEST(got->previous_holder_sent);
}

// The same with its flock free (its holder gone): a file that holds something but no lease (a
// write torn, a rewrite that failed on the way out) was granted as one that said nothing, and the
// new holder sent at once the refresh token a silent sender may have spent. It is taken for a mark
// of an unknown sender, carried on until a commit. An empty file (made and never written, or
// given back with no mark) still carries none: the first refresh of an account does not wait.
BOOST_AUTO_TEST_CASE(a_free_lease_file_that_holds_no_lease_is_taken_for_one_whose_holder_sent) {
    fixture<file_store> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(3, "third"), 0));
    const auto lease = f.kind.dir.path() / "tokens" / (store::account_key("acct") + ".lease");
    write_file(lease, "holder=a\ngener");  // torn mid-write; nobody holds its flock
    const auto granted = f.acquire("b", 3);
    BOOST_TEST_REQUIRE((granted.what == lease_outcome::kind::granted));
    BOOST_TEST(granted.previous_holder_sent);
    f.release("b");
    const auto next = f.acquire_on(*f.kind.peer(f.ioc, f.store), "c", 3);
    BOOST_TEST_REQUIRE((next.what == lease_outcome::kind::granted));
    BOOST_TEST(next.previous_holder_sent);

    f.release("c");
    write_file(lease, "");
    const auto after_empty = f.acquire("d", 3);
    BOOST_TEST_REQUIRE((after_empty.what == lease_outcome::kind::granted));
    BOOST_TEST(!after_empty.previous_holder_sent);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace apollo_oauth::store_test
