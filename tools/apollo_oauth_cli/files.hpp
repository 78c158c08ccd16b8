// The tool's own files in the token directory (beside the file store's records): the private
// directory itself, small files read whole, and the per-account lock that serialises apollo-oauth
// processes. Writing is the library's (apollo_oauth/private_files.hpp), the store's own code.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

namespace apollo_oauth::cli {

/// make_private_directory, throwing std::runtime_error with what to do when it fails (a
/// directory writable by group or others: anyone could then swap the files in it).
void ensure_private_directory(const std::filesystem::path& dir);

/// replace_private_file (0600, atomic, the file store's own code), throwing std::system_error
/// naming the file when it fails.
void write_private_file(const std::filesystem::path& dir, const std::string& name, const std::string& text);

/// The whole file (at most 1 MiB), or nullopt when it cannot be read.
std::optional<std::string> read_small_file(const std::filesystem::path& path);

/// An exclusive flock on <token dir>/<account stem>.cli-lock, held for the object's lifetime.
///
/// TO BE REMOVED when the file store's lease is real across processes (issue 11, the lifecycle
/// branch): the cache then holds the store's lease around load -> refresh -> save itself, and
/// this class, lock_account() in session.cpp and its callers go (see docs/cli.md).
///
/// Why the tool locks, not the store: Apollo revokes the old pair on every refresh, so two
/// processes refreshing with the same refresh token lock the account out. token_cache coalesces
/// refreshes within one process only, and the file store's lease grants every request (the
/// library's single-process default). Holding this lock around load -> refresh -> save makes the
/// second process wait, then load the pair the first one rotated. It is a separate file from the
/// store's own <stem>.lock, which the store flocks during each save: flock does not nest across
/// two opens of one file, so sharing it would deadlock.
class account_lock {
public:
    /// Blocks until the lock is held. When another process holds it, `on_wait` is called once
    /// first (to tell the user what is being waited for). Throws std::system_error.
    account_lock(const std::filesystem::path& token_dir, const std::string& account,
                 const std::function<void(const std::filesystem::path&)>& on_wait);
    ~account_lock();
    account_lock(const account_lock&) = delete;
    account_lock& operator=(const account_lock&) = delete;

private:
    int fd_ = -1;
};

}  // namespace apollo_oauth::cli
