// The tool's own files in the token directory.
#include "files.hpp"

#include <apollo_oauth/private_files.hpp>

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

}  // namespace

void ensure_private_directory(const std::filesystem::path& dir) {
    const auto ec = make_private_directory(dir);
    if (ec == errc::store_failure) {
        throw std::runtime_error("the token directory " + dir.string() +
                                 " is not a directory writable only by its owner; chmod 700 it");
    }
    if (ec) {
        throw std::system_error(ec.value(), std::generic_category(), "cannot create " + dir.string());
    }
}

void write_private_file(const std::filesystem::path& dir, const std::string& name, const std::string& text) {
    if (const auto ec = replace_private_file(dir, name, text)) {
        throw std::system_error(ec.value(), std::generic_category(), "cannot write " + (dir / name).string());
    }
}

std::optional<std::string> read_small_file(const std::filesystem::path& path) {
    fd_guard fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
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

pending_lock::pending_lock(const std::filesystem::path& token_dir, const std::string& account) {
    ensure_private_directory(token_dir);
    const auto path = token_dir / (file_store_account_stem(account) + ".pending.lock");
    fd_guard fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600));
    if (fd.get() < 0) {
        throw_errno("cannot open the lock file " + path.string());
    }
    while (::flock(fd.get(), LOCK_EX) != 0) {
        if (errno != EINTR) {
            throw_errno("cannot lock " + path.string());
        }
    }
    fd_ = fd.release();
}

pending_lock::~pending_lock() {
    ::close(fd_);  // releases the flock
}

}  // namespace apollo_oauth::cli
