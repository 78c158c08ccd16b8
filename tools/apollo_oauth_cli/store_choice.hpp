// Where the tool keeps token pairs: the file store in a directory (the default), or Redis
// (--store redis://...), and a store wrapper that tells the user when another process's refresh
// is being waited for.
#pragma once

#include "arguments.hpp"

#include <apollo_oauth/secret.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace apollo_oauth::cli {

/// True when this build has the Redis store (hiredis was found).
bool redis_store_built();

/// --store, --redis-password-file.
std::vector<option_spec> store_choice_options();

struct store_choice {
    /// Set for redis:// and rediss://. A secret: it may carry the password (from the
    /// environment only, never argv).
    std::optional<secret_string> redis_url;
    /// From APOLLO_REDIS_PASSWORD or --redis-password-file (empty: the URL's, or none).
    secret_string redis_password;
    /// The CA file for rediss:// (--ca-file / APOLLO_CA_FILE, as for the OAuth endpoints).
    std::string ca_file;
};

/// Reads --store (else APOLLO_STORE): `file:DIR` or a plain directory replaces `token_dir`;
/// `redis://` / `rediss://` selects Redis. Throws usage_error: a password in a --store URL on
/// the command line, an unreadable password file, Redis in a build without it, a bad URL
/// (never quoting it: it may hold a password).
store_choice load_store_choice(const parsed_arguments& args, std::filesystem::path& token_dir);

/// Where the pairs live, for messages (never a password).
std::string describe_store(const store_choice& choice, const std::filesystem::path& token_dir);

/// The chosen store, on `ex`. Throws usage_error for a Redis URL the library refuses.
std::shared_ptr<token_store> make_chosen_store(boost::asio::any_io_executor ex, const store_choice& choice,
                                               const std::filesystem::path& token_dir);

/// `inner`, calling `on_busy` the first time a lease is found held by another process (the cache
/// then waits for that process's refresh). Everything else is forwarded as it is.
std::shared_ptr<token_store> announce_lease_waits(std::shared_ptr<token_store> inner,
                                                  std::function<void()> on_busy);

}  // namespace apollo_oauth::cli
