#include <apollo_oauth/emulator/server.hpp>

#include "emulator/certificates.hpp"
#include "emulator/consent.hpp"
#include "emulator/consent_page.hpp"
#include "emulator/https_listener.hpp"
#include "emulator/state.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace apollo_oauth::emulator {
namespace {

// The CA in a file for clients configured by path. mkstemp creates it 0600: a CA is not secret,
// but a world-writable trust anchor would be.
std::string write_ca_file(const std::string& pem) {
    std::string path = (std::filesystem::temp_directory_path() / "apollo_oauth_emulator_ca_XXXXXX").string();
    const int fd = ::mkstemp(path.data());
    if (fd < 0) {
        throw std::system_error(errno, std::generic_category(), "emulator: mkstemp");
    }
    std::size_t written = 0;
    while (written < pem.size()) {
        const ssize_t n = ::write(fd, pem.data() + written, pem.size() - written);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            const int error = errno;
            ::close(fd);
            ::unlink(path.c_str());
            throw std::system_error(error, std::generic_category(), "emulator: writing the CA file");
        }
        written += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return path;
}

// Removes the file even when a later member of server::impl fails to construct.
struct temp_file {
    explicit temp_file(std::string p) : path(std::move(p)) {}
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
    ~temp_file() { ::unlink(path.c_str()); }
    std::string path;
};

}  // namespace

struct server::impl {
    explicit impl(server_config config)
        : certificates(detail::make_certificate_chain(config.listen_address)),
          state(std::move(config)),
          consent(state.config().code_lifetime),
          ca_file(write_ca_file(certificates.ca_pem)),
          listener(state, consent, certificates, state.config().threads) {}

    detail::certificate_chain certificates;
    detail::oauth_state state;
    detail::consent_book consent;  ///< the consent page's pending decisions
    temp_file ca_file;
    detail::https_listener listener;  ///< last: stopped first, while the rest still exists
};

server::server(server_config config) : impl_(std::make_unique<impl>(std::move(config))) {}

server::~server() = default;

std::uint16_t server::port() const noexcept {
    return impl_->listener.port();
}
std::string server::base_url() const {
    const auto& host = impl_->state.config().listen_address;
    const bool v6 = host.find(':') != std::string::npos;
    return "https://" + (v6 ? "[" + host + "]" : host) + ':' + std::to_string(port());
}
std::string server::authorize_url() const {
    return base_url() + "/oauth/authorize";
}
std::string server::token_url() const {
    return base_url() + "/api/v1/oauth/token";
}
std::string server::profile_url() const {
    return base_url() + "/api/v1/users/api_profile";
}
std::string server::api_base() const {
    return base_url();
}

const std::string& server::ca_pem() const noexcept {
    return impl_->certificates.ca_pem;
}
const std::string& server::ca_file() const noexcept {
    return impl_->ca_file.path;
}
const server_config& server::config() const noexcept {
    return impl_->state.config();
}

std::string server::consent(const std::string& authorize_url) const {
    return detail::follow_authorize(authorize_url, impl_->certificates.ca_pem);
}

void server::deny_consent(bool deny) {
    impl_->state.deny_consent(deny);
}
void server::inject(fault f) {
    if (is_connection_fault(f.what)) {
        impl_->listener.inject(std::move(f));
    } else {
        impl_->state.inject(std::move(f));
    }
}
void server::clear_faults() {
    impl_->listener.clear_faults();
    impl_->state.clear_faults();
}
counters server::stats() const {
    return impl_->state.stats();
}
void server::set_expires_in(std::chrono::seconds expires_in) {
    impl_->state.set_expires_in(expires_in);
}

void server::revoke_access_token(const std::string& access_token) {
    impl_->state.revoke_access_token(access_token);
}

void server::expire_access_token(const std::string& access_token) {
    impl_->state.expire_access_token(access_token);
}

grant_stats server::grant_stats_of(const std::string& refresh_token) const {
    return impl_->state.grant_stats_of(refresh_token);
}

void server::revoke_grant_of_refresh_token(const std::string& refresh_token) {
    impl_->state.revoke_grant_of_refresh_token(refresh_token);
}

std::string server::newest_refresh_token_of(const std::string& any_refresh_token_of_grant) const {
    return impl_->state.newest_refresh_token_of(any_refresh_token_of_grant);
}

std::vector<std::string> server::issued_secrets() const {
    return impl_->state.issued_secrets();
}

}  // namespace apollo_oauth::emulator
