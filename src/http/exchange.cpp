#include "http/exchange.hpp"

#include "http/connection_pool.hpp"
#include "http/response_reading.hpp"
#include "http/tls_context.hpp"
#include "http/wipe.hpp"
#include "net/close_on_exec.hpp"

#include <apollo_oauth/error.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <openssl/ssl.h>

#include <algorithm>
#include <mutex>
#include <optional>

namespace apollo_oauth::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

namespace {

using connection_strand = decltype(connection::strand);

// Failures that mean "the server closed this connection", as seen on a stale keep-alive
// connection at the first write or read.
bool is_closed_connection(error_code ec) {
    return ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
           ec == asio::ssl::error::stream_truncated || ec == beast::http::error::end_of_stream;
}

// Carries a cancellation emitted on any thread to where the exchange is. A cancellation slot is
// not thread-safe, while the exchange's steps run on a connection's strand that is only known
// once the pool hands one over (and changes when a stale connection is replaced). So the
// caller's slot holds a forwarder that records the request here and then
// - while the exchange waits in the pool: takes it out of the queue (the pool is thread-safe);
// - while it holds a connection: posts to that connection's strand the emission of `signal` (the
//   op's own slot), which reaches whichever Beast or Asio operation is pending, and the close of
//   the socket, which ends what Beast may still start: its reads have moments with no operation
//   pending on the socket (a body parsed from bytes already buffered completes through a post),
//   and a cancellation emitted then would be recorded where nothing reads it. A cancelled
//   exchange's connection is never reused (connection_pool::release refuses a closed socket);
// - in between (handed a connection, first step not yet run): nothing more; that step reads
//   `cancelled` and stops.
// The relay holds no strong reference: the caller's slot may keep it after the exchange, and
// even the io_context, are gone.
struct cancellation_relay {
    std::mutex mutex;
    bool cancelled = false;                    // terminal cancellation was asked for
    bool finished = false;                     // the exchange has finished: nothing more to cancel
    std::weak_ptr<connection_pool> queued_in;  // while waiting for a connection
    std::weak_ptr<connection> held;            // while holding a connection
    std::uint64_t holding = 0;         // counts connections held: an emission meant for a left one is dropped
    asio::cancellation_signal signal;  // emitted on the held connection's strand only
};

struct relay_forwarder {
    explicit relay_forwarder(std::shared_ptr<cancellation_relay> relay) : relay(std::move(relay)) {}
    std::shared_ptr<cancellation_relay> relay;

    void operator()(asio::cancellation_type type) const {
        if ((type & asio::cancellation_type::terminal) == asio::cancellation_type::none) {
            return;
        }
        std::unique_lock lock{relay->mutex};
        if (relay->cancelled || relay->finished) {
            return;
        }
        relay->cancelled = true;
        if (auto conn = relay->held.lock()) {
            const auto holding = relay->holding;
            lock.unlock();
            auto strand = conn->strand;
            asio::post(strand, [relay = relay, holding, weak = std::weak_ptr<connection>(conn)] {
                {
                    std::lock_guard lock{relay->mutex};
                    // Finished, or moved to another connection (whose first step saw `cancelled`).
                    if (relay->finished || relay->holding != holding) {
                        return;
                    }
                }
                relay->signal.emit(asio::cancellation_type::terminal);
                if (auto conn = weak.lock()) {
                    error_code ignored;
                    beast::get_lowest_layer(conn->stream).socket().close(ignored);
                }
            });
        } else if (auto pool = relay->queued_in.lock()) {
            lock.unlock();
            pool->cancel_wait(relay.get());
        }
    }
};

// A name lookup with a deadline and a cancellation that end the exchange's wait at once. The
// resolver has neither that works on a lookup under way: Asio runs getaddrinfo on a thread of its
// own, and resolver::cancel() stops only a lookup not yet started; one that hangs (a DNS server
// that does not answer: glibc tries each for 5 s, twice) runs to its end. So the exchange does not
// wait for it: the first of the answer, the deadline and a cancellation, each on the connection's
// strand, resumes the exchange, and the others find nothing to do. A lookup left running keeps
// the attempt, and its resolver, alive until it returns.
struct resolve_attempt {
    using results = tcp::resolver::results_type;
    using waiting_exchange = asio::any_completion_handler<void(error_code, results)>;

    explicit resolve_attempt(const connection_strand& strand) : resolver(strand), deadline(strand) {}

    // On the strand. Resumes the exchange, once.
    void settle(error_code ec, results found) {
        if (!waiting) {
            return;
        }
        auto exchange = std::move(*waiting);
        waiting.reset();
        deadline.cancel();
        resolver.cancel();  // a lookup not yet started need not start (none left after an answer)
        std::move(exchange)(ec, std::move(found));
    }

    tcp::resolver resolver;
    asio::steady_timer deadline;
    std::optional<waiting_exchange> waiting;  // the exchange, until it is resumed
};

// Installed in the op's slot while the lookup runs (the resolver ignores slots). Posted, not run
// inline: settling runs the exchange's next step, which clears this very slot.
struct resolve_canceller {
    explicit resolve_canceller(std::weak_ptr<resolve_attempt> attempt) : attempt(std::move(attempt)) {}
    std::weak_ptr<resolve_attempt> attempt;
    void operator()(asio::cancellation_type) const {
        if (auto a = attempt.lock()) {
            asio::post(a->resolver.get_executor(), [a] { a->settle(asio::error::operation_aborted, {}); });
        }
    }
};

enum class phase { acquire, holding, resolve, connect, handshake, write, read_header, read_body };

// A server may send interim (1xx) responses before the final one: 100 Continue, 103 Early Hints
// (RFC 9110 section 15.2). Each is skipped, up to this many per request; more, from a server
// that may never stop, fails the exchange as a header that never ends would.
constexpr std::size_t max_interim_responses = 16;

struct finished_tag {};
struct connect_attempt_tag {};  // one address's connect is done

struct exchange_state {
    exchange_state(std::shared_ptr<connection_pool> pool, request req, send_options options,
                   const apollo_oauth::timeouts& timeouts, std::size_t header_limit,
                   std::shared_ptr<cancellation_relay> relay)
        : pool(std::move(pool)),
          req(std::move(req)),
          options(options),
          timeouts(timeouts),
          header_limit(header_limit),
          relay(std::move(relay)) {}

    std::shared_ptr<connection_pool> pool;
    request req;
    send_options options;
    apollo_oauth::timeouts timeouts;
    std::size_t header_limit;
    std::shared_ptr<cancellation_relay> relay;

    phase at = phase::acquire;
    std::shared_ptr<connection> conn;
    std::optional<response_parser> parser;
    tcp::resolver::results_type addresses;                     // the lookup's, tried in order
    tcp::resolver::results_type::const_iterator next_address;  // the next to try
    std::size_t interim_responses = 0;                         // 1xx answers read before the final one
    bool retried = false;

    error_code outcome;  // set by finish, delivered on the handler's executor
    response result;
};

// The exchange. Each step that touches the connection runs on its strand: every operation on
// the stream is started with this op bound to the strand (async_compose would otherwise complete
// intermediate steps on the handler's executor, which is not the stream's). The op is its
// handler's slot's only user, so Beast's own operations see a terminal cancellation directly.
class exchange_op {
public:
    explicit exchange_op(std::unique_ptr<exchange_state> state) : s_(std::move(state)) {}

    // Start: inline, on the initiating thread.
    template <class Self>
    void operator()(Self& self) {
        acquire(self, /*fresh_only=*/false);
    }

    // Handed a connection (on its strand), or taken out of the pool's queue by a cancellation.
    template <class Self>
    void operator()(Self& self, error_code ec, std::shared_ptr<connection> conn) {
        auto& s = *s_;
        if (ec) {
            return finish(self, ec);
        }
        s.conn = std::move(conn);
        s.at = phase::holding;
        bool cancelled;
        {
            std::lock_guard lock{s.relay->mutex};
            s.relay->queued_in.reset();
            cancelled = s.relay->cancelled;
            if (!cancelled) {
                s.relay->held = s.conn;
                ++s.relay->holding;
            }
        }
        if (cancelled) {
            return finish(self, asio::error::operation_aborted);
        }
        if (s.conn->established) {
            return write(self);
        }
        resolve(self);
    }

    template <class Self>
    void operator()(Self& self, error_code ec, const tcp::resolver::results_type& endpoints) {
        auto& s = *s_;
        asio::get_associated_cancellation_slot(self).clear();  // the resolve_canceller
        if (failed(self, ec)) {
            return;
        }
        s.at = phase::connect;
        s.addresses = endpoints;
        s.next_address = s.addresses.begin();
        // One deadline for every address: Beast's stream keeps it until it is set again.
        beast::get_lowest_layer(s.conn->stream).expires_after(s.timeouts.connect);
        connect_next(self, asio::error::host_not_found);
    }

    template <class Self>
    void operator()(Self& self, error_code ec, connect_attempt_tag) {
        auto& s = *s_;
        // Refused or unreachable: the next address, within the same deadline. A timeout ended
        // the deadline for all of them, and a cancellation the exchange.
        if (ec && ec != beast::error::timeout && ec != asio::error::operation_aborted &&
            !cancel_requested() && s.next_address != s.addresses.end()) {
            return connect_next(self, ec);
        }
        if (failed(self, ec)) {
            return;
        }
        s.at = phase::handshake;
        if (auto refused = prepare_tls_peer(s.conn->stream.native_handle(), s.pool->where().host)) {
            return finish(self, refused);
        }
        beast::get_lowest_layer(s.conn->stream).expires_after(s.timeouts.tls_handshake);
        s.conn->stream.async_handshake(asio::ssl::stream_base::client, on_strand(std::move(self)));
    }

    // The handshake is done.
    template <class Self>
    void operator()(Self& self, error_code ec) {
        if (failed(self, ec)) {
            return;
        }
        s_->conn->established = true;
        write(self);
    }

    // A write, a header read or a body read is done.
    template <class Self>
    void operator()(Self& self, error_code ec, std::size_t) {
        auto& s = *s_;
        if (s.at == phase::read_body) {
            // A whole response is delivered, even when a cancellation is on its way.
            return ec ? on_error(self, ec) : finish(self, {});
        }
        // A cancellation may have reached the strand between two steps, when no operation was
        // pending to hear it: the relay's flag says so.
        if (failed(self, ec)) {
            return;
        }
        if (s.at == phase::write) {
            return read_header(self);
        }
        if (s.parser->get().result_int() / 100 == 1) {
            return skip_interim(self);
        }
        read_body(self);
    }

    // Back on the handler's executor: deliver.
    template <class Self>
    void operator()(Self& self, finished_tag) {
        const auto ec = s_->outcome;
        auto result = std::move(s_->result);
        s_.reset();  // before the handler runs: it may destroy what the state refers to
        self.complete(ec, std::move(result));
    }

private:
    template <class Self>
    auto on_strand(Self&& self) {
        return asio::bind_executor(s_->conn->strand, std::forward<Self>(self));
    }

    template <class Self>
    void acquire(Self& self, bool fresh_only) {
        auto& s = *s_;
        s.at = phase::acquire;
        bool cancelled_before;
        {
            std::lock_guard lock{s.relay->mutex};
            cancelled_before = s.relay->cancelled;
            if (!cancelled_before) {
                s.relay->queued_in = s.pool;
            }
        }
        if (cancelled_before) {
            return finish(self, asio::error::operation_aborted);  // takes the relay's mutex itself
        }
        // Taken out first: when the pool queues `self`, this op (and *s_) moves with it.
        const auto pool = s.pool;
        const auto relay = s.relay;
        auto conn = pool->acquire_or_queue(fresh_only, relay.get(), self);
        if (conn) {
            // Always through a post: this runs on the initiating thread or inside a step on
            // another connection's strand, and neither may run this connection's I/O.
            auto strand = conn->strand;
            return asio::post(
                asio::bind_executor(strand, asio::append(std::move(self), error_code{}, std::move(conn))));
        }
        // Queued. A cancellation that ran before the waiter entered the queue found nothing to
        // take out; it is honoured here.
        bool cancelled;
        {
            std::lock_guard lock{relay->mutex};
            cancelled = relay->cancelled;
        }
        if (cancelled) {
            pool->cancel_wait(relay.get());
        }
    }

    template <class Self>
    void resolve(Self& self) {
        auto& s = *s_;
        s.at = phase::resolve;
        // Owned by the deadline's and the lookup's handlers, never by the op (which it holds).
        auto attempt = std::make_shared<resolve_attempt>(s.conn->strand);
        const auto& where = s.pool->where();  // the pool outlives the op, which s_ keeps
        // From here the attempt holds the op (and s_ with it): `s` stays valid, this op does not.
        // Each of the three holds the attempt: any may come after the op has moved on.
        attempt->waiting.emplace(std::move(self));
        // Into the slot of the handler that holds the op: making it installed its own filter in
        // the op's slot (replacing whatever was there), which passes a cancellation on to this one.
        asio::get_associated_cancellation_slot(*attempt->waiting)
            .template emplace<resolve_canceller>(attempt);
        attempt->deadline.expires_after(s.timeouts.resolve);
        attempt->deadline.async_wait([attempt](error_code ec) {
            if (!ec) {
                attempt->settle(asio::error::timed_out, {});
            }
        });
        // The resolver's executor is the strand.
        attempt->resolver.async_resolve(where.host, where.port,
                                        [attempt](error_code ec, resolve_attempt::results found) {
                                            attempt->settle(ec, std::move(found));
                                        });
    }

    // Each address gets a socket of its own, opened close-on-exec (net/close_on_exec.hpp: Asio's
    // range connect would open them without it); `last` is the previous address's error.
    template <class Self>
    void connect_next(Self& self, error_code last) {
        auto& s = *s_;
        if (s.next_address == s.addresses.end()) {
            return on_error(self, last);
        }
        const tcp::endpoint address = s.next_address->endpoint();
        ++s.next_address;
        auto& tcp_layer = beast::get_lowest_layer(s.conn->stream);
        error_code ec;
        apollo_oauth::net::open_close_on_exec(tcp_layer.socket(), address.protocol(), ec);
        if (ec) {
            // No socket for this address's family (IPv6 on a host without it, say): the next one.
            return connect_next(self, ec);
        }
        tcp_layer.async_connect(address, asio::append(on_strand(std::move(self)), connect_attempt_tag{}));
    }

    template <class Self>
    void write(Self& self) {
        auto& s = *s_;
        s.at = phase::write;
        if (s.options.secret_body) {
            // OpenSSL otherwise keeps a decrypted record (here: new tokens) in its read buffer
            // until the next record overwrites it, and frees it unwiped. With the option, what
            // is read is cleansed once consumed, and the buffer when freed. Per connection and
            // per exchange: API answers hold no secrets of ours, and cleansing every read cost
            // ~6% of API throughput (bench_throughput, 64 concurrent requests).
            SSL_set_options(s.conn->stream.native_handle(), SSL_OP_CLEANSE_PLAINTEXT);
        }
        beast::get_lowest_layer(s.conn->stream).expires_after(s.timeouts.write);
        beast::http::async_write(s.conn->stream, s.req, on_strand(std::move(self)));
    }

    template <class Self>
    void read_header(Self& self) {
        auto& s = *s_;
        s.at = phase::read_header;
        // Per exchange: the header limit is the client's, the connection the pool's.
        s.conn->buffer.max_size(read_buffer_limit(s.header_limit));
        beast::get_lowest_layer(s.conn->stream).expires_after(s.timeouts.response_header);
        read_next_header(self);
    }

    // A fresh parser for the next response header, read within the deadline already set.
    template <class Self>
    void read_next_header(Self& self) {
        auto& s = *s_;
        s.parser.emplace();
        apply_response_limits(*s.parser, s.header_limit, s.options.body_limit,
                              s.req.method() == beast::http::verb::head);
        beast::http::async_read_header(s.conn->stream, s.conn->buffer, *s.parser, on_strand(std::move(self)));
    }

    // Beast's parser ends a 1xx response at its header (it has no body), so read_body would
    // deliver it as the answer, and the final response, still on its way, would be left on a
    // connection handed back to the pool: the next request there would read it as its own.
    // Instead the 1xx is dropped and the next header read, within the first header's deadline.
    template <class Self>
    void skip_interim(Self& self) {
        auto& s = *s_;
        // 101 Switching Protocols: what follows is not HTTP/1.1, and this client never asks for
        // an upgrade (the Upgrade header is reserved to it).
        if (s.parser->get().result_int() == 101 || ++s.interim_responses > max_interim_responses) {
            return finish(self, make_error_code(apollo_oauth::errc::malformed_response));
        }
        read_next_header(self);
    }

    template <class Self>
    void read_body(Self& self) {
        auto& s = *s_;
        s.at = phase::read_body;
        if (s.parser->is_done()) {
            return finish(self, {});
        }
        if (s.options.secret_body && s.parser->chunked()) {
            // The body limit ends the read before the body outgrows the room, so it never moves:
            // validate() holds token responses, the secret bodies, to 192 KiB (max_token_body_bytes).
            // The 1 MiB bound only guards against a limit nobody validated.
            constexpr std::size_t max_reserved = 1024 * 1024;
            s.parser->get().body().reserve(std::min(s.options.body_limit, max_reserved));
        }
        beast::get_lowest_layer(s.conn->stream).expires_after(s.timeouts.response_body);
        beast::http::async_read(s.conn->stream, s.conn->buffer, *s.parser, on_strand(std::move(self)));
    }

    bool cancel_requested() const {
        std::lock_guard lock{s_->relay->mutex};
        return s_->relay->cancelled;
    }

    // After a step that is not the last: stops the exchange when it failed or was cancelled.
    template <class Self>
    bool failed(Self& self, error_code ec) {
        if (ec || cancel_requested()) {
            on_error(self, ec);
            return true;
        }
        return false;
    }

    bool should_retry(error_code ec) const {
        // Only a request that is safe to repeat, only once, and only when a reused connection was
        // found closed before any response byte arrived: the classic keep-alive race, where the
        // server closed an idle connection while the request was on its way.
        const auto& s = *s_;
        // An interim response is a response byte: the server has the request.
        const bool before_response =
            s.at == phase::write ||
            (s.at == phase::read_header && s.interim_responses == 0 && s.parser && !s.parser->got_some());
        return s.options.idempotent && !s.retried && s.conn->requests > 0 && before_response &&
               is_closed_connection(ec);
    }

    template <class Self>
    void on_error(Self& self, error_code ec) {
        auto& s = *s_;
        if (cancel_requested()) {
            return finish(self, asio::error::operation_aborted);
        }
        if (ec == beast::error::timeout) {
            ec = asio::error::timed_out;
        }
        if (!should_retry(ec)) {
            return finish(self, ec);
        }
        s.retried = true;
        {
            std::lock_guard lock{s.relay->mutex};
            s.relay->held.reset();  // leaving this connection: an emission in flight is dropped
            ++s.relay->holding;
        }
        discard_response();
        s.pool->release(std::move(s.conn), /*reusable=*/false);
        acquire(self, /*fresh_only=*/true);
    }

    // Frees the parser. A response not delivered (cut short by a deadline, a reset, a limit) may
    // hold part of a token response in its body; a delivered one is wiped by the client once read.
    void discard_response() noexcept {
        auto& s = *s_;
        if (s.parser) {
            wipe(s.parser->get().body());
            s.parser.reset();
        }
    }

    // Hands the connection back and goes to the handler's executor with the outcome: never
    // inline (this runs on a connection's strand, the pool's executor, or inside the initiation).
    template <class Self>
    void finish(Self& self, error_code ec) {
        auto& s = *s_;
        {
            std::lock_guard lock{s.relay->mutex};
            s.relay->finished = true;
            s.relay->held.reset();
            s.relay->queued_in.reset();
        }
        const bool served = !ec && s.parser;
        bool reusable = false;
        if (served) {
            s.result = s.parser->release();
            // As far as the response says; connection_pool::release checks the connection itself.
            reusable = s.result.keep_alive() && !s.result.need_eof();
        } else if (s.conn && s.at == phase::holding) {
            // Cancelled as it was handed over, before any I/O: the connection is as it was.
            reusable = s.conn->established;
        }
        wipe_secrets(s.req);
        if (s.conn) {
            wipe_consumed(s.conn->buffer);
            if (served && reusable) {
                ++s.conn->requests;
                beast::get_lowest_layer(s.conn->stream).expires_never();
                // Read whole, so cleansed as read: the next exchange's reads need not be. A
                // connection given up keeps the option, so that its buffer is cleansed when freed.
                SSL_clear_options(s.conn->stream.native_handle(), SSL_OP_CLEANSE_PLAINTEXT);
            }
            s.pool->release(std::move(s.conn), reusable);
        }
        discard_response();
        s.outcome = ec;
        // To the op's associated executor: the handler's (bound at the initiation).
        asio::post(asio::append(std::move(self), finished_tag{}));
    }

    std::unique_ptr<exchange_state> s_;  // one allocation; moving the op between steps moves a pointer
};

}  // namespace

void start_exchange(std::shared_ptr<connection_pool> pool, request req, send_options options,
                    const apollo_oauth::timeouts& timeouts, std::size_t header_limit,
                    asio::cancellation_slot caller_slot, asio::any_io_executor handler_ex,
                    response_handler handler) {
    auto relay = std::make_shared<cancellation_relay>();
    // Installed before the exchange starts: a completion (on another thread) cannot race the
    // installation, and a cancellation emitted from here on is recorded in the relay, which the
    // first step reads.
    if (caller_slot.is_connected()) {
        caller_slot.emplace<relay_forwarder>(relay);
    }
    auto io_ex = pool->executor();
    auto bound = asio::bind_cancellation_slot(relay->signal.slot(),
                                              asio::bind_executor(handler_ex, std::move(handler)));
    auto state = std::make_unique<exchange_state>(std::move(pool), std::move(req), options, timeouts,
                                                  header_limit, std::move(relay));
    asio::async_compose<decltype(bound), void(error_code, response)>(exchange_op{std::move(state)}, bound,
                                                                     io_ex);
}

}  // namespace apollo_oauth::http
