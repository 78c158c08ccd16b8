// The account lifecycle across caches (issue 11), against the emulator over loopback TLS: caches
// sharing a store refresh once per rotation, a cache re-created mid-refresh, shutdown with a
// failing store, async_store racing a refresh, reauthorization recorded in the store.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <future>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include "cache_fixture.hpp"

using namespace apollo_oauth;
using apollo_oauth::test::cache_fixture;
using apollo_oauth::test::herd;
using apollo_oauth::test::served;
using apollo_oauth::test::until;
namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using kind = emulator::fault::kind;

namespace {

struct temp_directory {
    std::filesystem::path path;
    temp_directory() {
        std::random_device rd;
        path = std::filesystem::temp_directory_path() /
               ("apollo-lifecycle-" + std::to_string(rd()) + std::to_string(rd()));
    }
    ~temp_directory() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(cache_lifecycle, cache_fixture)

BOOST_AUTO_TEST_CASE(two_caches_over_one_memory_store_refresh_once) {
    client c{ioc.get_executor(), config()};
    token_cache first{c, store, cache_settings()};
    token_cache second{c, store, cache_settings()};
    const auto original = seed(c, first, "acme");
    expire_everything();
    served s;
    herd(ioc, {&first, &second}, "acme", 2'000, 2, s);
    BOOST_TEST(s.ok.load() == 2'000);
    BOOST_TEST(s.generations.size() == 1u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    const auto grant = server.grant_stats_of(std::string{original.refresh_token.reveal()});
    BOOST_TEST(grant.refreshes == 1u);
    BOOST_TEST(grant.reuses == 0u);  // nobody presented the rotated token again
    const auto a = first.metrics();
    const auto b = second.metrics();
    BOOST_TEST(a.refreshes + b.refreshes == 1u);
    BOOST_TEST(a.rotations + b.rotations == 1u);
    BOOST_TEST(a.adopted + b.adopted == 1u);  // the other cache took the stored pair
    BOOST_TEST(a.waiting_now == 0u);
    BOOST_TEST(store->saved_generation("acme") == 2u);
}

BOOST_AUTO_TEST_CASE(a_cache_recreated_during_a_refresh_adopts_the_old_caches_pair) {
    client c{ioc.get_executor(), config()};
    const auto [original, old_ec, token, new_cache] = reload_during_a_refresh(c, store, cache_settings());
    BOOST_TEST(old_ec == errc::shutting_down);
    BOOST_TEST(token.generation == 2u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    const auto grant = server.grant_stats_of(std::string{original.refresh_token.reveal()});
    BOOST_TEST(grant.reuses == 0u);
    BOOST_TEST(new_cache->metrics().refreshes == 0u);
    BOOST_TEST(new_cache->metrics().adopted == 1u);
    BOOST_TEST(store->saved_generation("acme") == 2u);
}

// A reload that keeps its configuration, holder label included: the new cache is not granted the
// old one's lease under their shared name (and would send the same refresh token), it waits for
// the old cache's commit and adopts its pair.
BOOST_AUTO_TEST_CASE(a_cache_recreated_under_the_same_holder_label_still_waits_for_the_old_one) {
    client c{ioc.get_executor(), config()};
    auto settings = cache_settings();
    settings.holder = "web-1";
    const auto [original, old_ec, token, new_cache] = reload_during_a_refresh(c, store, settings);
    BOOST_TEST(token.generation == 2u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    BOOST_TEST(server.grant_stats_of(std::string{original.refresh_token.reveal()}).reuses == 0u);
    BOOST_TEST(new_cache->metrics().refreshes == 0u);
    BOOST_TEST(new_cache->metrics().adopted == 1u);
    const auto holders = store->commit_holders();
    BOOST_TEST_REQUIRE(!holders.empty());
    BOOST_TEST(holders.front().starts_with("web-1-"));  // the label is kept, made unique
}

// A holder whose store takes its renewals and refuses its writes keeps the lease for its unstored
// pair for as long as it lives. Another cache's callers are told coordination_unavailable after
// backoff_max + 2 * lease_ttl (here 500 ms of the real steady clock) instead of waiting without
// end, and it never sends the refresh token the holder already spent; once the write lands, the
// pair is adopted.
BOOST_AUTO_TEST_CASE(callers_of_another_cache_are_told_when_the_holder_never_commits) {
    client c{ioc.get_executor(), config()};
    auto settings = cache_settings();
    settings.steady_clock = {};                           // the wait's limit passes in real time
    settings.lease_ttl = std::chrono::milliseconds(200);  // renewed every 67 ms, sanitizers included
    settings.backoff_initial = std::chrono::milliseconds(5);
    settings.backoff_max = std::chrono::milliseconds(100);
    token_cache holder{c, store, settings};
    token_cache other{c, store, settings};
    const auto original = seed(c, holder, "acme");
    expire_everything();
    store->failing = true;
    const auto [waited_ec, adopted] = run([&]() -> awaitable<std::pair<error_code, std::uint64_t>> {
        const auto token = co_await holder.async_get("acme", use_awaitable);
        BOOST_TEST(token.generation == 2u);  // served, unstored, the lease kept and renewed
        auto [ec, unused] = co_await other.async_get("acme", asio::as_tuple(use_awaitable));
        store->failing = false;  // the holder's next write-back lands and gives the lease back
        co_await until([&] { return store->saved_generation("acme") == 2u; });
        // Until the other cache's backoff after the error has passed.
        asio::steady_timer pause{co_await asio::this_coro::executor};
        for (;;) {
            auto [again, then] = co_await other.async_get("acme", asio::as_tuple(use_awaitable));
            if (again != errc::coordination_unavailable) {
                BOOST_TEST(!again);
                co_return std::pair{ec, then.generation};
            }
            pause.expires_after(std::chrono::milliseconds(2));
            co_await pause.async_wait(use_awaitable);
        }
    });
    BOOST_TEST(waited_ec == errc::coordination_unavailable);
    BOOST_TEST(adopted == 2u);
    BOOST_TEST(other.metrics().refreshes == 0u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    BOOST_TEST(server.grant_stats_of(std::string{original.refresh_token.reveal()}).reuses == 0u);
}

BOOST_AUTO_TEST_CASE(a_token_request_slower_than_the_lease_keeps_it_and_nobody_else_refreshes) {
    client c{ioc.get_executor(), config()};
    auto settings = cache_settings();
    settings.lease_ttl = std::chrono::milliseconds(200);
    token_cache first{c, store, settings};
    token_cache second{c, store, settings};
    const auto original = seed(c, first, "acme");
    expire_everything();
    // The token request takes five leases: unrenewed, the lease would lapse and the second cache
    // would be granted it and send the same refresh token again.
    server.inject(
        {.what = kind::latency, .where = emulator::route::token, .delay = std::chrono::milliseconds(1'000)});
    error_code first_ec = asio::error::would_block;
    std::uint64_t first_generation = 0;
    first.async_get("acme", [&](error_code ec, access_token t) {
        first_ec = ec;
        first_generation = t.generation;
    });
    const auto token = run([&]() -> awaitable<access_token> {
        co_await until([&] { return first.metrics().refreshes == 1u; });  // on the wire now
        co_return co_await second.async_get("acme", use_awaitable);
    });
    BOOST_TEST(!first_ec);
    BOOST_TEST(first_generation == 2u);
    BOOST_TEST(token.generation == 2u);
    BOOST_TEST(store->renewals.load() >= 1);
    BOOST_TEST(second.metrics().refreshes == 0u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    const auto grant = server.grant_stats_of(std::string{original.refresh_token.reveal()});
    BOOST_TEST(grant.refreshes == 1u);
    BOOST_TEST(grant.reuses == 0u);
    BOOST_TEST(store->saved_generation("acme") == 2u);
}

BOOST_AUTO_TEST_CASE(shutdown_writes_a_refused_pair_once_the_store_recovers) {
    client c{ioc.get_executor(), config()};
    std::atomic<int> reported{0};
    auto settings = cache_settings();
    settings.backoff_initial = std::chrono::milliseconds(5);
    settings.on_store_failure = [&](const std::string&, error_code) { ++reported; };
    token_cache cache{c, store, settings};
    seed(c, cache, "acme");
    expire_everything();
    store->failing = true;
    const auto result = run([&]() -> awaitable<error_code> {
        auto token = co_await cache.async_get("acme", use_awaitable);
        BOOST_TEST(token.generation == 2u);  // served although the store refused it
        BOOST_TEST(store->saved_generation("acme") == 1u);
        const int failed_before = store->failed_saves.load();
        error_code shutdown_ec = asio::error::would_block;
        cache.async_shutdown(std::chrono::seconds(30), [&](error_code ec) { shutdown_ec = ec; });
        // The shutdown writes at once, is refused again, and keeps trying.
        co_await until([&] { return store->failed_saves.load() > failed_before; });
        BOOST_TEST(shutdown_ec == asio::error::would_block);
        store->failing = false;
        co_await until([&] { return shutdown_ec != asio::error::would_block; });
        co_return shutdown_ec;
    });
    BOOST_TEST(!result);
    BOOST_TEST(store->saved_generation("acme") == 2u);
    BOOST_TEST(reported.load() >= 2);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
}

// A rotated pair the store refused is written back naming no holder: a refresh cycle of this
// cache may hold the lease by then, its request on the wire, and a retry of the write that finds
// it stored must not clear that lease (test/store/lease_test.cpp). Once it has landed, nobody is
// kept waiting.
BOOST_AUTO_TEST_CASE(a_refused_pair_is_written_back_naming_no_holder) {
    client c{ioc.get_executor(), config()};
    auto settings = cache_settings();
    settings.backoff_initial = std::chrono::milliseconds(5);
    settings.holder = "this-cache";
    token_cache cache{c, store, settings};
    seed(c, cache, "acme");
    expire_everything();
    store->failing = true;
    const auto outcome = run([&]() -> awaitable<lease_outcome::kind> {
        const auto token = co_await cache.async_get("acme", use_awaitable);
        BOOST_TEST(token.generation == 2u);
        store->failing = false;
        auto [ec] = co_await cache.async_shutdown(std::chrono::seconds(30), asio::as_tuple(use_awaitable));
        BOOST_TEST(!ec);
        std::optional<lease_outcome::kind> other;
        store->async_acquire("acme", "another-process", 2, std::chrono::seconds(10),
                             [&](error_code, lease_outcome o) { other = o.what; });
        co_await until([&] { return other.has_value(); });
        co_return *other;
    });
    BOOST_TEST(store->saved_generation("acme") == 2u);
    const auto holders = store->commit_holders();
    BOOST_TEST_REQUIRE(holders.size() >= 2u);
    BOOST_TEST(holders.front().starts_with("this-cache-"));  // the rotation's commit, under the lease
    for (std::size_t i = 1; i < holders.size(); ++i) {
        BOOST_TEST(holders[i].empty(), "write-back " << i << " named a holder");
    }
    BOOST_TEST((outcome == lease_outcome::kind::granted));
}

BOOST_AUTO_TEST_CASE(shutdown_past_its_deadline_reports_the_lost_pair) {
    client c{ioc.get_executor(), config()};
    std::mutex mutex;
    std::vector<error_code> reports;
    auto settings = cache_settings();
    settings.backoff_initial = std::chrono::milliseconds(5);
    settings.on_store_failure = [&](const std::string& account, error_code ec) {
        BOOST_TEST(account == "acme");
        std::lock_guard lock{mutex};
        reports.push_back(ec);
    };
    token_cache cache{c, store, settings};
    seed(c, cache, "acme");
    expire_everything();
    store->failing = true;
    const auto result = run([&]() -> awaitable<error_code> {
        co_await cache.async_get("acme", use_awaitable);
        auto [ec] =
            co_await cache.async_shutdown(std::chrono::milliseconds(200), asio::as_tuple(use_awaitable));
        co_return ec;
    });
    BOOST_TEST(result == errc::store_failure);
    BOOST_TEST(store->saved_generation("acme") == 1u);
    std::lock_guard lock{mutex};
    BOOST_REQUIRE(!reports.empty());
    BOOST_TEST(reports.back() == errc::shutting_down);  // the loss, told last
    BOOST_TEST(reports.front() == errc::store_failure);
}

// A shutdown's deadline that passes while async_shutdown is still handing the shards their flush
// (0 ms, the io_context run by another thread): the deadline's step could run on a shard's strand
// before that shard's flush step, find nothing to end there, and leave the shard's accounts
// flushing with no deadline; with the store failing, their pairs were written again every 100 ms
// for good, the handler was never called and run() never returned (a review saw 8 hangs in 300
// rounds of one account). 64 unstored accounts per round, spread over the shards, so that any
// shard's strand outrun by the deadline shows.
BOOST_AUTO_TEST_CASE(a_deadline_passing_while_the_shutdown_starts_still_ends_every_account) {
    client seeder{ioc.get_executor(), config()};
    const auto tokens = obtain_tokens(seeder);
    constexpr int rounds = 100;
    constexpr int accounts = 64;
    for (int round = 0; round < rounds; ++round) {
        asio::io_context runner_ioc;
        auto work = asio::make_work_guard(runner_ioc);
        std::thread runner([&] { runner_ioc.run(); });
        auto failing = std::make_shared<apollo_oauth::test::observed_store>(runner_ioc.get_executor());
        failing->failing = true;
        client c{runner_ioc.get_executor(), config()};
        auto cache = std::make_unique<token_cache>(c, failing, cache_settings());
        std::atomic<int> refused{0};
        std::promise<void> all_stored;
        for (int i = 0; i < accounts; ++i) {
            cache->async_store("account-" + std::to_string(i), tokens, [&](error_code ec) {
                refused += ec == errc::store_failure ? 1 : 0;
                if (refused.load() == accounts) {
                    all_stored.set_value();
                }
            });
        }
        all_stored.get_future().wait();  // every pair is held unstored: each has a flush to do
        std::promise<error_code> shut;
        auto answered = shut.get_future();
        cache->async_shutdown(std::chrono::milliseconds(0), [&](error_code ec) { shut.set_value(ec); });
        work.reset();
        const bool finished = answered.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
        if (!finished) {
            runner_ioc.stop();  // so that the test ends and reports
        }
        runner.join();
        cache.reset();
        BOOST_REQUIRE_MESSAGE(finished, "async_shutdown(0 ms) never completed, round " << round);
        BOOST_TEST(answered.get() == errc::store_failure);
    }
}

BOOST_AUTO_TEST_CASE(a_cache_destroyed_after_its_shutdown_completed_leaves_nothing_to_run) {
    client c{ioc.get_executor(), config()};
    {
        token_cache cache{c, store, cache_settings()};
        seed(c, cache, "acme");
        const auto result = run([&]() -> awaitable<error_code> {
            auto [ec] = co_await cache.async_shutdown(std::chrono::seconds(5), asio::as_tuple(use_awaitable));
            co_return ec;
        });
        BOOST_TEST(!result);
    }  // the destructor stops the cache again: the shutdown is done, so nothing is to be told
    // Whatever the destructor posted runs here; an empty completion handler would throw.
    ioc.restart();
    BOOST_CHECK_NO_THROW(ioc.run());
    BOOST_TEST(store->saved_generation("acme") == 1u);
}

BOOST_AUTO_TEST_CASE(async_store_racing_a_refresh_out_of_order_keeps_memory_and_store_in_step) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    const auto first_grant = seed(c, cache, "acme");
    authorization_flow flow{c.config()};
    auto second = authorize(flow);
    expire_everything();
    store->hold_next_save = true;  // the rotation's commit is held: it will complete after the save
    error_code waiter_ec = asio::error::would_block;
    access_token waiter_token;
    cache.async_get("acme", [&](error_code ec, access_token t) {
        waiter_ec = ec;
        waiter_token = std::move(t);
    });
    const auto fresh = run([&]() -> awaitable<token_set> {
        co_await until([&] { return store->has_held_save(); });
        auto tokens = co_await c.async_exchange_code(std::move(second), use_awaitable);
        co_await cache.async_store("acme", tokens, use_awaitable);  // completes first
        store->release_held_save();                                 // then the older commit
        co_return tokens;
    });
    BOOST_TEST(!waiter_ec);
    BOOST_TEST(waiter_token.value == fresh.access_token);
    BOOST_TEST(waiter_token.generation == 3u);
    BOOST_TEST(store->saved_generation("acme") == 3u);
    std::optional<stored_tokens> stored;
    store->async_load("acme", [&](error_code, std::optional<stored_tokens> r) { stored = std::move(r); });
    ioc.run();
    ioc.restart();
    BOOST_REQUIRE(stored.has_value());
    BOOST_TEST(stored->tokens.refresh_token == fresh.refresh_token);  // memory and store agree
    // The next rotation spends the new authorization's refresh token, and keeps it alive.
    expire_everything();
    const auto next =
        run([&]() -> awaitable<access_token> { co_return co_await cache.async_get("acme", use_awaitable); });
    BOOST_TEST(next.generation == 4u);
    const auto new_grant = server.grant_stats_of(std::string{fresh.refresh_token.reveal()});
    BOOST_TEST(new_grant.refreshes == 1u);
    BOOST_TEST(!new_grant.revoked);
    BOOST_TEST(server.grant_stats_of(std::string{first_grant.refresh_token.reveal()}).refreshes == 1u);
}

BOOST_AUTO_TEST_CASE(two_file_store_objects_over_one_directory_refresh_once) {
    temp_directory dir;
    client c{ioc.get_executor(), config()};
    // Two store objects: two independent lease holders, as two processes would be.
    auto store_a = make_file_token_store(ioc.get_executor(), dir.path);
    auto store_b = make_file_token_store(ioc.get_executor(), dir.path);
    token_cache first{c, store_a, cache_settings()};
    token_cache second{c, store_b, cache_settings()};
    const auto original = seed(c, first, "acme");
    expire_everything();
    served s;
    herd(ioc, {&first, &second}, "acme", 1'000, 2, s);
    BOOST_TEST(s.ok.load() == 1'000);
    BOOST_TEST(s.generations.size() == 1u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    BOOST_TEST(server.grant_stats_of(std::string{original.refresh_token.reveal()}).reuses == 0u);
}

BOOST_AUTO_TEST_CASE(reauthorization_is_recorded_in_the_file_store_for_every_cache) {
    temp_directory dir;
    client c{ioc.get_executor(), config()};
    std::atomic<int> hooks{0};
    auto settings = cache_settings();
    settings.on_reauthorization_required = [&](const std::string&) { ++hooks; };
    const auto store_a = make_file_token_store(ioc.get_executor(), dir.path);
    token_cache first{c, store_a, settings};
    const auto original = seed(c, first, "acme");
    server.revoke_grant_of_refresh_token(std::string{original.refresh_token.reveal()});
    expire_everything();
    served s;
    herd(ioc, {&first}, "acme", 10, 1, s);
    BOOST_TEST(s.failed.load() == 10);
    BOOST_TEST(hooks.load() == 1);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    // A cache started later (another process) learns it from the store: no refresh, no hook.
    const auto store_b = make_file_token_store(ioc.get_executor(), dir.path);
    token_cache later{c, store_b, settings};
    const auto ec = run([&]() -> awaitable<error_code> {
        auto [e, t] = co_await later.async_get("acme", asio::as_tuple(use_awaitable));
        co_return e;
    });
    BOOST_TEST(ec == errc::reauthorization_required);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    BOOST_TEST(hooks.load() == 1);
    // A new authorization clears it for everyone.
    seed(c, later, "acme");
    const auto back = run([&]() -> awaitable<error_code> {
        auto [e, t] = co_await later.async_get("acme", asio::as_tuple(use_awaitable));
        co_return e;
    });
    BOOST_TEST(!back);
}

BOOST_AUTO_TEST_CASE(a_pair_rotated_elsewhere_is_adopted_without_a_refresh_or_a_hook) {
    client c{ioc.get_executor(), config()};
    std::atomic<int> hooks{0};
    auto settings = cache_settings();
    settings.on_reauthorization_required = [&](const std::string&) { ++hooks; };
    token_cache cache{c, store, settings};
    const auto original = seed(c, cache, "acme");
    // Another party rotates behind this cache's back and stores generation 2 (as a process
    // without leases would): this cache's refresh then meets invalid_grant.
    const auto rotated = run([&]() -> awaitable<token_set> {
        co_return co_await c.async_refresh(original.refresh_token, {}, use_awaitable);
    });
    error_code saved = asio::error::would_block;
    store->async_save("acme", stored_tokens{rotated, 2, record_state::ok}, 1,
                      [&](error_code ec) { saved = ec; });
    ioc.run();
    ioc.restart();
    BOOST_REQUIRE(!saved);
    auto stale = cache.try_get("acme");
    BOOST_REQUIRE(stale.has_value());
    cache.invalidate("acme", *stale);  // a 401 makes it refresh with the generation-1 token it holds
    // The lease's re-read finds generation 2: adopted, nothing sent (the unit tests drive the
    // invalid_grant re-read itself).
    const auto token =
        run([&]() -> awaitable<access_token> { co_return co_await cache.async_get("acme", use_awaitable); });
    BOOST_TEST(token.generation == 2u);
    BOOST_TEST(token.value == rotated.access_token);
    BOOST_TEST(hooks.load() == 0);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);  // only the other party's
}

// Hooks run in the middle of an action list whose every action the account's machine counts as
// done. One that throws (an application's logger on a full disk) used to skip the rest: after a
// refused commit, the timer of the pair's next write was never armed, so the rotated pair was
// served and never stored; after an async_store, its caller was never answered.
BOOST_AUTO_TEST_CASE(hooks_that_throw_lose_no_pair_and_leave_no_caller_waiting) {
    client c{ioc.get_executor(), config()};
    std::atomic<int> thrown{0};
    auto settings = cache_settings();
    settings.backoff_initial = std::chrono::milliseconds(5);
    settings.on_rotation = [&](const std::string&, const token_set&) {
        ++thrown;
        throw std::runtime_error("the application's logger failed");
    };
    settings.on_store_failure = [&](const std::string&, error_code) {
        ++thrown;
        throw std::runtime_error("the application's logger failed");
    };
    token_cache cache{c, store, settings};
    seed(c, cache, "acme");  // async_store: on_rotation throws before its caller is answered
    expire_everything();
    store->failing = true;
    run([&]() -> awaitable<int> {
        const auto token = co_await cache.async_get("acme", use_awaitable);
        BOOST_TEST(token.generation == 2u);  // served although the store refused it
        co_await until([&] { return store->failed_saves.load() > 0; });
        store->failing = false;
        co_await until([&] { return store->saved_generation("acme") == 2u; });
        co_return 0;
    });
    BOOST_TEST(store->saved_generation("acme") == 2u);
    BOOST_TEST(thrown.load() >= 2);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
}

namespace {

/// The client's refresher, with a step of its own just before each answer reaches the cache.
class refresher_with_a_step : public token_refresher {
public:
    refresher_with_a_step(client& oauth, std::function<void()> step)
        : inner_(make_client_refresher(oauth)), step_(std::move(step)) {}
    void async_refresh(secret_string refresh_token, std::vector<std::string> scopes, diagnostics* diag,
                       refresh_handler handler) override {
        inner_->async_refresh(std::move(refresh_token), std::move(scopes), diag,
                              [this, h = std::move(handler)](error_code ec, token_set tokens) mutable {
                                  step_();
                                  std::move(h)(ec, std::move(tokens));
                              });
    }

private:
    std::shared_ptr<token_refresher> inner_;
    std::function<void()> step_;
};

}  // namespace

// The application's clock throws just as the refresh's answer arrives. The answer's event used to
// be built by reading it, so the rotated pair was dropped on the floor: the account stuck in its
// refresh for good, its caller never answered, the pair Apollo rotated to lost (a lockout). The
// cache's own steps read the system's clock instead.
BOOST_AUTO_TEST_CASE(a_clock_that_throws_as_the_answer_arrives_loses_no_pair) {
    client c{ioc.get_executor(), config()};
    std::atomic<bool> throwing{false};
    auto settings = cache_settings();
    settings.clock = [&, inner = clock.function()] {
        if (throwing) {
            throw std::runtime_error("the application's clock failed");
        }
        return inner();
    };
    token_cache cache{ioc.get_executor(),
                      std::make_shared<refresher_with_a_step>(c, [&] { throwing = true; }), store, settings};
    seed(c, cache, "acme");
    expire_everything();
    const auto token = run([&]() -> awaitable<access_token> {
        co_return co_await cache.async_get("acme", use_awaitable);  // the clock still answers here
    });
    BOOST_TEST(token.generation == 2u);
    BOOST_TEST(store->saved_generation("acme") == 2u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    throwing = false;
    BOOST_TEST(cache.try_get("acme").value().generation == 2u);
}

namespace {

/// A store of the application's whose release throws from its initiation.
class store_whose_release_throws : public test::observed_store {
public:
    using observed_store::observed_store;
    void async_release(std::string, std::string, lease_handler) override {
        throw std::runtime_error("the store's release failed");
    }
};

/// A store of the application's whose next commit throws from its initiation, once.
class store_whose_commit_throws_once : public test::observed_store {
public:
    using observed_store::observed_store;
    std::atomic<bool> throw_next_commit{true};
    void async_commit(std::string account, std::string holder, stored_tokens record, std::uint64_t expected,
                      save_handler handler) override {
        if (throw_next_commit.exchange(false)) {
            throw std::runtime_error("the store's commit failed to start");
        }
        observed_store::async_commit(std::move(account), std::move(holder), std::move(record), expected,
                                     std::move(handler));
    }
};

/// Runs the io_context dry, through what handlers throw; returns how many did.
int run_through_exceptions(asio::io_context& ioc) {
    int escaped = 0;
    for (;;) {
        try {
            ioc.run();
            break;
        } catch (const std::runtime_error&) {
            ++escaped;
        }
    }
    ioc.restart();
    return escaped;
}

}  // namespace

// A store call whose initiation throws is answered as that call failing: the machine, which
// waits for its completion, takes its own failure path. Here the rotation's commit: the rotated
// pair is served, and written once the store takes it. Before, the machine waited for good: the
// caller never answered, the pair never stored, the lease held.
BOOST_AUTO_TEST_CASE(a_store_call_that_throws_as_it_starts_is_answered_as_failed) {
    client c{ioc.get_executor(), config()};
    auto throwing_store = std::make_shared<store_whose_commit_throws_once>(ioc.get_executor());
    auto settings = cache_settings();
    settings.backoff_initial = std::chrono::milliseconds(5);
    token_cache cache{c, throwing_store, settings};
    throwing_store->throw_next_commit = false;
    seed(c, cache, "acme");  // async_store saves: no commit
    throwing_store->throw_next_commit = true;
    expire_everything();
    std::optional<error_code> answered;
    access_token served;
    cache.async_get("acme", [&](error_code ec, access_token t) {
        answered = ec;
        served = std::move(t);
    });
    BOOST_TEST(run_through_exceptions(ioc) == 1);
    BOOST_TEST_REQUIRE(answered.has_value());
    BOOST_TEST(!*answered);
    BOOST_TEST(served.generation == 2u);
    BOOST_TEST(throwing_store->saved_generation("acme") == 2u);  // written back after the failure
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
}

// An action that throws (a store's initiation, no memory for a post) used to skip the rest of its
// list, which the account's machine already counts as done. Here the grant is gone: the lease's
// release throws, and the callers' answer, the next action, was never given. Every action is now
// carried out; the exception goes on afterwards, out of the io_context's run.
BOOST_AUTO_TEST_CASE(an_action_that_throws_does_not_skip_the_rest_of_its_list) {
    client c{ioc.get_executor(), config()};
    auto throwing_store = std::make_shared<store_whose_release_throws>(ioc.get_executor());
    token_cache cache{c, throwing_store, cache_settings()};
    const auto original = seed(c, cache, "acme");
    server.revoke_grant_of_refresh_token(std::string{original.refresh_token.reveal()});
    expire_everything();
    std::optional<error_code> answered;
    cache.async_get("acme", [&](error_code ec, access_token) { answered = ec; });
    BOOST_TEST(run_through_exceptions(ioc) == 1);
    BOOST_TEST_REQUIRE(answered.has_value());
    BOOST_TEST(*answered == errc::reauthorization_required);
}

namespace {

/// A store of one process that can hold an acquire's answer back: the acquire reaches the store
/// (which grants the lease) and its answer waits for answer_held_acquire(). Records each acquire's
/// outcome and the releases the store has completed. Once `exited` is set (the process gone after
/// its shutdown), nothing more of this process reaches the store: a held answer is dropped.
class store_holding_an_acquire : public forwarding_token_store {
public:
    using forwarding_token_store::forwarding_token_store;

    std::atomic<bool> hold_next_acquire{false};
    std::atomic<bool> exited{false};
    std::atomic<int> releases_delivered{0};

    void async_acquire(std::string account, std::string holder, std::uint64_t known,
                       std::chrono::milliseconds ttl, acquire_handler handler) override {
        const bool hold = hold_next_acquire.exchange(false);
        inner().async_acquire(std::move(account), std::move(holder), known, ttl,
                              [this, hold, h = std::move(handler)](error_code ec, lease_outcome o) mutable {
                                  std::unique_lock lock{mutex_};
                                  outcomes_.push_back(o.what);
                                  if (hold) {
                                      held_.emplace(held_acquire{ec, std::move(o), std::move(h)});
                                      return;
                                  }
                                  lock.unlock();
                                  std::move(h)(ec, std::move(o));
                              });
    }
    void async_release(std::string account, std::string holder, lease_handler handler) override {
        if (exited) {
            return;
        }
        inner().async_release(std::move(account), std::move(holder),
                              [this, h = std::move(handler)](error_code ec) mutable {
                                  ++releases_delivered;
                                  std::move(h)(ec);
                              });
    }

    bool has_held_acquire() const {
        const std::lock_guard lock{mutex_};
        return held_.has_value();
    }
    /// Delivers the held answer, through the store's executor (never inline), unless the process
    /// has exited.
    void answer_held_acquire() {
        std::optional<held_acquire> held;
        {
            const std::lock_guard lock{mutex_};
            held.swap(held_);
        }
        if (held && !exited) {
            asio::post(get_executor(), [held = std::move(*held)]() mutable {
                std::move(held.handler)(held.ec, std::move(held.outcome));
            });
        }
    }
    std::vector<lease_outcome::kind> outcomes() const {
        const std::lock_guard lock{mutex_};
        return outcomes_;
    }

private:
    struct held_acquire {
        error_code ec;
        lease_outcome outcome;
        acquire_handler handler;
    };
    mutable std::mutex mutex_;
    std::optional<held_acquire> held_;
    std::vector<lease_outcome::kind> outcomes_;
};

/// What shutdown_with_an_acquire_held saw.
struct held_acquire_shutdown {
    error_code shutdown;                   ///< async_shutdown's result
    int releases_at_shutdown = -1;         ///< releases the store had completed when it completed
    bool acquire_held_at_shutdown = true;  ///< the acquire's answer was still held then
    std::vector<lease_outcome::kind> second_cache_acquires;
    access_token second_cache_token;
};

/// One process's cache (over `one`) asks for the lease of its expired pair, and the answer is held
/// in the store when async_shutdown is called; the answer is then delivered, and the process
/// "exits" when its shutdown completes. Then another process's cache (over `other`, the same
/// records and leases) gets the token.
held_acquire_shutdown shutdown_with_an_acquire_held(cache_fixture& f,
                                                    const std::shared_ptr<store_holding_an_acquire>& one,
                                                    const std::shared_ptr<store_holding_an_acquire>& other) {
    held_acquire_shutdown out;
    client c{f.ioc.get_executor(), f.config()};
    auto settings = f.cache_settings();
    // A lease left behind costs the other cache one ttl (its acquire busy, then granted once it
    // lapses): short, so that a failure of this test is quick.
    settings.lease_ttl = std::chrono::seconds(1);
    auto first = std::make_unique<token_cache>(c, one, settings);
    f.seed(c, *first, "acme");
    f.expire_everything();
    one->hold_next_acquire = true;
    error_code get_ec = asio::error::would_block;
    first->async_get("acme", [&](error_code ec, access_token) { get_ec = ec; });
    bool shut_down = false;
    f.run([&]() -> awaitable<int> {
        co_await until([&] { return one->has_held_acquire(); });  // granted in the store, unanswered
        first->async_shutdown(std::chrono::seconds(30), [&](error_code ec) {
            out.shutdown = ec;
            out.releases_at_shutdown = one->releases_delivered.load();
            out.acquire_held_at_shutdown = one->has_held_acquire();
            one->exited = true;  // the process exits: nothing more of it reaches the store
            shut_down = true;
        });
        // Stopped (its caller told so), and the flush started on every shard, all queued at the
        // call: a shutdown that does not wait for the lease has completed by now.
        co_await until([&] { return get_ec != asio::error::would_block; });
        const auto ex = co_await asio::this_coro::executor;
        co_await asio::post(ex, use_awaitable);
        one->answer_held_acquire();
        co_await until([&] { return shut_down; });
        co_return 0;
    });
    BOOST_TEST(get_ec == errc::shutting_down);
    first.reset();
    token_cache second{c, other, settings};
    out.second_cache_token = f.run(
        [&]() -> awaitable<access_token> { co_return co_await second.async_get("acme", use_awaitable); });
    out.second_cache_acquires = other->outcomes();
    return out;
}

void check_the_lease_was_given_back_before_the_exit(const held_acquire_shutdown& seen,
                                                    const emulator::server& server) {
    BOOST_TEST(!seen.shutdown);
    BOOST_TEST(!seen.acquire_held_at_shutdown);  // it waited for the grant's answer
    BOOST_TEST(seen.releases_at_shutdown == 1);  // and for the release to reach the store
    // The other process is granted the lease at once, not told busy until it lapses.
    BOOST_TEST_REQUIRE(!seen.second_cache_acquires.empty());
    BOOST_TEST((seen.second_cache_acquires.front() == lease_outcome::kind::granted));
    BOOST_TEST(seen.second_cache_token.generation == 2u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);  // the first cache sent nothing
}

}  // namespace

// A shutdown used to complete with an acquire in flight: its grant landed after, the lease was
// given back by a release nobody waited for, and the process, told the shutdown was over, exited
// before it was delivered. Every other process sharing the store then saw the account busy for up
// to lease_ttl. The shutdown now waits for the acquire's answer and for the release it brings.
BOOST_AUTO_TEST_CASE(shutdown_waits_for_a_held_acquire_and_its_release_in_a_memory_store) {
    auto memory = make_memory_token_store(ioc.get_executor());
    auto one = std::make_shared<store_holding_an_acquire>(memory);
    auto other = std::make_shared<store_holding_an_acquire>(memory);
    check_the_lease_was_given_back_before_the_exit(shutdown_with_an_acquire_held(*this, one, other), server);
}

// The same with two file store objects over one directory, as two processes on one host.
BOOST_AUTO_TEST_CASE(shutdown_waits_for_a_held_acquire_and_its_release_in_a_file_store) {
    temp_directory dir;
    auto one =
        std::make_shared<store_holding_an_acquire>(make_file_token_store(ioc.get_executor(), dir.path));
    auto other =
        std::make_shared<store_holding_an_acquire>(make_file_token_store(ioc.get_executor(), dir.path));
    check_the_lease_was_given_back_before_the_exit(shutdown_with_an_acquire_held(*this, one, other), server);
}

// A store that never answers the acquire: the shutdown still ends at its deadline, with
// shutting_down (no pair was lost; the lease lapses at its ttl).
BOOST_AUTO_TEST_CASE(shutdown_with_an_acquire_never_answered_ends_at_its_deadline) {
    client c{ioc.get_executor(), config()};
    auto held = std::make_shared<store_holding_an_acquire>(make_memory_token_store(ioc.get_executor()));
    token_cache cache{c, held, cache_settings()};
    seed(c, cache, "acme");
    expire_everything();
    held->hold_next_acquire = true;
    cache.async_get("acme", [](error_code, access_token) {});
    const auto result = run([&]() -> awaitable<error_code> {
        co_await until([&] { return held->has_held_acquire(); });
        auto [ec] =
            co_await cache.async_shutdown(std::chrono::milliseconds(100), asio::as_tuple(use_awaitable));
        co_return ec;
    });
    BOOST_TEST(result == errc::shutting_down);
    BOOST_TEST(held->has_held_acquire());  // never answered
    BOOST_TEST(held->releases_delivered.load() == 0);
    // The process is gone: the held answer is dropped, and with it the cache it keeps alive (a
    // cycle through the store, which LeakSanitizer reports at exit).
    held->exited = true;
    held->answer_held_acquire();
}

namespace {

/// A memory store (observed_store) whose next renewal is held unanswered until the holder's wait
/// for a silent sender ends, and then answered lease_lost, right after that wait's answer: as a
/// store that answers on several threads may deliver the answer to a renewal it found lapsed as
/// late as that. Counts the acquires that arrive while the renewal is held.
class store_answering_a_renewal_late : public test::observed_store {
public:
    using test::observed_store::observed_store;

    std::atomic<bool> hold_next_renewal{false};
    std::atomic<int> late_answers{0};
    std::atomic<int> acquires_while_a_renewal_was_held{0};

    void async_renew(std::string account, std::string holder, std::uint64_t generation,
                     std::chrono::milliseconds ttl, lease_handler handler) override {
        if (hold_next_renewal.exchange(false)) {
            const std::lock_guard lock{held_mutex_};
            held_.emplace(std::move(handler));
            return;
        }
        observed_store::async_renew(std::move(account), std::move(holder), generation, ttl,
                                    std::move(handler));
    }
    void async_acquire(std::string account, std::string holder, std::uint64_t known,
                       std::chrono::milliseconds ttl, acquire_handler handler) override {
        acquires_while_a_renewal_was_held += has_held_renewal() ? 1 : 0;
        inner().async_acquire(std::move(account), std::move(holder), known, ttl,
                              [h = std::move(handler)](error_code ec, lease_outcome o) mutable {
                                  std::move(h)(ec, std::move(o));
                              });
    }
    void async_wait_for_change(std::string account, std::uint64_t known, std::chrono::milliseconds max_wait,
                               load_handler handler) override {
        inner().async_wait_for_change(
            std::move(account), known, max_wait,
            [this, h = std::move(handler)](error_code ec, std::optional<stored_tokens> r) mutable {
                std::move(h)(ec, std::move(r));
                // Posted: the cache hears the wait's end (and asks for the lease, or would) first.
                asio::post(get_executor(), [this] { answer_held_renewal(); });
            });
    }
    bool has_held_renewal() const {
        const std::lock_guard lock{held_mutex_};
        return held_.has_value();
    }
    void answer_held_renewal() {
        std::optional<lease_handler> held;
        {
            const std::lock_guard lock{held_mutex_};
            held.swap(held_);
        }
        if (held) {
            ++late_answers;
            std::move (*held)(errc::lease_lost);
        }
    }

private:
    mutable std::mutex held_mutex_;
    std::optional<lease_handler> held_;
};

}  // namespace

// The cache asks for the lease again while it holds it (here: after waiting for a holder that
// marked a request sent and went silent), and the store answers on its own threads. A renewal
// sent before that re-acquire and told lease_lost could be delivered after its grant: honoured,
// it dropped the lease just granted (no renewals during a token request slower than the lease,
// another cache then granted it sent the same refresh token, and the server, taking that for
// reuse, revoked the grant); ignored, it hid that the old lease had lapsed and may have gone to a
// new sender, owed a wait. So the re-acquire waits for the renewal's answer: none is sent while
// the renewal is held, and the lost lease is heard before the next grant.
BOOST_AUTO_TEST_CASE(a_re_acquire_waits_for_the_renewal_in_flight_and_no_other_cache_sends_the_same_token) {
    client c{ioc.get_executor(), config()};
    auto late = std::make_shared<store_answering_a_renewal_late>(ioc.get_executor());
    auto settings = cache_settings();
    settings.lease_ttl = std::chrono::milliseconds(300);  // renewed every 100 ms
    settings.backoff_initial = std::chrono::milliseconds(100);
    settings.backoff_max = std::chrono::milliseconds(400);  // the wait for the silent sender
    token_cache first{c, late, settings};
    token_cache second{c, late, settings};
    const auto original = seed(c, first, "acme");
    expire_everything();
    // Another process marked a request sent with generation 1's refresh token and went silent.
    run([&]() -> awaitable<int> {
        std::optional<error_code> marked;
        late->async_acquire(
            "acme", "another-process", 1, std::chrono::milliseconds(50), [&](error_code ec, lease_outcome o) {
                BOOST_TEST_REQUIRE((!ec && o.what == lease_outcome::kind::granted));
                late->async_mark_sent("acme", "another-process", 1, std::chrono::milliseconds(50),
                                      [&](error_code e) { marked = e; });
            });
        co_await until([&] { return marked.has_value(); });
        BOOST_TEST_REQUIRE(!*marked);
        asio::steady_timer lapse{co_await asio::this_coro::executor, std::chrono::milliseconds(100)};
        co_await lapse.async_wait(use_awaitable);
        co_return 0;
    });
    // The first cache's token request takes five leases.
    server.inject(
        {.what = kind::latency, .where = emulator::route::token, .delay = std::chrono::milliseconds(1'500)});
    late->hold_next_renewal = true;
    error_code first_ec = asio::error::would_block;
    std::uint64_t first_generation = 0;
    first.async_get("acme", [&](error_code ec, access_token t) {
        first_ec = ec;
        first_generation = t.generation;
    });
    int renewals_on_the_wire = 0;
    const auto [second_ec, token] = run([&]() -> awaitable<std::tuple<error_code, access_token>> {
        co_await until([&] { return first.metrics().refreshes == 1u; });  // on the wire now
        BOOST_TEST(late->late_answers.load() == 1);                       // after the wait ended
        BOOST_TEST(late->acquires_while_a_renewal_was_held.load() == 0);
        renewals_on_the_wire = late->renewals.load();
        // The second cache never refreshes while the first holds the lease: it adopts the first's
        // pair, or (the request outlasting holder_wait_limit) its callers are told so.
        auto got = co_await second.async_get("acme", asio::as_tuple(use_awaitable));
        co_await until([&] { return first_ec != asio::error::would_block; });
        co_return got;
    });
    late->answer_held_renewal();  // none left, unless the cache never asked again
    BOOST_TEST(!first_ec);
    BOOST_TEST(first_generation == 2u);
    if (second_ec) {
        BOOST_TEST(second_ec == errc::coordination_unavailable);
    } else {
        BOOST_TEST(token.generation == 2u);
    }
    BOOST_TEST(late->renewals.load() > renewals_on_the_wire);  // the lease granted was renewed
    BOOST_TEST(second.metrics().refreshes == 0u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    const auto grant = server.grant_stats_of(std::string{original.refresh_token.reveal()});
    BOOST_TEST(grant.refreshes == 1u);
    BOOST_TEST(grant.reuses == 0u);
    BOOST_TEST(late->saved_generation("acme") == 2u);
}

namespace {

/// One cache's view of a store it shares with another cache (another process). It can hold this
/// cache's next release: neither forwarded nor answered until forward_held_release(), as a store
/// that runs one holder's calls out of order (on a pool, on retry timers) may carry it out after
/// the calls sent behind it. It counts the acquires sent while a release is held, follows whether
/// this cache believes it holds the lease (from a grant delivered to it until it gives the lease
/// back, its commit clears it, or it is told the lease was lost), and counts the grants made to
/// this cache while the `other` cache believed it held the lease.
class store_holding_a_release : public forwarding_token_store {
public:
    using forwarding_token_store::forwarding_token_store;

    std::atomic<bool> hold_next_release{false};
    std::atomic<int> acquires_while_a_release_was_held{0};
    std::atomic<int> releases_delivered{0};
    std::atomic<int> busy_answers{0};
    std::atomic<int> grants_while_the_other_believed_it_held{0};
    std::atomic<bool> believes_it_holds{false};
    const store_holding_a_release* other = nullptr;

    void async_acquire(std::string account, std::string holder, std::uint64_t known,
                       std::chrono::milliseconds ttl, acquire_handler handler) override {
        acquires_while_a_release_was_held += has_held_release() ? 1 : 0;
        inner().async_acquire(std::move(account), std::move(holder), known, ttl,
                              [this, h = std::move(handler)](error_code ec, lease_outcome o) mutable {
                                  if (!ec && o.what == lease_outcome::kind::granted) {
                                      if (other != nullptr && other->believes_it_holds) {
                                          ++grants_while_the_other_believed_it_held;
                                      }
                                      believes_it_holds = true;
                                  }
                                  busy_answers += !ec && o.what == lease_outcome::kind::busy ? 1 : 0;
                                  std::move(h)(ec, std::move(o));
                              });
    }
    void async_mark_sent(std::string account, std::string holder, std::uint64_t generation,
                         std::chrono::milliseconds ttl, lease_handler handler) override {
        inner().async_mark_sent(std::move(account), std::move(holder), generation, ttl,
                                [this, h = std::move(handler)](error_code ec) mutable {
                                    believes_it_holds = believes_it_holds && ec != errc::lease_lost;
                                    std::move(h)(ec);
                                });
    }
    void async_renew(std::string account, std::string holder, std::uint64_t generation,
                     std::chrono::milliseconds ttl, lease_handler handler) override {
        inner().async_renew(std::move(account), std::move(holder), generation, ttl,
                            [this, h = std::move(handler)](error_code ec) mutable {
                                believes_it_holds = believes_it_holds && ec != errc::lease_lost;
                                std::move(h)(ec);
                            });
    }
    void async_commit(std::string account, std::string holder, stored_tokens record, std::uint64_t expected,
                      save_handler handler) override {
        const bool under_lease = !holder.empty();  // a write-back names no holder, and clears nothing
        inner().async_commit(std::move(account), std::move(holder), std::move(record), expected,
                             [this, under_lease, h = std::move(handler)](error_code ec) mutable {
                                 believes_it_holds = believes_it_holds && (ec || !under_lease);
                                 std::move(h)(ec);
                             });
    }
    void async_release(std::string account, std::string holder, lease_handler handler) override {
        believes_it_holds = false;  // given back, whenever the store carries it out
        auto delivered = [this, h = std::move(handler)](error_code ec) mutable {
            ++releases_delivered;
            std::move(h)(ec);
        };
        if (hold_next_release.exchange(false)) {
            const std::lock_guard lock{mutex_};
            held_.emplace(held_release{std::move(account), std::move(holder), std::move(delivered)});
            return;
        }
        inner().async_release(std::move(account), std::move(holder), std::move(delivered));
    }
    bool has_held_release() const {
        const std::lock_guard lock{mutex_};
        return held_.has_value();
    }
    /// The held release reaches the store now; its answer comes back as the store gives it.
    void forward_held_release() {
        std::optional<held_release> held;
        {
            const std::lock_guard lock{mutex_};
            held.swap(held_);
        }
        if (held) {
            inner().async_release(std::move(held->account), std::move(held->holder),
                                  std::move(held->handler));
        }
    }

private:
    struct held_release {
        std::string account;
        std::string holder;
        lease_handler handler;
    };
    mutable std::mutex mutex_;
    std::optional<held_release> held_;
};

/// The client's refresher, which can hold its next token request back (not sent) until
/// send_held().
class refresher_holding_a_request : public token_refresher {
public:
    explicit refresher_holding_a_request(client& oauth) : inner_(make_client_refresher(oauth)) {}

    std::atomic<bool> hold_next{false};

    void async_refresh(secret_string refresh_token, std::vector<std::string> scopes, diagnostics* diag,
                       refresh_handler handler) override {
        if (hold_next.exchange(false)) {
            const std::lock_guard lock{mutex_};
            held_.emplace(
                held_request{std::move(refresh_token), std::move(scopes), diag, std::move(handler)});
            return;
        }
        inner_->async_refresh(std::move(refresh_token), std::move(scopes), diag, std::move(handler));
    }
    bool has_held() const {
        const std::lock_guard lock{mutex_};
        return held_.has_value();
    }
    void send_held() {
        std::optional<held_request> held;
        {
            const std::lock_guard lock{mutex_};
            held.swap(held_);
        }
        if (held) {
            inner_->async_refresh(std::move(held->refresh_token), std::move(held->scopes), held->diag,
                                  std::move(held->handler));
        }
    }

private:
    struct held_request {
        secret_string refresh_token;
        std::vector<std::string> scopes;
        diagnostics* diag;
        refresh_handler handler;
    };
    std::shared_ptr<token_refresher> inner_;
    mutable std::mutex mutex_;
    std::optional<held_request> held_;
};

/// What a_new_cycle_with_its_release_held saw.
struct release_held_across_a_cycle {
    token_set original;                            ///< the pair seeded
    error_code refused;                            ///< the first cache's caller, when its refresh was refused
    int acquires_while_the_release_was_held = -1;  ///< sent by the first cache
    int grants_to_the_second_while_the_first_held = -1;
    int second_cache_busy_answers = -1;
    int releases_delivered = -1;
    error_code first_ec;
    access_token first_token;
    error_code second_ec;
    access_token second_token;
    std::uint64_t second_cache_refreshes = 0;
    std::optional<stored_tokens> stored;
};

/// The first cache (over `one`, with a refresher that can hold its request) refreshes an expired
/// pair; the server refuses it (503), and the cycle ends with a release, which `one` holds. Past
/// the backoff a new caller starts a new cycle while the release is still unanswered. The release
/// then reaches the store: at once when the cache is waiting for it, or, when the cache asked for
/// the lease anyway, once that acquire was granted and its token request is ready to go (the
/// worst moment: the release deletes the lease just granted, and the mark of the request sent).
/// The first cache's request is held while the second cache (over `other`, the same records and
/// leases) asks for the token, until the second cache is told busy or has its token; then it goes.
release_held_across_a_cycle a_new_cycle_with_its_release_held(
    cache_fixture& f, const std::shared_ptr<store_holding_a_release>& one,
    const std::shared_ptr<store_holding_a_release>& other) {
    release_held_across_a_cycle out;
    client c{f.ioc.get_executor(), f.config()};
    auto settings = f.cache_settings();
    settings.backoff_initial = std::chrono::milliseconds(5);
    settings.backoff_max = std::chrono::milliseconds(100);
    auto requests = std::make_shared<refresher_holding_a_request>(c);
    token_cache first{f.ioc.get_executor(), requests, one, settings};
    token_cache second{c, other, settings};
    other->other = one.get();
    out.original = f.seed(c, first, "acme");
    f.expire_everything();
    f.server.inject({.what = kind::http_status, .where = emulator::route::token, .status = 503});
    one->hold_next_release = true;
    out.refused = f.run([&]() -> awaitable<error_code> {
        auto [ec, unused] = co_await first.async_get("acme", asio::as_tuple(use_awaitable));
        co_return ec;
    });
    BOOST_TEST_REQUIRE(one->has_held_release());  // the refused cycle gave the lease back
    f.clock.advance(std::chrono::seconds(1));     // past the backoff (Retry-After included)
    requests->hold_next = true;
    std::optional<error_code> first_ec;
    std::optional<error_code> second_ec;
    first.async_get("acme", [&](error_code ec, access_token t) {
        first_ec = ec;
        out.first_token = std::move(t);
    });
    f.run([&]() -> awaitable<int> {
        // The get has met the machine: a new cycle, and the acquire, if one is sent, has gone.
        co_await until([&] { return first.metrics().waiting_now == 1u; });
        out.acquires_while_the_release_was_held = one->acquires_while_a_release_was_held.load();
        co_await until([&] { return one->acquires_while_a_release_was_held == 0 || requests->has_held(); });
        one->forward_held_release();
        co_await until([&] { return one->releases_delivered == 1; });
        co_await until([&] { return requests->has_held(); });  // the lease is the first cache's
        second.async_get("acme", [&](error_code ec, access_token t) {
            second_ec = ec;
            out.second_token = std::move(t);
        });
        co_await until([&] { return other->busy_answers > 0 || second_ec.has_value(); });
        requests->send_held();
        co_await until([&] { return first_ec.has_value() && second_ec.has_value(); });
        co_return 0;
    });
    out.first_ec = *first_ec;
    out.second_ec = *second_ec;
    out.grants_to_the_second_while_the_first_held = other->grants_while_the_other_believed_it_held.load();
    out.second_cache_busy_answers = other->busy_answers.load();
    out.releases_delivered = one->releases_delivered.load();
    out.second_cache_refreshes = second.metrics().refreshes;
    other->async_load("acme", [&](error_code, std::optional<stored_tokens> r) { out.stored = std::move(r); });
    f.ioc.run();
    f.ioc.restart();
    return out;
}

void check_no_acquire_went_before_the_release_landed(const release_held_across_a_cycle& seen,
                                                     const emulator::server& server) {
    BOOST_TEST(seen.refused);
    BOOST_TEST(seen.acquires_while_the_release_was_held == 0);  // it waited for the answer
    BOOST_TEST(seen.grants_to_the_second_while_the_first_held == 0);
    BOOST_TEST(seen.second_cache_busy_answers >= 1);  // the lease was the first cache's
    BOOST_TEST(seen.releases_delivered >= 1);
    BOOST_TEST(!seen.first_ec);
    BOOST_TEST(seen.first_token.generation == 2u);
    BOOST_TEST(!seen.second_ec);
    BOOST_TEST(seen.second_token.generation == 2u);
    BOOST_TEST(seen.second_token.value == seen.first_token.value);  // adopted, not refreshed again
    BOOST_TEST(seen.second_cache_refreshes == 0u);
    // Two refresh requests: the one refused, and the rotation. A second send of the same refresh
    // token would be a third, counted as a reuse (this emulator refuses it; Apollo, like rotating
    // providers on suspected theft, may revoke the grant: the customer locked out).
    BOOST_TEST(server.stats().refresh_token_grants == 2u);
    BOOST_TEST(server.stats().successful_refreshes == 1u);
    const auto grant = server.grant_stats_of(std::string{seen.original.refresh_token.reveal()});
    BOOST_TEST(grant.refreshes == 1u);
    BOOST_TEST(grant.reuses == 0u);
    BOOST_TEST(!grant.revoked);
    BOOST_TEST_REQUIRE(seen.stored.has_value());
    BOOST_TEST(seen.stored->generation == 2u);
}

}  // namespace

// A refresh cycle that ends without a commit (here the server refused the request) gives the
// lease back, and the token_store contract does not order one holder's calls: the release, a
// compare-and-delete on the holder, may be carried out after an acquire sent behind it, and
// delete the lease that acquire was just granted (with the mark of the request sent under it).
// The cache would then refresh believing it holds the lease while the store holds none, and
// another process, granted it, would send the same refresh token: the server takes that for reuse
// and revokes the grant. So a new cycle sends no acquire until the release is answered; then it
// refreshes once, and the other cache, told busy, adopts its pair.
BOOST_AUTO_TEST_CASE(a_new_cycle_asks_for_the_lease_only_once_its_release_landed_in_a_memory_store) {
    auto memory = make_memory_token_store(ioc.get_executor());
    auto one = std::make_shared<store_holding_a_release>(memory);
    auto other = std::make_shared<store_holding_a_release>(memory);
    check_no_acquire_went_before_the_release_landed(a_new_cycle_with_its_release_held(*this, one, other),
                                                    server);
}

// The same with two file store objects over one directory, as two processes on one host (the
// file store retries a call that waits for the directory's lock on a timer: one holder's calls
// can land out of order there).
BOOST_AUTO_TEST_CASE(a_new_cycle_asks_for_the_lease_only_once_its_release_landed_in_a_file_store) {
    temp_directory dir;
    auto one = std::make_shared<store_holding_a_release>(make_file_token_store(ioc.get_executor(), dir.path));
    auto other =
        std::make_shared<store_holding_a_release>(make_file_token_store(ioc.get_executor(), dir.path));
    check_no_acquire_went_before_the_release_landed(a_new_cycle_with_its_release_held(*this, one, other),
                                                    server);
}

BOOST_AUTO_TEST_CASE(diagnostics_tell_what_the_server_said_on_a_failed_refresh) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    seed(c, cache, "acme");
    expire_everything();
    server.inject({.what = kind::http_status, .where = emulator::route::token, .status = 503});
    diagnostics diag;
    const auto ec = run([&]() -> awaitable<error_code> {
        auto [e, t] = co_await cache.async_get("acme", diag, asio::as_tuple(use_awaitable));
        co_return e;
    });
    BOOST_TEST(ec);
    BOOST_TEST(diag.http_status == 503u);
    BOOST_TEST(cache.metrics().refresh_failures == 1u);
    BOOST_TEST(cache.metrics().waiters == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
