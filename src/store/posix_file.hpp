// Thin POSIX file helpers for the file store: an owning descriptor, whole-buffer reads and writes
// that survive EINTR and short transfers, and an exclusive flock. Failures leave errno set.
#pragma once

#include "store/wiped_string.hpp"

#include <cstddef>
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

/// Blocks until the exclusive advisory lock is held (it is released when the descriptor closes).
bool lock_exclusive(int fd) noexcept;

/// As lock_exclusive, but false at once when someone else holds it.
bool try_lock_exclusive(int fd) noexcept;

}  // namespace apollo_oauth::store
