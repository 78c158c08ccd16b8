// token_store's default coordination, on a store that implements only async_load and async_save
// (load_save_store): the leases that exclude the caches of one process sharing the store object.
// (The lease rules every store keeps run on it too: lease_test.cpp's lease_kinds.) Its waits are
// driven with io_context::poll, which runs what is ready and never waits for a timer: a wait that
// completes within a poll was ended by what the test did, not by its 100 ms polling.
#include "load_save_store.hpp"
#include "store_test_support.hpp"

#include <apollo_oauth/forwarding_token_store.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace apollo_oauth::store_test {
namespace {

using namespace std::chrono_literals;

struct defaults_fixture {
    boost::asio::io_context ioc;
    std::shared_ptr<test::load_save_store> store =
        std::make_shared<test::load_save_store>(ioc.get_executor());

    defaults_fixture() { BOOST_REQUIRE(!save(*store, ioc, "acct", make_record(1, "first"), 0)); }

    lease_outcome acquire(const std::string& holder, std::uint64_t known) {
        lease_outcome out;
        error_code result = boost::asio::error::would_block;
        store->async_acquire("acct", holder, known, 30s, [&](error_code ec, lease_outcome o) {
            result = ec;
            out = std::move(o);
        });
        run();
        BOOST_TEST(!result);
        return out;
    }
    error_code mark_sent(const std::string& holder, std::uint64_t generation) {
        error_code result = boost::asio::error::would_block;
        store->async_mark_sent("acct", holder, generation, 30s, [&](error_code ec) { result = ec; });
        run();
        return result;
    }
    void run() {
        ioc.restart();
        ioc.run();
    }
    /// Starts a wait for a change past generation 1 (10 s at most); `seen` is set when it ends.
    void wait_for_change(std::optional<std::optional<stored_tokens>>& seen) {
        store->async_wait_for_change("acct", 1, 10s, [&seen](error_code ec, std::optional<stored_tokens> r) {
            BOOST_TEST(!ec);
            seen = std::move(r);
        });
    }
    /// `holder` commits generation 2 over 1, then what is ready runs (poll()): the commit's result.
    error_code commit_second(const std::string& holder) {
        error_code committed = boost::asio::error::would_block;
        store->async_commit("acct", holder, make_record(2, "second"), 1,
                            [&](error_code ec) { committed = ec; });
        poll();
        return committed;
    }
    // Runs what is ready, waiting for no timer.
    void poll() {
        ioc.restart();
        ioc.poll();
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(default_leases)

// Two caches of one process over one store object: the second is kept out while the first holds
// the lease, and cannot mark a request sent on it. The defaults used to grant every caller (and
// answer success to every mark_sent): on a reload, the new cache sent the refresh token the old
// one's request on the wire had just spent, and Apollo revoked the grant.
BOOST_FIXTURE_TEST_CASE(a_second_holder_is_busy_and_cannot_mark_sent, defaults_fixture) {
    const auto first = acquire("old-cache", 1);
    BOOST_TEST_REQUIRE((first.what == lease_outcome::kind::granted));
    BOOST_REQUIRE(first.record.has_value());
    BOOST_TEST(first.record->generation == 1u);
    BOOST_TEST(!mark_sent("old-cache", 1));
    const auto second = acquire("new-cache", 1);
    BOOST_TEST((second.what == lease_outcome::kind::busy));
    BOOST_TEST(second.time_left > 0ms);
    BOOST_TEST(second.time_left <= 30s);
    BOOST_TEST(mark_sent("new-cache", 1) == errc::lease_lost);
}

// A busy cache waits for the holder. The holder gives the lease back without a commit: the wait
// ends at once (nullopt: ask again), not at its next poll nor at max_wait. A stranger's release
// gives nothing back and ends nothing.
BOOST_FIXTURE_TEST_CASE(a_wait_ends_at_once_when_the_holder_gives_the_lease_back, defaults_fixture) {
    BOOST_REQUIRE((acquire("a", 1).what == lease_outcome::kind::granted));
    BOOST_REQUIRE((acquire("b", 1).what == lease_outcome::kind::busy));
    std::optional<std::optional<stored_tokens>> seen;
    wait_for_change(seen);
    poll();  // its first poll: the lease is held, so the wait goes on
    BOOST_TEST(!seen.has_value());
    store->async_release("acct", "b", [](error_code) {});
    poll();
    BOOST_TEST(!seen.has_value());
    store->async_release("acct", "a", [](error_code) {});
    poll();
    BOOST_REQUIRE(seen.has_value());
    BOOST_TEST(!seen->has_value());
    BOOST_TEST((acquire("b", 1).what == lease_outcome::kind::granted));  // free, as the wait said
}

// The holder commits through the same store object: the wait reads the new record at once.
BOOST_FIXTURE_TEST_CASE(a_wait_sees_a_commit_through_the_same_store_object_at_once, defaults_fixture) {
    BOOST_REQUIRE((acquire("a", 1).what == lease_outcome::kind::granted));
    BOOST_REQUIRE((acquire("b", 1).what == lease_outcome::kind::busy));
    std::optional<std::optional<stored_tokens>> seen;
    wait_for_change(seen);
    poll();
    BOOST_TEST(!seen.has_value());
    BOOST_TEST(!commit_second("a"));
    BOOST_REQUIRE(seen.has_value());
    BOOST_REQUIRE(seen->has_value());
    BOOST_TEST((*seen)->generation == 2u);
}

// A holder waiting (for a silent sender's commit) on the lease it holds itself is never told the
// lease is free: only a commit or max_wait ends its wait. Its own lease is not given back by a
// stranger's release, and its wait polls on.
BOOST_FIXTURE_TEST_CASE(a_wait_of_the_lease_holder_itself_goes_on, defaults_fixture) {
    BOOST_REQUIRE((acquire("a", 1).what == lease_outcome::kind::granted));
    std::optional<std::optional<stored_tokens>> seen;
    wait_for_change(seen);
    poll();
    store->async_release("acct", "someone-else", [](error_code) {});
    poll();
    BOOST_TEST(!seen.has_value());
    BOOST_TEST(!commit_second(""));
    BOOST_REQUIRE(seen.has_value());
    BOOST_REQUIRE(seen->has_value());
    BOOST_TEST((*seen)->generation == 2u);
}

// A wait's end is now plus max_wait: from a store's answer (a lease whose deadline another process
// wrote, read back as time left) max_wait can be as large as milliseconds::max(), and the sum
// overflowed (undefined behaviour, in practice a deadline in the past: the wait ended at its
// first poll). It saturates: such a wait goes on until something changes.
BOOST_FIXTURE_TEST_CASE(a_wait_without_end_goes_on_until_a_change, defaults_fixture) {
    BOOST_REQUIRE((acquire("a", 1).what == lease_outcome::kind::granted));
    std::optional<std::optional<stored_tokens>> seen;
    store->async_wait_for_change("acct", 1, std::chrono::milliseconds::max(),
                                 [&seen](error_code ec, std::optional<stored_tokens> r) {
                                     BOOST_TEST(!ec);
                                     seen = std::move(r);
                                 });
    poll();  // its first poll: nothing changed, and its end is far away
    BOOST_TEST(!seen.has_value());
    BOOST_TEST(!commit_second("a"));
    BOOST_REQUIRE(seen.has_value());
    BOOST_REQUIRE(seen->has_value());
    BOOST_TEST((*seen)->generation == 2u);
}

// A cache's acquire reads generation 1; before its load answers, the holder's commit of
// generation 2 lands and ends the holder's lease (and its "sent" mark). Granted on what it read,
// that cache would send refresh token 1, which the holder just spent: the load is read again, and
// the answer is the newer pair.
BOOST_FIXTURE_TEST_CASE(an_acquire_whose_load_a_commit_outran_is_not_granted_on_the_spent_generation,
                        defaults_fixture) {
    BOOST_REQUIRE((acquire("holder", 1).what == lease_outcome::kind::granted));
    BOOST_REQUIRE(!mark_sent("holder", 1));
    store->hold_next_load();
    std::optional<lease_outcome> late;
    store->async_acquire("acct", "late", 1, 30s, [&](error_code ec, lease_outcome o) {
        BOOST_TEST(!ec);
        late = std::move(o);
    });
    error_code committed = boost::asio::error::would_block;
    store->async_commit("acct", "holder", make_record(2, "second"), 1,
                        [&](error_code ec) { committed = ec; });
    run();
    BOOST_REQUIRE(!committed);
    BOOST_REQUIRE(!late.has_value());  // its load is still on its way
    store->release_held_loads();
    run();
    BOOST_REQUIRE(late.has_value());
    BOOST_TEST((late->what == lease_outcome::kind::newer));
    BOOST_REQUIRE(late->record.has_value());
    BOOST_TEST(late->record->generation == 2u);
}

// A new authorization saved with async_save directly (token_cache::async_store) moves the
// generation without the lease table seeing it: the next acquire's load shows it, and the lease
// on the older generation is spent then. It keeps nobody waiting, and its holder can no longer
// mark a request sent.
BOOST_FIXTURE_TEST_CASE(a_lease_on_a_generation_a_direct_save_moved_past_keeps_nobody_waiting,
                        defaults_fixture) {
    BOOST_REQUIRE((acquire("a", 1).what == lease_outcome::kind::granted));
    BOOST_REQUIRE(!save(*store, ioc, "acct", make_record(2, "reauthorized"), 1));
    BOOST_TEST((acquire("b", 2).what == lease_outcome::kind::granted));
    BOOST_TEST(mark_sent("a", 1) == errc::lease_lost);
    BOOST_TEST(!mark_sent("b", 2));
}

// Caches call from several threads: the store's completions, and so the lease decisions, run on
// four threads at once. One holder is granted; the others are busy.
BOOST_FIXTURE_TEST_CASE(concurrent_acquires_on_several_threads_grant_one_holder, defaults_fixture) {
    constexpr int holders = 32;
    std::atomic<int> granted{0};
    std::atomic<int> busy{0};
    std::atomic<int> other{0};
    for (int i = 0; i < holders; ++i) {
        store->async_acquire("acct", "holder-" + std::to_string(i), 1, 30s,
                             [&](error_code ec, lease_outcome o) {
                                 if (ec) {
                                     ++other;
                                 } else if (o.what == lease_outcome::kind::granted) {
                                     ++granted;
                                 } else if (o.what == lease_outcome::kind::busy) {
                                     ++busy;
                                 } else {
                                     ++other;
                                 }
                             });
    }
    ioc.restart();
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] { ioc.run(); });
    }
    for (auto& t : threads) {
        t.join();
    }
    BOOST_TEST(granted.load() == 1);
    BOOST_TEST(busy.load() == holders - 1);
    BOOST_TEST(other.load() == 0);
}

namespace {

// A store that keeps its leases itself (here in a memory store it forwards them to, as one over
// SQL would in its own tables) and leaves async_wait_for_change to token_store's default.
class own_leases_store final : public forwarding_token_store {
public:
    explicit own_leases_store(boost::asio::any_io_executor ex)
        : forwarding_token_store(make_memory_token_store(std::move(ex))) {}
    void async_wait_for_change(std::string account, std::uint64_t known_generation,
                               std::chrono::milliseconds max_wait, load_handler handler) override {
        token_store::async_wait_for_change(std::move(account), known_generation, max_wait,
                                           std::move(handler));
    }
};

}  // namespace

// The default wait's table knows none of such a store's leases: taken for free, it ended every
// wait at its first poll, and a holder waiting (lease held) for a silent sender's commit then sent
// that sender's possibly spent refresh token at once. The wait goes on until the record changes.
BOOST_AUTO_TEST_CASE(the_default_wait_of_a_store_with_its_own_leases_ends_only_on_a_change) {
    boost::asio::io_context ioc;
    const auto store = std::make_shared<own_leases_store>(ioc.get_executor());
    BOOST_REQUIRE(!save(*store, ioc, "acct", make_record(1, "first"), 0));
    std::optional<lease_outcome::kind> granted;
    store->async_acquire("acct", "holder", 1, 30s, [&](error_code, lease_outcome o) { granted = o.what; });
    ioc.restart();
    ioc.run();
    BOOST_TEST_REQUIRE((granted == lease_outcome::kind::granted));

    std::optional<std::optional<stored_tokens>> seen;
    store->async_wait_for_change("acct", 1, 30s, [&](error_code ec, std::optional<stored_tokens> r) {
        BOOST_TEST(!ec);
        seen = std::move(r);
    });
    for (int i = 0; i < 4; ++i) {  // the first poll's load and its answer, and more
        ioc.restart();
        ioc.poll();
    }
    BOOST_TEST(!seen.has_value());
    BOOST_REQUIRE(!save(*store, ioc, "acct", make_record(2, "second"), 1));  // runs to the next poll
    BOOST_TEST_REQUIRE(seen.has_value());
    BOOST_TEST_REQUIRE(seen->has_value());
    BOOST_TEST((*seen)->generation == 2u);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace apollo_oauth::store_test
