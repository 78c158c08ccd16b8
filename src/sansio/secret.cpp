// secret_string: wiping, constant-time comparison and redacted printing.
#include <apollo_oauth/secret.hpp>

#include <openssl/crypto.h>

#include <ostream>

namespace apollo_oauth {

// Zeroes every byte the string owns, not only size(): [data(), data() + capacity()) is the
// string's storage for both the small-string buffer and a heap block, and an earlier, longer value
// may still sit past size(). Then empties the string (which rewrites the terminator).
//
// Invariant: an empty string stored inline holds no secret, because every path that empties one
// (clear, a move out of it, this wipe) zeroes what it held. The destructor and clear() rely on it
// to skip the many moved-from temporaries of an asynchronous completion.
void secret_string::wipe(std::string& s) noexcept {
    if (s.capacity() != 0) {
        OPENSSL_cleanse(s.data(), s.capacity());
    }
    s.clear();
}

secret_string::secret_string(std::string&& value) noexcept {
    // Bytes past size() of the caller's block are not ours to trust: zero them before adopting it.
    if (!stored_inline(value) && value.capacity() > value.size()) {
        OPENSSL_cleanse(value.data() + value.size(), value.capacity() - value.size());
    }
    value_ = std::move(value);
    if (stored_inline(value_) && !value_.empty()) {
        wipe(value);  // a short value was copied: the caller's buffer still holds it
    }
}

secret_string& secret_string::operator=(const secret_string& other) {
    if (this != &other) {
        // Wiped first: if the assignment needs a larger block, the old one is freed already clean.
        clear();
        value_ = other.value_;
    }
    return *this;
}

secret_string& secret_string::operator=(secret_string&& other) noexcept {
    if (this != &other) {
        clear();
        const bool was_inline = stored_inline(other.value_);
        value_ = std::move(other.value_);
        if (was_inline) {
            wipe(other.value_);  // copied, not stolen
        }
        other.value_.clear();
    }
    return *this;
}

void secret_string::clear() noexcept {
    if (!(value_.empty() && stored_inline(value_))) {
        wipe(value_);
    }
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
