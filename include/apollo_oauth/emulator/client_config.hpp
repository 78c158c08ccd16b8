// A client configuration for talking to an emulator: its first registered client, its endpoints,
// and trust in its CA alone (the system store is off, verification stays on).
#pragma once

#include <apollo_oauth/config.hpp>
#include <apollo_oauth/emulator/server.hpp>

namespace apollo_oauth::emulator {

/// Header-only, so the emulator library needs nothing of the client's. Callers adjust deadlines,
/// pool size and the like on the result.
inline client_config client_config_for(const server& s) {
    const auto& registered = s.config().clients.front();
    client_config c;
    c.client_id = registered.client_id;
    c.client_secret = secret_string{registered.client_secret};
    c.redirect_uris = registered.redirect_uris;
    c.endpoints.authorize_url = s.authorize_url();
    c.endpoints.token_url = s.token_url();
    c.endpoints.profile_url = s.profile_url();
    c.endpoints.api_base = s.api_base();
    c.tls.use_system_trust_store = false;
    c.tls.ca_pem = s.ca_pem();
    return c;
}

}  // namespace apollo_oauth::emulator
