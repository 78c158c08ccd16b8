// Browser sessions and the authorizations each one started. The state of an authorization is kept
// here, server-side, under the session that asked for it: a callback is accepted only from the
// browser session that started it, and only once.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

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

class session_store {
public:
    /// A new random session id (32 bytes, base64url).
    std::string create();
    bool exists(std::string_view session) const;

    /// Remembers that `session` started the authorization carrying `state`.
    void remember_state(std::string_view session, std::string state);
    /// Checks `state` against `session` and consumes it when accepted.
    callback_claim claim_state(std::string_view session, std::string_view state);

    std::size_t size() const;

private:
    struct remembered_state {
        std::string state;
        bool used = false;
    };
    struct session_record {
        // Oldest first, so that the cap drops the oldest. Used states stay (until they are the
        // oldest, or the session goes), so that a replay can be told apart from a foreign state.
        std::deque<remembered_state> states;
        std::chrono::steady_clock::time_point last_seen;
    };
    void drop_idle(std::chrono::steady_clock::time_point now);

    mutable std::mutex mutex_;
    std::unordered_map<std::string, session_record> sessions_;
};

/// The value of cookie `name` in a Cookie header (RFC 6265 §4.2.1), or empty.
std::string cookie_value(std::string_view cookie_header, std::string_view name);

}  // namespace web_app
