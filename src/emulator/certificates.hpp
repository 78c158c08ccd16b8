// A throw-away certificate chain for the emulator's TLS listener.
#pragma once

#include <string>

namespace apollo_oauth::emulator::detail {

struct certificate_chain {
    std::string ca_pem;         ///< self-signed CA certificate (what clients trust)
    std::string leaf_cert_pem;  ///< server certificate signed by the CA
    std::string leaf_key_pem;   ///< the leaf's private key (PKCS#8)
};

/// Generates a fresh CA (EC P-256, CA:TRUE, keyCertSign) and a leaf it signs for 127.0.0.1 and
/// localhost (serverAuth), both valid from an hour ago to a day from now. Throws
/// std::runtime_error when OpenSSL fails.
certificate_chain make_certificate_chain();

}  // namespace apollo_oauth::emulator::detail
