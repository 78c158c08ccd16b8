// The tool's own files in the token directory (beside the file store's records): the private
// directory itself, small files read whole, and the lock around the pending authorization. Writing is the
// library's (apollo_oauth/private_files.hpp), the store's own code.
#pragma once

#include <chrono>
#include <filesystem>
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

/// How long a pending_lock waits for another process to let go.
inline constexpr std::chrono::seconds pending_lock_wait{5};

/// An exclusive flock on <token dir>/<account stem>.pending.lock, held for the object's lifetime:
/// around reading and consuming (or replacing) the pending authorization, so that two `exchange`
/// processes cannot both spend one state. Token pairs need no lock of the tool's: the store's
/// lease coordinates refreshes across processes. Throws std::system_error.
class pending_lock {
public:
    /// Waits until the lock is held (briefly: no holder does I/O beyond the pending file), for
    /// pending_lock_wait at most: then throws std::runtime_error saying another process keeps it.
    pending_lock(const std::filesystem::path& token_dir, const std::string& account);
    ~pending_lock();
    pending_lock(const pending_lock&) = delete;
    pending_lock& operator=(const pending_lock&) = delete;

private:
    int fd_ = -1;
};

}  // namespace apollo_oauth::cli
