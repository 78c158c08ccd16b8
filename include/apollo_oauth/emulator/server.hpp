// An Apollo-compatible OAuth 2.0 + API server for tests, examples and benchmarks.
//
// It runs in-process on 127.0.0.1 (server_config::listen_address) with an ephemeral port, on its own threads,
// over TLS with a certificate chain it generates at start-up (a throw-away CA and a leaf for 127.0.0.1 and
// localhost). Clients trust it through ca_pem() / ca_file(); verification stays on.
//
// Apollo semantics it reproduces:
// - GET /oauth/authorize (a plain path: a fragment route never reaches a server) consents for the
//   configured user and answers 302 to redirect_uri?code=...&state=...; an unknown client or an
//   unregistered redirect URI gets a 400 page (never a redirect, RFC 6749 §4.1.2.1); a bad
//   response_type or a scope the app does not have redirects with error=...; deny_consent()
//   redirects with error=access_denied. PKCE S256 is honoured when a code_challenge is sent.
// - POST /api/v1/oauth/token, form body with client_id and client_secret: codes single-use and
//   short-lived, redirect_uri must match the authorization's; refresh rotates: the old access and
//   refresh tokens are revoked the moment the new pair is issued; a refresh scope must be a subset
//   of the grant's current scopes, and the new pair carries exactly the requested scopes (the old
//   ones when none are requested, as Doorkeeper does). Errors are RFC 6749 §5.2 JSON: 400, or 401
//   for invalid_client. Responses carry Apollo's fields, created_at included.
// - GET /api/v1/users/api_profile and POST /v1/tasks/bulk_create demand a valid Bearer token and
//   answer 401 with an RFC 6750 WWW-Authenticate header otherwise.
// - Every response is keep-alive unless the client or a fault closes the connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace apollo_oauth::emulator {

struct registered_client {
    std::string name = "Emulator App";  ///< shown on the consent page
    std::string client_id = "emulator-client";
    std::string client_secret = "emulator-secret-0123456789";
    std::vector<std::string> redirect_uris = {"https://app.example.com/oauth/callback"};
    std::vector<std::string> scopes = {"read_user_profile", "app_scopes", "contacts_search", "person_read",
                                       "opportunity_write"};
};

struct user {
    std::string id = "5f0c1e2d3b4a5968778899aa";
    std::string email = "ada@example.com";
    std::string name = "Ada Lovelace";
    std::string team_id = "team-0001";
};

struct server_config {
    std::vector<registered_client> clients = {registered_client{}};
    user consenting_user{};
    /// GET /oauth/authorize answers a consent page (the app's name, the scopes, Approve and Deny
    /// posting back with an anti-forgery value bound to that request and to the browser's cookie)
    /// instead of consenting at once. Default false: tests consent without a page. consent()
    /// approves the page itself either way.
    bool consent_page = false;
    std::chrono::seconds expires_in{2'592'000};  ///< Apollo: 30 days
    std::chrono::seconds code_lifetime{600};     ///< authorization codes expire after this
    unsigned threads = 1;                        ///< threads serving connections
    /// The IPv4 or IPv6 literal the server listens on; its certificate names it (beside 127.0.0.1
    /// and localhost) and base_url() uses it. Default 127.0.0.1. Tests that put clients in other
    /// network namespaces use an address those namespaces can route to.
    std::string listen_address = "127.0.0.1";
    /// Keep what is no longer valid: rotated pairs, used codes, every secret ever issued. Default
    /// true: a rotated token is answered as revoked, a replayed code also revokes its grant, and
    /// issued_secrets() lists everything issued since start-up. false keeps memory flat under a
    /// long soak: a rotated pair and a used code are forgotten, so a client presenting one gets the
    /// same invalid_grant / invalid_token as for an unknown value, a replayed code no longer
    /// revokes its grant, newest_refresh_token_of() knows only current refresh tokens, and
    /// issued_secrets() lists only the client secrets and the codes and tokens still held.
    bool retain_revoked = true;
    /// What rotating providers do on suspected theft (RFC 6819 5.2.2.3; RFC 9700, the
    /// OAuth 2.0 Security BCP, 4.14): a refresh token presented again after it was rotated revokes the whole
    /// grant (every token of that authorization), and the request gets invalid_grant. Apollo's guide does not
    /// say what it does, so the emulator assumes the harshest: default true, and a duplicate refresh anywhere
    /// in a test locks that customer out (reauthorization_required) rather than only being refused. Needs
    /// retain_revoked (a forgotten token is only unknown). false: the reuse alone is refused.
    bool revoke_grant_on_refresh_token_reuse = true;
};

/// What happened to one grant (one authorization), for tests that count rotations.
struct grant_stats {
    std::uint64_t refreshes = 0;    ///< successful refreshes (rotations) of this grant
    std::uint64_t reuses = 0;       ///< refreshes presenting an already-rotated refresh token
    std::uint64_t revocations = 0;  ///< times the grant was revoked (by reuse, or by a test)
    bool revoked = false;
};

/// Which requests a fault applies to.
enum class route { any, authorize, token, profile, api };

/// A misbehaviour, applied to the next `count` requests on `where` (then it is used up).
/// Faults that disturb delivery (latency, reset, stall_*, chunked_body, interim_response,
/// trailing_response_in_*) let the endpoint run first, like a response lost on the way: a refresh
/// hit by one still rotates. Faults that replace the answer (http_status, rate_limit,
/// malformed_body, oversized_body, truncated_json, wrong_types_json, endless_chunked,
/// huge_content_length, oversized_headers, oversized_chunk_extension, oversized_trailer,
/// redirect) mean the endpoint never ran. Requests are counted either way.
///
/// Connection faults (reset_before_request and the TLS ones) act before any request is read, so
/// they apply to the next `count` connections accepted, whatever they will ask for: `where` is
/// ignored, nothing is counted but the connection, and no endpoint runs. A client with a pooled
/// keep-alive connection meets them only on its next new connection.
struct fault {
    enum class kind {
        latency,           ///< answer normally after `delay`
        http_status,       ///< `status` (default 503), a small HTML body, Retry-After if set
        rate_limit,        ///< 429, with Retry-After: retry_after when set
        reset,             ///< close the TCP connection abruptly (RST) after reading the request
        malformed_body,    ///< 200 with a body that is not JSON
        oversized_body,    ///< 200 with a JSON body of `size` bytes
        stall_headers,     ///< read the request, then send nothing until the client gives up
        stall_body,        ///< send headers and half the body, then nothing
        stall_mid_header,  ///< send the first half of the response header, then nothing
        /// the endpoint's own answer with Transfer-Encoding: chunked, in 16-byte chunks: a reader
        /// sees its body grow piece by piece
        chunked_body,
        truncated_json,  ///< 200, application/json, a token-shaped object cut off mid-way
        /// 200 with Apollo's token fields, but access_token is a number and expires_in a string
        wrong_types_json,
        /// 200 with Transfer-Encoding: chunked and 1 KiB chunks forever, one every `delay`
        /// (0: as fast as the client reads), until the client closes
        endless_chunked,
        /// 200 claiming Content-Length: 8 GiB, then one body byte every `delay` (0: one byte, then
        /// nothing), until the client closes
        huge_content_length,
        oversized_headers,  ///< 200 whose header fields add up to `size` bytes, body "{}"
        /// 200, chunked, body "{}" in one chunk whose size line carries a chunk extension of
        /// `size` bytes (a parser must hold the line whole), then the connection is closed
        oversized_chunk_extension,
        /// 200, chunked, body "{}", then one trailer field of `size` bytes after the last chunk (a
        /// parser must hold the trailer whole), then the connection is closed
        oversized_trailer,
        /// `status` when it is a 3xx (else 307) with Location: `location`; the target receives
        /// nothing from the emulator, only what a client that follows the redirect sends it
        redirect,
        /// the endpoint's own answer, preceded by `interim_count` interim responses of `status`
        /// when it is a 1xx (else 103 Early Hints), sent at once, then a wait of `delay`: what a
        /// CDN's Early Hints or a server's 100 Continue look like (RFC 9110 section 15.2); a 101
        /// Switching Protocols is followed by the answer all the same, which no client may read
        interim_response,
        /// the endpoint's own answer, padded (an X-Padding field) to end on a multiple of 512
        /// bytes, then a second complete response (200, body {"smuggled":"not your answer"}),
        /// both in one write and so in one TLS record: the answer ends where a reader taking 512
        /// bytes at a time (Beast on a fresh connection) stops, and the unsolicited response is
        /// left decrypted in the client's TLS layer, not in its socket or its read buffer
        trailing_response_in_same_record,
        /// the endpoint's own answer in a TLS record of its own, then the same second response
        /// in the next record, both sent in one TCP segment: the client reads the second record
        /// off the socket with the first, and its TLS layer holds it still encrypted
        trailing_response_in_next_record,
        // Connection faults (see above).
        reset_before_request,    ///< RST right after the TLS handshake, before reading a request
        wrong_name_certificate,  ///< handshake with a leaf (same CA) for other.example.com only
        expired_certificate,     ///< handshake with a leaf (same CA, same names) that expired a day ago
        tls_1_1_only,            ///< handshake allows TLS 1.0 and 1.1 only (security level 0)
    };
    kind what = kind::latency;
    route where = route::any;
    std::size_t count = 1;
    std::chrono::milliseconds delay{0};
    unsigned status = 503;
    std::optional<std::chrono::seconds> retry_after{};
    /// http_status: WWW-Authenticate to send with it, when not empty (a 401's challenge); each
    /// line ("\n"-separated) is a field of its own
    std::string www_authenticate{};
    std::size_t size = 4 * 1024 * 1024;
    std::string location{};         ///< redirect's Location
    std::size_t interim_count = 1;  ///< interim_response's 1xx answers per request
    /// interim_response: after the interim responses, an RST instead of the answer (the request
    /// was processed: a client must not take the connection's end as a stale keep-alive one)
    bool reset_after_interim = false;
};

/// True for the faults that act on a connection before any request is read.
constexpr bool is_connection_fault(fault::kind k) noexcept {
    return k == fault::kind::reset_before_request || k == fault::kind::wrong_name_certificate ||
           k == fault::kind::expired_certificate || k == fault::kind::tls_1_1_only;
}

/// Request counters; every field counts since start-up.
struct counters {
    std::uint64_t authorize_requests = 0;
    std::uint64_t token_requests = 0;             ///< all POSTs to the token endpoint
    std::uint64_t authorization_code_grants = 0;  ///< token requests with that grant_type
    std::uint64_t refresh_token_grants = 0;
    std::uint64_t successful_refreshes = 0;
    std::uint64_t refreshes_in_flight = 0;      ///< refresh requests being processed now
    std::uint64_t max_refreshes_in_flight = 0;  ///< the most at once
    std::uint64_t profile_requests = 0;
    std::uint64_t api_requests = 0;
    std::uint64_t unauthorized_responses = 0;  ///< 401s from profile and API
    std::uint64_t connections_accepted = 0;
};

class server {
public:
    /// Generates the certificates, binds 127.0.0.1:0 and starts serving. Throws on failure.
    explicit server(server_config config = {});
    /// Stops serving and joins its threads; open connections are closed.
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    std::uint16_t port() const noexcept;
    std::string base_url() const;       ///< "https://<listen_address>:<port>"
    std::string authorize_url() const;  ///< base_url() + "/oauth/authorize"
    std::string token_url() const;      ///< base_url() + "/api/v1/oauth/token"
    std::string profile_url() const;    ///< base_url() + "/api/v1/users/api_profile"
    std::string api_base() const;       ///< base_url() (API paths start with /v1/)

    const std::string& ca_pem() const noexcept;   ///< the CA certificate, PEM
    const std::string& ca_file() const noexcept;  ///< a 0600 temp file holding ca_pem(), removed in ~server
    const server_config& config() const noexcept;

    /// Plays the browser: GETs `authorize_url` over TLS (trusting ca_pem()) and returns the
    /// Location it is redirected to, or the error page's status and body as an exception
    /// (std::runtime_error). Blocking; call it from any thread except the emulator's own.
    std::string consent(const std::string& authorize_url) const;

    /// Makes later authorizations answer error=access_denied (true) or consent again (false).
    void deny_consent(bool deny);

    /// Queues a fault. Faults are matched in the order they were added.
    void inject(fault f);
    /// Drops every queued fault.
    void clear_faults();

    counters stats() const;

    /// Changes expires_in for tokens issued from now on.
    void set_expires_in(std::chrono::seconds expires_in);
    /// Revokes an access token (as if the user disconnected the app's session for it).
    void revoke_access_token(const std::string& access_token);
    /// Makes an access token expired immediately (the API answers 401 invalid_token for it).
    void expire_access_token(const std::string& access_token);
    /// Revokes a whole grant: its access and refresh tokens (refresh then gets invalid_grant).
    void revoke_grant_of_refresh_token(const std::string& refresh_token);
    /// The newest refresh token issued for the grant a refresh token belongs to (empty if unknown).
    std::string newest_refresh_token_of(const std::string& any_refresh_token_of_grant) const;
    /// The counters of the grant a refresh token (current or rotated) belongs to; zeros if unknown.
    grant_stats grant_stats_of(const std::string& any_refresh_token_of_grant) const;

    /// Every secret the emulator has issued or holds (client secrets, codes, tokens), for tests that
    /// check nothing leaked into logs.
    std::vector<std::string> issued_secrets() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace apollo_oauth::emulator
