// A throw-away certificate for login's loopback listener, when none is given.
#pragma once

#include <string>

namespace apollo_oauth::cli {

struct listener_certificate {
    std::string cert_pem;
    std::string key_pem;
    /// SHA-256 of the certificate (DER), "AB:CD:...": what a browser shows in its warning.
    std::string fingerprint;
};

/// A self-signed EC P-256 certificate for 127.0.0.1, ::1 and localhost, valid from an hour ago
/// to a day from now. Throws std::runtime_error when OpenSSL fails.
listener_certificate make_self_signed_certificate();

/// The "AB:CD:..." SHA-256 fingerprint of the first certificate in `cert_pem`; throws when none.
std::string certificate_fingerprint(const std::string& cert_pem);

}  // namespace apollo_oauth::cli
