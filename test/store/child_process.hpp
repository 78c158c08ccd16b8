// A child process started with fork+execv whose stdout the test reads line by line: the pipe is
// how the tests synchronise with it (no sleeps).
#pragma once

#include <sys/types.h>
#include <optional>
#include <string>
#include <vector>

namespace apollo_oauth::store_test {

class child_process {
public:
    /// argv[0] is the executable's path.
    explicit child_process(const std::vector<std::string>& argv);
    /// Kills (SIGKILL) and reaps the child if the test has not.
    ~child_process();
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    /// The next line of its stdout without the newline; nullopt at end of file.
    std::optional<std::string> read_line();
    void kill();
    /// Sends `signal` (SIGSTOP, SIGCONT, ...) to the child.
    void signal(int signal);
    /// Blocks until the child is stopped (SIGSTOP, from anyone); false when it exited instead
    /// (it is then reaped, and wait() returns 0).
    bool wait_until_stopped();
    /// waitpid's status.
    int wait();

private:
    pid_t pid_ = -1;
    int out_ = -1;
    std::string buffer_;
};

}  // namespace apollo_oauth::store_test
