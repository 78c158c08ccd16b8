// K processes (fork/exec of lifecycle_child) × N callers on one file-store directory, against an
// emulator that revokes the whole grant when a refresh token is reused: exactly one refresh per
// rotation, no revocation, no reauthorization, every caller served. Also with staggered starts,
// and with one process killed (SIGKILL) at a random point.
//
// Sizes come from the environment so that one test serves both runs: the default is small
// (4 processes × 1,000 callers, 4 rotations); the ctest labelled `long` sets the full
// size (4 × 10,000, 20 rotations).
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/emulator/client_config.hpp>
#include <apollo_oauth/emulator/server.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>
#include <thread>

#include "store/child_process.hpp"
#include "store/child_settings.hpp"
#include "store/multi_process_support.hpp"

using namespace apollo_oauth;
namespace asio = boost::asio;
using namespace apollo_oauth::store_test;

namespace {

struct sizes {
    long processes = env_or("LIFECYCLE_PROCESSES", 4);
    long callers = env_or("LIFECYCLE_CALLERS", 1'000);
    long rotations = env_or("LIFECYCLE_ROTATIONS", 4);
};

struct multi_process_fixture {
    emulator::server server{revoking_server()};
    std::filesystem::path dir;
    std::string settings_file;
    token_set original;
    sizes size;

    multi_process_fixture() {
        std::random_device rd;
        dir = std::filesystem::temp_directory_path() /
              ("apollo-mp-" + std::to_string(rd()) + std::to_string(rd()));
        std::filesystem::create_directories(dir);
        std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
        const auto config = emulator::client_config_for(server);
        // The children's settings: a 0600 file, so the client secret is never on a command line.
        settings_file = (dir / "settings").string();
        store_test::write_child_settings(settings_file, config, server.ca_file());
        // The first pair, stored as generation 1 where every child will find it.
        original = authorize(server);
        asio::io_context ioc;
        auto store = make_file_token_store(ioc.get_executor(), dir / "tokens");
        error_code saved = asio::error::would_block;
        store->async_save("acme", stored_tokens{original, 1, record_state::ok}, 0,
                          [&](error_code ec) { saved = ec; });
        ioc.run();
        BOOST_REQUIRE(!saved);
    }

    ~multi_process_fixture() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }

    std::unique_ptr<child_process> start(long start_delay_ms, long lease_ms) {
        const std::uint64_t target = static_cast<std::uint64_t>(size.rotations) + 1;
        return std::make_unique<child_process>(std::vector<std::string>{
            LIFECYCLE_CHILD, settings_file, (dir / "tokens").string(), "acme", std::to_string(size.callers),
            std::to_string(target), std::to_string(start_delay_ms), std::to_string(lease_ms)});
    }

    std::optional<stored_tokens> stored() {
        asio::io_context ioc;
        std::optional<stored_tokens> out;
        make_file_token_store(ioc.get_executor(), dir / "tokens")
            ->async_load("acme", [&](error_code, std::optional<stored_tokens> r) { out = std::move(r); });
        ioc.run();
        return out;
    }

    emulator::grant_stats grant() const {
        return server.grant_stats_of(std::string{original.refresh_token.reveal()});
    }
};

void check_one_refresh_per_rotation(multi_process_fixture& f, const std::vector<child_result>& results,
                                    bool every_process = true) {
    store_test::check_one_refresh_per_rotation(results, f.stored(), f.grant(), f.size.callers,
                                               f.size.rotations, every_process);
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(multi_process, multi_process_fixture)

BOOST_AUTO_TEST_CASE(k_processes_share_one_file_store_with_one_refresh_per_rotation) {
    std::vector<std::unique_ptr<child_process>> children;
    for (long i = 0; i < size.processes; ++i) {
        children.push_back(start(0, 5'000));
    }
    check_one_refresh_per_rotation(*this, collect(children));
}

BOOST_AUTO_TEST_CASE(staggered_starts_read_the_store_instead_of_refreshing) {
    std::vector<std::unique_ptr<child_process>> children;
    for (long i = 0; i < size.processes; ++i) {
        children.push_back(start(i * 700, 5'000));  // each joins a rotation or more behind
    }
    check_one_refresh_per_rotation(*this, collect(children));
}

BOOST_AUTO_TEST_CASE(a_process_killed_at_a_random_point_leaves_the_others_working) {
    std::random_device rd;
    std::vector<std::unique_ptr<child_process>> children;
    for (long i = 0; i < size.processes; ++i) {
        children.push_back(start(0, 3'000));
    }
    // A random instant within the first rotations: mostly outside a refresh's round trip, now and
    // then inside it (the server rotated, the pair was not yet written).
    const auto kill_after = std::chrono::milliseconds(500 + rd() % 4'000);
    std::this_thread::sleep_for(kill_after);  // where to kill, not a synchronisation
    children.front()->kill();
    children.front()->wait();
    std::vector<child_result> results;
    for (std::size_t i = 1; i < children.size(); ++i) {
        results.push_back(parse_child_result(children[i]->read_line()));
        BOOST_TEST(children[i]->wait() == 0);
    }
    const auto record = stored();
    BOOST_REQUIRE(record.has_value());
    const auto g = grant();
    if (g.refreshes == record->generation - 1) {
        // The kill missed the window: nothing was lost, and the survivors carried on.
        BOOST_TEST_MESSAGE("killed after " << kill_after.count() << " ms, outside a refresh");
        check_one_refresh_per_rotation(*this, results, false);
    } else {
        // The one window no client can close: the server rotated, the process died before its
        // commit. Exactly one rotation is missing from the store; the survivors' refresh with the
        // stored token was a reuse, the grant is revoked, and the store says so (no process goes
        // on spending refreshes on it).
        BOOST_TEST_MESSAGE("killed after " << kill_after.count() << " ms, inside the window");
        BOOST_TEST(g.refreshes == record->generation);
        BOOST_TEST(g.revoked);
        BOOST_TEST((record->state == record_state::reauthorization_required));
    }
}

BOOST_AUTO_TEST_CASE(a_kill_after_the_server_rotated_is_the_one_window_and_is_recorded) {
    // The response to the first refresh is held back 3 s after the server rotated: a kill then is
    // inside the window no client can close.
    server.inject({.what = emulator::fault::kind::latency,
                   .where = emulator::route::token,
                   .delay = std::chrono::seconds(3)});
    auto victim = start(0, 3'000);
    for (int i = 0; i < 6'000 && server.stats().successful_refreshes == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // bounded wait for the rotation
    }
    BOOST_REQUIRE(server.stats().successful_refreshes == 1u);
    victim->kill();
    victim->wait();
    // The survivor finds the lease free at once (the kernel dropped the flock), refreshes with the
    // stored token, which the server already rotated: a reuse, so the grant is revoked.
    auto survivor = start(0, 3'000);
    const auto r = parse_child_result(survivor->read_line());
    BOOST_TEST(survivor->wait() == 0);
    BOOST_TEST(r.reported);
    BOOST_TEST(r.reauth > 0);
    const auto record = stored();
    BOOST_REQUIRE(record.has_value());
    const auto g = grant();
    BOOST_TEST(g.refreshes == record->generation);  // one rotation the store never got: detected
    BOOST_TEST(g.reuses == 1u);
    BOOST_TEST(g.revoked);
    // Recorded for every process: nobody spends another refresh on it.
    BOOST_TEST((record->state == record_state::reauthorization_required));
}

BOOST_AUTO_TEST_SUITE_END()
