// One origin's keep-alive connections. State is guarded by a mutex: the critical sections are a
// few pointer moves, cheaper than a strand hop, and the pool is touched twice per request.
#pragma once

#include "http/transport.hpp"

#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

namespace apollo_oauth::http {

/// A TLS connection. Its stream lives on its own strand (beast::tcp_stream's timer requires that
/// on a multi-threaded io_context); exactly one exchange uses it at a time, handed over through
/// the pool's mutex.
struct connection {
    using stream_type = boost::asio::ssl::stream<boost::beast::tcp_stream>;

    connection(const boost::asio::any_io_executor& ex, boost::asio::ssl::context& tls)
        : strand(boost::asio::make_strand(ex)), stream(strand, tls) {}

    boost::asio::strand<boost::asio::any_io_executor> strand;
    stream_type stream;
    boost::beast::flat_buffer buffer;
    bool established = false;  ///< connected and handshaken
    unsigned requests = 0;     ///< requests completed on it (0: fresh)
    std::chrono::steady_clock::time_point idle_since;
};

class connection_pool : public std::enable_shared_from_this<connection_pool> {
public:
    connection_pool(boost::asio::any_io_executor ex, std::shared_ptr<boost::asio::ssl::context> tls,
                    origin where, pool_config config)
        : executor_(std::move(ex)), tls_(std::move(tls)), origin_(std::move(where)), config_(config) {}

    const origin& where() const noexcept { return origin_; }
    const boost::asio::any_io_executor& executor() const noexcept { return executor_; }

    /// A connection for `op`: an idle live one (unless fresh_only), a new one under the cap, or
    /// none, in which case `op` is queued and later started through exchange::start_on.
    std::shared_ptr<connection> acquire(const std::shared_ptr<exchange>& op, bool fresh_only);

    /// Returns a connection after use. A reusable one goes to the first waiter or the idle list;
    /// otherwise it is closed and its slot given to the first waiter as a new connection.
    void release(std::shared_ptr<connection> conn, bool reusable);

    /// Removes a queued exchange; false when it is not queued (already handed a connection).
    bool remove_waiter(const exchange* op);

private:
    std::shared_ptr<connection> make_connection_locked();
    bool still_usable(connection& conn, std::chrono::steady_clock::time_point now) const;

    boost::asio::any_io_executor executor_;
    std::shared_ptr<boost::asio::ssl::context> tls_;  // shared: the pool may outlive the transport
    origin origin_;
    pool_config config_;

    std::mutex mutex_;
    std::vector<std::shared_ptr<connection>> idle_;  // most recently used at the back
    std::deque<std::shared_ptr<exchange>> waiters_;
    std::size_t open_ = 0;
};

}  // namespace apollo_oauth::http
