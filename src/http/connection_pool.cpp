#include "http/connection_pool.hpp"

#include <boost/asio/post.hpp>

#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <optional>

namespace apollo_oauth::http {

namespace asio = boost::asio;

namespace {

// Bytes the server sent that no response has claimed may sit above the socket, where recv()
// does not see them: decrypted in OpenSSL's record buffer, when the server wrote them in the
// record that ended the response and the response ended exactly where a read of ours stopped
// (a hostile server can align that: Beast reads 512 bytes at a time); or still encrypted, a
// next record that arrived with the last one and waits in the BIO pair Asio feeds OpenSSL from.
// Either way the next request on the connection would read them as its response. Asio's own
// input buffer (17 KiB, below OpenSSL) is not looked at: it is empty after every read, since
// Asio fills the BIO pair (17 KiB too) only when OpenSSL asks for input, which with
// SSL_MODE_AUTO_RETRY it does only once the pair is empty (the tls_context test keeps the mode).
bool tls_holds_unread_bytes(connection& conn) {
    SSL* ssl = conn.stream.native_handle();
    BIO* from_socket = SSL_get_rbio(ssl);
    return SSL_pending(ssl) != 0 || SSL_has_pending(ssl) != 0 ||
           (from_socket != nullptr && BIO_ctrl_pending(from_socket) != 0);
}

}  // namespace

// The idle list is in the order connections went idle, so the stale ones are a prefix of it: the
// most recently used one, taken from the back, keeps being reused while a burst's others age at
// the front. Each acquire and release closes that prefix, usually by one comparison, so they do not
// sit there holding a descriptor (and, once the server closes them, a socket in CLOSE_WAIT). With
// no traffic at all nothing runs: they are closed at the next request, or with the pool.
void connection_pool::close_stale_locked(clock::time_point now,
                                         std::vector<std::shared_ptr<connection>>& dead) {
    const auto fresh = std::find_if(idle_.begin(), idle_.end(), [&](const std::shared_ptr<connection>& conn) {
        return now - conn->idle_since < config_.idle_timeout;
    });
    for (auto it = idle_.begin(); it != fresh; ++it) {
        dead.push_back(std::move(*it));
    }
    open_ -= static_cast<std::size_t>(fresh - idle_.begin());
    idle_.erase(idle_.begin(), fresh);
}

std::shared_ptr<connection> connection_pool::take_locked(bool fresh_only,
                                                         std::vector<std::shared_ptr<connection>>& dead) {
    close_stale_locked(now_(), dead);
    while (!fresh_only && !idle_.empty()) {
        auto candidate = std::move(idle_.back());
        idle_.pop_back();
        if (still_usable(*candidate)) {
            return candidate;
        }
        --open_;
        dead.push_back(std::move(candidate));
    }
    // A fresh connection wanted with every slot taken while some are idle: no release may ever
    // come (nothing is in use), so an idle one, the longest idle, gives its slot up.
    if (fresh_only && open_ >= config_.max_connections_per_host && !idle_.empty()) {
        --open_;
        dead.push_back(std::move(idle_.front()));
        idle_.erase(idle_.begin());
    }
    if (open_ < config_.max_connections_per_host) {
        return make_connection_locked();
    }
    return nullptr;
}

void connection_pool::cancel_wait(const void* key) {
    std::optional<connection_handler> cancelled;
    {
        std::lock_guard lock{mutex_};
        const auto it =
            std::find_if(waiters_.begin(), waiters_.end(), [key](const queued& q) { return q.key == key; });
        if (it == waiters_.end()) {
            return;
        }
        cancelled.emplace(std::move(it->handler));
        waiters_.erase(it);
    }
    // Posted: the caller is a cancellation handler, which must not run the exchange inline.
    asio::post(executor_, [handler = std::move(*cancelled)]() mutable {
        std::move(handler)(asio::error::operation_aborted, nullptr);
    });
}

void connection_pool::release(std::shared_ptr<connection> conn, bool reusable) {
    std::vector<std::shared_ptr<connection>> dead;  // declared first: closed after the unlock
    std::optional<connection_handler> next;
    std::shared_ptr<connection> handed;
    // Checked here, for every way out (the idle list and a waiter, which skips still_usable()):
    // a cancellation closes the socket of the exchange it reaches, possibly after the response
    // was read whole; and bytes left in the buffer, or in the TLS layer below it, would be read
    // as the next request's response.
    auto& socket = boost::beast::get_lowest_layer(conn->stream).socket();
    reusable = reusable && socket.is_open() && conn->buffer.size() == 0 && !tls_holds_unread_bytes(*conn);
    {
        std::lock_guard lock{mutex_};
        const auto now = now_();
        close_stale_locked(now, dead);
        // The first waiter may be the retry of a request whose reused connection failed: it goes
        // on a new connection, so this one is closed and its slot passed on, as a dead one's is.
        reusable = reusable && (waiters_.empty() || !waiters_.front().fresh_only);
        if (reusable) {
            conn->idle_since = now;
            if (waiters_.empty()) {
                idle_.push_back(std::move(conn));
            } else {
                next.emplace(std::move(waiters_.front().handler));
                waiters_.pop_front();
                handed = std::move(conn);
            }
        } else {
            --open_;
            if (!waiters_.empty() && open_ < config_.max_connections_per_host) {
                next.emplace(std::move(waiters_.front().handler));
                waiters_.pop_front();
                handed = make_connection_locked();
            }
        }
    }
    conn.reset();  // a dead connection closes here, outside the lock
    if (next) {
        // On the connection's strand, where the waiter goes on with it; never inline (release
        // runs inside another exchange's step).
        auto strand = handed->strand;
        asio::post(strand, [handler = std::move(*next), handed = std::move(handed)]() mutable {
            std::move(handler)(error_code{}, std::move(handed));
        });
    }
}

std::size_t connection_pool::open_connections() const {
    std::lock_guard lock{mutex_};
    return open_;
}

std::shared_ptr<connection> connection_pool::make_connection_locked() {
    ++open_;
    return std::make_shared<connection>(executor_, *tls_);
}

bool connection_pool::still_usable(connection& conn) const {
    // Only release() fills the idle list, with established connections whose buffer is empty, and
    // close_stale_locked() has just closed those idle past idle_timeout.
    // An idle connection must have nothing to read: readable means the server closed it (EOF, or
    // a TLS close_notify) or sent something unsolicited. Either way reusing it would fail the
    // next request, and a token request must not be re-sent, so drop it now. The TLS layer is
    // asked as well as the socket, since recv() cannot see what it holds. release() has refused
    // such a connection already and nothing reads an idle one, so this only keeps the idle list
    // honest should anything ever fill it another way.
    auto& socket = boost::beast::get_lowest_layer(conn.stream).socket();
    if (!socket.is_open() || tls_holds_unread_bytes(conn)) {
        return false;
    }
    char byte;
    const auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace apollo_oauth::http
