// secret_string: wiping, constant-time comparison and redacted printing.
#include <apollo_oauth/secret.hpp>

#include <openssl/crypto.h>

#include <ostream>

namespace apollo_oauth {
namespace {

// Zeroes every byte the string owns, not only size(): [data(), data() + capacity()) is the
// string's storage for both the small-string buffer and a heap block, and an earlier, longer value
// may still sit past size(). Then empties the string (which rewrites the terminator).
void wipe(std::string& s) noexcept {
    if (s.capacity() != 0) {
        OPENSSL_cleanse(s.data(), s.capacity());
    }
    s.clear();
}

}  // namespace

secret_string::secret_string(secret_string&& other) noexcept : value_(std::move(other.value_)) {
    // A short value is copied out of the small-string buffer rather than stolen: wipe the source.
    other.clear();
}

secret_string& secret_string::operator=(const secret_string& other) {
    if (this != &other) {
        // Wiped first: if the assignment needs a larger block, the old one is freed already clean.
        wipe(value_);
        value_ = other.value_;
    }
    return *this;
}

secret_string& secret_string::operator=(secret_string&& other) noexcept {
    if (this != &other) {
        wipe(value_);
        value_ = std::move(other.value_);
        other.clear();
    }
    return *this;
}

secret_string::~secret_string() {
    wipe(value_);
}

void secret_string::clear() noexcept {
    wipe(value_);
}

bool operator==(const secret_string& a, const secret_string& b) noexcept {
    return constant_time_equal(a.value_, b.value_);
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
    // The length is not secret (tokens and states have public, fixed formats), so a length
    // mismatch may return at once; the contents are compared without an early exit.
    if (a.size() != b.size()) {
        return false;
    }
    if (a.empty()) {
        return true;
    }
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::ostream& operator<<(std::ostream& os, const secret_string& s) {
    return os << (s.empty() ? "[empty]" : "[redacted]");
}

}  // namespace apollo_oauth
