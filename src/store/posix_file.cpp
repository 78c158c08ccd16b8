// POSIX file helpers.
#include "store/posix_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace apollo_oauth::store {

unique_fd& unique_fd::operator=(unique_fd&& other) noexcept {
    if (this != &other) {
        close();
        fd_ = other.release();
    }
    return *this;
}

unique_fd::~unique_fd() {
    close();
}

int unique_fd::release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
}

bool unique_fd::close() noexcept {
    if (fd_ < 0) {
        return true;
    }
    // Not retried on EINTR: on Linux the descriptor is released whatever close returns.
    const bool ok = ::close(release()) == 0;
    return ok;
}

flocked_fd::flocked_fd(unique_fd fd) noexcept : fd_(std::move(fd)), owner_(::getpid()) {}

flocked_fd& flocked_fd::operator=(flocked_fd&& other) noexcept {
    if (this != &other) {
        reset();
        fd_ = std::move(other.fd_);
        owner_ = other.owner_;
    }
    return *this;
}

flocked_fd::~flocked_fd() {
    reset();
}

void flocked_fd::reset() noexcept {
    if (fd_ && owner_ == ::getpid()) {
        (void)::flock(fd_.get(), LOCK_UN);  // none held: nothing happens
    }
    fd_.close();
}

bool write_all(int fd, std::string_view bytes) noexcept {
    while (!bytes.empty()) {
        const ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

read_status read_all(int fd, std::size_t max, wiped_string& out) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return read_status::failed;
    }
    if (st.st_size < 0 || static_cast<std::size_t>(st.st_size) > max) {
        return read_status::too_large;
    }
    // One byte more than the size, to see the end of file in the same buffer.
    out.wipe();
    out.value.resize(static_cast<std::size_t>(st.st_size) + 1);
    std::size_t filled = 0;
    while (filled < out.value.size()) {
        const ssize_t n = ::read(fd, out.value.data() + filled, out.value.size() - filled);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return read_status::failed;
        }
        if (n == 0) {
            out.value.resize(filled);
            return read_status::ok;
        }
        filled += static_cast<std::size_t>(n);
    }
    // Grew since fstat; records are replaced by rename, never written in place, so it is not ours.
    return read_status::too_large;
}

bool try_lock_exclusive(int fd) noexcept {
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EINTR) {
            return false;
        }
    }
    return true;
}

bool is_private_directory(const struct stat& st) noexcept {
    return S_ISDIR(st.st_mode) && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0 &&
           (st.st_uid == ::geteuid() || st.st_uid == 0);
}

bool is_private_directory(int dir) noexcept {
    struct stat st {};
    return ::fstat(dir, &st) == 0 && is_private_directory(st);
}

bool sync_into_parent(const std::filesystem::path& directory) {
    std::filesystem::path path = directory;
    if (!path.has_filename()) {
        path = path.parent_path();  // "a/b/" names "a/b"
    }
    const std::filesystem::path parent = path.has_parent_path() ? path.parent_path() : ".";
    const unique_fd fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) {
        return errno == EACCES;
    }
    // EINVAL, EROFS: a parent on a file system that cannot sync directories, or read-only (a token
    // directory mounted on a read-only image), where the entry is as durable as it will be.
    return ::fsync(fd.get()) == 0 || errno == EINVAL || errno == EROFS;
}

}  // namespace apollo_oauth::store
