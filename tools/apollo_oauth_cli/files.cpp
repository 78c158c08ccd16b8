// The tool's own files in the token directory.
#include "files.hpp"

#include "arguments.hpp"

#include <apollo_oauth/private_files.hpp>

#include <boost/system/system_error.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <system_error>
#include <thread>
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

// Why make_private_directory refused `dir`, and what to do about it: each of its three conditions
// has its own remedy (chmod 700 cannot fix a file in the directory's place, nor a directory of
// another user's). A symbolic link is followed, as make_private_directory follows it.
std::string refusal_of(const std::filesystem::path& dir) {
    std::string name = "the token directory " + dir.string();
    std::error_code ignored;
    if (std::filesystem::is_symlink(dir, ignored)) {
        name += " (a symbolic link to " + std::filesystem::read_symlink(dir, ignored).string() + ")";
    }
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        return name + " cannot be checked: " + std::strerror(errno);
    }
    if (!S_ISDIR(st.st_mode)) {
        return name + " is not a directory; move what is there away, or choose another with --token-dir";
    }
    if (st.st_uid != ::geteuid() && st.st_uid != 0) {
        return name + " is owned by uid " + std::to_string(st.st_uid) + ", not by you (uid " +
               std::to_string(::geteuid()) +
               ") or root, and its owner could replace the tokens in it; use a directory of your own "
               "(--token-dir), or have it chowned to you";
    }
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return name + " is writable by its group or by others (mode " + mode +
           "), who could replace the tokens in it; chmod 700 " + dir.string();
}

}  // namespace

void ensure_private_directory(const std::filesystem::path& dir) {
    const auto ec = make_private_directory(dir);
    if (ec == errc::store_failure) {
        throw std::runtime_error(refusal_of(dir));
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

std::optional<std::string> read_small_file(const std::filesystem::path& path, int* error_number,
                                           final_link link) {
    const auto failed = [error_number](int number) -> std::optional<std::string> {
        if (error_number != nullptr) {
            *error_number = number;
        }
        return std::nullopt;
    };
    const int no_follow = link == final_link::refuse ? O_NOFOLLOW : 0;
    fd_guard fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | no_follow));
    if (fd.get() < 0) {
        return failed(errno);
    }
    std::string text;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return failed(errno);
        }
        if (text.size() + static_cast<std::size_t>(n) > (1u << 20)) {
            return failed(EFBIG);
        }
        if (n == 0) {
            return text;
        }
        text.append(buffer, static_cast<std::size_t>(n));
    }
}

std::string read_secret_file(const std::filesystem::path& path, const std::string& what,
                             const std::string& source) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        std::cerr << "apollo-oauth: warning: the " << what << " file named by " << source
                  << " is readable by other users; chmod 600 it\n";
    }
    int error_number = 0;
    auto text = read_small_file(path, &error_number);
    if (!text) {
        throw usage_error("cannot read the " + what + " file named by " + source + ": " +
                          std::strerror(error_number));
    }
    return std::move(*text);
}

// Opened as the file store opens its own lock files (open_lock_file_at). The wait is polled with a
// bound, because a holder that is stopped (Ctrl-Z) would otherwise keep this process waiting for
// ever, and `login` ignores Ctrl-C meanwhile (its signal_set is set).
pending_lock::pending_lock(const std::filesystem::path& token_dir, const std::string& account) {
    ensure_private_directory(token_dir);
    const auto path = token_dir / (file_store_account_stem(account) + ".pending.lock");
    const auto opened = open_lock_file_at(AT_FDCWD, path.string());
    if (!opened) {
        throw boost::system::system_error(opened.error(), "cannot open the lock file " + path.string());
    }
    fd_guard fd(*opened);
    const auto deadline = std::chrono::steady_clock::now() + pending_lock_wait;
    while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno != EINTR && errno != EWOULDBLOCK) {
            throw_errno("cannot lock " + path.string());
        }
        if (errno == EWOULDBLOCK && std::chrono::steady_clock::now() >= deadline) {
            throw std::runtime_error("another apollo-oauth process has kept " + path.string() + " for " +
                                     std::to_string(pending_lock_wait.count()) +
                                     " s (stopped?); try again once it has finished");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    fd_ = fd.release();
}

pending_lock::~pending_lock() {
    ::close(fd_);  // releases the flock
}

}  // namespace apollo_oauth::cli
