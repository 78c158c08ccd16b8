#include "http/transport.hpp"

#include "http/connection_pool.hpp"
#include "http/exchange.hpp"
#include "http/tls_context.hpp"
#include "http/wipe.hpp"
#include "sansio/url.hpp"

#include <apollo_oauth/error.hpp>

#include <boost/asio/post.hpp>
#include <boost/beast/http/field.hpp>

#include <stdexcept>

namespace apollo_oauth::http {

transport::transport(boost::asio::any_io_executor ex, const client_config& config)
    : executor_(std::move(ex)),
      tls_(std::make_shared<boost::asio::ssl::context>(make_client_tls_context(config.tls))),
      timeouts_(config.timeouts),
      header_limit_(config.limits.header_bytes),
      pool_config_(config.pool) {}

transport::~transport() = default;

std::shared_ptr<connection_pool> transport::pool_for(const origin& to) {
    std::lock_guard lock{pools_mutex_};
    auto& pool = pools_[to];
    if (!pool) {
        pool = std::make_shared<connection_pool>(executor_, tls_, to, pool_config_);
    }
    return pool;
}

void prepare_request(const origin& to, request& req) {
    req.version(11);
    req.set(boost::beast::http::field::host, sansio::host_header(to.host, to.port));
    req.set(boost::beast::http::field::user_agent, "apollo_oauth/0.1");
    req.prepare_payload();
}

void transport::send(const origin& to, request req, send_options options,
                     boost::asio::cancellation_slot cancel_slot, boost::asio::any_io_executor handler_ex,
                     response_handler handler) {
    // Beast throws on a request it cannot frame (prepare_payload: a TRACE with a body). The
    // callers refuse those first; should one get through, thrown here it would escape the
    // initiating call, or io_context::run() when the send is a step of a composed operation, and
    // the handler would never run. It completes with an error instead, nothing sent.
    // (std::logic_error: Beast's std::invalid_argument, and std::length_error for a field it
    // cannot hold. Running out of memory is not a property of the request and is left alone.)
    try {
        prepare_request(to, req);
    } catch (const std::logic_error&) {
        wipe_secrets(req);  // the body and the Authorization value, as a sent request's are
        // Posted, never inline, as the exchange completes.
        boost::asio::post(handler_ex, [handler = std::move(handler)]() mutable {
            std::move(handler)(make_error_code(apollo_oauth::errc::invalid_argument), response{});
        });
        return;
    }
    start_exchange(pool_for(to), std::move(req), options, timeouts_, header_limit_, cancel_slot,
                   std::move(handler_ex), std::move(handler));
}

}  // namespace apollo_oauth::http
