// SHA-256 through OpenSSL's EVP interface (the low-level SHA256_* calls are deprecated in 3.0).
#include "store/sha256.hpp"

#include <boost/algorithm/hex.hpp>

#include <algorithm>
#include <array>
#include <iterator>
#include <new>
#include <stdexcept>

namespace apollo_oauth::store {

sha256::sha256() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr) {
        throw std::bad_alloc();
    }
    if (EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
        EVP_MD_CTX_free(ctx_);
        throw std::runtime_error("OpenSSL SHA-256 failed");
    }
}

sha256::~sha256() {
    EVP_MD_CTX_free(ctx_);
}

void sha256::update(std::string_view bytes) {
    if (EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()) != 1) {
        throw std::runtime_error("OpenSSL SHA-256 failed");
    }
}

std::string sha256::hex_digest() {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_, digest.data(), &len) != 1) {
        throw std::runtime_error("OpenSSL SHA-256 failed");
    }
    std::string out;
    out.reserve(2 * len);
    boost::algorithm::hex_lower(digest.begin(), digest.begin() + len, std::back_inserter(out));
    return out;
}

std::string sha256_hex(std::string_view bytes) {
    sha256 h;
    h.update(bytes);
    return h.hex_digest();
}

bool is_lower_hex(std::string_view s) noexcept {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace apollo_oauth::store
