// secret_string: assignment, constant-time comparison and redacted printing.
#include <apollo_oauth/secret.hpp>

#include <openssl/crypto.h>

#include <ostream>

namespace apollo_oauth {

secret_string::secret_string(std::string&& value) noexcept : inline_{} {
    if (value.size() <= inline_capacity) {
        std::memcpy(inline_, value.data(), value.size());
        size_ = static_cast<std::uint32_t>(value.size());
        detail::wipe(value);  // copied, not adopted: the caller's buffer still holds it
        return;
    }
    // Bytes past size() of the caller's block are not ours to trust: zero them before adopting it.
    detail::secure_wipe(value.data() + value.size(), value.capacity() - value.size());
    new (&heap_) std::string(std::move(value));
    on_heap_ = true;
}

void secret_string::assign(std::string_view value) {
    release();
    if (value.size() <= inline_capacity) {
        std::memcpy(inline_, value.data(), value.size());
        size_ = static_cast<std::uint32_t>(value.size());
        return;
    }
    new (&heap_) std::string(value);
    on_heap_ = true;
}

secret_string& secret_string::operator=(const secret_string& other) {
    if (this != &other) {
        if (other.on_heap_) {
            assign(other.reveal());
        } else {
            release();
            copy_inline_from(other);
        }
    }
    return *this;
}

secret_string& secret_string::operator=(secret_string&& other) noexcept {
    if (this != &other) {
        release();
        take(other);
    }
    return *this;
}

bool operator==(const secret_string& a, const secret_string& b) noexcept {
    return constant_time_equal(a.reveal(), b.reveal());
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
