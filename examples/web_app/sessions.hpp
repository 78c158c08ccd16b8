// Browser sessions and the authorizations each one started. The state of an authorization is kept
// here, server-side, under the session that asked for it: a callback is accepted only from the
// browser session that started it, and only once.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace web_app {

/// The session cookie: __Host- makes browsers insist on Secure, Path=/ and no Domain.
inline constexpr std::string_view session_cookie = "__Host-session";

/// What a session may do with a callback's state.
enum class callback_claim {
    accepted,    ///< started by this session, first use: consumed now
    replayed,    ///< this session used it already
    foreign,     ///< not started by this session (another browser's, or made up)
    no_session,  ///< the request carries no known session cookie
};

struct session_limits {
    /// Sessions held at most; a new one beyond it drops the least recently seen.
    std::size_t max_sessions = 100'000;
    /// A session unseen this long is dropped.
    std::chrono::seconds idle_timeout{std::chrono::hours(12)};
};

/// Thread-safe (one mutex); every operation is O(1) but for the cap of 32 states a session has.
class session_store {
public:
    explicit session_store(session_limits limits = {});

    /// Remembers that the browser with session cookie `session` started the authorization
    /// carrying `state`. Without a cookie, or with one naming no session (dropped, or made up), a
    /// new session is made for it. Returns the session id, and whether it is new (to be set).
    std::pair<std::string, bool> remember_state(std::string_view session, std::string state);
    /// Checks `state` against `session` and consumes it when accepted.
    callback_claim claim_state(std::string_view session, std::string_view state);

    std::size_t size() const;

private:
    struct remembered_state {
        std::string state;
        bool used = false;
    };
    // Sessions by last use, least recent first: since every session has the same idle timeout,
    // this is also their expiry order, so dropping the idle ones looks only at the front.
    using recency_list = std::list<const std::string*>;
    struct session_record {
        // Oldest first, so that the cap drops the oldest. Used states stay (until they are the
        // oldest, or the session goes), so that a replay can be told apart from a foreign state.
        std::deque<remembered_state> states;
        std::chrono::steady_clock::time_point last_seen;
        recency_list::iterator in_recency;
    };
    using session_map = std::unordered_map<std::string, session_record>;

    /// The session, marked as seen now; nullptr when unknown. After drop_idle.
    session_record* find(std::string_view session, std::chrono::steady_clock::time_point now);
    session_record& create(std::chrono::steady_clock::time_point now);
    void drop_idle(std::chrono::steady_clock::time_point now);
    void drop(session_map::iterator it);

    const session_limits limits_;
    mutable std::mutex mutex_;
    session_map sessions_;
    recency_list recency_;
};

/// The value of cookie `name` in a Cookie header (RFC 6265 §4.2.1), or empty.
std::string cookie_value(std::string_view cookie_header, std::string_view name);

}  // namespace web_app
