// Error codes and server diagnostics.
//
// Every failure of the library is an error_code: either an apollo_oauth::errc below, or the
// underlying asio / ssl / beast code (timeouts are asio::error::timed_out, a refused connection is
// asio::error::connection_refused, a certificate problem is an asio::ssl category code, a body
// over the limit is beast::http::error::body_limit). What the server said travels separately in
// `diagnostics`, so an error_code's message never carries server-controlled or secret text.
#pragma once

#include <boost/system/error_code.hpp>

#include <chrono>
#include <iosfwd>
#include <optional>
#include <string>
#include <type_traits>

namespace apollo_oauth {

using boost::system::error_code;

/// Errors reported by apollo_oauth. The first group mirrors RFC 6749 §4.1.2.1 and §5.2 error
/// strings one to one, so a server's `{"error":"invalid_grant"}` becomes errc::invalid_grant.
enum class errc {
    // RFC 6749 §5.2 (token endpoint) and §4.1.2.1 (authorization endpoint)
    invalid_request = 1,
    invalid_client,
    invalid_grant,
    unauthorized_client,
    unsupported_grant_type,
    invalid_scope,
    access_denied,
    unsupported_response_type,
    server_error,
    temporarily_unavailable,
    /// An RFC 6749 error object whose `error` string is none of the above (see diagnostics.error).
    unknown_oauth_error,

    // Callback verification
    invalid_callback,  ///< the redirected URL cannot be parsed
    missing_state,     ///< the callback carries no `state`
    unknown_state,     ///< `state` was never issued here (or was forgotten): possible CSRF
    state_expired,     ///< `state` was issued but its pending authorization timed out
    state_reused,      ///< `state` was already consumed by an earlier callback (replay)
    missing_code,      ///< no `code` and no `error` in the callback

    // Configuration and input
    invalid_configuration,        ///< client_config fails validation (message says which field)
    insecure_redirect_uri,        ///< redirect URI is not https (nor an allowed loopback http)
    redirect_uri_not_registered,  ///< the request names a redirect URI the config does not list
    invalid_url,                  ///< an endpoint is not a usable URL (an API target: invalid_argument)
    invalid_argument,             ///< empty code or refresh token, bad scope token, ...

    // Responses
    unexpected_status,  ///< non-2xx HTTP status without an RFC 6749 error body
    /// body is not JSON, or JSON of the wrong shape; or the HTTP answer cannot be read as one (a
    /// 101 Switching Protocols, or more than 16 interim 1xx responses before the final one)
    malformed_response,
    missing_field,           ///< a required field is absent (diagnostics.error names it)
    wrong_field_type,        ///< a field has the wrong JSON type (diagnostics.error names it)
    unsupported_token_type,  ///< token_type is not Bearer
    /// access_token holds a character outside RFC 6750 b64token (it could not be sent as Bearer)
    invalid_token_response,

    // API and cache (used by the token cache and api client)
    unauthorized,              ///< the resource server answered 401 to a Bearer token
    rate_limited,              ///< 429 (diagnostics.retry_after holds Retry-After if sent)
    reauthorization_required,  ///< the grant is gone (invalid_grant on refresh): user must re-consent
    unknown_account,           ///< no tokens are stored for this account
    store_failure,             ///< token_store could not persist (the pair stays in memory)
    shutting_down,             ///< the object was stopped or destroyed while the op waited
    generation_conflict,       ///< token_store holds another generation: the write was refused
    corrupt_record,            ///< token_store found a record it cannot read
    lease_lost,                ///< the store's refresh lease is no longer this holder's
    coordination_unavailable,  ///< a shared store cannot be reached to coordinate (retryable)

    // Authorization input, added after the rest (values above keep their numbers)
    /// authorization_flow::make_authorization_url was given no authorization_request::session
    /// and not authorization_request::any_browser: the state would be bound to no browser
    session_required,
};

/// The error category of apollo_oauth::errc (name "apollo_oauth").
const boost::system::error_category& category() noexcept;

inline error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), category()};
}

/// Maps an RFC 6749 `error` string to its errc; unknown strings give errc::unknown_oauth_error.
errc errc_from_oauth_error(std::string_view error) noexcept;

/// What the server said, kept apart from the error_code. Never holds a secret: the library fills
/// it only from server responses and its own field names, and the server echoes no secrets.
struct diagnostics {
    unsigned http_status = 0;       ///< 0 when no HTTP response was received
    std::string error;              ///< RFC 6749 `error`, or the offending field name
    std::string error_description;  ///< RFC 6749 `error_description`, truncated to 512 bytes
    std::string error_uri;          ///< RFC 6749 `error_uri`
    std::string scope;  ///< RFC 6750 §3 `scope` of a WWW-Authenticate challenge: what the resource needs
    std::optional<std::chrono::seconds> retry_after;  ///< from a Retry-After header (429/503)

    void clear() { *this = diagnostics{}; }

    /// For a 401 answer: whether its Bearer challenge (RFC 6750 §3.1) puts the failure on the
    /// access token, so that a refreshed token may succeed: `invalid_token` (expired, revoked,
    /// unknown), or no error at all (no challenge, or one without an error: Apollo's guide does not
    /// describe its 401s). Another error (`insufficient_scope` from a server that answers it with
    /// 401 rather than 403, `invalid_request`) is not the token's fault: a refresh would rotate the
    /// grant on every such request for nothing, and each rotation is a window in which a lost
    /// answer locks the customer out. api_client refreshes on a 401 only when this holds.
    bool blames_the_token() const noexcept { return error.empty() || error == "invalid_token"; }
};

/// Prints "http_status=400 error=invalid_grant description=..."; empty parts are left out.
std::ostream& operator<<(std::ostream& os, const diagnostics& d);

}  // namespace apollo_oauth

template <>
struct boost::system::is_error_code_enum<apollo_oauth::errc> : std::true_type {};
