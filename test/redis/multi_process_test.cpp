// K processes (fork/exec of redis_child) × N callers sharing one Redis, against an emulator that
// revokes the whole grant when a refresh token is reused: exactly one refresh per rotation, no
// revocation, no reauthorization, every caller served, and the Redis commands counted per
// rotation (O(K): they do not grow with the callers). Also one process SIGKILLed at a random
// point: either nothing is lost, or exactly the one window no client can close was hit.
//
// Sizes come from the environment: small by default (4 processes × 1,000 callers, 4 rotations);
// the ctest labelled `long` sets the full size (4 × 10,000, 20 rotations).
#include "store/child_process.hpp"
#include "store_support.hpp"

#include <apollo_oauth/authorization.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/emulator/client_config.hpp>
#include <apollo_oauth/emulator/server.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

using namespace apollo_oauth;
using namespace apollo_oauth::redis_test;
namespace asio = boost::asio;
using apollo_oauth::store_test::child_process;

namespace {

long env_or(const char* name, long fallback) {
    const char* v = std::getenv(name);
    return v != nullptr ? std::atol(v) : fallback;
}

struct sizes {
    long processes = env_or("REDIS_MP_PROCESSES", 4);
    long callers = env_or("REDIS_MP_CALLERS", 1'000);
    long rotations = env_or("REDIS_MP_ROTATIONS", 4);
};

struct child_result {
    bool reported = false;
    long launched = 0, served = 0, failed = 0, reauth = 0, refreshes = 0, shutdown = 0;
};

child_result parse(const std::optional<std::string>& line) {
    child_result r;
    if (!line || line->rfind("result ", 0) != 0) {
        return r;
    }
    r.reported = true;
    std::istringstream in(line->substr(7));
    std::string field;
    while (in >> field) {
        const auto eq = field.find('=');
        const auto name = field.substr(0, eq);
        const long value = std::stol(field.substr(eq + 1));
        for (auto [n, p] : {std::pair{"launched", &r.launched},
                            {"served", &r.served},
                            {"failed", &r.failed},
                            {"reauth", &r.reauth},
                            {"refreshes", &r.refreshes},
                            {"shutdown", &r.shutdown}}) {
            if (name == n) {
                *p = value;
            }
        }
    }
    return r;
}

emulator::server_config revoking_server() {
    emulator::server_config c;
    c.expires_in = std::chrono::seconds(2);
    c.revoke_grant_on_refresh_token_reuse = true;
    c.threads = 2;
    return c;
}

struct multi_process_fixture : pool_fixture {
    redis_server redis;
    emulator::server server{revoking_server()};
    std::string settings_file;
    std::string url;
    token_set original;
    sizes size;
    redis::connection raw{executor(), plain_config(redis)};

    multi_process_fixture() {
        url = "redis://127.0.0.1:" + std::to_string(redis.port()) + "/0?key_prefix=mp:";
        const auto config = emulator::client_config_for(server);
        // The children's settings: a 0600 file, so the client secret is never on a command line.
        settings_file = redis.directory() + "/settings";
        {
            std::ofstream out(settings_file);
            out << "token_url=" << config.endpoints.token_url << "\nclient_id=" << config.client_id
                << "\nclient_secret=" << config.client_secret.reveal()
                << "\nredirect_uri=" << config.redirect_uris.front() << "\nca_file=" << server.ca_file()
                << "\n";
        }
        ::chmod(settings_file.c_str(), 0600);
        asio::io_context ioc;
        client c{ioc.get_executor(), config};
        authorization_flow flow{c.config()};
        auto authorize = flow.make_authorization_url({});
        BOOST_REQUIRE(authorize.has_value());
        auto grant = flow.verify_callback(server.consent(authorize->url));
        BOOST_REQUIRE(grant.has_value());
        asio::co_spawn(
            ioc,
            [&]() -> asio::awaitable<void> {
                original = co_await c.async_exchange_code(std::move(*grant), asio::use_awaitable);
            },
            [](std::exception_ptr e) {
                if (e) {
                    std::rethrow_exception(e);
                }
            });
        ioc.run();
        BOOST_REQUIRE(!store().save("acme", stored_tokens{original, 1, record_state::ok}, 0));
        exec(raw, {"CONFIG", "RESETSTAT"});
    }

    sync_store store() {
        redis_options options;
        BOOST_REQUIRE(!parse_redis_url(url, options));
        return sync_store{make_redis_token_store(executor(), options)};
    }

    std::unique_ptr<child_process> start(long start_delay_ms, long lease_ms) {
        const std::uint64_t target = static_cast<std::uint64_t>(size.rotations) + 1;
        return std::make_unique<child_process>(std::vector<std::string>{
            REDIS_CHILD, settings_file, url, "acme", std::to_string(size.callers), std::to_string(target),
            std::to_string(start_delay_ms), std::to_string(lease_ms)});
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

// `every_process`: false when one was killed (its own refreshes were never reported).
void check_one_refresh_per_rotation(multi_process_fixture& f, const std::vector<child_result>& results,
                                    bool every_process = true) {
    long refreshes = 0;
    for (const auto& r : results) {
        BOOST_TEST(r.reported);
        BOOST_TEST(r.failed == 0);
        BOOST_TEST(r.reauth == 0);
        BOOST_TEST(r.served == r.launched);
        BOOST_TEST(r.launched >= f.size.callers);
        BOOST_TEST(r.shutdown == 0);
        refreshes += r.refreshes;
    }
    const auto [ec, record] = f.store().load("acme");
    BOOST_REQUIRE(record.has_value());
    BOOST_TEST((record->state == record_state::ok));
    BOOST_TEST(record->generation >= static_cast<std::uint64_t>(f.size.rotations) + 1);
    const auto g = f.grant();
    BOOST_TEST(g.refreshes == record->generation - 1);  // one refresh per rotation, none lost
    if (every_process) {
        BOOST_TEST(static_cast<std::uint64_t>(refreshes) == g.refreshes);
    } else {
        BOOST_TEST(static_cast<std::uint64_t>(refreshes) <= g.refreshes);
    }
    BOOST_TEST(g.reuses == 0u);
    BOOST_TEST(g.revocations == 0u);
    BOOST_TEST(!g.revoked);
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(multi_process, multi_process_fixture)

BOOST_AUTO_TEST_CASE(k_processes_share_one_redis_with_one_refresh_per_rotation) {
    std::vector<std::unique_ptr<child_process>> children;
    for (long i = 0; i < size.processes; ++i) {
        children.push_back(start(0, 5'000));
    }
    std::vector<child_result> results;
    for (auto& c : children) {
        results.push_back(parse(c->read_line()));
        BOOST_TEST(c->wait() == 0);
    }
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
        results.push_back(parse(children[i]->read_line()));
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

BOOST_AUTO_TEST_SUITE_END()
