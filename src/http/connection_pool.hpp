// One origin's keep-alive connections. State is guarded by a mutex: the critical sections are a
// few pointer moves, cheaper than a strand hop, and the pool is touched twice per request.
#pragma once

#include "http/transport.hpp"
#include "http/wipe.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <chrono>
#include <list>
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
    read_buffer buffer;        ///< zeroed when freed: it may still hold an unread response
    bool established = false;  ///< connected and handshaken
    unsigned requests = 0;     ///< requests completed on it (0: fresh)
    std::chrono::steady_clock::time_point idle_since;  ///< when it last went back to the pool
};

/// How a queued exchange is handed its connection: (error_code{}, connection) on the connection's
/// strand, or (operation_aborted, nullptr) on the pool's executor when its wait was cancelled.
using connection_handler = boost::asio::any_completion_handler<void(error_code, std::shared_ptr<connection>)>;

class connection_pool {
public:
    using clock = std::chrono::steady_clock;

    /// `now` is the clock idle times are measured with (tests drive their own).
    connection_pool(boost::asio::any_io_executor ex, std::shared_ptr<boost::asio::ssl::context> tls,
                    origin where, pool_config config, clock::time_point (*now)() = &clock::now)
        : executor_(std::move(ex)),
          tls_(std::move(tls)),
          origin_(std::move(where)),
          config_(config),
          now_(now) {}

    const origin& where() const noexcept { return origin_; }
    const boost::asio::any_io_executor& executor() const noexcept { return executor_; }

    /// Under one lock, a connection (an idle live one unless `fresh_only`, or a new one under
    /// the cap), or none, in which case `handler` is moved into the queue under `key` and later
    /// completed as connection_handler says. `handler` is left untouched when a connection is
    /// returned: the common path erases nothing.
    template <class Handler>
    std::shared_ptr<connection> acquire_or_queue(bool fresh_only, const void* key, Handler& handler) {
        std::vector<std::shared_ptr<connection>> dead;  // declared first: closed after the unlock
        std::lock_guard lock{mutex_};
        if (auto conn = take_locked(fresh_only, dead)) {
            return conn;
        }
        waiters_.push_back(queued{key, fresh_only, connection_handler(std::move(handler))});
        return nullptr;
    }

    /// Takes the waiter `key` out of the queue and completes it with operation_aborted (posted
    /// to the pool's executor). Thread-safe. Does nothing when it is not queued (it was handed
    /// a connection, or never entered).
    void cancel_wait(const void* key);

    /// Returns a connection after use. A reusable one goes to the first waiter or the idle list;
    /// otherwise (or when the first waiter wants a fresh connection) it is closed and its slot
    /// given to the first waiter as a new connection. A waiter is completed through a post to the
    /// connection's strand, never inline.
    void release(std::shared_ptr<connection> conn, bool reusable);

    /// Connections open or being opened, in use or idle. Thread-safe.
    std::size_t open_connections() const;

private:
    struct queued {
        const void* key;
        bool fresh_only;  ///< a retry after a reused connection failed: never handed a used one
        connection_handler handler;
    };

    std::shared_ptr<connection> take_locked(bool fresh_only, std::vector<std::shared_ptr<connection>>& dead);
    std::shared_ptr<connection> make_connection_locked();
    void close_stale_locked(clock::time_point now, std::vector<std::shared_ptr<connection>>& dead);
    bool still_usable(connection& conn) const;

    boost::asio::any_io_executor executor_;
    std::shared_ptr<boost::asio::ssl::context> tls_;  // shared: the pool may outlive the transport
    origin origin_;
    pool_config config_;
    clock::time_point (*now_)();

    mutable std::mutex mutex_;
    std::vector<std::shared_ptr<connection>> idle_;  // idle the longest at the front
    // A list, not a deque: erasing a cancelled waiter from the middle of a deque move-assigns
    // its neighbours, and Boost 1.81's any_completion_handler move assignment is broken.
    std::list<queued> waiters_;
    std::size_t open_ = 0;
};

}  // namespace apollo_oauth::http
