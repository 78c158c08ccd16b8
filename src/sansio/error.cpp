// The "apollo_oauth" error category, the RFC 6749 error-string mapping and diagnostics printing.
#include <apollo_oauth/error.hpp>

#include "sansio/escaped_text.hpp"

#include <array>
#include <cstdio>
#include <ostream>
#include <string_view>
#include <utility>

namespace apollo_oauth {
namespace {

// Fixed text only: a message never carries server-controlled or secret bytes (those travel in
// diagnostics), so an error_code can be logged anywhere.
const char* describe(int ev) noexcept {
    switch (static_cast<errc>(ev)) {
        case errc::invalid_request:
            return "invalid request (RFC 6749 invalid_request)";
        case errc::invalid_client:
            return "client authentication failed (RFC 6749 invalid_client)";
        case errc::invalid_grant:
            return "authorization code or refresh token is invalid, expired or revoked "
                   "(RFC 6749 invalid_grant)";
        case errc::unauthorized_client:
            return "client is not authorized for this grant type (RFC 6749 unauthorized_client)";
        case errc::unsupported_grant_type:
            return "grant type not supported by the server (RFC 6749 unsupported_grant_type)";
        case errc::invalid_scope:
            return "requested scope is invalid (RFC 6749 invalid_scope)";
        case errc::access_denied:
            return "the user or server denied the request (RFC 6749 access_denied)";
        case errc::unsupported_response_type:
            return "response type not supported (RFC 6749 unsupported_response_type)";
        case errc::server_error:
            return "authorization server error (RFC 6749 server_error)";
        case errc::temporarily_unavailable:
            return "authorization server temporarily unavailable (RFC 6749 temporarily_unavailable)";
        case errc::unknown_oauth_error:
            return "OAuth error not defined by RFC 6749";
        case errc::invalid_callback:
            return "callback URL cannot be parsed";
        case errc::missing_state:
            return "callback has no state parameter";
        case errc::unknown_state:
            return "callback state was not issued here";
        case errc::state_expired:
            return "callback state has expired";
        case errc::state_reused:
            return "callback state was already used";
        case errc::missing_code:
            return "callback has neither code nor error";
        case errc::invalid_configuration:
            return "invalid client configuration";
        case errc::insecure_redirect_uri:
            return "redirect URI is not https";
        case errc::redirect_uri_not_registered:
            return "redirect URI is not registered";
        case errc::invalid_url:
            return "invalid URL";
        case errc::invalid_argument:
            return "invalid argument";
        case errc::unexpected_status:
            return "unexpected HTTP status";
        case errc::malformed_response:
            return "malformed response";
        case errc::missing_field:
            return "required field missing from response";
        case errc::wrong_field_type:
            return "response field has the wrong type";
        case errc::unsupported_token_type:
            return "token type is not Bearer";
        case errc::invalid_token_response:
            return "access token holds characters a Bearer header cannot carry";
        case errc::unauthorized:
            return "access token rejected (HTTP 401)";
        case errc::rate_limited:
            return "rate limited (HTTP 429)";
        case errc::reauthorization_required:
            return "authorization is gone: the user must authorize again";
        case errc::unknown_account:
            return "no tokens stored for this account";
        case errc::store_failure:
            return "token store failed to persist tokens";
        case errc::generation_conflict:
            return "the token store holds another generation of this account's tokens";
        case errc::corrupt_record:
            return "a token store record is unreadable";
        case errc::lease_lost:
            return "the token store's refresh lease is held by someone else now";
        case errc::coordination_unavailable:
            return "the shared token store cannot be reached to coordinate a refresh";
        case errc::shutting_down:
            return "operation aborted: shutting down";
        case errc::session_required:
            return "the authorization names no browser session to bind its state to "
                   "(authorization_request::session; any_browser for a one-user program)";
    }
    return "unknown apollo_oauth error";
}

class category_impl final : public boost::system::error_category {
public:
    // A fixed id makes categories from different shared objects compare equal.
    category_impl() noexcept : error_category(0x8f3a'61c2'd4b7'0e59ULL) {}

    const char* name() const noexcept override { return "apollo_oauth"; }
    std::string message(int ev) const override { return describe(ev); }
    const char* message(int ev, char*, std::size_t) const noexcept override { return describe(ev); }
};

constexpr std::array<std::pair<std::string_view, errc>, 10> oauth_errors{{
    {"invalid_request", errc::invalid_request},
    {"invalid_client", errc::invalid_client},
    {"invalid_grant", errc::invalid_grant},
    {"unauthorized_client", errc::unauthorized_client},
    {"unsupported_grant_type", errc::unsupported_grant_type},
    {"invalid_scope", errc::invalid_scope},
    {"access_denied", errc::access_denied},
    {"unsupported_response_type", errc::unsupported_response_type},
    {"server_error", errc::server_error},
    {"temporarily_unavailable", errc::temporarily_unavailable},
}};

}  // namespace

// Server text goes to logs: control bytes are escaped so a description cannot forge log lines.
void sansio::print_escaped(std::ostream& os, std::string_view text) {
    for (char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", byte);
            os << buf;
        } else {
            os << c;
        }
    }
}

const boost::system::error_category& category() noexcept {
    static const category_impl instance;
    return instance;
}

errc errc_from_oauth_error(std::string_view error) noexcept {
    for (const auto& [name, code] : oauth_errors) {
        if (name == error) {
            return code;
        }
    }
    return errc::unknown_oauth_error;
}

std::ostream& operator<<(std::ostream& os, const diagnostics& d) {
    const char* sep = "";
    if (d.http_status != 0) {
        os << "http_status=" << d.http_status;
        sep = " ";
    }
    const std::pair<const char*, const std::string*> parts[] = {{"error=", &d.error},
                                                                {"description=", &d.error_description},
                                                                {"uri=", &d.error_uri},
                                                                {"scope=", &d.scope}};
    for (const auto& [label, value] : parts) {
        if (!value->empty()) {
            os << sep << label;
            sansio::print_escaped(os, *value);
            sep = " ";
        }
    }
    if (d.retry_after) {
        os << sep << "retry_after=" << d.retry_after->count() << 's';
    }
    return os;
}

}  // namespace apollo_oauth
