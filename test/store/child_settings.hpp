// The client settings a test or benchmark hands to the child processes it starts, in a file only
// its owner can read: a command line is readable by every local user (/proc/<pid>/cmdline), so the
// client secret never goes there. key=value lines: token_url, client_id, client_secret,
// redirect_uri, ca_file.
#pragma once

#include <apollo_oauth/config.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

namespace apollo_oauth::store_test {

/// Writes `config`'s client settings, the children trusting `ca_file`. The file is created 0600,
/// so it is never readable by others, not even between its creation and a chmod.
inline void write_child_settings(const std::string& path, const client_config& config,
                                 const std::string& ca_file) {
    std::ostringstream text;
    text << "token_url=" << config.endpoints.token_url << "\nclient_id=" << config.client_id
         << "\nclient_secret=" << config.client_secret.reveal()
         << "\nredirect_uri=" << config.redirect_uris.front() << "\nca_file=" << ca_file << '\n';
    const auto bytes = text.str();
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const bool written =
        fd >= 0 && ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    if (fd >= 0) {
        ::close(fd);
    }
    if (!written) {
        throw std::runtime_error("cannot write " + path);
    }
}

/// A child's client configuration: TLS verified against the settings' CA file alone.
inline client_config read_child_settings(const std::string& path) {
    std::map<std::string, std::string> settings;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        const auto eq = line.find('=');
        if (eq != std::string::npos) {
            settings[line.substr(0, eq)] = line.substr(eq + 1);
        }
    }
    client_config config;
    config.client_id = settings.at("client_id");
    config.client_secret = secret_string{settings.at("client_secret")};
    config.redirect_uris = {settings.at("redirect_uri")};
    config.endpoints.token_url = settings.at("token_url");
    config.tls.use_system_trust_store = false;
    config.tls.ca_file = settings.at("ca_file");
    return config;
}

}  // namespace apollo_oauth::store_test
