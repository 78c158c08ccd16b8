// K processes (fork/exec of redis_child) × N callers sharing one Redis, against an emulator that
// revokes the whole grant when a refresh token is reused: exactly one refresh per rotation, no
// revocation, no reauthorization, every caller served, and the Redis commands counted per
// rotation (O(K): they do not grow with the callers). Also one process SIGKILLed at a random
// point: either nothing is lost, or exactly the one window no client can close was hit.
//
// Sizes come from the environment: small by default (4 processes × 1,000 callers, 4 rotations);
// the ctest labelled `long` sets the full size (4 × 10,000, 20 rotations).
#include "store/child_process.hpp"
#include "store/child_settings.hpp"
#include "store/multi_process_support.hpp"
#include "store_support.hpp"
#include "two_hosts.hpp"

#include <apollo_oauth/authorization.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/emulator/client_config.hpp>
#include <apollo_oauth/emulator/server.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <csignal>
#include <cstdlib>
#include <random>
#include <sstream>
#include <thread>

using namespace apollo_oauth;
using namespace apollo_oauth::redis_test;
namespace asio = boost::asio;
using namespace apollo_oauth::store_test;

namespace {

struct sizes {
    long processes = env_or("REDIS_MP_PROCESSES", 4);
    long callers = env_or("REDIS_MP_CALLERS", 1'000);
    long rotations = env_or("REDIS_MP_ROTATIONS", 4);
};

redis_server_options listening_on(const std::string& address) {
    redis_server_options options;
    if (address != "127.0.0.1") {
        options.arguments = {"--bind", "127.0.0.1", address};
    }
    return options;
}

// `host`: where the children reach Redis and the emulator (the test itself uses 127.0.0.1 too).
struct multi_process_fixture : pool_fixture {
    redis_server redis;
    emulator::server server;
    std::string settings_file;
    std::string url;
    token_set original;
    sizes size;
    redis::connection raw{executor(), plain_config(redis)};

    explicit multi_process_fixture(const std::string& host = "127.0.0.1")
        : redis(listening_on(host)), server(revoking_server(host)) {
        url = "redis://" + host + ":" + std::to_string(redis.port()) + "/0?key_prefix=mp:";
        const auto config = emulator::client_config_for(server);
        // The children's settings: a 0600 file, so the client secret is never on a command line.
        settings_file = redis.directory() + "/settings";
        store_test::write_child_settings(settings_file, config, server.ca_file());
        original = authorize();
        BOOST_REQUIRE(!store().save("acme", stored_tokens{original, 1, record_state::ok}, 0));
        exec(raw, {"CONFIG", "RESETSTAT"});
    }

    // A customer connecting (again).
    token_set authorize() { return store_test::authorize(server); }

    sync_store store() {
        redis_options options;
        BOOST_REQUIRE(!parse_redis_url(url, options));
        return sync_store{make_redis_token_store(executor(), options)};
    }

    /// `pause_at`: where the child stops itself in its first refresh (see test/store/store_child_main.cpp).
    std::unique_ptr<child_process> start(long start_delay_ms, long lease_ms, std::string pause_at = {}) {
        return std::make_unique<child_process>(child_argv(start_delay_ms, lease_ms, std::move(pause_at)));
    }

    std::vector<std::string> child_argv(long start_delay_ms, long lease_ms, std::string pause_at = {}) {
        const std::uint64_t target = static_cast<std::uint64_t>(size.rotations) + 1;
        std::vector<std::string> argv{REDIS_CHILD,
                                      settings_file,
                                      url,
                                      "acme",
                                      std::to_string(size.callers),
                                      std::to_string(target),
                                      std::to_string(start_delay_ms),
                                      std::to_string(lease_ms)};
        if (!pause_at.empty()) {
            argv.push_back(std::move(pause_at));
        }
        return argv;
    }

    long commands_processed() {
        const std::string info = exec(raw, {"INFO", "stats"}).text;
        const auto at = info.find("total_commands_processed:");
        BOOST_REQUIRE(at != std::string::npos);
        return std::atol(info.c_str() + at + std::string_view("total_commands_processed:").size());
    }

    emulator::grant_stats grant() const {
        return server.grant_stats_of(std::string{original.refresh_token.reveal()});
    }
};

void check_one_refresh_per_rotation(multi_process_fixture& f, const std::vector<child_result>& results,
                                    bool every_process = true) {
    store_test::check_one_refresh_per_rotation(results, std::get<1>(f.store().load("acme")), f.grant(),
                                               f.size.callers, f.size.rotations, every_process);
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(multi_process, multi_process_fixture)

BOOST_AUTO_TEST_CASE(k_processes_share_one_redis_with_one_refresh_per_rotation) {
    std::vector<std::unique_ptr<child_process>> children;
    for (long i = 0; i < size.processes; ++i) {
        children.push_back(start(0, 5'000));
    }
    const auto results = collect(children);
    const long commands = commands_processed();
    check_one_refresh_per_rotation(*this, results);
    const auto rotations = static_cast<long>(grant().refreshes);
    BOOST_REQUIRE(rotations > 0);
    const long per_rotation = commands / rotations;
    BOOST_TEST_MESSAGE("processes " << size.processes << " callers " << size.callers << " rotations "
                                    << rotations << " redis commands " << commands << " per rotation "
                                    << per_rotation);
    // O(K), not O(callers): the callers of a process share one flight and one waiter, and a valid
    // token never touches Redis. The bound leaves room for the waiters' polls (250 ms each).
    BOOST_TEST(per_rotation <= 40 * size.processes);
}

BOOST_AUTO_TEST_CASE(staggered_starts_read_the_store_instead_of_refreshing) {
    std::vector<std::unique_ptr<child_process>> children;
    for (long i = 0; i < size.processes; ++i) {
        children.push_back(start(i * 700, 5'000));  // each joins a rotation or more behind
    }
    const auto results = collect(children);
    check_one_refresh_per_rotation(*this, results);
}

BOOST_AUTO_TEST_CASE(a_process_killed_at_a_random_point_leaves_the_others_working) {
    std::random_device rd;
    std::vector<std::unique_ptr<child_process>> children;
    for (long i = 0; i < size.processes; ++i) {
        children.push_back(start(0, 3'000));
    }
    const auto kill_after = std::chrono::milliseconds(500 + rd() % 4'000);
    std::this_thread::sleep_for(kill_after);  // where to kill, not a synchronisation
    children.front()->kill();
    children.front()->wait();
    std::vector<child_result> results;
    for (std::size_t i = 1; i < children.size(); ++i) {
        results.push_back(parse_child_result(children[i]->read_line()));
        BOOST_TEST(children[i]->wait() == 0);
    }
    const auto [ec, record] = store().load("acme");
    BOOST_REQUIRE(record.has_value());
    const auto g = grant();
    if (g.refreshes == record->generation - 1) {
        BOOST_TEST_MESSAGE("killed after " << kill_after.count() << " ms, outside a refresh");
        check_one_refresh_per_rotation(*this, results, false);
    } else {
        // The one window no client can close: the server rotated, the process died before its
        // commit. Exactly one rotation is missing from the store, and the store says so.
        BOOST_TEST_MESSAGE("killed after " << kill_after.count() << " ms, inside the window");
        BOOST_TEST(g.refreshes == record->generation);
        BOOST_TEST(g.revoked);
        BOOST_TEST((record->state == record_state::reauthorization_required));
    }
}

// Two "hosts": the same processes, half of them in each of two network namespaces, reaching Redis
// and the emulator over veth pairs (test/redis/two_hosts.hpp). Nothing in the protocol may rely on
// sharing a kernel: no flock, no shared memory, no loopback.
namespace {

struct two_hosts_fixture {
    two_hosts network;
    multi_process_fixture processes{network.gateway()};
};

}  // namespace

// Nested, so that the full-size run (--run_test=multi_process) includes it.
BOOST_FIXTURE_TEST_SUITE(across_two_hosts, two_hosts_fixture)

BOOST_AUTO_TEST_CASE(processes_on_two_hosts_share_one_redis_with_one_refresh_per_rotation) {
    if (!network.available()) {
        BOOST_WARN_MESSAGE(false, "skipped: " << network.why_not());
        return;
    }
    std::vector<std::unique_ptr<child_process>> children;
    for (long i = 0; i < processes.size.processes; ++i) {
        children.push_back(std::make_unique<child_process>(
            network.in_host(static_cast<std::size_t>(i % 2), processes.child_argv(0, 5'000))));
    }
    const auto results = collect(children);
    check_one_refresh_per_rotation(processes, results);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE_END()  // multi_process

// The lease holder stopped or killed at each phase of its refresh (issue 12). The victim stops
// itself (SIGSTOP) at the phase and says so on stdout; the test then kills it there, or lets its
// lease run out while a successor starts and continues it. The emulator revokes the whole grant
// when a refresh token is presented twice, so a successor that refreshed with a token the victim
// already spent would show as a reuse.
namespace {

constexpr long holder_lease_ms = 2'000;

struct holder_phases_fixture : multi_process_fixture {
    holder_phases_fixture() {
        size.processes = 2;  // the victim and its successor
        size.callers = 200;
        size.rotations = 2;
    }

    /// A child stopped at `phase` of its first refresh.
    std::unique_ptr<child_process> victim_stopped_at(const std::string& phase) {
        auto victim = start(0, holder_lease_ms, phase);
        BOOST_REQUIRE(victim->read_line() == "paused " + phase);
        BOOST_REQUIRE(victim->wait_until_stopped());
        return victim;
    }

    child_result run_to_the_end(child_process& child) {
        auto result = parse_child_result(child.read_line());
        BOOST_TEST(child.wait() == 0);
        return result;
    }

    bool lease_exists() { return exec(raw, {"EXISTS", "mp:{acme}:lease"}).integer == 1; }

    /// Bounded polls of what the test observes (not sleeps standing in for an event).
    template <class Condition>
    void wait_for(Condition done, const char* what) {
        for (int i = 0; i < 3'000 && !done(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        BOOST_REQUIRE_MESSAGE(done(), what);
    }

    stored_tokens stored() {
        auto [ec, record] = store().load("acme");
        BOOST_REQUIRE(!ec);
        BOOST_REQUIRE(record.has_value());
        return std::move(*record);
    }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(holder_phases, holder_phases_fixture)

BOOST_AUTO_TEST_CASE(killed_before_mark_sent_it_sent_nothing_and_the_next_holder_takes_over) {
    auto victim = victim_stopped_at("before_mark_sent");
    victim->kill();
    victim->wait();
    BOOST_TEST(grant().refreshes == 0u);
    auto successor = start(0, holder_lease_ms);
    check_one_refresh_per_rotation(*this, {run_to_the_end(*successor)}, false);
}

BOOST_AUTO_TEST_CASE(killed_after_mark_sent_the_next_holder_waits_out_the_grace_then_refreshes) {
    auto victim = victim_stopped_at("after_mark_sent");
    victim->kill();
    victim->wait();
    // The refresh was marked sent but never reached the server: the successor, after the grace
    // period, refreshes with the same (unspent) token.
    BOOST_TEST(grant().refreshes == 0u);
    auto successor = start(0, holder_lease_ms);
    check_one_refresh_per_rotation(*this, {run_to_the_end(*successor)}, false);
}

BOOST_AUTO_TEST_CASE(killed_after_the_answer_is_the_one_window_and_it_is_recorded) {
    auto victim = victim_stopped_at("after_answer");
    BOOST_TEST(grant().refreshes == 1u);  // the server rotated; the pair exists only in the victim
    victim->kill();
    victim->wait();
    auto successor = start(0, holder_lease_ms);
    const auto r = run_to_the_end(*successor);
    BOOST_TEST(r.reported);
    BOOST_TEST(r.reauth > 0);
    const auto record = stored();
    const auto g = grant();
    BOOST_TEST(record.generation == 1u);
    BOOST_TEST(g.refreshes == record.generation);  // the one rotation the store never got
    BOOST_TEST(g.reuses == 1u);
    BOOST_TEST(g.revoked);
    BOOST_TEST((record.state == record_state::reauthorization_required));
}

BOOST_AUTO_TEST_CASE(killed_after_commit_nothing_is_lost) {
    auto victim = victim_stopped_at("after_commit");
    BOOST_TEST(stored().generation == 2u);
    victim->kill();
    victim->wait();
    auto successor = start(0, holder_lease_ms);
    check_one_refresh_per_rotation(*this, {run_to_the_end(*successor)}, false);
}

BOOST_AUTO_TEST_CASE(stopped_before_mark_sent_past_its_lease_it_does_not_send) {
    auto victim = victim_stopped_at("before_mark_sent");
    auto successor = start(0, holder_lease_ms);
    // The successor takes the lapsed lease and rotates while the victim is stopped.
    wait_for([&] { return stored().generation >= 2; }, "the successor rotated");
    victim->signal(SIGCONT);
    // The victim's mark-sent names generation 1, whose lease is gone: it sends nothing.
    check_one_refresh_per_rotation(*this, {run_to_the_end(*victim), run_to_the_end(*successor)});
}

BOOST_AUTO_TEST_CASE(stopped_after_the_answer_its_late_commit_lands_when_nobody_rotated) {
    auto victim = victim_stopped_at("after_answer");
    auto successor = start(0, holder_lease_ms);
    wait_for([&] { return !lease_exists(); }, "the victim's lease ran out");
    // Within the grace period the successor holds off: the refresh token may be spent (it is).
    BOOST_TEST(grant().refreshes == 1u);
    BOOST_TEST(stored().generation == 1u);
    victim->signal(SIGCONT);
    // Its pair is the only live one, and the commit's fence (generation 1 still stored) lets it in.
    check_one_refresh_per_rotation(*this, {run_to_the_end(*victim), run_to_the_end(*successor)});
}

BOOST_AUTO_TEST_CASE(stopped_after_the_answer_its_late_commit_is_refused_when_a_newer_pair_is_stored) {
    auto victim = victim_stopped_at("after_answer");
    BOOST_TEST(grant().refreshes == 1u);
    wait_for([&] { return !lease_exists(); }, "the victim's lease ran out");
    // Meanwhile the customer connected again: a newer generation, of a new grant, is stored.
    const token_set reconnected = authorize();
    BOOST_REQUIRE(!store().save("acme", stored_tokens{reconnected, 2, record_state::ok}, 1));
    victim->signal(SIGCONT);
    const auto r = run_to_the_end(*victim);
    BOOST_TEST(r.reported);
    BOOST_TEST(r.failed == 0);
    // The late commit (expecting generation 1) met generation 2: refused, nothing overwritten. Every
    // generation from 2 on is the new grant's, rotated once per generation.
    const auto record = stored();
    const std::string new_grant{reconnected.refresh_token.reveal()};
    BOOST_TEST(record.generation >= 2u);
    BOOST_TEST(server.grant_stats_of(new_grant).refreshes == record.generation - 2);
    BOOST_TEST(std::string{record.tokens.refresh_token.reveal()} ==
               server.newest_refresh_token_of(new_grant));
    BOOST_TEST(server.grant_stats_of(new_grant).reuses == 0u);
    BOOST_TEST(grant().refreshes == 1u);  // the old grant: only the victim's rotation
    BOOST_TEST(grant().reuses == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
