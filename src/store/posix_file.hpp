// Thin POSIX file helpers for the file store: an owning descriptor, whole-buffer reads and writes
// that survive EINTR and short transfers, an exclusive flock tried once, and a directory's entry
// synced into its parent. Failures leave errno set.
#pragma once

#include "store/wiped_string.hpp"

#include <cstddef>
#include <filesystem>
#include <string_view>

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

}  // namespace apollo_oauth::store
