// State and PKCE material from OpenSSL's CSPRNG (RAND_bytes); a cheap draw for jitter.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace apollo_oauth::sansio {

/// `bytes` random bytes as unpadded base64url. Throws std::runtime_error if the CSPRNG fails
/// (never falls back to a weaker source).
std::string random_base64url(std::size_t bytes);

/// 32 random bytes (256 bits) as base64url: 43 characters.
std::string make_state();

/// RFC 7636: a verifier of 32 random bytes as base64url (43 characters, within 43..128).
std::string make_code_verifier();

/// RFC 7636 §4.2 S256: BASE64URL(SHA256(ASCII(code_verifier))).
std::string code_challenge_s256(std::string_view code_verifier);

/// A uniform draw in [0, 1) to spread waits with: never for a secret. Not from the CSPRNG above
/// (RAND_bytes may fail, and throw, where a wait must simply be chosen): from a minstd_rand per
/// thread, seeded on the thread's first draw from random_device (or, when it throws, from the time
/// and the thread), so that threads and processes draw apart. Never throws. Safe from any number
/// of threads at once: none shares its generator.
double jitter_draw() noexcept;

}  // namespace apollo_oauth::sansio
