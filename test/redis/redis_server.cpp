#include "redis_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string_view>

namespace apollo_oauth::redis_test {

std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        throw std::runtime_error("socket() failed");
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("cannot bind an ephemeral port");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
}

redis_server::redis_server(redis_server_options options) : options_(std::move(options)) {
    std::string pattern = (std::filesystem::temp_directory_path() / "apollo-redis-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed");
    }
    dir_ = pattern;
    start();
}

redis_server::~redis_server() {
    kill();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

void redis_server::kill() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }
    if (out_ >= 0) {
        ::close(out_);
        out_ = -1;
    }
}

void redis_server::start() {
    const bool keep_port = port_ != 0;
    for (int attempt = 0; attempt < 5; ++attempt) {
        if (!keep_port) {
            port_ = free_port();
        }
        const bool tls = !options_.tls_cert_file.empty();
        std::vector<std::string> args{"redis-server",
                                      "--bind",
                                      "127.0.0.1",
                                      "--dir",
                                      dir_,
                                      "--daemonize",
                                      "no",
                                      "--logfile",
                                      "",
                                      "--loglevel",
                                      "notice",
                                      "--appendonly",
                                      "yes",
                                      "--appendfsync",
                                      "always",
                                      "--save",
                                      "",
                                      "--protected-mode",
                                      "no"};
        if (tls) {
            for (const char* a : {"--port", "0", "--tls-port"}) {
                args.emplace_back(a);
            }
            args.push_back(std::to_string(port_));
            args.insert(args.end(),
                        {"--tls-cert-file", options_.tls_cert_file, "--tls-key-file", options_.tls_key_file,
                         "--tls-ca-cert-file", options_.tls_ca_file, "--tls-auth-clients", "no"});
        } else {
            args.insert(args.end(), {"--port", std::to_string(port_)});
        }
        args.insert(args.end(), options_.arguments.begin(), options_.arguments.end());

        // Built before fork: the child of a multi-threaded process may only make async-signal-safe
        // calls (a malloc there can deadlock on a lock another thread held at the fork).
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        int pipe_fds[2];
        if (::pipe(pipe_fds) != 0) {
            throw std::runtime_error("pipe failed");
        }
        const pid_t pid = ::fork();
        if (pid < 0) {
            throw std::runtime_error("fork failed");
        }
        if (pid == 0) {
            ::dup2(pipe_fds[1], STDOUT_FILENO);
            ::close(pipe_fds[0]);
            ::close(pipe_fds[1]);
            ::execvp("redis-server", argv.data());
            ::_exit(127);
        }
        ::close(pipe_fds[1]);
        pid_ = pid;
        out_ = pipe_fds[0];
        // Reads the log until the server is ready, or until it exits (port taken: try another).
        std::string log;
        char buffer[4096];
        bool ready = false;
        for (;;) {
            const ssize_t n = ::read(out_, buffer, sizeof buffer);
            if (n <= 0) {
                break;
            }
            log.append(buffer, static_cast<std::size_t>(n));
            if (log.find("Ready to accept connections") != std::string::npos) {
                ready = true;
                break;
            }
        }
        if (ready) {
            // redis-server ignores SIGPIPE: with the read end closed, its later log lines are
            // dropped instead of filling the pipe and blocking it.
            ::close(out_);
            out_ = -1;
            return;
        }
        kill();
        if (attempt == 4) {
            throw std::runtime_error("redis-server did not start: " + log.substr(0, 2000));
        }
    }
}

}  // namespace apollo_oauth::redis_test
