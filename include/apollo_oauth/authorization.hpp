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
#include <string>
#include <vector>

namespace apollo_oauth {

/// What to ask the user for. The `{}` initialisers let `{.scopes = {...}}` compile cleanly under
/// -Wextra (-Wmissing-field-initializers).
struct authorization_request {
    /// Scopes to request; empty means "the scopes registered for the app" (no `scope` parameter).
    std::vector<std::string> scopes{};
    /// One of client_config::redirect_uris; empty means the first one.
    std::string redirect_uri{};
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

/// Builds authorize URLs and verifies callbacks, remembering each pending authorization.
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
    /// Errors: errc::redirect_uri_not_registered, errc::invalid_argument (a scope with a space or
    /// control character).
    boost::system::result<authorization_url> make_authorization_url(authorization_request request = {});

    /// Parses the URL the browser was redirected to, checks and consumes its state.
    /// Errors: errc::invalid_callback, missing_state, unknown_state, state_expired, state_reused,
    /// missing_code, redirect_uri_not_registered (the callback is not at the redirect URI the
    /// request used), or the RFC 6749 §4.1.2.1 error the server sent (access_denied, ...), whose
    /// text is put in `diag` when given. A state that matched is consumed even when the callback
    /// reports an error, so the same state cannot be used twice.
    /// Diagnostics, as every operation of the library reports them: cleared first, then the
    /// server's error, error_description and error_uri when the callback carries an error.
    boost::system::result<authorization_grant> verify_callback(std::string_view redirected_url,
                                                               diagnostics& diag);
    /// The same without diagnostics, or (the older form) with them through a pointer.
    boost::system::result<authorization_grant> verify_callback(std::string_view redirected_url,
                                                               diagnostics* diag = nullptr);

    /// Number of authorizations still pending (not consumed, not expired).
    std::size_t pending_count() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace apollo_oauth
