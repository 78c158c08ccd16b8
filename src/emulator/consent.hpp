// The browser part of the authorization: a blocking HTTPS GET of an authorize URL (and, in the
// consent page mode, the click on Approve).
#pragma once

#include <string>

namespace apollo_oauth::emulator::detail {

/// GETs `url` (https, host verified against the certificate, trusting only `ca_pem`) on a private
/// io_context and returns the Location of a 3xx answer. A consent page (server_config::consent_page)
/// is approved as a user would: its form posted back with its cookie. Throws std::runtime_error
/// ("consent: HTTP <status>: <page text>") for any other status, and std::runtime_error or
/// boost::system::system_error for a bad URL, TLS or network failure, or after 30 s.
std::string follow_authorize(const std::string& url, const std::string& ca_pem);

}  // namespace apollo_oauth::emulator::detail
