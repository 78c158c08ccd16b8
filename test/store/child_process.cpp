// fork+execv with stdout on a pipe.
#include "child_process.hpp"

#include <cerrno>
#include <csignal>
#include <stdexcept>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace apollo_oauth::store_test {

child_process::child_process(const std::vector<std::string>& argv) {
    // Built before fork: between fork and exec a multi-threaded process may only make
    // async-signal-safe calls, and allocation is not one.
    std::vector<char*> args;
    for (const auto& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe2 failed");
    }
    pid_ = ::fork();
    if (pid_ < 0) {
        ::close(fds[0]);
        ::close(fds[1]);
        throw std::runtime_error("fork failed");
    }
    if (pid_ == 0) {
        // dup2 clears O_CLOEXEC on the copy, so only stdout survives the exec.
        if (::dup2(fds[1], STDOUT_FILENO) < 0) {
            ::_exit(126);
        }
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    out_ = fds[0];
}

child_process::~child_process() {
    if (pid_ > 0) {
        kill();
        wait();
    }
    if (out_ >= 0) {
        ::close(out_);
    }
}

std::optional<std::string> child_process::read_line() {
    for (;;) {
        if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
            std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            return line;
        }
        char chunk[4096];
        const ssize_t n = ::read(out_, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return std::nullopt;
        }
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }
}

void child_process::kill() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
    }
}

void child_process::signal(int signal) {
    if (pid_ > 0) {
        ::kill(pid_, signal);
    }
}

bool child_process::wait_until_stopped() {
    int status = 0;
    if (pid_ <= 0) {
        return false;
    }
    while (::waitpid(pid_, &status, WUNTRACED) < 0 && errno == EINTR) {
    }
    if (WIFSTOPPED(status)) {
        return true;
    }
    pid_ = -1;
    return false;
}

int child_process::wait() {
    int status = 0;
    if (pid_ <= 0) {
        return status;
    }
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
}

}  // namespace apollo_oauth::store_test
