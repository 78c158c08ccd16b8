#include "http/transport.hpp"

#include "http/connection_pool.hpp"
#include "http/exchange.hpp"
#include "http/tls_context.hpp"
#include "sansio/url.hpp"

#include <boost/beast/http/field.hpp>

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
    prepare_request(to, req);
    start_exchange(pool_for(to), std::move(req), options, timeouts_, header_limit_, cancel_slot,
                   std::move(handler_ex), std::move(handler));
}

}  // namespace apollo_oauth::http
