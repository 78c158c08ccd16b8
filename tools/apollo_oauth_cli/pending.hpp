// A pending authorization: the state (and PKCE verifier) an authorize URL was made with, kept
// until the browser's redirect comes back. `login` holds it in memory; `authorize-url` writes it
// to <token dir>/<account stem>.pending.json (0600, atomic) for a later `exchange`.
//
// The library's authorization_flow keeps its pending states in memory only, and a CLI needs them
// across processes, so this file is the same check (state compared in constant time, single use,
// expiry, callback location) over a persisted record, built on the same sans-io helpers.
#pragma once

#include <apollo_oauth/authorization.hpp>
#include <apollo_oauth/config.hpp>
#include <apollo_oauth/secret.hpp>

#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace apollo_oauth::cli {

struct pending_authorization {
    std::string state;
    secret_string code_verifier;  ///< empty without PKCE
    std::string redirect_uri;
    std::vector<std::string> scopes;
    std::int64_t expires_at = 0;  ///< Unix seconds
};

struct new_authorization {
    std::string url;
    pending_authorization pending;
};

/// A fresh state (and PKCE pair when `pkce`) and the authorize URL carrying them, for
/// config.redirect_uris.front(). Errors: errc::invalid_argument (bad scope), errc::invalid_url.
boost::system::result<new_authorization> make_authorization(const client_config& config,
                                                            const std::vector<std::string>& scopes,
                                                            bool pkce);

/// Replaces the account's pending authorization (one per account: a newer one wins).
void save_pending(const std::filesystem::path& token_dir, const std::string& account,
                  const pending_authorization& pending);
/// The account's pending authorization, or nullopt when there is none (or it is unreadable).
std::optional<pending_authorization> load_pending(const std::filesystem::path& token_dir,
                                                  const std::string& account);
/// Deletes it: a state is good for one callback only.
void remove_pending(const std::filesystem::path& token_dir, const std::string& account);

/// Checks a redirected URL against `pending`: its state (constant time), expiry, location (the
/// pending redirect URI) and error. Errors: errc::invalid_callback, missing_state, unknown_state
/// (state mismatch), state_expired, redirect_uri_not_registered, missing_code, or the server's
/// RFC 6749 §4.1.2.1 error (access_denied, ...) with its text in `diag`.
boost::system::result<authorization_grant> verify_redirect(const pending_authorization& pending,
                                                           std::string_view redirected_url,
                                                           diagnostics& diag);

/// The same for a code and state received separately.
boost::system::result<authorization_grant> verify_code(const pending_authorization& pending,
                                                       secret_string code, std::string_view state);

}  // namespace apollo_oauth::cli
