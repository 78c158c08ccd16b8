#include "http/exchange.hpp"

#include "http/response_reading.hpp"
#include "http/tls_context.hpp"
#include "http/wipe.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

namespace apollo_oauth::http {

namespace asio = boost::asio;
namespace beast = boost::beast;

namespace {

// Failures that mean "the server closed this connection", as seen on a stale keep-alive
// connection at the first write or read.
bool is_closed_connection(error_code ec) {
    return ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
           ec == asio::ssl::error::stream_truncated || ec == beast::http::error::end_of_stream;
}

}  // namespace

exchange::exchange(std::shared_ptr<connection_pool> pool, request req, send_options options,
                   const apollo_oauth::timeouts& timeouts, std::size_t header_limit)
    : pool_(std::move(pool)),
      request_(std::move(req)),
      options_(options),
      timeouts_(timeouts),
      header_limit_(header_limit) {}

void exchange::start(asio::any_io_executor handler_ex, response_handler handler) {
    handler_ex_ = std::move(handler_ex);
    handler_.emplace(std::move(handler));
    acquire_connection(/*fresh_only=*/false);
}

void exchange::acquire_connection(bool fresh_only) {
    if (auto conn = pool_->acquire(shared_from_this(), fresh_only)) {
        return start_on(std::move(conn));
    }
    // Queued. A cancel() that ran just before this exchange entered the queue found nothing to
    // remove; it is honoured here.
    bool cancelled;
    {
        std::lock_guard lock{cancel_mutex_};
        cancelled = cancel_requested_;
    }
    if (cancelled && pool_->remove_waiter(this)) {
        finish(asio::error::operation_aborted);  // posts the handler
    }
}

void exchange::start_on(std::shared_ptr<connection> conn) {
    {
        std::lock_guard lock{cancel_mutex_};
        conn_ = conn;
    }
    // Always through a post: start_on runs on the initiating thread or inside another
    // exchange's completion, and neither may run this exchange's I/O inline.
    asio::post(conn->strand, [self = shared_from_this()] { self->run_on_strand(); });
}

void exchange::cancel() {
    std::shared_ptr<connection> conn;
    {
        std::lock_guard lock{cancel_mutex_};
        if (finished_ || cancel_requested_) {
            return;
        }
        cancel_requested_ = true;
        conn = conn_;
    }
    if (conn) {
        // Closing the socket on its strand aborts whichever phase is pending.
        asio::post(conn->strand, [self = shared_from_this(), conn] {
            if (self->has_finished()) {
                return;  // the connection may already serve another exchange
            }
            if (self->resolver_) {
                self->resolver_->cancel();
            }
            error_code ignored;
            beast::get_lowest_layer(conn->stream).socket().close(ignored);
        });
    } else if (pool_->remove_waiter(this)) {
        finish(asio::error::operation_aborted);  // posts the handler
    }
    // Otherwise the pool is handing this exchange a connection right now: run_on_strand sees
    // cancel_requested_ and stops there.
}

bool exchange::has_finished() {
    std::lock_guard lock{cancel_mutex_};
    return finished_;
}

bool exchange::abort_if_cancelled() {
    bool cancelled;
    {
        std::lock_guard lock{cancel_mutex_};
        cancelled = cancel_requested_;
    }
    if (cancelled) {
        finish(asio::error::operation_aborted);
    }
    return cancelled;
}

void exchange::run_on_strand() {
    if (abort_if_cancelled()) {
        return;
    }
    if (conn_->established) {
        write();
    } else {
        resolve();
    }
}

void exchange::resolve() {
    resolver_.emplace(conn_->strand);
    resolve_timer_.emplace(conn_->strand);
    // The resolver has no deadline of its own.
    resolve_timer_->expires_after(timeouts_.resolve);
    resolve_timer_->async_wait([self = shared_from_this()](error_code ec) {
        // The exchange may have finished (and dropped its resolver) while this handler was queued.
        if (!ec && self->resolver_) {
            self->resolve_timed_out_ = true;
            self->resolver_->cancel();
        }
    });
    const auto& where = pool_->where();
    resolver_->async_resolve(
        where.host, where.port,
        [self = shared_from_this()](error_code ec, asio::ip::tcp::resolver::results_type results) {
            self->resolve_timer_->cancel();
            if (self->resolve_timed_out_) {
                ec = asio::error::timed_out;
            }
            if (ec) {
                return self->on_io(phase::resolve, ec);
            }
            self->connect(results);
        });
}

void exchange::connect(const asio::ip::tcp::resolver::results_type& endpoints) {
    // cancel() closes the socket, but before async_connect there is none to close.
    if (abort_if_cancelled()) {
        return;
    }
    auto& tcp = beast::get_lowest_layer(conn_->stream);
    tcp.expires_after(timeouts_.connect);
    tcp.async_connect(endpoints, [self = shared_from_this()](error_code ec, const asio::ip::tcp::endpoint&) {
        if (ec) {
            return self->on_io(phase::connect, ec);
        }
        self->handshake();
    });
}

void exchange::handshake() {
    if (auto ec = prepare_tls_peer(conn_->stream.native_handle(), pool_->where().host)) {
        return on_io(phase::handshake, ec);
    }
    beast::get_lowest_layer(conn_->stream).expires_after(timeouts_.tls_handshake);
    conn_->stream.async_handshake(asio::ssl::stream_base::client, [self = shared_from_this()](error_code ec) {
        if (ec) {
            return self->on_io(phase::handshake, ec);
        }
        self->conn_->established = true;
        self->write();
    });
}

void exchange::write() {
    beast::get_lowest_layer(conn_->stream).expires_after(timeouts_.write);
    beast::http::async_write(conn_->stream, request_,
                             [self = shared_from_this()](error_code ec, std::size_t) {
                                 if (ec) {
                                     return self->on_io(phase::write, ec);
                                 }
                                 self->read_header();
                             });
}

void exchange::read_header() {
    parser_.emplace();
    apply_response_limits(*parser_, header_limit_, options_.body_limit,
                          request_.method() == beast::http::verb::head);
    beast::get_lowest_layer(conn_->stream).expires_after(timeouts_.response_header);
    beast::http::async_read_header(conn_->stream, conn_->buffer, *parser_,
                                   [self = shared_from_this()](error_code ec, std::size_t) {
                                       if (ec) {
                                           return self->on_io(phase::read_header, ec);
                                       }
                                       self->read_body();
                                   });
}

void exchange::read_body() {
    if (parser_->is_done()) {
        return finish({});
    }
    beast::get_lowest_layer(conn_->stream).expires_after(timeouts_.response_body);
    beast::http::async_read(conn_->stream, conn_->buffer, *parser_,
                            [self = shared_from_this()](error_code ec, std::size_t) {
                                if (ec) {
                                    return self->on_io(phase::read_body, ec);
                                }
                                self->finish({});
                            });
}

bool exchange::should_retry(phase where, error_code ec) const {
    // Only a request that is safe to repeat, only once, and only when a reused connection was
    // found closed before any response byte arrived: the classic keep-alive race, where the
    // server closed an idle connection while the request was on its way.
    const bool before_response =
        where == phase::write || (where == phase::read_header && parser_ && !parser_->got_some());
    return options_.idempotent && !retried_ && conn_->requests > 0 && before_response &&
           is_closed_connection(ec);
}

void exchange::on_io(phase where, error_code ec) {
    if (abort_if_cancelled()) {
        return;
    }
    if (ec == beast::error::timeout) {
        ec = asio::error::timed_out;
    }
    if (should_retry(where, ec)) {
        retried_ = true;
        std::shared_ptr<connection> stale;
        {
            std::lock_guard lock{cancel_mutex_};
            stale = std::move(conn_);
        }
        parser_.reset();
        pool_->release(std::move(stale), /*reusable=*/false);
        return acquire_connection(/*fresh_only=*/true);
    }
    finish(ec);
}

void exchange::finish(error_code ec) {
    {
        std::lock_guard lock{cancel_mutex_};
        if (finished_) {
            return;
        }
        finished_ = true;
    }
    response result;
    bool reusable = false;
    if (!ec && parser_) {
        result = parser_->release();
        // Reusable as far as the response says; the pool still refuses a connection whose socket
        // a racing cancellation closed (connection_pool::release).
        reusable = result.keep_alive() && !result.need_eof();
    }
    wipe_secrets(request_);
    if (conn_) {
        wipe_consumed(conn_->buffer);
        if (reusable) {
            ++conn_->requests;
            beast::get_lowest_layer(conn_->stream).expires_never();
        }
        pool_->release(std::move(conn_), reusable);
    }
    parser_.reset();
    resolver_.reset();
    resolve_timer_.reset();
    // The caller's executor, never inline: finish runs on the connection's strand, inside
    // cancel()'s post or inside start().
    asio::post(std::move(handler_ex_),
               [handler = std::move(*handler_), ec, result = std::move(result)]() mutable {
                   std::move(handler)(ec, std::move(result));
               });
    handler_.reset();
}

void exchange_cancellation::operator()(asio::cancellation_type type) const {
    if ((type & asio::cancellation_type::terminal) == asio::cancellation_type::none) {
        return;
    }
    if (auto exchange = op.lock()) {
        exchange->cancel();
    }
}

}  // namespace apollo_oauth::http
