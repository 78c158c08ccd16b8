// The few cryptographic helpers the emulator needs, on OpenSSL. Private equivalents of the sans-io
// helpers, so the emulator does not wait for (or mask bugs in) the code it is used to test.
#pragma once

#include <string>
#include <string_view>

namespace apollo_oauth::emulator::detail {

/// 32 bytes from OpenSSL's CSPRNG as unpadded base64url: 43 characters, Apollo's token length.
std::string random_token();

/// RFC 7636 §4.2: BASE64URL(SHA256(verifier)).
std::string pkce_s256(std::string_view verifier);

/// Compares secrets in time independent of where they differ.
bool secrets_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace apollo_oauth::emulator::detail
