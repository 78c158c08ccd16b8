// The tool's own files in the token directory (beside the file store's records): the private
// directory itself, small files read whole, and the lock around the pending authorization. Writing is the
// library's (apollo_oauth/private_files.hpp), the store's own code.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

namespace apollo_oauth::cli {

/// make_private_directory, throwing std::runtime_error with what is wrong and what to do when it
/// refuses the directory: not a directory, owned by another user (named by uid), or writable by
/// group or others (with its mode: anyone could then swap the files in it).
void ensure_private_directory(const std::filesystem::path& dir);

/// replace_private_file (0600, atomic, the file store's own code), throwing std::system_error
/// naming the file when it fails.
void write_private_file(const std::filesystem::path& dir, const std::string& name, const std::string& text);

/// Whether a symbolic link in the file's own place is followed: yes for files the user names
/// (a secret mounted through links, as Kubernetes does), never for the token directory's files.
enum class final_link { follow, refuse };

/// The whole file (at most 1 MiB), or nullopt when it cannot be read; then `error_number`, when
/// given, receives the errno of the failure (EFBIG for a file past 1 MiB; ELOOP for a link that
/// `link` refuses).
std::optional<std::string> read_small_file(const std::filesystem::path& path, int* error_number = nullptr,
                                           final_link link = final_link::follow);

/// Reads a file holding a secret (the client secret, the Redis password) whose name came from
/// `source`, an option or environment variable ("--client-secret-file"). Messages name `what` and
/// `source` and the system's reason, never the file's name: a secret pasted where its file's name
/// belongs would otherwise be echoed to the terminal and its logs. Warns on stderr when the file
/// is readable by other users. Throws usage_error when the file cannot be read.
std::string read_secret_file(const std::filesystem::path& path, const std::string& what,
                             const std::string& source);

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
