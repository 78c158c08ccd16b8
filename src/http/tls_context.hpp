// The client's TLS context: TLS 1.2+, peer verification on, trust from the system store and/or
// the configured CA file and PEM text, received plaintext cleansed from OpenSSL's buffers.
#pragma once

#include <apollo_oauth/config.hpp>

#include <boost/asio/ssl/context.hpp>

namespace apollo_oauth::http {

/// Throws boost::system::system_error (with the ssl error, no path contents) when the CA file or
/// PEM cannot be loaded.
boost::asio::ssl::context make_client_tls_context(const tls_config& config);

/// Sets SNI (for names, not IP literals) and the name the peer certificate must match, on a
/// connection about to handshake. Returns an error when OpenSSL refuses the name.
error_code prepare_tls_peer(::SSL* ssl, const std::string& host);

}  // namespace apollo_oauth::http
