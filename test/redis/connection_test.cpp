// The RESP connection against a real redis-server: replies, pipelining from many threads,
// reconnection after a crash, the command deadline, TLS with verification, bad bytes.
#include "localhost_addresses.hpp"
#include "tcp_relay.hpp"
#include "test_support.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <dlfcn.h>
#include <fcntl.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <future>
#include <set>
#include <thread>

using namespace apollo_oauth;
using namespace apollo_oauth::redis_test;
namespace asio = boost::asio;
using redis::command;
using redis::reply;

namespace {

/// A connection whose session is lost when an FCALL finds no function (as the store's is).
redis::connection_config losing_its_functions(const redis_server& server) {
    auto config = plain_config(server);
    config.lost_the_handshake = [](const reply& r) {
        return r.is_error() && r.text.starts_with("ERR Function not found");
    };
    return config;
}

/// A subscriber's configuration: its handshake subscribes to "ch".
redis::connection_config subscriber_of_ch(const redis_server& server) {
    auto config = plain_config(server);
    config.make_handshake = [] {
        std::vector<redis::handshake_step> steps;
        steps.push_back({{"SUBSCRIBE", "ch"}, true, {}});
        return steps;
    };
    return config;
}

/// Returns once nobody subscribes to `channel` (a condition, polled by round trips). False after
/// 10 s.
bool wait_for_no_subscriber(redis::connection& raw, const std::string& channel) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (exec(raw, {"PUBSUB", "NUMSUB", channel}).elements.at(1).integer != 0) {
        if (std::chrono::steady_clock::now() >= give_up) {
            return false;
        }
    }
    return true;
}

/// This process's sockets whose peer is 127.0.0.1:`port`.
std::vector<int> sockets_connected_to(std::uint16_t port) {
    std::vector<int> found;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        const int fd = std::stoi(entry.path().filename().string());
        sockaddr_in peer{};
        socklen_t length = sizeof peer;
        if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) == 0 &&
            peer.sin_family == AF_INET && ntohs(peer.sin_port) == port) {
            found.push_back(fd);
        }
    }
    return found;
}

int socket_option(int fd, int level, int name) {
    int value = -1;
    socklen_t length = sizeof value;
    BOOST_REQUIRE(::getsockopt(fd, level, name, &value, &length) == 0);
    return value;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(connection, pool_fixture)

BOOST_AUTO_TEST_CASE(replies_of_every_kind) {
    redis_server server;
    redis::connection c(executor(), plain_config(server));
    BOOST_TEST((exec(c, {"PING"}).type == reply::kind::status));
    BOOST_TEST(exec(c, {"PING"}).text == "PONG");
    BOOST_TEST(exec(c, {"SET", "k", std::string_view("a\0b\r\n", 5)}).text == "OK");
    const reply bulk = exec(c, {"GET", "k"});
    BOOST_TEST((bulk.type == reply::kind::string));
    BOOST_TEST(bulk.text == std::string_view("a\0b\r\n", 5));  // binary-safe
    BOOST_TEST((exec(c, {"GET", "missing"}).type == reply::kind::nil));
    BOOST_TEST(exec(c, {"INCR", "n"}).integer == 1);
    const reply error = exec(c, {"INCR", "k"});
    BOOST_TEST(error.is_error());
    BOOST_TEST(error.text.find("ERR") == 0);
    const reply array = exec(c, {"MGET", "k", "missing", "n"});
    BOOST_REQUIRE(array.is_array());
    BOOST_REQUIRE(array.elements.size() == 3u);
    BOOST_TEST((array.elements[1].type == reply::kind::nil));
    BOOST_TEST(array.elements[2].text == "1");
    BOOST_TEST(c.connections_made() == 1u);
}

// A process that is done must be able to leave io_context::run() with its connection still open:
// an idle connection holds no read. Two reads were once left pending (one per write), and the
// io_context never returned (this test then hangs until the ctest timeout).
BOOST_AUTO_TEST_CASE(an_idle_connection_lets_io_context_run_return) {
    redis_server server;
    asio::io_context ioc;
    redis::connection c(ioc.get_executor(), plain_config(server));
    int replies = 0;
    // Two rounds: the second command is written on a connection whose first read already ended.
    c.async_exec(command{"PING"}, [&](error_code ec, reply r) {
        BOOST_TEST(!ec);
        BOOST_TEST(r.text == "PONG");
        ++replies;
        c.async_exec(command{"INCR", "n"}, [&](error_code ec, reply r) {
            BOOST_TEST(!ec);
            BOOST_TEST(r.integer == 1);
            ++replies;
        });
    });
    c.async_exec(command{"PING"}, [&](error_code ec, reply) {
        BOOST_TEST(!ec);
        ++replies;
    });
    ioc.run();  // returns: nothing is pending on the connection once the replies are in
    BOOST_TEST(replies == 3);
    BOOST_TEST(c.connections_made() == 1u);
}

BOOST_AUTO_TEST_CASE(pipelined_commands_from_many_threads_get_their_own_replies) {
    redis_server server;
    redis::connection c(executor(), plain_config(server));
    constexpr int threads = 4;
    constexpr int per_thread = 500;
    std::vector<std::future<std::vector<long long>>> results;
    for (int t = 0; t < threads; ++t) {
        results.push_back(std::async(std::launch::async, [&c, t] {
            std::vector<std::future<reply>> replies;
            for (int i = 0; i < per_thread; ++i) {
                // Each thread increments its own counter and a shared one, interleaved.
                replies.push_back(c.async_exec({"INCR", "own" + std::to_string(t)}, asio::use_future));
                replies.push_back(c.async_exec({"INCR", "shared"}, asio::use_future));
            }
            std::vector<long long> shared;
            for (int i = 0; i < per_thread; ++i) {
                const reply own = replies[2 * i].get();
                if (own.integer != i + 1) {
                    throw std::runtime_error("reply out of order");
                }
                shared.push_back(replies[2 * i + 1].get().integer);
            }
            return shared;
        }));
    }
    std::set<long long> seen;
    for (auto& r : results) {
        for (const long long v : r.get()) {
            seen.insert(v);
        }
    }
    BOOST_TEST(seen.size() == static_cast<std::size_t>(threads * per_thread));
    BOOST_TEST(*seen.begin() == 1);
    BOOST_TEST(*seen.rbegin() == threads * per_thread);
    BOOST_TEST(c.connections_made() == 1u);
}

BOOST_AUTO_TEST_CASE(reconnects_after_the_server_restarts_and_keeps_acknowledged_writes) {
    redis_server server;
    redis::connection c(executor(), plain_config(server));
    BOOST_TEST(exec(c, {"SET", "kept", "1"}).text == "OK");
    server.kill();
    const error_code down = exec_error(c, {"GET", "kept"});
    BOOST_TEST(down.failed());
    // While it is down, each command fails (and tries a new connection).
    BOOST_TEST(exec_error(c, {"GET", "kept"}) == asio::error::connection_refused);
    server.start();
    BOOST_TEST(exec(c, {"GET", "kept"}).text == "1");  // appendfsync always: the write survived
    BOOST_TEST(c.connections_made() == 2u);
}

BOOST_AUTO_TEST_CASE(a_late_reply_times_out_and_the_next_command_reconnects) {
    redis_server server;
    auto config = plain_config(server);
    config.command_timeout = std::chrono::milliseconds(200);
    redis::connection c(executor(), config);
    BOOST_TEST(exec(c, {"PING"}).text == "PONG");
    ::kill(server.pid(), SIGSTOP);
    BOOST_TEST(exec_error(c, {"PING"}) == asio::error::timed_out);
    ::kill(server.pid(), SIGCONT);
    BOOST_TEST(exec(c, {"PING"}).text == "PONG");
    BOOST_TEST(c.connections_made() == 2u);
}

BOOST_AUTO_TEST_CASE(handshake_commands_go_first_and_a_refused_one_fails_the_connection) {
    redis_server_options options;
    options.arguments = {"--requirepass", "redis-test-password-71"};
    redis_server server(options);
    auto config = plain_config(server);
    bool password_right = false;
    config.make_handshake = [&password_right] {
        std::vector<redis::handshake_step> steps;
        steps.push_back({{"AUTH", password_right ? "redis-test-password-71" : "wrong"}, true, {}});
        return steps;
    };
    redis::connection c(executor(), config);
    BOOST_TEST(exec_error(c, {"PING"}) == asio::error::access_denied);
    password_right = true;
    BOOST_TEST(exec(c, {"PING"}).text == "PONG");
}

// A handshake step's on_reply that finds no memory (the store copies CONFIG GET's reply in it): the
// command waiting for the handshake gets an error, and the next one a new connection. The
// bad_alloc used to leave io_context::run (here: a pool thread, std::terminate) from the
// connection's read, with the command's handler never called.
BOOST_AUTO_TEST_CASE(a_handshake_step_out_of_memory_fails_the_waiting_command) {
    redis_server server;
    auto config = plain_config(server);
    std::atomic<bool> out_of_memory{true};
    config.make_handshake = [&out_of_memory] {
        std::vector<redis::handshake_step> steps;
        steps.push_back({{"PING"}, false, [&out_of_memory](const reply&) {
                             if (out_of_memory.exchange(false)) {
                                 throw std::bad_alloc();
                             }
                         }});
        return steps;
    };
    redis::connection c(executor(), config);
    BOOST_TEST(exec_error(c, {"PING"}) == boost::system::errc::not_enough_memory);
    BOOST_TEST(exec(c, {"PING"}).text == "PONG");
    BOOST_TEST(c.connections_made() == 2u);
}

// The same for on_push (the store wakes its waiters in it): the subscriber connection fails, and
// connects again when asked, rather than the bad_alloc leaving io_context::run.
BOOST_AUTO_TEST_CASE(a_push_handler_out_of_memory_fails_the_subscriber_connection) {
    redis_server server;
    redis::connection admin(executor(), plain_config(server));
    auto config = subscriber_of_ch(server);
    std::atomic<bool> out_of_memory{true};
    std::promise<std::string> message;
    config.on_push = [&](reply&& r) {
        if (out_of_memory.exchange(false)) {
            throw std::bad_alloc();
        }
        message.set_value(r.elements.size() == 3 ? r.elements[2].text : "not a message");
    };
    redis::connection c(executor(), config);
    c.ensure_connected();
    BOOST_REQUIRE(wait_for_subscribers(admin, "ch", 1));
    BOOST_TEST(exec(admin, {"PUBLISH", "ch", "lost"}).integer == 1);
    BOOST_REQUIRE(wait_for_no_subscriber(admin, "ch"));  // the subscriber closed its connection
    c.ensure_connected();
    BOOST_REQUIRE(wait_for_subscribers(admin, "ch", 1));
    BOOST_TEST(exec(admin, {"PUBLISH", "ch", "kept"}).integer == 1);
    BOOST_TEST(message.get_future().get() == "kept");
    BOOST_TEST(c.connections_made() == 2u);
    c.close();
}

// A command queued while connecting is written only once the handshake's replies are in: with
// the handshake pipelined ahead of it, a refused SELECT still let the command run, on database 0.
BOOST_AUTO_TEST_CASE(a_command_never_runs_after_a_failed_handshake) {
    redis_server_options options;
    options.arguments = {"--databases", "2"};
    redis_server server(options);
    auto config = plain_config(server);
    config.make_handshake = [] {
        std::vector<redis::handshake_step> steps;
        steps.push_back({{"SELECT", "5"}, true, {}});  // out of range: refused
        return steps;
    };
    redis::connection c(executor(), config);
    BOOST_TEST(exec_error(c, {"SET", "written", "1"}) == asio::error::access_denied);
    redis::connection check(executor(), plain_config(server));
    BOOST_TEST(exec(check, {"EXISTS", "written"}).integer == 0);
}

// After a failover the server a connection talks to is a replica: its error replies fail the
// command (retryable) and drop the connection, so the next command connects (and resolves) anew
// instead of getting READONLY on the old connection forever.
BOOST_AUTO_TEST_CASE(a_server_that_is_no_longer_primary_drops_the_connection) {
    redis_server server;
    redis::connection c(executor(), plain_config(server));
    redis::connection admin(executor(), plain_config(server));
    BOOST_TEST(exec(c, {"SET", "k", "1"}).text == "OK");
    // A replica of nothing listening: its link to the primary stays down.
    BOOST_TEST(exec(admin, {"REPLICAOF", "127.0.0.1", std::to_string(free_port())}).text == "OK");
    BOOST_TEST(exec_error(c, {"SET", "k", "2"}) == errc::coordination_unavailable);  // READONLY
    BOOST_TEST(exec(c, {"GET", "k"}).text == "1");  // a new connection; stale reads are served
    BOOST_TEST(c.connections_made() == 2u);
    BOOST_TEST(exec(admin, {"CONFIG", "SET", "replica-serve-stale-data", "no"}).text == "OK");
    BOOST_TEST(exec_error(c, {"GET", "k"}) == errc::coordination_unavailable);  // MASTERDOWN
    BOOST_TEST(exec(admin, {"REPLICAOF", "NO", "ONE"}).text == "OK");
    BOOST_TEST(exec(c, {"SET", "k", "3"}).text == "OK");
    BOOST_TEST(c.connections_made() == 3u);
}

// The server closes a connection while it is idle (here CLIENT KILL; in production its idle
// timeout or a restart). The next command finds it closed before any reply: one that may be
// resent goes again on a new connection; others fail, as before.
BOOST_AUTO_TEST_CASE(a_command_on_an_idle_connection_the_server_closed_is_resent_once) {
    redis_server server;
    redis::connection c(executor(), plain_config(server));
    redis::connection admin(executor(), plain_config(server));
    const auto kill_c = [&] {
        const std::string id = std::to_string(exec(c, {"CLIENT", "ID"}).integer);
        BOOST_TEST(exec(admin, {"CLIENT", "KILL", "ID", id}).integer == 1);
    };
    kill_c();
    const reply r =
        c.async_exec(command{"INCR", "resent"}, redis::resend::once_if_unanswered, asio::use_future).get();
    BOOST_TEST(r.integer == 1);  // ran once
    BOOST_TEST(c.connections_made() == 2u);

    kill_c();
    BOOST_TEST(exec_error(c, {"INCR", "not_resent"}).failed());  // resend::never
    BOOST_TEST((exec(admin, {"GET", "not_resent"}).type == reply::kind::nil));
    BOOST_TEST(exec(c, {"PING"}).text == "PONG");
    BOOST_TEST(c.connections_made() == 3u);
}

// A subscriber whose last waiter left is disconnected after a grace only if, by then, its check
// still finds nobody to wake (the store's waiters, read on the connection's strand): a waiter that
// came meanwhile keeps it subscribed. Decided beforehand, the disconnection could land after such
// a waiter's ensure_connected() (a no-op then), which was left without a subscription.
BOOST_AUTO_TEST_CASE(a_subscriber_is_disconnected_only_if_its_check_finds_it_unused) {
    redis_server server;
    redis::connection admin(executor(), plain_config(server));
    auto config = subscriber_of_ch(server);
    std::promise<std::string> message;
    config.on_push = [&](reply&& r) { message.set_value(r.elements.size() == 3 ? r.elements[2].text : ""); };
    redis::connection c(executor(), config);
    c.ensure_connected();
    BOOST_REQUIRE(wait_for_subscribers(admin, "ch", 1));
    for (const bool in_use : {true, false}) {
        std::promise<void> checked;
        c.disconnect_if_unused(std::chrono::milliseconds(0), [&checked, in_use] {
            checked.set_value();
            return !in_use;
        });
        checked.get_future().get();
        if (in_use) {
            BOOST_TEST(exec(admin, {"PUBLISH", "ch", "still here"}).integer == 1);
            auto received = message.get_future();
            BOOST_REQUIRE((received.wait_for(std::chrono::seconds(10)) == std::future_status::ready));
            BOOST_TEST(received.get() == "still here");
        } else {
            BOOST_TEST(wait_for_no_subscriber(admin, "ch"));
        }
    }
    BOOST_TEST(c.connections_made() == 1u);
    c.close();
}

// A connection cut silently while idle (a NAT or load balancer that dropped its entry, an address
// moved; here a relay that stops forwarding): a command written on it after resend_after_idle,
// whose reply is late, is sent once more on a new connection. Written sooner (a server that is
// slow, more likely), or with resend::never, it fails as before. It used to fail after
// command_timeout whatever the idle time: a timeout was never resent.
BOOST_AUTO_TEST_CASE(a_command_on_a_connection_cut_silently_while_idle_is_resent_once) {
    redis_server server;
    tcp_relay relay(server.port());
    const auto cut_connection = [&](std::chrono::milliseconds resend_after_idle) {
        auto config = plain_config(server);
        config.port = relay.port();
        config.command_timeout = std::chrono::milliseconds(300);
        config.resend_after_idle = resend_after_idle;
        auto c = std::make_unique<redis::connection>(executor(), config);
        BOOST_TEST(exec(*c, {"PING"}).text == "PONG");
        relay.black_hole();
        return c;
    };
    const auto incr = [](redis::connection& c, redis::resend policy) {
        return c.async_exec(command{"INCR", "n"}, policy, asio::use_future).get();
    };
    auto c = cut_connection(std::chrono::milliseconds(0));                 // any idle is long enough
    BOOST_TEST(incr(*c, redis::resend::once_if_unanswered).integer == 1);  // the first copy was lost
    BOOST_TEST(c->connections_made() == 2u);

    c = cut_connection(std::chrono::milliseconds(0));
    BOOST_CHECK_EXCEPTION(incr(*c, redis::resend::never), boost::system::system_error,
                          [](const auto& e) { return e.code() == asio::error::timed_out; });

    for (const auto too_long : {std::chrono::milliseconds(std::chrono::hours(1)),
                                redis::connection_config{}.resend_after_idle}) {  // the default: never
        c = cut_connection(too_long);
        BOOST_CHECK_EXCEPTION(incr(*c, redis::resend::once_if_unanswered), boost::system::system_error,
                              [](const auto& e) { return e.code() == asio::error::timed_out; });
        BOOST_TEST(c->connections_made() == 1u);
    }
    redis::connection direct(executor(), plain_config(server));
    BOOST_TEST(exec(direct, {"GET", "n"}).text == "1");
}

namespace {

/// The descriptor of `c`'s one connection to `server`, once a command went through it.
int socket_of(redis::connection& c, const redis_server& server) {
    BOOST_TEST(exec(c, {"PING"}).text == "PONG");
    const auto sockets = sockets_connected_to(server.port());
    BOOST_REQUIRE(sockets.size() == 1u);
    return sockets.front();
}

}  // namespace

// Every connection has TCP keepalive (connection.hpp): its probes keep an idle connection's NAT
// and load-balancer entries alive, and let the kernel find a peer that stopped answering.
BOOST_AUTO_TEST_CASE(every_connection_has_tcp_keepalive) {
    redis_server server;
    redis::connection c(executor(), plain_config(server));
    const int fd = socket_of(c, server);
    BOOST_TEST(socket_option(fd, SOL_SOCKET, SO_KEEPALIVE) == 1);
    BOOST_TEST(socket_option(fd, IPPROTO_TCP, TCP_KEEPIDLE) == redis::keepalive_idle.count());
    BOOST_TEST(socket_option(fd, IPPROTO_TCP, TCP_KEEPINTVL) == redis::keepalive_interval.count());
    BOOST_TEST(socket_option(fd, IPPROTO_TCP, TCP_KEEPCNT) == redis::keepalive_probes);
    BOOST_TEST(socket_option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT) == redis::tcp_user_timeout.count());
}

// A host process that forks and execs must not hand its Redis connections to the child (they
// would outlive the store's close): each address's socket is opened close-on-exec.
BOOST_AUTO_TEST_CASE(every_connection_is_close_on_exec) {
    redis_server server;
    redis::connection c(executor(), plain_config(server));
    BOOST_TEST((::fcntl(socket_of(c, server), F_GETFD) & FD_CLOEXEC) != 0);
}

// The lookup's addresses are tried in turn (each on a socket of its own, opened close-on-exec):
// those that refuse are passed over; when every one refuses, the last one's error is reported.
BOOST_AUTO_TEST_CASE(a_connection_passes_over_addresses_that_refuse) {
    redis_server server;  // on 127.0.0.1 only: 127.0.0.2 and 127.0.0.3 refuse
    auto config = plain_config(server);
    config.host = "localhost";
    {
        const test::localhost_resolving_to three{{"127.0.0.2", "127.0.0.3", "127.0.0.1"}};
        redis::connection c(executor(), config);
        BOOST_TEST(exec(c, {"PING"}).text == "PONG");
        BOOST_TEST(test::localhost_lookups == 1);
    }
    {
        // An address whose family has no socket here (IPv6 on a kernel without it) is passed over.
        const test::without_ipv6 no_ipv6;
        const test::localhost_resolving_to both{{"::1", "127.0.0.1"}};
        redis::connection c(executor(), config);
        BOOST_TEST(exec(c, {"PING"}).text == "PONG");
    }
    const test::localhost_resolving_to none_listening{{"127.0.0.2", "127.0.0.3"}};
    redis::connection c(executor(), config);
    BOOST_TEST(exec_error(c, {"PING"}) == asio::error::connection_refused);
    BOOST_TEST(test::localhost_lookups >= 1);
}

BOOST_AUTO_TEST_CASE(close_fails_pending_and_later_commands) {
    redis_server server;
    redis::connection c(executor(), plain_config(server));
    BOOST_TEST(exec(c, {"PING"}).text == "PONG");
    c.close();
    BOOST_TEST(exec_error(c, {"PING"}) == asio::error::operation_aborted);
}

namespace {

// A "server" that answers every connection with `bytes`, then closes.
struct scripted_server {
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
    std::thread thread;
    explicit scripted_server(std::string bytes) {
        thread = std::thread([this, bytes] {
            asio::ip::tcp::socket socket(io);
            error_code ec;
            acceptor.accept(socket, ec);
            if (!ec) {
                char request[256];
                socket.read_some(asio::buffer(request), ec);
                asio::write(socket, asio::buffer(bytes), ec);
                // FIN, then wait for the client to close: closing first could reset the
                // connection before the client read the bytes.
                socket.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
                while (!ec) {
                    socket.read_some(asio::buffer(request), ec);
                }
            }
        });
    }
    ~scripted_server() { thread.join(); }
    std::uint16_t port() const { return acceptor.local_endpoint().port(); }
};

}  // namespace

BOOST_AUTO_TEST_CASE(bad_bytes_from_the_server_are_a_clear_error) {
    const std::pair<std::string, error_code> cases[] = {
        {"?what\r\n", make_error_code(errc::malformed_response)},  // not RESP
        {"$10\r\nabc", asio::error::eof},                          // truncated bulk string
        {"*3\r\n:1\r\n", asio::error::eof},                        // truncated array
    };
    for (const auto& [bytes, expected] : cases) {
        scripted_server fake(bytes);
        redis::connection_config config;
        config.host = "127.0.0.1";
        config.port = fake.port();
        redis::connection c(executor(), config);
        const error_code got = exec_error(c, {"PING"});
        BOOST_TEST(got == expected, bytes << " gave " << got.message());
    }
}

// A reply saying the server lost what the handshake set up (the store: its function library) fails
// that command, which did not run, as retryable. The commands pipelined behind it get their own
// replies (they may have run: another connection's handshake may have loaded the library again in
// between), and the connection is then dropped for a new one, whose handshake sets it up again.
BOOST_AUTO_TEST_CASE(a_lost_session_fails_its_command_and_lets_the_ones_behind_it_answer) {
    redis_server server;
    const auto config = losing_its_functions(server);
    redis::connection c(executor(), config);
    BOOST_REQUIRE(exec(c, {"PING"}).text == "PONG");
    auto lost = c.async_exec({"FCALL", "no_such_function", "0"}, asio::use_future);
    auto behind = c.async_exec({"SET", "k", "v"}, asio::use_future);
    error_code lost_ec;
    try {
        lost.get();
    } catch (const boost::system::system_error& e) {
        lost_ec = e.code();
    }
    BOOST_TEST(lost_ec == errc::coordination_unavailable);
    BOOST_TEST(behind.get().text == "OK");
    BOOST_TEST(exec(c, {"GET", "k"}).text == "v");
    BOOST_TEST(c.connections_made() == 2u);  // the lost session's, then a new one
}

// Once the session is lost, nothing more is written on its connection, even while a command
// pipelined before the loss still awaits its reply: a command made meanwhile waits and runs on the
// next connection, after its handshake. CLIENT ID tells the two connections apart; a BLPOP holds
// the old one's reply back until another connection pushes.
BOOST_AUTO_TEST_CASE(nothing_is_written_on_a_lost_session_while_its_replies_come_in) {
    redis_server server;
    auto config = losing_its_functions(server);
    config.command_timeout = std::chrono::seconds(60);  // the BLPOP's wait is not a late reply
    redis::connection c(executor(), config);
    const auto lost_connection_id = exec(c, {"CLIENT", "ID"}).integer;
    auto lost = c.async_exec({"FCALL", "no_such_function", "0"}, asio::use_future);
    auto held_back = c.async_exec({"BLPOP", "wake", "0"}, asio::use_future);
    BOOST_CHECK_THROW(lost.get(), boost::system::system_error);
    // The loss is known (the strand handled it before it ran this): the session is lost, its BLPOP
    // still in flight.
    auto made_meanwhile = c.async_exec({"CLIENT", "ID"}, asio::use_future);
    redis::connection other(executor(), plain_config(server));
    BOOST_TEST(exec(other, {"LPUSH", "wake", "x"}).integer == 1);
    BOOST_TEST(held_back.get().elements.size() == 2u);
    BOOST_TEST(made_meanwhile.get().integer != lost_connection_id);
    BOOST_TEST(c.connections_made() == 2u);
}

// The redirections and LOADING, which a single test server does not give: a scripted one.
BOOST_AUTO_TEST_CASE(redirections_and_loading_fail_the_command_as_retryable) {
    for (const std::string bytes : {"-MOVED 3999 127.0.0.1:6381\r\n", "-ASK 3999 127.0.0.1:6381\r\n",
                                    "-LOADING Redis is loading the dataset in memory\r\n"}) {
        scripted_server fake(bytes);
        redis::connection_config config;
        config.host = "127.0.0.1";
        config.port = fake.port();
        redis::connection c(executor(), config);
        BOOST_TEST(exec_error(c, {"GET", "k"}) == errc::coordination_unavailable, bytes);
    }
}

namespace {

// A "server" for a subscriber: on its first connection it confirms the SUBSCRIBE, then sends a
// push reply that never ends (an array whose elements keep coming) until the client closes the
// connection or `limit` bytes are out (and then it ends); on its second, it confirms the SUBSCRIBE and
// publishes one message.
struct endless_push_server {
    static constexpr std::size_t limit = 64 << 20;
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
    std::promise<std::size_t> sent_before_the_client_closed;  // `limit`: the client never did
    std::thread thread;

    endless_push_server() {
        thread = std::thread([this] {
            const std::string confirmed = "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
            char request[256];
            error_code ec;
            {
                asio::ip::tcp::socket socket(io);
                acceptor.accept(socket, ec);
                socket.read_some(asio::buffer(request), ec);
                asio::write(socket, asio::buffer(confirmed + "*4000\r\n"), ec);
                const std::string element = "$65536\r\n" + std::string(65536, 'x') + "\r\n";
                std::size_t sent = 0;
                while (!ec && sent < limit) {
                    sent += asio::write(socket, asio::buffer(element), ec);
                }
                sent_before_the_client_closed.set_value(sent);
                if (!ec) {
                    return;  // the client took it all: no second connection comes
                }
            }
            asio::ip::tcp::socket socket(io);
            acceptor.accept(socket, ec);
            socket.read_some(asio::buffer(request), ec);
            const std::string message = "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n";
            asio::write(socket, asio::buffer(confirmed + message), ec);
            while (!ec) {  // until the client closes
                socket.read_some(asio::buffer(request), ec);
            }
        });
    }
    ~endless_push_server() { thread.join(); }
    std::uint16_t port() const { return acceptor.local_endpoint().port(); }
};

}  // namespace

// Once a subscriber's SUBSCRIBE is answered no command awaits a reply, so no deadline bounds what
// comes: a push reply that never finished grew the process's memory until the OOM killer ended
// it. The reply cap fails the connection instead (as any protocol error), and the subscriber
// connects again when asked (the store asks as its waiters poll), subscribes again and gets its
// messages.
BOOST_AUTO_TEST_CASE(a_subscriber_fails_on_a_push_reply_that_never_ends_and_connects_again) {
    endless_push_server fake;
    redis::connection_config config;
    config.host = "127.0.0.1";
    config.port = fake.port();
    std::atomic<int> subscribed{0};
    config.make_handshake = [&subscribed] {
        std::vector<redis::handshake_step> steps;
        steps.push_back({{"SUBSCRIBE", "ch"}, true, [&subscribed](const reply& r) {
                             if (!r.is_error()) {
                                 ++subscribed;
                             }
                         }});
        return steps;
    };
    std::promise<std::string> message;
    config.on_push = [&message](reply&& r) {
        // Only the second connection's message may get here: nothing of the endless reply.
        message.set_value(r.is_array() && r.elements.size() == 3 ? r.elements[2].text : "not a message");
    };
    redis::connection c(executor(), config);
    c.ensure_connected();
    const std::size_t sent = fake.sent_before_the_client_closed.get_future().get();
    BOOST_REQUIRE(sent < endless_push_server::limit);
    // The cap (4 MiB) and what the two sockets buffer (Linux grows each up to tcp_rmem/tcp_wmem's
    // maximum, 6 MB and 4 MB by default).
    BOOST_TEST(sent <= std::size_t{32} << 20);
    c.ensure_connected();  // after the failure (the client closed the socket after it)
    BOOST_TEST(message.get_future().get() == "hello");
    BOOST_TEST(subscribed == 2);
    BOOST_TEST(c.connections_made() == 2u);
    c.close();
}

BOOST_AUTO_TEST_CASE(the_reader_refuses_absurd_sizes_and_takes_split_replies) {
    const std::pair<std::string_view, redis::reader::result> cases[] = {
        {"*99999999\r\n", redis::reader::result::protocol_error},  // an array header beyond the cap
        {"*-5\r\n", redis::reader::result::protocol_error},
        {"?\r\n", redis::reader::result::protocol_error},
        {"$5\r\nab", redis::reader::result::need_more},
        {"*2\r\n:1\r\n", redis::reader::result::need_more},
        {"*2\r\n:1\r\n$-1\r\n", redis::reader::result::complete},
    };
    for (const auto& [bytes, expected] : cases) {
        redis::reader reader;
        reply r;
        // Byte by byte: a reply split across reads.
        auto result = redis::reader::result::need_more;
        for (const char ch : bytes) {
            if (!reader.feed({&ch, 1})) {
                result = redis::reader::result::protocol_error;
                break;
            }
            result = reader.next(r);
            if (result != redis::reader::result::need_more) {
                break;
            }
        }
        BOOST_TEST((result == expected), bytes);
    }
}

namespace {

// Feeds `bytes` in pieces of at most `piece` bytes, taking replies as they complete, until the
// reader refuses the stream. Counts the replies completed and the bytes fed before the refusal.
struct feeding {
    redis::reader reader;
    std::size_t fed = 0;
    int completed = 0;
    bool refused = false;

    // False once refused (and the rest is not fed).
    bool feed(std::string_view bytes, std::size_t piece = 16 * 1024) {
        while (!bytes.empty() && !refused) {
            const auto part = bytes.substr(0, piece);
            bytes.remove_prefix(part.size());
            fed += part.size();
            if (!reader.feed(part)) {
                refused = true;
                break;
            }
            for (;;) {
                reply r;
                const auto result = reader.next(r);
                if (result == redis::reader::result::protocol_error) {
                    refused = true;
                } else if (result == redis::reader::result::complete) {
                    ++completed;
                    continue;
                }
                break;
            }
        }
        return !refused;
    }
};

std::string bulk_string(std::size_t size) {
    return "$" + std::to_string(size) + "\r\n" + std::string(size, 'x') + "\r\n";
}

}  // namespace

// One reply is capped as a whole: the reader's limit on unparsed bytes alone let one array of
// large strings, fed in pieces, grow without bound (hiredis moves past each finished element and
// the reader copies it out): sixteen 3.5 MB strings made a 56 MB reply. It is refused before it
// completes, and early. Replies the store reads (a record's hash: at most about 1 MiB) are taken,
// one after the other: the count is per reply.
BOOST_AUTO_TEST_CASE(the_reader_refuses_a_reply_past_its_size_cap_fed_in_pieces) {
    const std::string element = bulk_string(3'500'000);
    {
        feeding f;
        BOOST_REQUIRE(f.feed("*16\r\n"));
        for (int i = 0; i < 16 && f.feed(element); ++i) {
        }
        BOOST_TEST(f.refused);
        BOOST_TEST(f.completed == 0);
        BOOST_TEST(f.fed <= 5 + 2 * element.size());  // the second string goes past the cap
    }
    {
        feeding f;
        const std::string megabyte = bulk_string(1 << 20);
        for (int i = 0; i < 3; ++i) {
            BOOST_REQUIRE(f.feed("*3\r\n:1\r\n" + megabyte + megabyte));
        }
        BOOST_TEST(f.completed == 3);
    }
}

// An array header counts its slots before they are made, across the nesting: one 8-byte header
// made 65,536 elements (4.7 MB) at once, and seven nested ones (hiredis' depth) raised the peak
// by about 32 MB for 56 bytes of input. The header is refused as it arrives, so no slot of it is
// built; headers that each fit are refused once their slots together do not.
BOOST_AUTO_TEST_CASE(the_reader_refuses_array_headers_past_the_element_cap_before_building_them) {
    {
        feeding f;
        // Each header fed alone: the refusal comes with the first, not once the chain is in.
        const std::string_view header = "*65536\r\n";
        BOOST_TEST(!f.feed(header));
        BOOST_TEST(f.fed == header.size());
    }
    {
        feeding f;
        BOOST_REQUIRE(f.feed("*4000\r\n"));  // alone within the cap
        BOOST_TEST(!f.feed("*4000\r\n"));    // with the first one's slots, past it
        BOOST_TEST(f.completed == 0);
    }
    {
        // Many small arrays inside one: each one's slots count.
        feeding f;
        BOOST_REQUIRE(f.feed("*2000\r\n"));
        bool refused = false;
        for (int i = 0; i < 2000 && !refused; ++i) {
            refused = !f.feed("*3\r\n:1\r\n:2\r\n:3\r\n");
        }
        BOOST_TEST(refused);
        BOOST_TEST(f.completed == 0);
    }
}

namespace {

std::size_t occurrences(std::string_view haystack, std::string_view needle) {
    std::size_t n = 0;
    for (auto at = haystack.find(needle); at != std::string_view::npos; at = haystack.find(needle, at + 1)) {
        ++n;
    }
    return n;
}

}  // namespace

// Replies carry tokens: no byte of one stays in the reader's buffer once it is parsed, neither
// in the parsed part nor in the room that compaction (after 1 KiB) leaves behind.
BOOST_AUTO_TEST_CASE(the_reader_keeps_no_copy_of_a_parsed_reply) {
    const std::string secret = "refresh-token-5f0c2a9e7b1d4c3a8e6f";
    const std::string bulk = "$" + std::to_string(secret.size()) + "\r\n" + secret + "\r\n";
    {
        redis::reader reader;
        reply r;
        BOOST_REQUIRE(reader.feed(bulk + "$5\r\nab"));  // the next reply split
        BOOST_REQUIRE((reader.next(r) == redis::reader::result::complete));
        BOOST_TEST(r.text == secret);
        BOOST_TEST((reader.next(r) == redis::reader::result::need_more));
        BOOST_TEST(occurrences(reader.allocation_for_tests(), secret) == 0u);
    }
    {
        // 1.1 KiB parsed, then the secret's reply half-received: hiredis moves it to the front.
        redis::reader reader;
        reply r;
        BOOST_REQUIRE(reader.feed("+" + std::string(1100, 'x') + "\r\n" + bulk.substr(0, bulk.size() - 2)));
        BOOST_REQUIRE((reader.next(r) == redis::reader::result::complete));
        BOOST_TEST((reader.next(r) == redis::reader::result::need_more));
        BOOST_TEST(occurrences(reader.allocation_for_tests(), secret) == 1u);  // the unparsed copy
        BOOST_REQUIRE(reader.feed("\r\n"));
        BOOST_REQUIRE((reader.next(r) == redis::reader::result::complete));
        BOOST_TEST(r.text == secret);
        BOOST_TEST(occurrences(reader.allocation_for_tests(), secret) == 0u);
    }
}

// A command and the one that must follow it on the same connection (the store's write and its
// WAIT): one unit, whose handler gets both replies as an array, pipelined with other commands
// without their replies changing places. A lost session on the first command fails the unit as it
// would fail that command alone, and the replies behind it stay in step.
BOOST_AUTO_TEST_CASE(a_command_and_the_one_that_follows_it_are_one_unit) {
    redis_server server;
    const auto config = losing_its_functions(server);
    redis::connection c(executor(), config);
    auto before = c.async_exec({"SET", "k", "1"}, asio::use_future);
    auto unit = c.async_exec({"INCR", "k"}, {"GET", "k"}, redis::resend::never, asio::use_future);
    auto after = c.async_exec({"INCR", "k"}, asio::use_future);
    BOOST_TEST(before.get().text == "OK");
    const auto both = unit.get();
    BOOST_TEST_REQUIRE(both.is_array());
    BOOST_TEST_REQUIRE(both.elements.size() == 2u);
    BOOST_TEST(both.elements[0].integer == 2);
    BOOST_TEST(both.elements[1].text == "2");
    BOOST_TEST(after.get().integer == 3);

    auto lost = c.async_exec({"FCALL", "no_such_function", "0"}, {"GET", "k"}, redis::resend::never,
                             asio::use_future);
    auto behind = c.async_exec({"INCR", "k"}, asio::use_future);
    BOOST_CHECK_EXCEPTION(lost.get(), boost::system::system_error, [](const boost::system::system_error& e) {
        return e.code() == errc::coordination_unavailable;
    });
    BOOST_TEST(behind.get().integer == 4);
    BOOST_TEST(exec(c, {"GET", "k"}).text == "4");
}

BOOST_AUTO_TEST_SUITE_END()
