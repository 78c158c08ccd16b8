// The browser half of the authorization-code flow: building the authorize URL (with a CSRF
// `state` and optional PKCE) and verifying the redirect that comes back. No I/O happens here.
#pragma once

#include <apollo_oauth/config.hpp>
#include <apollo_oauth/error.hpp>
#include <apollo_oauth/secret.hpp>

#include <boost/system/result.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace apollo_oauth {

/// What to ask the user for. The `{}` initialisers let `{.scopes = {...}}` compile cleanly under
/// -Wextra (-Wmissing-field-initializers).
struct authorization_request {
    /// Scopes to request; empty means "the scopes registered for the app" (no `scope` parameter).
    std::vector<std::string> scopes{};
    /// One of client_config::redirect_uris; empty means the first one.
    std::string redirect_uri{};
    /// The browser session this authorization belongs to: an opaque value the application can
    /// present again when the browser comes back, such as its session cookie's id.
    /// authorization_flow::verify_callback then accepts the callback only together with the same
    /// value (RFC 6749 §10.12). Kept as a SHA-256 digest. authorization_flow requires it unless
    /// `any_browser` is set. start_authorization ignores it: a caller that keeps the
    /// pending_authorization in the browser's server-side session has bound it already.
    std::string session{};
    /// Accept the callback from whichever browser brings it: the authorization is bound to no
    /// session. Any browser given the callback URL then completes the flow, so an attacker who
    /// authorized their own Apollo account can send that URL to a victim, whose session then
    /// acts on the attacker's account (login CSRF). Only for a program with one user and no
    /// browser session to bind to: a command-line tool whose redirect URI is a loopback listener
    /// it opens for this one authorization, a test, a benchmark. Never set together with
    /// `session`. start_authorization ignores it.
    bool any_browser = false;
};

/// A URL to send the user's browser to, and the state it carries.
struct authorization_url {
    std::string url;
    std::string state;  ///< not a secret on its own: it travels in the URL
};

/// A verified callback: everything async_exchange_code needs.
struct authorization_grant {
    secret_string code{};
    /// The redirect URI used for the authorization request (sent again with the code).
    /// Empty means client_config::redirect_uris.front().
    std::string redirect_uri{};
    /// RFC 7636 code verifier, empty when PKCE was not used.
    secret_string code_verifier{};
    /// Scopes that were requested (the token response may grant fewer).
    std::vector<std::string> requested_scopes{};
};

/// One authorization waiting for the browser to come back: what its authorize URL was made with.
///
/// A plain value, so that it can live wherever the application keeps state between the two
/// requests: in memory (authorization_flow holds them), in a server-side session, or in a file
/// between two processes (the apollo-oauth tool does that). It holds the PKCE verifier, so keep it
/// where only this application can read it; the state alone is not a secret (it is in the URL).
struct pending_authorization {
    std::string state{};
    /// RFC 7636 code verifier, empty when PKCE is not used.
    secret_string code_verifier{};
    /// Where the callback must arrive (one of client_config::redirect_uris).
    std::string redirect_uri{};
    /// Scopes requested (empty: the app's registered scopes).
    std::vector<std::string> scopes{};
    /// From this instant on the callback is refused with errc::state_expired.
    std::chrono::system_clock::time_point expires_at{};
};

/// The URL to send the browser to, and the pending authorization to keep until it comes back.
struct started_authorization {
    std::string url;
    pending_authorization pending;
};

/// Makes a fresh state (and a PKCE pair when config.use_pkce), the authorize URL carrying them,
/// and the pending authorization, which expires at now + config.state_lifetime. No I/O, nothing
/// remembered: the caller keeps `pending`. `config` should have passed validate(); the client
/// secret is not used.
/// Errors: errc::redirect_uri_not_registered (request.redirect_uri is not one of
/// config.redirect_uris), errc::invalid_argument (a scope with a space or control character),
/// errc::invalid_url (config.endpoints.authorize_url), errc::invalid_configuration (no redirect
/// URI configured).
boost::system::result<started_authorization> start_authorization(const client_config& config,
                                                                 authorization_request request,
                                                                 std::chrono::system_clock::time_point now);

/// Checks the URL the browser was redirected to against one pending authorization. Pure: it reads
/// no clock and remembers nothing, so making a state single-use is the caller's part: forget
/// `pending` whenever callback_spends_state(result) is true.
/// Errors, in the order checked: errc::invalid_callback (not a URL, a repeated parameter),
/// missing_state, unknown_state (another state; compared in constant time), state_expired
/// (now >= pending.expires_at), redirect_uri_not_registered (the callback is not at
/// pending.redirect_uri, or lacks a parameter of that URI's own query), the server's RFC 6749 §4.1.2.1 error
/// (access_denied, ...) whose text is put in `diag` when given, missing_code. `diag` is cleared first.
boost::system::result<authorization_grant> verify_callback(const pending_authorization& pending,
                                                           std::string_view redirected_url,
                                                           std::chrono::system_clock::time_point now,
                                                           diagnostics* diag = nullptr);

/// True when verify_callback's `result` answers the pending authorization: a grant, the server's
/// error, or a callback without a code. The state is then used up, whatever the outcome. False for
/// a callback that is not its answer (unparseable, no or another state, expired, elsewhere): the
/// pending authorization stays for the real callback.
bool callback_spends_state(const boost::system::result<authorization_grant>& result) noexcept;

/// Builds authorize URLs and verifies callbacks, remembering each pending authorization: an
/// in-memory holder of pending_authorization values over start_authorization and verify_callback.
///
/// Thread safety: all members may be called concurrently (an internal mutex guards the pending
/// set). Pending entries expire after client_config::state_lifetime and are single-use; a consumed
/// state is remembered until its expiry so a replay is reported as errc::state_reused.
class authorization_flow {
public:
    using clock_function = std::function<std::chrono::steady_clock::time_point()>;

    /// Throws boost::system::system_error (errc::invalid_configuration, ...) when `config` does
    /// not validate. `clock` is for tests; the default is steady_clock::now.
    explicit authorization_flow(client_config config, clock_function clock = {});
    ~authorization_flow();
    authorization_flow(const authorization_flow&) = delete;
    authorization_flow& operator=(const authorization_flow&) = delete;

    /// Makes a fresh state (and PKCE pair when configured), remembers it, returns the URL.
    /// Secure by default: `request.session` must name the browser's session (RFC 6749 §10.12),
    /// unless `request.any_browser` says no session exists to bind to.
    /// Errors: errc::session_required (no session and not any_browser), errc::invalid_argument
    /// (both a session and any_browser; a scope with a space or control character),
    /// errc::redirect_uri_not_registered.
    boost::system::result<authorization_url> make_authorization_url(authorization_request request);

    /// Parses the URL the browser was redirected to, checks and consumes its state.
    /// Errors: errc::invalid_callback, missing_state, unknown_state (also: the authorization was
    /// made for a session and this call names none or another; the state is then not consumed, so
    /// that its own browser can still come back), state_expired, state_reused,
    /// missing_code, redirect_uri_not_registered (the callback is not at the redirect URI the
    /// request used, or lacks a parameter of that URI's own query), or the RFC 6749 §4.1.2.1 error the server
    /// sent (access_denied, ...), whose text is put in `diag` when given. A state that matched is consumed
    /// even when the callback reports an error, so the same state cannot be used twice. Diagnostics, as every
    /// operation of the library reports them: cleared first, then the server's error, error_description and
    /// error_uri when the callback carries an error.
    boost::system::result<authorization_grant> verify_callback(std::string_view redirected_url,
                                                               diagnostics& diag);
    /// The same without diagnostics, or (the older form) with them through a pointer.
    boost::system::result<authorization_grant> verify_callback(std::string_view redirected_url,
                                                               diagnostics* diag = nullptr);
    /// The same, for an authorization made with authorization_request::session: `session` must be
    /// the value it was made with (compared as digests, in constant time). One made with
    /// authorization_request::any_browser accepts any session, and the two forms above.
    boost::system::result<authorization_grant> verify_callback(std::string_view redirected_url,
                                                               std::string_view session, diagnostics& diag);
    boost::system::result<authorization_grant> verify_callback(std::string_view redirected_url,
                                                               std::string_view session,
                                                               diagnostics* diag = nullptr);

    /// Number of authorizations still pending (not consumed, not expired).
    std::size_t pending_count() const;

private:
    boost::system::result<authorization_grant> verify_in_session(std::string_view redirected_url,
                                                                 std::optional<std::string_view> session,
                                                                 diagnostics* diag);

    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace apollo_oauth
