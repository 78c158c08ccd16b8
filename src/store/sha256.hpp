// SHA-256 (OpenSSL EVP) as lowercase hex: record file names and record checksums.
#pragma once

#include <openssl/evp.h>

#include <string>
#include <string_view>

namespace apollo_oauth::store {

/// Incremental, so a checksum can cover a record's text in pieces without copying it.
class sha256 {
public:
    sha256();
    ~sha256();
    sha256(const sha256&) = delete;
    sha256& operator=(const sha256&) = delete;

    void update(std::string_view bytes);
    /// 64 lowercase hex digits. Call once.
    std::string hex_digest();

private:
    EVP_MD_CTX* ctx_;
};

std::string sha256_hex(std::string_view bytes);

/// Only 0-9 and a-f: the digest alphabet, checked before a name or a checksum is trusted.
bool is_lower_hex(std::string_view s) noexcept;

}  // namespace apollo_oauth::store
