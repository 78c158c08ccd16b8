// Configuration aggregates. Apollo's values are the defaults, so a real integration only sets
// client_id, client_secret and redirect_uris; tests point the endpoints at the emulator.
//
// Every member of the library's configuration aggregates (these, cache_config, redis_options,
// token_set) has an initializer, `{}` at least: a designated initializer naming only some of them,
// as the README writes cache_config, then compiles cleanly under -Wextra -Werror (g++'s
// -Wmissing-field-initializers warns about members that have none).
#pragma once

#include <apollo_oauth/error.hpp>
#include <apollo_oauth/secret.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace apollo_oauth {

/// Where the OAuth server and the API live. Every URL must be https.
struct endpoints {
    /// Apollo's authorize page is a fragment route of its single-page app: the query goes after
    /// `#/oauth/authorize`. A base without a fragment gets an ordinary query (the emulator's).
    std::string authorize_url = "https://app.apollo.io/#/oauth/authorize";
    std::string token_url = "https://app.apollo.io/api/v1/oauth/token";
    std::string profile_url = "https://app.apollo.io/api/v1/users/api_profile";
    /// Base of API requests; a request target "/v1/tasks/bulk_create" is appended to it.
    std::string api_base = "https://api.apollo.io";
};

struct tls_config {
    /// Trust the system store (OpenSSL's default paths). Default true.
    bool use_system_trust_store = true;
    /// Extra PEM file of CA certificates to trust (a private deployment or the emulator's CA).
    std::string ca_file{};
    /// Extra CA certificates as PEM text; useful for an in-process emulator.
    std::string ca_pem{};
    // Peer and host-name verification are always on, and TLS below 1.2 is refused: there is no
    // switch to turn them off.
};

/// Per-phase deadlines. A phase that takes longer fails with asio::error::timed_out.
struct timeouts {
    /// The name lookup. The request ends at this deadline (or at a cancellation) even when
    /// getaddrinfo hangs: Asio runs it on a thread of its own, one lookup at a time per io_context,
    /// and cannot stop it, so a hung lookup runs on there while later lookups wait behind it, each
    /// ending at its own deadline.
    std::chrono::milliseconds resolve{10'000};
    std::chrono::milliseconds connect{10'000};
    std::chrono::milliseconds tls_handshake{10'000};
    std::chrono::milliseconds write{10'000};
    /// From the end of the write to the end of the response header.
    std::chrono::milliseconds response_header{30'000};
    /// From the end of the header to the end of the body (a trickling body counts as a stall).
    std::chrono::milliseconds response_body{30'000};
};

struct limits {
    /// Response header size limit. At most max_header_bytes (60 KiB).
    std::size_t header_bytes = 16 * 1024;
    /// Token and profile responses. Default 64 KiB; at most max_token_body_bytes (192 KiB), so that
    /// the pair a token response brings always fits in a token store's record.
    std::size_t token_body_bytes = 64 * 1024;
    std::size_t api_body_bytes = 16 * 1024 * 1024;  ///< API responses
};

struct pool_config {
    /// Open connections per origin (scheme, host, port). Requests beyond it wait for a free one.
    std::size_t max_connections_per_host = 16;
    /// An idle keep-alive connection older than this is closed rather than reused: at the next
    /// request or response on its origin (every such one, not only the one a request would reuse),
    /// or with the client.
    std::chrono::milliseconds idle_timeout{30'000};
};

struct client_config {
    std::string client_id{};
    /// From the environment or a file, never from argv (see examples/ and the README).
    secret_string client_secret{};
    /// 1 to 4 URIs, as registered with Apollo. The first is the default for requests.
    std::vector<std::string> redirect_uris{};
    /// Allow plain http redirect URIs whose host is loopback (127.0.0.0/8, ::1, localhost), for
    /// local tools. Default false: Apollo requires https.
    bool allow_loopback_http_redirect = false;
    /// Send RFC 7636 PKCE (S256) with authorization requests. Apollo does not document PKCE, so
    /// it is off by default.
    bool use_pkce = false;
    /// How long a pending authorization (its `state`) stays valid. Default 10 minutes; at most
    /// max_state_lifetime (a year).
    std::chrono::seconds state_lifetime{600};
    /// Lifetime assumed when a token response has no `expires_in` (Apollo always sends it).
    std::chrono::seconds assumed_lifetime{3600};
    /// Shortest lifetime a refreshed pair is given: a refresh answered with `expires_in` 0 or 1
    /// (a broken or hostile server) would otherwise make the token cache refresh on every call.
    /// `expires_in` and `expires_at` of such a pair are raised to this. A pair from a code
    /// exchange keeps the server's lifetime (at worst the cache refreshes it once, on first use).
    /// Default 60 s.
    std::chrono::seconds minimum_lifetime{60};

    apollo_oauth::endpoints endpoints{};
    tls_config tls{};
    apollo_oauth::timeouts timeouts{};
    apollo_oauth::limits limits{};
    pool_config pool{};
};

/// Checks a configuration. Errors: errc::invalid_configuration, errc::insecure_redirect_uri,
/// errc::invalid_url. Diagnostics, as every operation of the library reports them: `diag.error`
/// names the offending field ("redirect_uris[1]", "timeouts.connect"), `diag.error_description`
/// says which rule it breaks; never a value (a secret could be one).
error_code validate(const client_config& config, diagnostics& diag);
/// The same, with the field and rule as one message ("field: rule") in `what`. The older form,
/// kept so that callers written against it still build.
error_code validate(const client_config& config, std::string* what = nullptr);

/// Maximum number of redirect URIs an Apollo app can register.
inline constexpr std::size_t max_redirect_uris = 4;
/// The longest client_config::state_lifetime validate() accepts: a year, far beyond any login in
/// progress, and far below what overflows the expiry's system_clock arithmetic (centuries).
inline constexpr std::chrono::seconds max_state_lifetime{366LL * 24 * 3600};
/// The largest limits::token_body_bytes validate() accepts. A stored record can hold the scopes
/// of one response (kept while later answers name none; written out up to twice the body: "a b"
/// becomes ["a","b"]), the refresh token of a second and the access token of a third: at most
/// four bodies, 768 KiB here, which leaves 256 KiB of the file store's 1 MiB record for the
/// account id and the fixed fields. A larger limit would let in a pair that no store write
/// accepts (errc::invalid_argument), the only live refresh token then kept in memory alone.
inline constexpr std::size_t max_token_body_bytes = 192 * 1024;
/// The largest limits::header_bytes validate() accepts. Beast keeps each header field in at most
/// 65,533 bytes and throws std::length_error past that, from inside a read, where no handler can
/// catch it: io_context::run would throw and the request's handler never run. A connection's read
/// buffer holds at most the header limit and 4 KiB more (src/http/response_reading.hpp), so below
/// this bound no field a server sends, in the header or in a chunked body's trailer, reaches it.
inline constexpr std::size_t max_header_bytes = 60 * 1024;

}  // namespace apollo_oauth
