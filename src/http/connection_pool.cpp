#include "http/connection_pool.hpp"

#include "http/exchange.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace apollo_oauth::http {

std::shared_ptr<connection> connection_pool::acquire(const std::shared_ptr<exchange>& op, bool fresh_only) {
    std::vector<std::shared_ptr<connection>> dead;  // closed outside the lock
    std::shared_ptr<connection> result;
    {
        std::lock_guard lock{mutex_};
        const auto now = std::chrono::steady_clock::now();
        while (!fresh_only && !idle_.empty()) {
            auto candidate = std::move(idle_.back());
            idle_.pop_back();
            if (still_usable(*candidate, now)) {
                result = std::move(candidate);
                break;
            }
            --open_;
            dead.push_back(std::move(candidate));
        }
        if (!result) {
            if (open_ < config_.max_connections_per_host) {
                result = make_connection_locked();
            } else {
                waiters_.push_back(op);
            }
        }
    }
    return result;
}

void connection_pool::release(std::shared_ptr<connection> conn, bool reusable) {
    std::shared_ptr<exchange> next;
    std::shared_ptr<connection> handed;
    // A cancellation that raced an exchange's last read may have closed the socket after the
    // read completed: the response was whole, so the exchange calls the connection reusable.
    // Checked here, for every way out of release (idle list and a waiter, which skips
    // still_usable()), so that no next user writes to a closed descriptor.
    reusable = reusable && boost::beast::get_lowest_layer(conn->stream).socket().is_open();
    {
        std::lock_guard lock{mutex_};
        if (reusable) {
            conn->idle_since = std::chrono::steady_clock::now();
            if (waiters_.empty()) {
                idle_.push_back(std::move(conn));
            } else {
                next = std::move(waiters_.front());
                waiters_.pop_front();
                handed = std::move(conn);
            }
        } else {
            --open_;
            if (!waiters_.empty() && open_ < config_.max_connections_per_host) {
                next = std::move(waiters_.front());
                waiters_.pop_front();
                handed = make_connection_locked();
            }
        }
    }
    conn.reset();  // a dead connection closes here, outside the lock
    if (next) {
        next->start_on(std::move(handed));
    }
}

bool connection_pool::remove_waiter(const exchange* op) {
    std::lock_guard lock{mutex_};
    for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
        if (it->get() == op) {
            waiters_.erase(it);
            return true;
        }
    }
    return false;
}

std::shared_ptr<connection> connection_pool::make_connection_locked() {
    ++open_;
    return std::make_shared<connection>(executor_, *tls_);
}

bool connection_pool::still_usable(connection& conn, std::chrono::steady_clock::time_point now) const {
    if (!conn.established || conn.buffer.size() != 0 || now - conn.idle_since >= config_.idle_timeout) {
        return false;
    }
    // An idle connection must have nothing to read: readable means the server closed it (EOF, or
    // a TLS close_notify) or sent something unsolicited. Either way reusing it would fail the
    // next request, and a token request must not be re-sent, so drop it now.
    auto& socket = boost::beast::get_lowest_layer(conn.stream).socket();
    if (!socket.is_open()) {
        return false;
    }
    char byte;
    const auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace apollo_oauth::http
