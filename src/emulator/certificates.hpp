// A throw-away certificate chain for the emulator's TLS listener.
#pragma once

#include <string>

namespace apollo_oauth::emulator::detail {

struct certificate_chain {
    std::string ca_pem;         ///< self-signed CA certificate (what clients trust)
    std::string leaf_cert_pem;  ///< server certificate signed by the CA
    std::string leaf_key_pem;   ///< the leaf's private key (PKCS#8)
    // Leaves for the TLS faults: signed by the same CA with the same key, so that exactly one
    // thing is wrong with each.
    std::string wrong_name_cert_pem;  ///< for other.example.com only
    std::string expired_cert_pem;     ///< 127.0.0.1 and localhost, expired a day ago
};

/// Generates a fresh CA (EC P-256, CA:TRUE, keyCertSign) and a leaf it signs for 127.0.0.1 and
/// localhost (serverAuth), both valid from an hour ago to a day from now, and the two faulty leaves.
/// Throws std::runtime_error when OpenSSL fails.
/// `listen_address`: an IP literal the leaf names too (when it is not 127.0.0.1).
certificate_chain make_certificate_chain(const std::string& listen_address = "127.0.0.1");

}  // namespace apollo_oauth::emulator::detail
