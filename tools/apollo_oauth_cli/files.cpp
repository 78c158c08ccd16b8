// The tool's own files in the token directory.
#include "files.hpp"

#include "sansio/random.hpp"
#include "store/record_files.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace apollo_oauth::cli {
namespace {

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

class fd_guard {
public:
    explicit fd_guard(int fd) : fd_(fd) {}
    ~fd_guard() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    int get() const { return fd_; }
    int release() { return std::exchange(fd_, -1); }

private:
    int fd_;
};

void make_directories(const std::filesystem::path& dir) {
    if (::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST) {
        return;
    }
    if (errno != ENOENT || !dir.has_parent_path() || dir.parent_path() == dir) {
        throw_errno("cannot create " + dir.string());
    }
    make_directories(dir.parent_path());
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        throw_errno("cannot create " + dir.string());
    }
}

bool write_all(int fd, const std::string& text) {
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    return true;
}

}  // namespace

void ensure_private_directory(const std::filesystem::path& dir) {
    make_directories(dir);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        throw_errno("cannot use " + dir.string());
    }
    if (!S_ISDIR(st.st_mode) || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        throw std::runtime_error("the token directory " + dir.string() +
                                 " is not a directory writable only by its owner; chmod 700 it");
    }
}

void write_private_file(const std::filesystem::path& dir, const std::string& name, const std::string& text) {
    const auto temp = dir / (name + ".tmp-" + sansio::random_base64url(9));
    fd_guard fd(::open(temp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.get() < 0) {
        throw_errno("cannot create " + temp.string());
    }
    if (!write_all(fd.get(), text) || ::fsync(fd.get()) != 0 || ::close(fd.release()) != 0 ||
        ::rename(temp.c_str(), (dir / name).c_str()) != 0) {
        const int error = errno;
        ::unlink(temp.c_str());
        throw std::system_error(error, std::generic_category(), "cannot write " + (dir / name).string());
    }
    // Without it the rename may not survive a power cut; the file is complete either way.
    fd_guard dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir_fd.get() >= 0) {
        ::fsync(dir_fd.get());
    }
}

std::optional<std::string> read_small_file(const std::filesystem::path& path) {
    fd_guard fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        return std::nullopt;
    }
    std::string text;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 || text.size() + static_cast<std::size_t>(n) > (1u << 20)) {
            return std::nullopt;
        }
        if (n == 0) {
            return text;
        }
        text.append(buffer, static_cast<std::size_t>(n));
    }
}

std::string account_file_stem(const std::string& account) {
    return store::account_key(account);
}

account_lock::account_lock(const std::filesystem::path& token_dir, const std::string& account,
                           const std::function<void(const std::filesystem::path&)>& on_wait) {
    ensure_private_directory(token_dir);
    const auto path = token_dir / (account_file_stem(account) + ".cli-lock");
    fd_guard fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.get() < 0) {
        throw_errno("cannot open the lock file " + path.string());
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) {
            throw_errno("cannot lock " + path.string());
        }
        if (on_wait) {
            on_wait(path);
        }
        while (::flock(fd.get(), LOCK_EX) != 0) {
            if (errno != EINTR) {
                throw_errno("cannot lock " + path.string());
            }
        }
    }
    fd_ = fd.release();
}

account_lock::~account_lock() {
    ::close(fd_);  // releases the flock
}

}  // namespace apollo_oauth::cli
