// Thin POSIX file helpers for the file store: an owning descriptor, whole-buffer reads and writes
// that survive EINTR and short transfers, an exclusive flock tried once, and a directory's entry
// synced into its parent. Failures leave errno set.
#pragma once

#include "store/wiped_string.hpp"

#include <cstddef>
#include <filesystem>
#include <string_view>

#include <sys/stat.h>

namespace apollo_oauth::store {

class unique_fd {
public:
    unique_fd() = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}
    unique_fd& operator=(unique_fd&& other) noexcept;
    ~unique_fd();

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    int release() noexcept;
    /// close(2)'s result: a deferred write error can surface here.
    bool close() noexcept;

private:
    int fd_ = -1;
};

/// A descriptor that may hold an flock, which it gives back (LOCK_UN) before it closes. Closing
/// alone frees an flock only with the last reference to its open file description, and a child
/// that this process fork()ed without exec meanwhile shares it (a pre-fork server's workers,
/// daemon(), a sandbox helper): the lock stayed held for as long as that child lived. Given back
/// only by the process that opened it: a forked child that destroys its copy (say, on its way out
/// through exit) closes its reference and leaves its parent's lock alone.
class flocked_fd {
public:
    flocked_fd() = default;
    explicit flocked_fd(unique_fd fd) noexcept;
    flocked_fd(flocked_fd&& other) noexcept = default;
    flocked_fd& operator=(flocked_fd&& other) noexcept;
    ~flocked_fd();

    int get() const noexcept { return fd_.get(); }
    explicit operator bool() const noexcept { return static_cast<bool>(fd_); }
    /// Gives the flock back (in the process that opened it) and closes the descriptor.
    void reset() noexcept;

private:
    unique_fd fd_;
    int owner_ = -1;  // the pid that opened it
};

bool write_all(int fd, std::string_view bytes) noexcept;

enum class read_status { ok, too_large, failed };

/// Reads `fd` to its end into `out` (storage reserved from fstat's size, so no copy is left
/// behind); too_large past `max` bytes.
read_status read_all(int fd, std::size_t max, wiped_string& out);

/// Takes the exclusive advisory lock (released when the descriptor closes); false at once, errno
/// EWOULDBLOCK, when someone else holds it, or with flock's errno when it fails otherwise.
bool try_lock_exclusive(int fd) noexcept;

/// Makes the entry of `directory` in its parent durable (fsync of the parent). True too when the
/// parent cannot be opened for it (EACCES: a parent this user may enter but not read, which
/// someone else created and synced) or its file system cannot sync it (EINVAL, EROFS); false,
/// errno set, when its fsync fails otherwise.
bool sync_into_parent(const std::filesystem::path& directory);

/// Whether a file of status `st` (a symbolic link that led to it followed) is a directory that may
/// hold records: owned by this user or root, writable by no one else, who could otherwise replace
/// its files. The one rule of the file store, make_private_directory and replace_private_file.
bool is_private_directory(const struct stat& st) noexcept;
/// The same for the directory open as `dir`.
bool is_private_directory(int dir) noexcept;

}  // namespace apollo_oauth::store
