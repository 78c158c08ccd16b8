// Shared pieces of the Redis tests: a two-thread pool for the code under test, and blocking
// helpers for the test body (futures: the test thread waits for a completion, not for a time).
#pragma once

#include "redis_server.hpp"
#include "store/redis/connection.hpp"

#include <apollo_oauth/redis_token_store.hpp>

#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <ostream>
#include <string>

#include <signal.h>

namespace apollo_oauth {
// Lets BOOST_TEST(ec == errc::x) print the expected side.
inline std::ostream& boost_test_print_type(std::ostream& os, errc e) {
    return os << make_error_code(e).message();
}
}  // namespace apollo_oauth

namespace apollo_oauth::redis_test {

struct pool_fixture {
    boost::asio::thread_pool pool{2};
    boost::asio::any_io_executor executor() { return pool.get_executor(); }
    ~pool_fixture() { pool.join(); }
};

inline redis::connection_config plain_config(const redis_server& server) {
    redis::connection_config config;
    config.host = "127.0.0.1";
    config.port = server.port();
    return config;
}

inline redis_options store_options(const redis_server& server) {
    redis_options options;
    options.host = "127.0.0.1";
    options.port = server.port();
    options.key_prefix = "test:";
    return options;
}

/// The reply, or throws boost::system::system_error.
inline redis::reply exec(redis::connection& c, redis::command cmd) {
    return c.async_exec(std::move(cmd), boost::asio::use_future).get();
}

/// Returns once `count` connections subscribe to `channel` (a condition, polled by round trips),
/// so that a message published next reaches them. False after 10 s.
inline bool wait_for_subscribers(redis::connection& raw, const std::string& channel, long long count) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < give_up) {
        const auto r = exec(raw, {"PUBSUB", "NUMSUB", channel});
        if (r.elements.size() == 2 && r.elements[1].integer >= count) {
            return true;
        }
    }
    return false;
}

/// How many times the server ran `command` (lower case, e.g. "publish") since its start or the
/// last CONFIG RESETSTAT: INFO commandstats, which counts the commands functions run too.
inline long long command_calls(redis::connection& raw, const std::string& command) {
    const std::string stats = exec(raw, {"INFO", "commandstats"}).text;
    const std::string field = "cmdstat_" + command + ":calls=";
    const auto at = stats.find(field);
    return at == std::string::npos ? 0 : std::stoll(stats.substr(at + field.size()));
}

/// Returns once the server has run `command` `count` times (a condition, polled by round trips).
/// False after 10 s.
inline bool wait_for_calls(redis::connection& raw, const std::string& command, long long count) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < give_up) {
        if (command_calls(raw, command) >= count) {
            return true;
        }
    }
    return false;
}

/// Stops a redis-server (SIGSTOP) for its lifetime: what is sent to it meanwhile waits in its
/// sockets, and runs when it continues, even on a connection its client has given up since.
class stopped_redis {
public:
    explicit stopped_redis(const redis_server& server) : pid_(server.pid()) { ::kill(pid_, SIGSTOP); }
    ~stopped_redis() { ::kill(pid_, SIGCONT); }
    stopped_redis(const stopped_redis&) = delete;
    stopped_redis& operator=(const stopped_redis&) = delete;

private:
    pid_t pid_;
};

/// A redis-server replicating `primary`.
inline redis_server replica_of(const redis_server& primary) {
    return redis_server({.arguments = {"--replicaof", "127.0.0.1", std::to_string(primary.port())}});
}

/// Returns once a replica of `primary` has synchronised: WAIT blocks on the server, for up to 60 s,
/// until one has acknowledged a write made now (a condition, not a sleep). False if none did.
inline bool wait_for_a_replica(boost::asio::any_io_executor ex, const redis_server& primary) {
    auto config = plain_config(primary);
    config.command_timeout = std::chrono::seconds(70);
    redis::connection waiting(std::move(ex), config);
    return exec(waiting, {"SET", "synchronised", "1"}).text == "OK" &&
           exec(waiting, {"WAIT", "1", "60000"}).integer == 1;
}

/// The error_code of a command that is expected to fail (a success gives an empty one).
inline error_code exec_error(redis::connection& c, redis::command cmd) {
    try {
        exec(c, std::move(cmd));
    } catch (const boost::system::system_error& e) {
        return e.code();
    }
    return {};
}

}  // namespace apollo_oauth::redis_test
