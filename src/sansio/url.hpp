// URL checks and building: endpoints, redirect URIs, Apollo's authorize URL, callbacks.
#pragma once

#include <apollo_oauth/error.hpp>

#include <boost/system/result.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace apollo_oauth::sansio {

/// An absolute https URL split for the transport.
struct https_target {
    std::string host;    ///< without brackets for IPv6
    std::string port;    ///< "443" when the URL has none
    std::string target;  ///< path and query, at least "/"
    /// Value for the Host header (see sansio::host_header).
    std::string host_header() const;
};

/// The Host header's value (RFC 9110 §7.2) for an https origin: `host` (IPv6 without brackets, as
/// https_target keeps it) in brackets when it is an IPv6 literal, plus ":port" unless it is 443.
/// The one place the library builds a Host value.
std::string host_header(std::string_view host, std::string_view port);

/// Parses an absolute https URL without userinfo and fragment. Errors: errc::invalid_url.
boost::system::result<https_target> parse_https_url(std::string_view url);

/// Checks an authorize endpoint: as parse_https_url, except that a fragment is allowed (Apollo's
/// authorize page is the fragment route "#/oauth/authorize"). Errors: errc::invalid_url.
error_code check_authorize_base(std::string_view url);

/// True for "localhost", 127.0.0.0/8 and ::1.
bool is_loopback_host(std::string_view host) noexcept;

/// A redirect URI must be absolute, without fragment, and https; plain http is allowed only when
/// allow_loopback_http and the host is loopback. Errors: errc::invalid_url,
/// errc::insecure_redirect_uri.
error_code check_redirect_uri(std::string_view uri, bool allow_loopback_http);

/// Builds the authorize URL. When `base` has a fragment (Apollo's "https://app.apollo.io/#/oauth/
/// authorize"), the query is appended inside the fragment, since that is where Apollo's app reads
/// it; otherwise it becomes the URL's query. Parameters, in this order: client_id, redirect_uri,
/// response_type=code, scope (only when `scopes` is not empty; space-joined, so encoded %20),
/// state, then code_challenge and code_challenge_method=S256 when `code_challenge` is set. Every
/// value is percent-encoded per RFC 3986 (only unreserved characters stay as they are).
/// Errors: errc::invalid_url (base not https), errc::invalid_argument (a bad scope token).
boost::system::result<std::string> build_authorize_url(std::string_view base, std::string_view client_id,
                                                       std::string_view redirect_uri,
                                                       const std::vector<std::string>& scopes,
                                                       std::string_view state,
                                                       std::optional<std::string_view> code_challenge);

/// What came back on the redirect URI. Each field is decoded ('+' is a space, as servers send
/// form-encoded queries); a parameter that appears twice is invalid (RFC 6749 §3.1).
struct callback_params {
    callback_params() = default;
    callback_params(callback_params&&) noexcept = default;
    callback_params& operator=(callback_params&&) noexcept = default;
    callback_params(const callback_params&) = delete;
    callback_params& operator=(const callback_params&) = delete;
    /// Zeroes the authorization code's bytes (and what a move left of them in a short string's
    /// inline buffer): a callback refused (unknown or expired state, another redirect URI, an
    /// error) frees it here, and an accepted one moved it into the grant's secret_string.
    ~callback_params();

    std::string base;  ///< scheme://authority/path of the URL, without query or fragment
    std::optional<std::string> code;
    std::optional<std::string> state;
    std::optional<std::string> error;
    std::optional<std::string> error_description;
    std::optional<std::string> error_uri;
    /// The other query parameters, decoded (kept raw when not decodable): the redirect URI's own,
    /// which must have come back (see keeps_redirect_query), and the server's extras.
    std::vector<std::pair<std::string, std::string>> others{};
};

/// Parses a redirected URL (absolute). Errors: errc::invalid_callback (not a URL, malformed
/// escapes, a repeated parameter).
boost::system::result<callback_params> parse_callback(std::string_view url);

/// True when `callback_base` (callback_params::base) is the same location as `redirect_uri`
/// (scheme and host compared case-insensitively, default port made explicit, path exact).
bool same_redirect_location(std::string_view callback_base, std::string_view redirect_uri);

/// True when every query parameter of `redirect_uri` came back in the callback with its value
/// (RFC 6749 §3.1.2: the server keeps the redirect URI's query and adds its own). An application
/// may register one location with several queries (?flow=admin, ?flow=user) to tell its flows
/// apart; a callback must not cross from one to the other.
bool keeps_redirect_query(const callback_params& callback, std::string_view redirect_uri);

}  // namespace apollo_oauth::sansio
