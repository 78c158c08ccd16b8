#include "http/transport.hpp"

#include "http/connection_pool.hpp"
#include "http/exchange.hpp"
#include "http/tls_context.hpp"

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

exchange_canceller transport::prepared::canceller() const {
    return exchange_canceller{op_};
}

void transport::prepared::start(response_handler handler) && {
    auto op = std::move(op_);
    op->start(std::move(handler));
}

transport::prepared transport::prepare(const origin& to, request req, send_options options) {
    req.version(11);
    if (req.find(boost::beast::http::field::host) == req.end()) {
        req.set(boost::beast::http::field::host, to.port == "443" ? to.host : to.host + ":" + to.port);
    }
    req.set(boost::beast::http::field::user_agent, "apollo_oauth/0.1");
    req.prepare_payload();
    prepared result;
    result.op_ = std::make_shared<exchange>(pool_for(to), std::move(req), options, timeouts_, header_limit_);
    return result;
}

std::size_t transport::open_connections() const {
    std::lock_guard lock{pools_mutex_};
    std::size_t total = 0;
    for (const auto& [where, pool] : pools_) {
        total += pool->open_connections();
    }
    return total;
}

}  // namespace apollo_oauth::http
