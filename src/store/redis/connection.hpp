// One connection to a Redis server: RESP (hiredis) over Asio, with TLS, deadlines, pipelining and
// reconnection.
//
// Commands are queued on the connection's strand and written in batches (pipelining: every
// command queued while a write is in progress goes out in the next write); replies are matched to
// commands in order. The connection is made on demand: the first command after a failure starts a
// new one (resolve, TCP connect, TLS handshake under connect_timeout, then the configured
// handshake commands, AUTH, SELECT, the function library; the commands queued meanwhile are written
// only once every handshake reply arrived, and fail with the handshake's error if one is refused). A
// reply later than command_timeout, a closed socket or a protocol error fails the connection:
// every command queued or in flight completes with the error, and the next command reconnects. So
// does an error reply saying the server is no usable primary (READONLY, MOVED, ASK, LOADING,
// MASTERDOWN): the command gets errc::coordination_unavailable instead of the reply. One saying
// the server lost what the handshake set up drops the connection more gently
// (connection_config::lost_the_handshake). Nothing blocks. An idle connection has no read pending (it holds
// no work on the io_context): a server that closed it meanwhile (its idle timeout, a restart) is noticed by
// the next command. A command sent with resend::once_if_unanswered is then sent again, once, on a new
// connection, when the connection had been idle and was found closed before any byte of a reply arrived;
// others fail (retryable). The same when its reply is late on a connection that had been idle for
// connection_config::resend_after_idle or longer (one cut silently while idle: see there).
//
// Every socket has TCP keepalive (the constants below): probes keep the path's NAT and load
// balancer entries alive while a connection is idle, and a peer that stopped answering them is
// found dead by the kernel, so that the next command's write fails at once (and is resent as
// above) instead of waiting out command_timeout.
//
// A subscriber connection (on_push set) passes every reply that no command awaits to on_push:
// pub/sub messages after its SUBSCRIBE.
#pragma once

#include "store/redis/resp.hpp"

#include <apollo_oauth/error.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace apollo_oauth::redis {

/// TCP keepalive of every connection: the first probe after keepalive_idle without traffic, then
/// one every keepalive_interval; keepalive_probes unanswered in a row end the connection. Shorter
/// than the idle timeouts of common NATs and load balancers (Azure's 4 minutes, AWS NLB's 350 s;
/// Redis's own tcp-keepalive probes only every 300 s), so that the probes keep an idle
/// connection's path open. TCP_USER_TIMEOUT is their span (keepalive_idle + keepalive_probes x
/// keepalive_interval), which leaves keepalive's verdict as it is (Linux: a connection is ended
/// once that long passed without an answer and a probe is out) and bounds how long the kernel
/// goes on sending bytes nobody acknowledges: those of a command whose connection was given up
/// (its reply late), which could otherwise reach the server many minutes later (tcp_retries2).
inline constexpr std::chrono::seconds keepalive_idle{30};
inline constexpr std::chrono::seconds keepalive_interval{10};
inline constexpr int keepalive_probes = 3;
inline constexpr std::chrono::milliseconds tcp_user_timeout =
    keepalive_idle + keepalive_probes * keepalive_interval;

/// A command sent first on every new connection.
struct handshake_step {
    command cmd;
    /// An error reply fails the connection (AUTH, SELECT); otherwise the reply is only passed to
    /// on_reply and `then` (CONFIG GET, which managed servers may refuse; FUNCTION LIST).
    bool must_succeed = true;
    std::function<void(const reply&)> on_reply;
    /// Steps sent once this one's reply arrived (after on_reply), still before any queued
    /// command: e.g. FUNCTION LOAD only when FUNCTION LIST found the library missing. Null or
    /// none: nothing more.
    std::function<std::vector<handshake_step>(const reply&)> then{};
};

/// Whether a command may be written a second time (see above): only for commands whose effect
/// is the same when they ran twice (reads, compare-and-set scripts).
enum class resend { never, once_if_unanswered };

struct connection_config {
    std::string host;
    std::uint16_t port = 6379;
    /// Null: plain TCP. Otherwise TLS with this context (verification on) and tls_server_name.
    std::shared_ptr<boost::asio::ssl::context> tls_context;
    std::string tls_server_name;
    std::chrono::milliseconds connect_timeout{5'000};
    std::chrono::milliseconds command_timeout{2'000};
    /// Builds the handshake commands for each new connection.
    std::function<std::vector<handshake_step>()> make_handshake;
    /// Subscriber mode: replies no command awaits. Runs on the connection's strand.
    std::function<void(reply&&)> on_push;
    /// An error reply saying the server lost what this connection's handshake set up (the store's
    /// function library, after FUNCTION FLUSH or on a server that never had it): that command,
    /// which did not run, fails with errc::coordination_unavailable; nothing more is written on
    /// the connection, the commands in flight behind it get their own replies, and then the
    /// connection is dropped and the queued commands go on a new one, after its handshake (a
    /// connection with nothing queued reconnects with the next command: not for a subscriber,
    /// which must stay connected). Null: no such reply. Runs on the connection's strand.
    std::function<bool(const reply&)> lost_the_handshake;
    /// False: a reply is late command_timeout after its command was written. True: after its
    /// command was written or after the reply before it, whichever is later: for a connection
    /// whose commands the server may hold on purpose (WAIT), one after the other.
    bool deadline_from_previous_reply = false;
    /// A command sent with resend::once_if_unanswered is sent again, once, on a new connection,
    /// when its reply is late (command_timeout) with no byte of any reply arrived since it was
    /// written on a connection idle for at least this long: such a connection was most likely cut
    /// silently while idle (a NAT or load balancer that dropped its entry, an address moved to
    /// another host), not answered late by a server that is slow. The first copy may still run
    /// (its bytes may be delivered late, until tcp_user_timeout): resend's policy says running
    /// twice is harmless. The command's outcome may then take two command_timeouts and a
    /// connection's setup. Default: never. The token store leaves it so: two of its commands
    /// delivered late together can end another cycle's sent mark (redis_token_store.cpp).
    std::chrono::milliseconds resend_after_idle = std::chrono::milliseconds::max();
};

class connection {
public:
    using exec_handler = boost::asio::any_completion_handler<void(error_code, reply)>;

    connection(boost::asio::any_io_executor ex, connection_config config);
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    ~connection();

    /// Sends `cmd` and completes with its reply (an error reply is a reply, not an error_code).
    /// Handler: void(error_code, reply), posted to the executor given at construction, never
    /// inline. Errors: the transport's (connection_refused, timed_out for a late reply or
    /// connection, an ssl error, eof), asio::error::operation_aborted after close(),
    /// errc::malformed_response for a RESP protocol error, errc::coordination_unavailable for a
    /// server that is no usable primary (the connection is then dropped; see above). Not cancellable per
    /// operation: close() fails everything pending.
    template <class CompletionToken>
    auto async_exec(command cmd, CompletionToken&& token) {
        return async_exec(std::move(cmd), resend::never, std::forward<CompletionToken>(token));
    }

    /// The same, with the command's resend policy.
    template <class CompletionToken>
    auto async_exec(command cmd, resend policy, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, reply)>(
            [this](auto handler, command cmd, resend policy) {
                exec_erased(std::move(cmd), nullptr, policy, std::move(handler));
            },
            token, std::move(cmd), policy);
    }

    /// `cmd` and then `then`, written together on one connection, with nothing between them: the
    /// reply is an array of their two replies. For a command whose effect `then` must see on the
    /// same connection (WAIT counts the replicas that acknowledged this connection's writes). A
    /// reply to `cmd` that lost_the_handshake recognises fails the pair as that reply would fail
    /// `cmd` alone. `policy` is for both (a resend writes both again).
    template <class CompletionToken>
    auto async_exec(command cmd, command then, resend policy, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, reply)>(
            [this](auto handler, command cmd, command then, resend policy) {
                exec_erased(std::move(cmd), &then, policy, std::move(handler));
            },
            token, std::move(cmd), std::move(then), policy);
    }

    /// Connects now if not connected or connecting (a subscriber has no command to trigger it).
    void ensure_connected();

    /// Closes the socket (pending commands fail with operation_aborted); the next command or
    /// ensure_connected() connects again. A subscriber with nobody to wake holds no connection.
    void disconnect();

    /// disconnect() once `grace` has passed, if `unused()` (called then, on the connection's
    /// strand) says so: for a subscriber whose last waiter left, unless one came meanwhile. A
    /// waiter that calls ensure_connected() after it is counted by `unused` is then either seen
    /// (no disconnection) or connected again after it (its ensure_connected() runs later on the
    /// strand). A later call replaces the one pending; close() ends it. The grace holds work on
    /// the io_context while it runs.
    void disconnect_if_unused(std::chrono::milliseconds grace, std::function<bool()> unused);

    /// Fails every pending command with operation_aborted and refuses new ones. Idempotent.
    void close();

    /// Number of connections made so far (tests: reconnection).
    std::uint64_t connections_made() const noexcept;

private:
    struct impl;
    void exec_erased(command cmd, const command* then, resend policy, exec_handler handler);
    std::shared_ptr<impl> impl_;
};

}  // namespace apollo_oauth::redis
