// Token endpoint requests and responses (RFC 6749 §4.1.3, §5, §6), the profile response and
// RFC 6750 / RFC 9110 header parsing. Pure functions: status and body in, results out.
#pragma once

#include <apollo_oauth/error.hpp>
#include <apollo_oauth/secret.hpp>
#include <apollo_oauth/token_set.hpp>
#include <apollo_oauth/user_profile.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace apollo_oauth::sansio {

struct client_credentials {
    std::string_view client_id;
    const secret_string& client_secret;
};

/// grant_type=authorization_code body (form-encoded): grant_type, code, redirect_uri, client_id,
/// client_secret, and code_verifier when not empty.
std::string exchange_code_body(const client_credentials& cred, const secret_string& code,
                               std::string_view redirect_uri, const secret_string& code_verifier);

/// grant_type=refresh_token body: grant_type, refresh_token, redirect_uri, client_id,
/// client_secret, and scope (space-joined) only when `scopes` is not empty.
std::string refresh_body(const client_credentials& cred, const secret_string& refresh_token,
                         std::string_view redirect_uri, const std::vector<std::string>& scopes);

/// What the parser needs to know about the request.
struct token_request_context {
    std::chrono::system_clock::time_point sent_at;          ///< local clock when the request was sent
    std::vector<std::string> requested_scopes;              ///< used when the response has no scope
    const secret_string* previous_refresh_token = nullptr;  ///< kept when a refresh returns none
    std::chrono::seconds assumed_lifetime{3600};            ///< when expires_in is absent
    std::chrono::seconds minimum_lifetime{0};               ///< a shorter expires_in is raised to this
};

/// Parses a token endpoint response of any status.
/// - A JSON object with a string "error" member is an RFC 6749 §5.2 error whatever the status
///   (200 included): returns errc_from_oauth_error(error), diag gets error/description/uri.
/// - Otherwise a non-2xx status is errc::unexpected_status.
/// - A 2xx body must be a JSON object with access_token (non-empty string) and token_type
///   (string, "Bearer" in any case, else errc::unsupported_token_type); an access_token outside
///   RFC 6750 b64token is errc::invalid_token_response; expires_in and created_at
///   are optional non-negative integers; refresh_token and scope optional strings. Absent:
///   errc::missing_field; wrong JSON type or a negative number: errc::wrong_field_type (diag.error
///   names the field); not JSON or not an object: errc::malformed_response. Unknown fields are
///   ignored.
/// diag.http_status is always set. No token value is ever copied into diag.
error_code parse_token_response(unsigned status, std::string_view body, const token_request_context& ctx,
                                token_set& out, diagnostics& diag);

/// Parses the api_profile response: 2xx with a JSON object (user fields at the top level or in a
/// "user" object); 401 is errc::unauthorized; 429 errc::rate_limited; an RFC 6749 error object
/// its code; other statuses errc::unexpected_status; a 2xx non-object errc::malformed_response.
error_code parse_profile_response(unsigned status, std::string_view body, user_profile& out,
                                  diagnostics& diag);

/// Server-supplied text as kept in diagnostics: at most 512 bytes, cut before a UTF-8 sequence
/// rather than through it.
std::string diagnostic_text(std::string_view text);

/// RFC 6750 §3: fills diag.error, error_description, error_uri and scope from the first Bearer
/// challenge of a WWW-Authenticate field value (any number of challenges, any parameter order,
/// token or quoted-string values). Whether there was one: when not, diag is left alone.
bool parse_www_authenticate(std::string_view header, diagnostics& diag);

/// RFC 6750 §2.1 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=". The only
/// access tokens the library accepts from a token response or sends as Bearer credentials.
bool is_b64token(std::string_view token) noexcept;

/// The longest field name, and the longest field value, a request may carry: Beast keeps each in
/// 16 bits and throws std::length_error past this, which would escape an initiation that promises
/// errc::invalid_argument (or, in the api_client's steps on a strand, io_context::run).
inline constexpr std::size_t max_field_bytes = 65'533;

/// RFC 9110 §5.1 field-name: a non-empty token of tchar, at most max_field_bytes. Rejects
/// "Transfer-Encoding " and "Content-Length\t", which lenient intermediaries would read as the
/// reserved names.
bool is_field_name(std::string_view name) noexcept;

/// A field value the library may write: at most max_field_bytes, and no CR, LF or NUL (which
/// would end the field or the message early and let the rest be read as further headers).
bool is_safe_field_value(std::string_view value) noexcept;

/// A name the library sets itself or that frames the message: Host, Authorization,
/// Content-Length, Connection, Transfer-Encoding (any case). Call after is_field_name.
bool is_reserved_field_name(std::string_view name) noexcept;

/// A caller's extra header: a field-name that is not reserved, and a safe value.
bool is_acceptable_extra_header(std::string_view name, std::string_view value) noexcept;

/// "Bearer <token>" (RFC 6750 §2.1) as a secret_string, so the temporary is wiped when freed.
/// errc::invalid_argument when `token` is not a b64token (empty, CR, LF, NUL, space, ...), or
/// when the field would be longer than max_field_bytes (a token response may bring an access
/// token of up to limits::token_body_bytes).
error_code bearer_field_value(const secret_string& token, secret_string& out);

/// Longest delay parse_retry_after returns: larger values are clamped to it, so that callers can
/// convert it to milliseconds or add it to a clock without overflow.
inline constexpr std::chrono::seconds max_retry_after{366LL * 24 * 3600};

/// RFC 9110 §10.2.3 Retry-After: delay-seconds, or an HTTP-date turned into a delay from `now`
/// (a date in the past gives 0), at most max_retry_after. nullopt when unparseable.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

}  // namespace apollo_oauth::sansio
