// Browser sessions, the authorizations each one started and the accounts each one connected. Each
// pending authorization (state, PKCE verifier, redirect URI, expiry:
// apollo_oauth::pending_authorization) is kept here, server-side, in the record of the session
// that asked for it: a callback is accepted only from the browser session that started it, and
// only once, and a flood of authorizations can only push out its own sender's. The account a
// callback connects belongs to that session alone: only it lists the account and acts for it.
#pragma once

#include "account.hpp"
#include "client_key.hpp"

#include <apollo_oauth/authorization.hpp>

#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

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

/// What a session may do with a connected account.
enum class account_access {
    owned,       ///< this session connected it
    not_owned,   ///< another session's, or no account at all: the two are not told apart
    no_session,  ///< the request carries no known session cookie
};

/// One session record, whatever id it has by the time it is used: a callback's session is looked
/// up by its cookie once, at the claim, and by this after the slow steps, when another login of the
/// session (another tab's) may have replaced the id the cookie held. Names nothing once the session
/// is dropped.
struct session_ref {
    std::uint64_t serial = 0;     ///< the record's, never reused; 0: no session
    std::uint64_t rotations = 0;  ///< how many times the record's id had been replaced by then
};

/// What claim() found; `pending` and `session` are set when accepted.
struct claimed_authorization {
    callback_claim outcome = callback_claim::no_session;
    apollo_oauth::pending_authorization pending{};
    session_ref session{};
};

/// What adopt() did with the account.
enum class adoption {
    rotated,     ///< the account joined the session, whose id this callback replaced: set the new one
    to_confirm,  ///< another login replaced the id since the claim: the account waits for join()
    no_session,  ///< the session was dropped meanwhile: the account joined nothing
};

struct adopted {
    adoption outcome = adoption::no_session;
    /// rotated: the session's new id. to_confirm: the token join() takes, with the new id.
    std::string id;
};

/// An account join() gave the session, with the scopes its tokens carry.
struct joined_account {
    connected_account account;
    std::vector<std::string> scopes;
};

struct session_limits {
    /// Sessions held at most. A new one beyond it drops the least recently seen session of the
    /// client address that holds the most (of those that hold as much, the one that came first),
    /// so that one address's flood pushes out its own.
    std::size_t max_sessions = 100'000;
    /// A session unseen this long is dropped.
    std::chrono::seconds idle_timeout{std::chrono::hours(12)};
    /// Authorizations held at most, all sessions together (about 600 bytes each with their
    /// session's share). Beyond it the expired ones go first, earliest expiry first, whichever
    /// session holds them; then the client address holding the most loses the oldest
    /// authorization of its least recently seen session.
    std::size_t max_authorizations = 200'000;
};

/// Thread-safe (one mutex); every operation is O(log clients + log authorizations) but for the cap
/// of 32 authorizations a session has. A client address weighs its sessions plus the authorizations
/// they hold: at either cap the heaviest pays, so that one address's flood pushes out its own.
class session_store {
public:
    explicit session_store(session_limits limits = {});

    /// Keeps `pending` for the browser with session cookie `session`, which connects from
    /// `client`. Without a cookie, or with one naming no session (dropped, or made up), a new
    /// session is made for it. Returns the session id, and whether it is new (to be set).
    std::pair<std::string, bool> remember(std::string_view session, const boost::asio::ip::address& client,
                                          apollo_oauth::pending_authorization pending);
    /// After a callback claimed in `session` connected `account` (with `scopes`): the account joins
    /// the session's (its 16 most recently connected are kept), and the session gets a new id,
    /// returned to be set as the cookie; the old id names nothing from then on, so that a session
    /// id planted in the browser before the login (session fixation) no longer names the session
    /// once the browser has logged in. The session keeps its authorizations: another tab's login
    /// still completes (and so would a planter's, its callback URL opened in the browser: see the
    /// README).
    ///
    /// When another login of the session replaced its id after this callback's claim (two tabs
    /// coming back at once), the account does not join yet: this callback came with the id from
    /// before that login, which the planter of a fixed session knows as well as the browser does,
    /// and whichever of the two finished that login holds the new id. It waits in the session
    /// under a random token (the session's 32 latest are kept), for join() with that token from
    /// whoever holds the session's id by then: the browser that sent this callback, if it holds
    /// the new id too; not a planter, who holds only one of the two.
    adopted adopt(const session_ref& session, connected_account account, std::vector<std::string> scopes);
    /// Gives `session` the account adopt() kept under `token` for it: nullopt when `session` is
    /// not the session that holds it (or the session, or the account, is gone). Once.
    std::optional<joined_account> join(std::string_view session, std::string_view token);
    /// The accounts `session` connected, oldest first; empty for an unknown session.
    std::vector<connected_account> accounts(std::string_view session);
    /// Whether `session` may act for `account`.
    account_access access(std::string_view session, std::string_view account);
    /// Checks `state` against `session`. When accepted, the pending authorization is handed out
    /// and counts as used from now on.
    claimed_authorization claim(std::string_view session, std::string_view state);
    /// Puts back a claimed authorization whose callback was not its answer
    /// (apollo_oauth::callback_spends_state is false): the real callback may still come.
    void give_back(const session_ref& session, apollo_oauth::pending_authorization pending);

    std::size_t size() const;
    /// Authorizations held, pending or used (a used one is kept to recognise its replay).
    std::size_t authorizations() const;
    /// Accounts held, all sessions together (one connected in two sessions counts twice).
    std::size_t connected_accounts() const;

private:
    struct session_record;
    // Every authorization held, by expiry, with the session that holds it (a pointer: a rehash
    // invalidates iterators, not nodes; only the expiry orders the index).
    using expiry_index = std::multimap<std::chrono::system_clock::time_point, session_record*>;
    struct remembered_authorization {
        std::string state;
        std::chrono::system_clock::time_point expires_at;  ///< the pending authorization's
        /// Empty once used. Used states stay (until they expire, are the oldest, or the session
        /// goes), so that a replay can be told apart from a foreign state.
        std::optional<apollo_oauth::pending_authorization> pending;
        expiry_index::iterator in_expiry;
    };
    using authorization_list = std::deque<remembered_authorization>;
    // Sessions by last use, least recent first: since every session has the same idle timeout,
    // the whole table's list is also its expiry order, so dropping the idle ones looks only at
    // its front. Each client address has such a list of its own sessions too.
    using recency_list = std::list<const std::string*>;
    struct client_record {
        recency_list sessions;
        std::size_t weight = 0;       ///< its sessions plus the authorizations they hold
        std::uint64_t seniority = 0;  ///< larger for a client that came earlier; unique
    };
    using client_map = std::unordered_map<std::string, client_record>;
    struct session_record {
        authorization_list authorizations;        ///< oldest first
        std::vector<connected_account> accounts;  ///< oldest first
        std::chrono::steady_clock::time_point last_seen;
        recency_list::iterator in_recency;
        client_map::value_type* client;  ///< a pointer: a rehash invalidates iterators, not nodes
        recency_list::iterator in_client;
        std::uint64_t serial = 0;     ///< its key in by_serial_: a session_ref names it
        std::uint64_t rotations = 0;  ///< how many times adopt() replaced its id
        std::deque<std::pair<std::string, joined_account>> to_join;  ///< by token, oldest first
    };
    using session_map = std::unordered_map<std::string, session_record>;

    /// The session, marked as seen now; nullptr when unknown or idle. After drop_idle.
    session_record* find(std::string_view session, std::chrono::steady_clock::time_point now);
    session_record* find(const session_ref& session, std::chrono::steady_clock::time_point now);
    session_record* seen(session_map::iterator it, std::chrono::steady_clock::time_point now);
    remembered_authorization* find_state(session_record& record, std::string_view state);
    session_record& create(const std::string& client, std::chrono::steady_clock::time_point now);
    void make_room_for_authorization(const session_record& keep);
    void forget_oldest_authorization(session_record& record);
    void forget_expired_authorizations(session_record& record, std::chrono::system_clock::time_point now);
    void forget(session_record& record, authorization_list::iterator first,
                authorization_list::iterator last);
    void add_account(session_record& record, connected_account account);
    std::string unused_id() const;
    void rename(session_record& record, std::string id);
    void drop_idle(std::chrono::steady_clock::time_point now);
    bool is_idle(const session_record& record, std::chrono::steady_clock::time_point now) const;
    void drop(session_map::iterator it);
    void set_weight(client_map::value_type& client, std::size_t weight);

    const session_limits limits_;
    mutable std::mutex mutex_;
    session_map sessions_;
    recency_list recency_;
    client_map clients_;
    /// Clients by (weight, seniority): the last one pays. Among clients of one weight, the one that
    /// came first, whose sessions are likely the least recently seen (the rule among one client's
    /// own sessions), rather than the newcomer, which is likely in the middle of an authorization.
    /// Not keyed by the client's address: `<` on unrelated pointers is unspecified, and so would
    /// be who pays.
    std::map<std::pair<std::size_t, std::uint64_t>, client_map::value_type*> clients_by_weight_;
    std::uint64_t arrivals_ = 0;     ///< clients made so far: the next one's seniority counts down from it
    expiry_index by_expiry_;         ///< its size is the count of authorizations held, all sessions together
    std::size_t accounts_held_ = 0;  ///< the accounts of all sessions together
    /// Every session by its serial (a session_ref's way to it, whatever its id is by then).
    std::unordered_map<std::uint64_t, session_record*> by_serial_;
    std::uint64_t serials_ = 0;  ///< serials given so far: the next session's is one more
};

/// The value of cookie `name` in a Cookie header (RFC 6265 §4.2.1), or empty.
std::string cookie_value(std::string_view cookie_header, std::string_view name);

}  // namespace web_app
