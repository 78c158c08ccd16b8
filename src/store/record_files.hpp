// Names of the file store's files. Account ids are arbitrary bytes, so they never appear in a
// name: an account's files are named after the lowercase hex SHA-256 of its id (its "key").
//   <key>.json             the record
//   <key>.lock             flock'ed around each compare-and-set and lease operation (tried once;
//                          the file store tries again on a timer, within a bound); never deleted,
//                          because a process that locks a lock file just unlinked would exclude
//                          nobody
//   <key>.lease            the refresh lease: its holder's flock, name, generation, deadline and
//                          phase; <key>.lease.new while a lapsed holder's is being replaced
//   <key>.json.tmp-<rand>  a record being written (replace_private_file_at names it); renamed over
//                          <key>.json when complete
//   <key>.pending.json.tmp-<rand>  the CLI's pending authorization (a PKCE code_verifier) being
//                          written under <key>.pending.lock; renamed over <key>.pending.json
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace apollo_oauth::store {

std::string account_key(std::string_view account);
std::string record_file_name(std::string_view key);
std::string lock_file_name(std::string_view key);
/// The key of a temporary file name (a record's, or the CLI's pending authorization's), or
/// nullopt when `name` is not one.
std::optional<std::string_view> temp_file_key(std::string_view name) noexcept;
/// The lock file its writer holds while it writes the temporary file `name` (temp_file_key has a
/// key for it): <key>.lock for a record's, <key>.pending.lock for a pending authorization's.
std::string temp_file_lock_name(std::string_view name);

}  // namespace apollo_oauth::store
