// The web example's command line. Secrets never come from it: the client secret is read from
// APOLLO_CLIENT_SECRET or APOLLO_CLIENT_SECRET_FILE.
#pragma once

#include <apollo_oauth/emulator/server.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace web_app {

struct options {
    std::string listen_address = "127.0.0.1";
    std::uint16_t port = 8443;  ///< 0: any free port
    /// The origin browsers use (the redirect URI is origin + "/oauth/callback"). Default
    /// https://localhost:<port>.
    std::string public_origin;
    std::string cert_file;  ///< PEM certificate chain; with key_file. Neither: a self-signed one
    std::string key_file;
    unsigned threads = 4;  ///< io_context threads
    /// Connections served at once. 0: as many as the descriptor limit (ulimit -n) leaves once 256
    /// are kept for the client's pool, the store and an embedded emulator, at most 10,000. A
    /// number is taken as given.
    std::size_t max_connections = 0;
    /// Connections one client address (an IPv4 address, or an IPv6 /64) holds at once; one more
    /// is closed as soon as it is accepted. 0: no such limit. Behind a reverse proxy (or a large
    /// NAT) every connection has the proxy's address, and the default caps the whole site at 256.
    std::size_t max_connections_per_address = 256;
    /// Where tokens are kept: "file:DIR" (default file:./web_app_tokens), or a Redis store
    /// ("redis://host:port" or "rediss://...": make_store() in main.cpp).
    std::string store = "file:web_app_tokens";
    std::vector<std::string> scopes = {"contacts_search", "person_read"};

    // Apollo's endpoints by default; each can point elsewhere (a standards-following server).
    std::string client_id;  ///< APOLLO_CLIENT_ID when empty
    std::string authorize_url = "https://app.apollo.io/#/oauth/authorize";
    std::string token_url = "https://app.apollo.io/api/v1/oauth/token";
    std::string profile_url = "https://app.apollo.io/api/v1/users/api_profile";
    std::string api_base = "https://api.apollo.io";
    std::string ca_file;  ///< extra CA to trust for those endpoints

    /// Run an embedded emulator and use its endpoints (nothing else needed).
    bool emulator = false;
    bool auto_consent = false;                       ///< emulator: consent without the page
    std::chrono::seconds token_lifetime{2'592'000};  ///< emulator: expires_in of its tokens
    bool demo_account = false;                       ///< emulator: connect its user at start-up (load tests)
    /// emulator: misbehaviours injected once start-up is over (tests of the app's failure paths)
    std::vector<apollo_oauth::emulator::fault> emulator_faults;
    /// Treat a token as expired this long before its expiry (cache_config::expiry_margin).
    std::chrono::seconds expiry_margin{60};
    /// Write the CA certificates a browser must trust (the app's, and the emulator's) here, PEM.
    std::string write_ca;
    /// Browser sessions held at most (each /connect without a known cookie makes one); beyond
    /// it the least recently seen is dropped.
    std::size_t max_sessions = 100'000;
    /// A session unseen this long is dropped.
    std::chrono::seconds session_idle_timeout{std::chrono::hours(12)};
    /// Authorizations held at most, all sessions together; beyond it the client address holding
    /// the most loses its oldest.
    std::size_t max_authorizations = 200'000;
    /// How long a started authorization may take to come back (client_config::state_lifetime).
    std::chrono::seconds authorization_lifetime{600};
    /// On SIGTERM/SIGINT: how long requests being answered get to finish.
    std::chrono::milliseconds drain_timeout{5'000};
    /// Then how long token_cache::async_shutdown may wait for a refresh on the wire and for pairs
    /// the store refused, before what is still unstored is reported lost.
    std::chrono::milliseconds shutdown_timeout{10'000};
};

/// Parses argv. Prints help or an error and returns nullopt when the program should exit with
/// `exit_code`.
std::optional<options> parse_options(int argc, char** argv, int& exit_code);

}  // namespace web_app
