#include "secret_file.hpp"

#include <openssl/crypto.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <stdexcept>

namespace web_app {
namespace {

constexpr std::size_t max_secret_file_size = 64 * 1024;  // a secret is tens of bytes; not a log file

std::string trim_line_end(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) {
        s.pop_back();
    }
    return s;
}

[[noreturn]] void unreadable(const std::string& source, int error_number) {
    throw std::runtime_error("cannot read the client secret file named by " + source + ": " +
                             std::strerror(error_number));
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

private:
    int fd_;
};

// Others who can read the file can read the secret; the tool says so too, and still goes on.
void warn_if_shared(int fd, const std::string& source) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        std::cerr << "web_app: warning: the client secret file named by " << source
                  << " is readable by other users; chmod 600 it\n";
    }
}

// The stack buffer is wiped as it goes out of scope, whichever way it does; `text` is reserved for
// a secret's size, so that it does not leave copies behind as it grows.
std::string read_all(int fd, const std::string& source) {
    std::string text;
    text.reserve(4096);
    char buffer[4096];
    struct wipe {
        char* bytes;
        ~wipe() { OPENSSL_cleanse(bytes, sizeof buffer); }
    } wiped{buffer};
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            unreadable(source, errno);
        }
        if (n == 0) {
            return text;
        }
        text.append(buffer, static_cast<std::size_t>(n));
        if (text.size() > max_secret_file_size) {
            unreadable(source, EFBIG);
        }
    }
}

}  // namespace

std::string read_secret_file(const std::string& path, const std::string& source) {
    const fd_guard fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (fd.get() < 0) {
        unreadable(source, errno);
    }
    warn_if_shared(fd.get(), source);
    std::string secret = trim_line_end(read_all(fd.get(), source));
    if (secret.empty()) {
        throw std::runtime_error("the client secret file named by " + source + " is empty");
    }
    return secret;
}

}  // namespace web_app
