#include "store/redis/connection.hpp"

#include "http/tls_context.hpp"
#include "net/close_on_exec.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <deque>
#include <optional>

namespace apollo_oauth::redis {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

struct pending {
    pending() = default;
    // Constructed with its handler: any_completion_handler's move assignment is broken in 1.81.
    explicit pending(connection::exec_handler h) : handler(std::move(h)) {}

    std::string bytes;  // the formatted command until it is written
    connection::exec_handler handler;
    // A handshake step's reply goes here instead (handler is then empty).
    std::function<void(error_code, reply&&)> internal;
    clock_type::time_point deadline{};
    // resend::once_if_unanswered and not resent yet. Such a command written on an idle connection
    // keeps its bytes until the first byte of a reply arrives.
    bool resendable = false;
    // A command followed by another in one unit (connection::async_exec with `then`): the replies
    // still awaited, those received so far, and whether one said the session was lost.
    bool in_unit = false;
    std::uint8_t replies_left = 1;
    bool session_lost = false;
    reply collected;

    pending(pending&&) noexcept = default;
    pending& operator=(pending&&) = delete;
    ~pending() { wipe(bytes); }
};

// Error replies that say this server is not (or not yet, or no longer) a primary that can serve
// us: a replica after a failover (READONLY), a cluster redirection (MOVED, ASK: this client does
// not follow them), a server loading its data set (LOADING), a replica cut off from its primary
// (MASTERDOWN). Every later command on the connection would get the same answer while the host
// name may already resolve to the new primary, so the connection is dropped. Not dropped for:
// TRYAGAIN (a cluster slot moving), CLUSTERDOWN and BUSY (a script running long): they are about
// the moment, not this connection, and a new connection would get the same answer; the store
// reports them as coordination_unavailable, which its callers retry with backoff.
bool means_not_usable_primary(const reply& r) {
    if (!r.is_error()) {
        return false;
    }
    const std::string_view text = r.text;
    const std::string_view word = text.substr(0, text.find(' '));
    return word == "READONLY" || word == "MOVED" || word == "ASK" || word == "LOADING" ||
           word == "MASTERDOWN";
}

// A callback given a reply (a handshake step's on_reply, on_push) found no memory.
error_code out_of_memory() {
    return boost::system::errc::make_error_code(boost::system::errc::not_enough_memory);
}

}  // namespace

// Everything below runs on `strand`. The impl outlives its operations (they hold a shared_ptr).
struct connection::impl : std::enable_shared_from_this<connection::impl> {
    impl(asio::any_io_executor ex, connection_config cfg)
        : executor(ex),
          strand(asio::make_strand(ex)),
          config(std::move(cfg)),
          resolver(strand),
          connect_timer(strand),
          reply_timer(strand),
          linger_timer(strand) {}

    // handshaking: the transport is up and the handshake commands are written; user commands
    // stay queued until every handshake reply arrived (an AUTH or SELECT that fails must not let
    // a command run unauthenticated or on database 0).
    enum class phase { idle, connecting, handshaking, connected, closed };

    asio::any_io_executor executor;
    asio::strand<asio::any_io_executor> strand;
    connection_config config;
    tcp::resolver resolver;
    asio::steady_timer connect_timer;
    asio::steady_timer reply_timer;
    asio::steady_timer linger_timer;  // disconnect_if_unused
    // Shared with the operations on it: a stale TLS operation of a failed connection may still
    // run (with operation_aborted) after the next connection replaced this pointer.
    std::shared_ptr<asio::ssl::stream<tcp::socket>> stream;
    reader parser;
    phase state = phase::idle;
    // Each connection attempt's number: completions of an older attempt find it changed.
    std::uint64_t attempt = 0;
    std::atomic<std::uint64_t> made{0};
    std::deque<pending> handshake;   // the handshake steps, written before anything queued
    std::size_t handshake_left = 0;  // handshake replies still awaited
    std::deque<pending> queued;      // not written yet
    std::deque<pending> in_flight;   // written (or being written), reply awaited, in order
    bool writing = false;
    // A read is pending only while a reply is awaited (or always, for a subscriber): an idle
    // connection holds no work, so the io_context of a process that is done can return.
    bool reading = false;
    // No command awaits a reply and no read is pending: the server may have closed the connection
    // meanwhile without our noticing. Since idle_since.
    bool idle = false;
    clock_type::time_point idle_since{};
    // Commands were written on an idle connection and no byte has arrived since: a close found now
    // is most likely the server's close of the idle connection, and no reply was seen.
    bool unanswered_after_idle = false;
    // The same, and it had been idle for config.resend_after_idle or longer: a late reply too is
    // most likely a connection cut while idle.
    bool unanswered_after_long_idle = false;
    // A reply said the server lost what this connection's handshake set up
    // (connection_config::lost_the_handshake): nothing more is written on it, the commands in
    // flight get their replies, and then the connection is dropped for a new one.
    bool session_lost = false;
    std::string write_buffer;
    std::array<char, 16 * 1024> read_buffer{};

    bool tls() const { return config.tls_context != nullptr; }

    template <class Handler>
    auto on_strand(Handler&& h) {
        return asio::bind_executor(strand, std::forward<Handler>(h));
    }

    void complete(pending& p, error_code ec, reply r) {
        if (p.internal) {
            p.internal(ec, std::move(r));
        } else if (p.handler) {
            // Posted to the plain executor: never inline, never holding the strand.
            asio::post(executor, [h = std::move(p.handler), ec, r = std::move(r)]() mutable {
                std::move(h)(ec, std::move(r));
            });
        }
    }

    void exec(pending p) {
        if (state == phase::closed) {
            complete(p, asio::error::operation_aborted, {});
            return;
        }
        queued.push_back(std::move(p));
        if (state == phase::idle) {
            start_connect();
        } else if (state == phase::connected) {
            write_queued();
        }
    }

    void start_connect() {
        state = phase::connecting;
        idle = false;
        const std::uint64_t this_attempt = ++attempt;
        if (!parser.reset()) {
            return fail(out_of_memory());  // the queued commands get it: retryable for the store
        }
        stream = std::make_shared<asio::ssl::stream<tcp::socket>>(
            strand, tls() ? *config.tls_context : plain_context());
        connect_timer.expires_after(config.connect_timeout);
        connect_timer.async_wait(on_strand([self = shared_from_this(), this_attempt](error_code ec) {
            if (!ec && self->attempt == this_attempt && self->state == phase::connecting) {
                self->fail(asio::error::timed_out);
            }
        }));
        resolver.async_resolve(config.host, std::to_string(config.port),
                               on_strand([self = shared_from_this(), this_attempt](
                                             error_code ec, tcp::resolver::results_type results) {
                                   if (self->attempt != this_attempt) {
                                       return;
                                   }
                                   if (ec) {
                                       return self->fail(ec);
                                   }
                                   const auto first = results.begin();
                                   self->connect_to(this_attempt, std::move(results), first,
                                                    asio::error::host_not_found);
                               }));
    }

    // The lookup's addresses in order, under the one connect timer, each on a socket of its own
    // opened close-on-exec (net/close_on_exec.hpp: Asio's range async_connect would open them
    // without it, and a host process that forks and execs would hand Redis connections to its
    // children). `last` is the previous address's error.
    void connect_to(std::uint64_t this_attempt, tcp::resolver::results_type addresses,
                    tcp::resolver::results_type::const_iterator next, error_code last) {
        if (next == addresses.end()) {
            return fail(last);
        }
        const tcp::endpoint address = next->endpoint();
        ++next;
        error_code ec;
        apollo_oauth::net::open_close_on_exec(stream->next_layer(), address.protocol(), ec);
        if (ec) {
            // No socket for this address's family (IPv6 on a host without it, say): the next one.
            return connect_to(this_attempt, std::move(addresses), next, ec);
        }
        stream->next_layer().async_connect(
            address, on_strand([self = shared_from_this(), s = stream, this_attempt,
                                addresses = std::move(addresses), next](error_code ec) mutable {
                if (self->attempt != this_attempt) {
                    return;
                }
                // Refused or unreachable: the next address. Aborted: the connect timer failed
                // the attempt (or the connection is closing), which ends them all.
                if (ec && ec != asio::error::operation_aborted && next != addresses.end()) {
                    return self->connect_to(this_attempt, std::move(addresses), next, ec);
                }
                self->on_tcp_connected(this_attempt, ec);
            }));
    }

    // The keepalive of connection.hpp. Best effort, as TCP_NODELAY: a platform without an option
    // keeps its default.
    static void set_keepalive(tcp::socket& socket) {
        error_code ignored;
        socket.set_option(asio::socket_base::keep_alive(true), ignored);
        // Asio has no portable option for these (Linux's).
        const auto set = [&socket](int name, long long value) {
            const int v = static_cast<int>(value);
            (void)::setsockopt(socket.native_handle(), IPPROTO_TCP, name, &v, sizeof v);
        };
        set(TCP_KEEPIDLE, keepalive_idle.count());
        set(TCP_KEEPINTVL, keepalive_interval.count());
        set(TCP_KEEPCNT, keepalive_probes);
        set(TCP_USER_TIMEOUT, tcp_user_timeout.count());
    }

    // A plain connection still builds an ssl::stream (one type for both), over a context made
    // once and never used for a handshake.
    static asio::ssl::context& plain_context() {
        static asio::ssl::context unused{asio::ssl::context::tls_client};
        return unused;
    }

    void on_tcp_connected(std::uint64_t this_attempt, error_code ec) {
        if (attempt != this_attempt) {
            return;
        }
        if (ec) {
            return fail(ec);
        }
        error_code ignored;
        stream->next_layer().set_option(tcp::no_delay(true), ignored);
        set_keepalive(stream->next_layer());
        if (!tls()) {
            return on_transport_ready(this_attempt);
        }
        const std::string& name = config.tls_server_name.empty() ? config.host : config.tls_server_name;
        if (const auto prepare_ec = http::prepare_tls_peer(stream->native_handle(), name)) {
            return fail(prepare_ec);
        }
        // OpenSSL otherwise keeps the last decrypted record (replies: tokens) in its buffer until
        // the next one overwrites it.
        SSL_set_options(stream->native_handle(), SSL_OP_CLEANSE_PLAINTEXT);
        stream->async_handshake(
            asio::ssl::stream_base::client,
            on_strand([self = shared_from_this(), s = stream, this_attempt](error_code ec) {
                if (self->attempt != this_attempt) {
                    return;
                }
                if (ec) {
                    return self->fail(ec);
                }
                self->on_transport_ready(this_attempt);
            }));
    }

    void on_transport_ready(std::uint64_t this_attempt) {
        connect_timer.cancel();
        made.fetch_add(1, std::memory_order_relaxed);
        handshake.clear();
        handshake_left = 0;
        if (config.make_handshake) {
            for (auto& step : config.make_handshake()) {
                add_handshake_step(std::move(step), this_attempt);
            }
        }
        state = handshake.empty() ? phase::connected : phase::handshaking;
        if (!reading) {
            read_more(this_attempt);
        }
        write_queued();
    }

    // Queues a handshake step, to be written before anything queued; its reply is awaited before
    // the connection counts as connected.
    void add_handshake_step(handshake_step step, std::uint64_t this_attempt) {
        pending p;
        step.cmd.append_to(p.bytes);
        p.internal = [self = shared_from_this(), this_attempt, must = step.must_succeed,
                      on_reply = std::move(step.on_reply),
                      then = std::move(step.then)](error_code ec, reply&& r) {
            if (ec) {
                return;  // the connection failed: fail() already handles everything
            }
            std::vector<handshake_step> more;
            try {
                if (on_reply) {
                    on_reply(r);
                }
                if (then && self->attempt == this_attempt && !(must && r.is_error())) {
                    more = then(r);
                }
            } catch (const std::exception&) {
                // No memory for what the step keeps of its reply (the store copies CONFIG GET's)
                // or for the steps after it: the connection fails, and the commands waiting for
                // the handshake get the error, rather than the exception leaving io_context::run
                // with their handlers never called.
                if (self->attempt == this_attempt) {
                    self->fail(out_of_memory());
                }
                return;
            }
            if (self->attempt != this_attempt) {
                return;
            }
            if (must && r.is_error()) {
                // Refused login or library: asio's access_denied; the message of the reply is not
                // kept (it may quote the command).
                return self->fail(asio::error::access_denied);
            }
            try {
                for (auto& step : more) {
                    self->add_handshake_step(std::move(step), this_attempt);
                }
            } catch (const std::exception&) {
                return self->fail(out_of_memory());
            }
            if (--self->handshake_left == 0) {
                self->state = phase::connected;
            }
            self->write_queued();  // the steps just added, or (connected) the queued commands
        };
        handshake.push_back(std::move(p));
        ++handshake_left;
    }

    void write_queued() {
        // While handshaking only the handshake is written; the user commands wait for its replies.
        auto& source = state == phase::handshaking ? handshake : queued;
        if (writing || session_lost || source.empty() ||
            (state != phase::connected && state != phase::handshaking)) {
            return;
        }
        if (idle) {
            idle = false;
            unanswered_after_idle = true;
            // In milliseconds: the default, milliseconds::max(), overflows as nanoseconds.
            unanswered_after_long_idle = std::chrono::duration_cast<std::chrono::milliseconds>(
                                             clock_type::now() - idle_since) >= config.resend_after_idle;
        }
        const auto deadline = clock_type::now() + config.command_timeout;
        while (!source.empty()) {
            pending& p = source.front();
            append_wiping_growth(write_buffer, p.bytes);
            if (!(unanswered_after_idle && p.resendable)) {
                wipe(p.bytes);
            }
            p.deadline = deadline;
            in_flight.push_back(std::move(p));
            source.pop_front();
        }
        writing = true;
        arm_reply_timer();
        if (!reading) {
            read_more(attempt);
        }
        auto done = on_strand(
            [self = shared_from_this(), s = stream, this_attempt = attempt](error_code ec, std::size_t) {
                if (self->attempt != this_attempt) {
                    return;
                }
                self->writing = false;
                wipe(self->write_buffer);
                if (ec) {
                    return self->fail(ec);
                }
                self->write_queued();
            });
        if (tls()) {
            asio::async_write(*stream, asio::buffer(write_buffer), std::move(done));
        } else {
            asio::async_write(stream->next_layer(), asio::buffer(write_buffer), std::move(done));
        }
    }

    void arm_reply_timer() {
        if (in_flight.empty()) {
            reply_timer.cancel();
            return;
        }
        reply_timer.expires_at(in_flight.front().deadline);
        reply_timer.async_wait(on_strand([self = shared_from_this(), this_attempt = attempt](error_code ec) {
            if (ec || self->attempt != this_attempt || self->in_flight.empty()) {
                return;
            }
            if (self->in_flight.front().deadline <= clock_type::now()) {
                self->fail(asio::error::timed_out, failure::reply_late);
            } else {
                self->arm_reply_timer();
            }
        }));
    }

    // At most one read is pending: a second one would keep waiting after the replies are in (the
    // io_context of a process that is done would never return) and TLS allows only one.
    void read_more(std::uint64_t this_attempt) {
        reading = true;
        auto done =
            on_strand([self = shared_from_this(), s = stream, this_attempt](error_code ec, std::size_t n) {
                if (self->attempt != this_attempt) {
                    return;
                }
                self->reading = false;
                if (ec) {
                    return self->fail(ec);
                }
                self->on_bytes(this_attempt, n);
            });
        if (tls()) {
            stream->async_read_some(asio::buffer(read_buffer), std::move(done));
        } else {
            stream->next_layer().async_read_some(asio::buffer(read_buffer), std::move(done));
        }
    }

    bool says_session_lost(const reply& r) const {
        return state == phase::connected && config.lost_the_handshake && config.lost_the_handshake(r);
    }

    void on_bytes(std::uint64_t this_attempt, std::size_t n) {
        if (unanswered_after_idle) {
            // The connection is alive: a failure from now on may come after a command ran.
            unanswered_after_idle = false;
            unanswered_after_long_idle = false;
            for (auto& p : in_flight) {
                wipe(p.bytes);
            }
        }
        const bool fed = parser.feed({read_buffer.data(), n});
        OPENSSL_cleanse(read_buffer.data(), n);
        if (!fed) {
            return fail(make_error_code(errc::malformed_response));
        }
        bool answered = false;  // a command got its reply (deadline_from_previous_reply)
        for (;;) {
            reply r;
            const auto result = parser.next(r);
            if (result == reader::result::need_more) {
                break;
            }
            if (result == reader::result::protocol_error) {
                return fail(make_error_code(errc::malformed_response));
            }
            if (!in_flight.empty() && means_not_usable_primary(r)) {
                // Retryable for the caller (the store maps it to coordination_unavailable); the
                // server's message is not kept. The next command reconnects, resolving again.
                return fail(make_error_code(errc::coordination_unavailable));
            }
            if (!in_flight.empty() && in_flight.front().replies_left > 1) {
                // Not the unit's last reply: kept for its handler, which gets them all at once.
                pending& unit = in_flight.front();
                if (says_session_lost(r)) {
                    unit.session_lost = true;
                    session_lost = true;  // nothing more written from now, not from the unit's end
                }
                unit.collected.elements.push_back(std::move(r));
                --unit.replies_left;
                continue;
            }
            bool lost = false;
            if (!in_flight.empty() && in_flight.front().in_unit) {
                // A unit's last reply: its handler gets them all, as an array.
                pending& unit = in_flight.front();
                lost = unit.session_lost || says_session_lost(r);
                unit.collected.elements.push_back(std::move(r));
                r = std::move(unit.collected);
            } else {
                lost = !in_flight.empty() && says_session_lost(r);
            }
            if (lost) {
                // This command (a unit's first) did not run: retryable. The ones pipelined behind
                // it may have run (the handshake of another connection may have set things up
                // again between them), so they get their own replies rather than an error that
                // would leave their outcome unknown.
                pending p = std::move(in_flight.front());
                in_flight.pop_front();
                answered = true;
                complete(p, make_error_code(errc::coordination_unavailable), {});
                session_lost = true;
                continue;
            }
            if (!in_flight.empty()) {
                pending p = std::move(in_flight.front());
                in_flight.pop_front();
                answered = true;
                complete(p, {}, std::move(r));
            } else if (config.on_push) {
                try {
                    config.on_push(std::move(r));
                } catch (const std::exception&) {
                    // No memory to pass it on (the store wakes its waiters): as above, the
                    // connection fails rather than the exception leaving io_context::run.
                    return fail(out_of_memory());
                }
            } else {
                // A reply to nothing: the stream is out of step.
                return fail(make_error_code(errc::malformed_response));
            }
            if (attempt != this_attempt) {
                return;  // a handshake step failed the connection
            }
        }
        if (session_lost && in_flight.empty()) {
            return start_session_again();
        }
        if (config.deadline_from_previous_reply && answered && !in_flight.empty()) {
            auto& next = in_flight.front().deadline;
            next = std::max(next, clock_type::now() + config.command_timeout);
        }
        arm_reply_timer();
        // The last handshake reply may have started a write, and with it a read, already.
        if (!reading && (!in_flight.empty() || config.on_push)) {
            read_more(this_attempt);
        }
        idle = !reading && in_flight.empty() && state == phase::connected;
        if (idle) {
            idle_since = clock_type::now();
        }
    }

    // Every reply of the lost session is in: this connection is closed, nothing pending fails, and
    // the queued commands go on a new connection, after its handshake.
    void start_session_again() {
        drop_transport();
        if (state == phase::idle && !queued.empty()) {
            start_connect();
        }
    }

    // Closes the transport and makes every completion of it stale, handshake steps not yet written
    // included (their handlers need no error: they belong to this connection); the commands in
    // flight or queued are the caller's to complete or carry over.
    void drop_transport() {
        unanswered_after_idle = false;
        unanswered_after_long_idle = false;
        session_lost = false;
        idle = false;
        ++attempt;
        if (state != phase::closed) {
            state = phase::idle;
        }
        resolver.cancel();
        connect_timer.cancel();
        reply_timer.cancel();
        if (stream) {
            error_code ignored;
            stream->next_layer().close(ignored);
        }
        writing = false;
        reading = false;
        wipe(write_buffer);
        (void)parser.reset();  // wipes what it held; without memory, the next start_connect says so
        handshake.clear();
        handshake_left = 0;
    }

    // The socket's error says the connection is gone: closed by the server, or (timed_out from
    // the socket) ended by the kernel, its keepalive probes or its data unacknowledged.
    static bool found_closed(error_code ec) {
        return ec == asio::error::eof || ec == asio::error::connection_reset ||
               ec == asio::error::broken_pipe || ec == asio::error::connection_aborted ||
               ec == asio::ssl::error::stream_truncated || ec == asio::error::timed_out;
    }

    // What failed the connection: its socket (or the server, or a step of ours), or the reply
    // deadline (ec is then timed_out, which the socket may give too).
    enum class failure { socket, reply_late };

    void fail(error_code ec, failure why = failure::socket) {
        // The connection had been idle and is found closed before any reply came (or, after a
        // long idle, its reply is late: connection_config::resend_after_idle): the commands in
        // flight that may be resent go, once, on a new connection, ahead of those queued since.
        // Whether a command ran before is unknown; resend::once_if_unanswered says its running
        // twice is harmless.
        const bool resend = state == phase::connected && unanswered_after_idle &&
                            (why == failure::reply_late ? unanswered_after_long_idle : found_closed(ec));
        drop_transport();  // every completion of the failed connection is now stale
        auto failed = std::move(in_flight);
        in_flight.clear();
        std::deque<pending> again;
        for (auto& p : failed) {
            if (resend && p.resendable && !p.bytes.empty()) {
                p.resendable = false;
                again.push_back(std::move(p));
            } else {
                complete(p, ec, {});
            }
        }
        auto waiting = std::move(queued);
        queued.clear();
        if (!again.empty()) {
            for (auto& p : waiting) {
                again.push_back(std::move(p));
            }
            queued = std::move(again);
            start_connect();
            return;
        }
        for (auto& p : waiting) {
            complete(p, ec, {});
        }
        // The stream object stays until the next attempt: operations on it may still be queued.
    }
};

connection::connection(asio::any_io_executor ex, connection_config config)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(config))) {}

connection::~connection() {
    close();
}

void connection::exec_erased(command cmd, const command* then, resend policy, exec_handler handler) {
    pending p(std::move(handler));
    p.resendable = policy == resend::once_if_unanswered;
    cmd.append_to(p.bytes);
    if (then != nullptr) {
        then->append_to(p.bytes);
        p.in_unit = true;
        p.replies_left = 2;
        p.collected.type = reply::kind::array;
    }
    asio::post(impl_->strand, [self = impl_, p = std::move(p)]() mutable { self->exec(std::move(p)); });
}

void connection::ensure_connected() {
    asio::post(impl_->strand, [self = impl_] {
        if (self->state == impl::phase::idle) {
            self->start_connect();
        }
    });
}

void connection::disconnect() {
    asio::post(impl_->strand, [self = impl_] {
        if (self->state != impl::phase::closed && self->state != impl::phase::idle) {
            self->fail(asio::error::operation_aborted);
        }
    });
}

void connection::disconnect_if_unused(std::chrono::milliseconds grace, std::function<bool()> unused) {
    asio::post(impl_->strand, [self = impl_, grace, unused = std::move(unused)]() mutable {
        if (self->state == impl::phase::closed) {
            return;
        }
        self->linger_timer.expires_after(grace);  // cancels the one pending
        self->linger_timer.async_wait(self->on_strand([self, unused = std::move(unused)](error_code ec) {
            if (!ec && self->state != impl::phase::closed && self->state != impl::phase::idle && unused()) {
                self->fail(asio::error::operation_aborted);
            }
        }));
    });
}

void connection::close() {
    asio::post(impl_->strand, [self = impl_] {
        self->state = impl::phase::closed;
        self->linger_timer.cancel();
        self->fail(asio::error::operation_aborted);
    });
}

std::uint64_t connection::connections_made() const noexcept {
    return impl_->made.load(std::memory_order_relaxed);
}

}  // namespace apollo_oauth::redis
