// What the multi-process tests of every shared store have in common (test/lifecycle: a file-store
// directory; test/redis: one Redis): the sizes from the environment, the children's result line,
// the emulator in its revoke-on-reuse mode, the first authorization, and the check that the fleet
// refreshed exactly once per rotation. The children are test/store/store_child_main.cpp.
#pragma once

#include "store/child_process.hpp"

#include <apollo_oauth/authorization.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/emulator/client_config.hpp>
#include <apollo_oauth/emulator/server.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace apollo_oauth::store_test {

inline long env_or(const char* name, long fallback) {
    const char* v = std::getenv(name);
    return v != nullptr ? std::atol(v) : fallback;
}

/// The child's one line: "result launched=N served=N ... shutdown=0|1".
struct child_result {
    bool reported = false;
    long launched = 0, served = 0, failed = 0, reauth = 0, refreshes = 0, rotations = 0, adopted = 0,
         shutdown = 0;
    std::uint64_t max_generation = 0;
};

inline child_result parse_child_result(const std::optional<std::string>& line) {
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
        const auto value = std::stoull(field.substr(eq + 1));
        for (auto [n, p] : {std::pair{"launched", &r.launched},
                            {"served", &r.served},
                            {"failed", &r.failed},
                            {"reauth", &r.reauth},
                            {"refreshes", &r.refreshes},
                            {"rotations", &r.rotations},
                            {"adopted", &r.adopted},
                            {"shutdown", &r.shutdown}}) {
            if (name == n) {
                *p = static_cast<long>(value);
            }
        }
        if (name == "max_generation") {
            r.max_generation = value;
        }
    }
    return r;
}

/// Each child's result line, in order, and its exit status checked.
inline std::vector<child_result> collect(std::vector<std::unique_ptr<child_process>>& children) {
    std::vector<child_result> results;
    for (auto& c : children) {
        results.push_back(parse_child_result(c->read_line()));
        BOOST_TEST(c->wait() == 0);
    }
    return results;
}

/// 2 s pairs, so that rotations come quickly, and the harshest answer to a reused refresh token:
/// the whole grant revoked.
inline emulator::server_config revoking_server(const std::string& listen_address = "127.0.0.1") {
    emulator::server_config c;
    c.expires_in = std::chrono::seconds(2);
    c.revoke_grant_on_refresh_token_reuse = true;
    c.threads = 2;
    c.listen_address = listen_address;
    return c;
}

/// A customer connecting: the authorization-code flow against the emulator.
inline token_set authorize(emulator::server& server) {
    boost::asio::io_context ioc;
    client c{ioc.get_executor(), emulator::client_config_for(server)};
    authorization_flow flow{c.config()};
    auto url = flow.make_authorization_url({.any_browser = true});
    BOOST_REQUIRE(url.has_value());
    auto grant = flow.verify_callback(server.consent(url->url));
    BOOST_REQUIRE(grant.has_value());
    token_set tokens;
    boost::asio::co_spawn(
        ioc,
        [&]() -> boost::asio::awaitable<void> {
            tokens = co_await c.async_exchange_code(std::move(*grant), boost::asio::use_awaitable);
        },
        [](std::exception_ptr e) {
            if (e) {
                std::rethrow_exception(e);
            }
        });
    ioc.run();
    return tokens;
}

/// Every process served every caller, and the server rotated exactly as often as the store moved.
/// `every_process`: false when one was killed (its own refreshes were never reported).
inline void check_one_refresh_per_rotation(const std::vector<child_result>& results,
                                           const std::optional<stored_tokens>& record,
                                           const emulator::grant_stats& g, long callers, long rotations,
                                           bool every_process) {
    long refreshes = 0;
    for (const auto& r : results) {
        BOOST_TEST(r.reported);
        BOOST_TEST(r.failed == 0);
        BOOST_TEST(r.reauth == 0);
        BOOST_TEST(r.served == r.launched);
        BOOST_TEST(r.launched >= callers);
        BOOST_TEST(r.shutdown == 0);
        refreshes += r.refreshes;
    }
    BOOST_REQUIRE(record.has_value());
    BOOST_TEST((record->state == record_state::ok));
    BOOST_TEST(record->generation >= static_cast<std::uint64_t>(rotations) + 1);
    BOOST_TEST(g.refreshes == record->generation - 1);  // one refresh per rotation, none lost
    if (every_process) {
        BOOST_TEST(static_cast<std::uint64_t>(refreshes) == g.refreshes);
    } else {
        BOOST_TEST(static_cast<std::uint64_t>(refreshes) <= g.refreshes);
    }
    BOOST_TEST(g.reuses == 0u);
    BOOST_TEST(g.revocations == 0u);
    BOOST_TEST(!g.revoked);
    BOOST_TEST_MESSAGE("rotations " << g.refreshes << ", processes " << results.size());
}

}  // namespace apollo_oauth::store_test
