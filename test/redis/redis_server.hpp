// A real redis-server for the tests: a child process on an ephemeral port with its own temporary
// directory, AOF on with appendfsync always. The test waits for its "Ready to accept connections"
// line on the child's stdout (a pipe), never for a time.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace apollo_oauth::redis_test {

struct redis_server_options {
    /// Extra "--name value" arguments (e.g. {"--requirepass", "..."}).
    std::vector<std::string> arguments{};
    /// TLS only (the port is the TLS port): PEM files of the server's chain and key.
    std::string tls_cert_file{};
    std::string tls_key_file{};
    std::string tls_ca_file{};
};

class redis_server {
public:
    explicit redis_server(redis_server_options options = {});
    ~redis_server();
    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;

    std::uint16_t port() const noexcept { return port_; }
    pid_t pid() const noexcept { return pid_; }
    const std::string& directory() const noexcept { return dir_; }

    /// SIGKILL and reap (a crash: only what reached the AOF survives).
    void kill();
    /// Starts again on the same port and directory (reads the AOF back).
    void start();

private:
    redis_server_options options_;
    std::string dir_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
    int out_ = -1;
};

/// A free TCP port on 127.0.0.1 (bound and released: another process could take it meanwhile,
/// so redis_server retries with a new one when the server cannot bind).
std::uint16_t free_port();

}  // namespace apollo_oauth::redis_test
