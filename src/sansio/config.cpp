// client_config validation.
#include <apollo_oauth/config.hpp>

#include "sansio/url.hpp"

#include <algorithm>

namespace apollo_oauth {
namespace {

// Failures name the field and the rule, never a value: client_secret must not leak, and the
// other values are the caller's own anyway.
error_code fail(std::string* what, error_code ec, std::string message) {
    if (what) {
        *what = std::move(message);
    }
    return ec;
}

// RFC 6749 Appendix A.1: client_id = *VSCHAR (%x20-7E); empty is refused here.
bool is_valid_client_id(std::string_view id) noexcept {
    return !id.empty() && std::all_of(id.begin(), id.end(), [](char c) {
        const auto b = static_cast<unsigned char>(c);
        return b >= 0x20 && b <= 0x7e;
    });
}

}  // namespace

// Codes: a redirect URI reports check_redirect_uri's own code (errc::invalid_url or
// errc::insecure_redirect_uri), an endpoint errc::invalid_url, everything else
// errc::invalid_configuration; `what` always names the field.
error_code validate(const client_config& config, std::string* what) {
    const error_code bad_config = errc::invalid_configuration;
    if (!is_valid_client_id(config.client_id)) {
        return fail(what, bad_config, "client_id: must be non-empty printable ASCII");
    }
    if (config.client_secret.empty()) {
        return fail(what, bad_config, "client_secret: must not be empty");
    }

    const auto& uris = config.redirect_uris;
    if (uris.empty() || uris.size() > max_redirect_uris) {
        return fail(what, bad_config, "redirect_uris: between 1 and 4 are required");
    }
    for (std::size_t i = 0; i < uris.size(); ++i) {
        if (auto ec = sansio::check_redirect_uri(uris[i], config.allow_loopback_http_redirect)) {
            const bool insecure = ec == errc::insecure_redirect_uri;
            return fail(what, ec,
                        "redirect_uris[" + std::to_string(i) + "]: " +
                            (insecure ? "must be https (or loopback http when allowed)"
                                      : "must be an absolute URL without fragment or userinfo"));
        }
    }

    const auto& ep = config.endpoints;
    const error_code bad_url = errc::invalid_url;
    if (sansio::check_authorize_base(ep.authorize_url)) {
        return fail(what, bad_url, "endpoints.authorize_url: must be an absolute https URL");
    }
    if (!sansio::parse_https_url(ep.token_url)) {
        return fail(what, bad_url, "endpoints.token_url: must be an absolute https URL without fragment");
    }
    if (!sansio::parse_https_url(ep.profile_url)) {
        return fail(what, bad_url, "endpoints.profile_url: must be an absolute https URL without fragment");
    }
    // Request targets are appended to api_base, so it may carry no path or query of its own.
    auto api = sansio::parse_https_url(ep.api_base);
    if (!api || api->target != "/") {
        return fail(what, bad_url, "endpoints.api_base: must be https://host[:port] with no path");
    }

    // Without any trust anchor every TLS handshake would fail: say so now rather than per request.
    if (!config.tls.use_system_trust_store && config.tls.ca_file.empty() && config.tls.ca_pem.empty()) {
        return fail(what, bad_config, "tls: no trust anchors (system store off, no ca_file, no ca_pem)");
    }

    const auto& t = config.timeouts;
    const std::pair<const char*, std::chrono::milliseconds> phases[] = {
        {"timeouts.resolve", t.resolve},
        {"timeouts.connect", t.connect},
        {"timeouts.tls_handshake", t.tls_handshake},
        {"timeouts.write", t.write},
        {"timeouts.response_header", t.response_header},
        {"timeouts.response_body", t.response_body},
    };
    for (const auto& [name, value] : phases) {
        if (value <= std::chrono::milliseconds::zero()) {
            return fail(what, bad_config, std::string(name) + ": must be positive");
        }
    }

    const auto& l = config.limits;
    const std::pair<const char*, std::size_t> sizes[] = {
        {"limits.header_bytes", l.header_bytes},
        {"limits.token_body_bytes", l.token_body_bytes},
        {"limits.api_body_bytes", l.api_body_bytes},
    };
    for (const auto& [name, value] : sizes) {
        if (value == 0) {
            return fail(what, bad_config, std::string(name) + ": must be positive");
        }
    }
    // Past this a token response can bring a pair the store refuses to write (a record over the
    // file store's 1 MiB): the cache would keep the only live refresh token in memory alone. The
    // bound is derived beside the record codec (store/record_codec.cpp).
    if (l.header_bytes > max_header_bytes) {
        return fail(what, bad_config, "limits.header_bytes: must be at most 60 KiB");
    }
    if (l.token_body_bytes > max_token_body_bytes) {
        return fail(what, bad_config, "limits.token_body_bytes: must be at most 192 KiB");
    }

    if (config.pool.max_connections_per_host < 1) {
        return fail(what, bad_config, "pool.max_connections_per_host: must be at least 1");
    }
    if (config.pool.idle_timeout < std::chrono::milliseconds::zero()) {
        return fail(what, bad_config, "pool.idle_timeout: must not be negative");
    }
    if (config.state_lifetime <= std::chrono::seconds::zero()) {
        return fail(what, bad_config, "state_lifetime: must be positive");
    }
    // A pending authorization is a login in progress, and its expiry is computed on system_clock
    // (nanoseconds): a lifetime of centuries would overflow into the past.
    if (config.state_lifetime > max_state_lifetime) {
        return fail(what, bad_config, "state_lifetime: must be at most a year");
    }
    // A zero lifetime would make every token expired on arrival and refresh on every call.
    if (config.assumed_lifetime <= std::chrono::seconds::zero()) {
        return fail(what, bad_config, "assumed_lifetime: must be positive");
    }
    if (config.minimum_lifetime <= std::chrono::seconds::zero()) {
        return fail(what, bad_config, "minimum_lifetime: must be positive");
    }
    return {};
}

error_code validate(const client_config& config, diagnostics& diag) {
    diag.clear();
    std::string what;
    const auto ec = validate(config, &what);
    if (ec) {
        // "field: rule": the field is the error, as diagnostics::error names an offending field.
        const auto colon = what.find(": ");
        diag.error = what.substr(0, colon);
        diag.error_description = colon == std::string::npos ? std::string{} : what.substr(colon + 2);
    }
    return ec;
}

}  // namespace apollo_oauth
