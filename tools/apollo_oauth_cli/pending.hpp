// The pending authorization kept between `authorize-url` and `exchange`, two processes: the
// library's pending_authorization value (made by start_authorization, checked by the pure
// verify_callback), stored in <token dir>/<account stem>.pending.json (0600, written atomically by
// the library's replace_private_file). `login` keeps it in memory and saves it too, so that a
// redirect that cannot reach its listener can be finished with `exchange`.
#pragma once

#include <apollo_oauth/authorization.hpp>

#include <filesystem>
#include <optional>
#include <string>

namespace apollo_oauth::cli {

/// Replaces the account's pending authorization (one per account: a newer one wins).
/// Throws std::system_error.
void save_pending(const std::filesystem::path& token_dir, const std::string& account,
                  const pending_authorization& pending);

/// The account's pending authorization, or nullopt when there is none (or it is unreadable).
std::optional<pending_authorization> load_pending(const std::filesystem::path& token_dir,
                                                  const std::string& account);

/// Deletes it: a state is good for one callback only.
void remove_pending(const std::filesystem::path& token_dir, const std::string& account);

/// Deletes it when it is the one of `state`, and leaves a newer one (an `authorize-url` run while
/// `login` waited) for its `exchange`. Call under the pending_lock.
void remove_pending_of(const std::filesystem::path& token_dir, const std::string& account,
                       const std::string& state);

/// The redirect a browser would have made with `code` and `state` (at pending.redirect_uri), so
/// that a code and state given separately go through verify_callback like a whole URL.
std::string redirect_url_with(const pending_authorization& pending, const std::string& code,
                              const std::string& state);

}  // namespace apollo_oauth::cli
