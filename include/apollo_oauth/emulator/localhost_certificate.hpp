// A throw-away certificate for a development HTTPS server on this machine (the web example's
// --self-signed), made by the same code as the emulator's own.
#pragma once

#include <string>

namespace apollo_oauth::emulator {

struct localhost_certificate {
    std::string ca_pem;    ///< a fresh CA: what a browser or client must trust
    std::string cert_pem;  ///< a leaf it signed for 127.0.0.1 and localhost (serverAuth)
    std::string key_pem;   ///< the leaf's private key, PKCS#8
};

/// Generates a new CA and leaf (EC P-256), valid from an hour ago to a day from now. Throws
/// std::runtime_error when OpenSSL fails.
localhost_certificate make_localhost_certificate();

}  // namespace apollo_oauth::emulator
