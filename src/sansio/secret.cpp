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

void secret_string::copy_heap_from(const secret_string& other) {
    new (&heap_) std::string(other.heap_);
    on_heap_ = true;
}

void secret_string::steal_heap_from(secret_string& other) noexcept {
    new (&heap_) std::string(std::move(other.heap_));  // > inline_capacity: always stolen
    on_heap_ = true;
    other.release_heap();
}

void secret_string::release_heap() noexcept {
    detail::wipe(heap_);
    heap_.~basic_string();
    on_heap_ = false;
    // The union's bytes held the string object (no secret): back to the all-zero inline state.
    // A copy, not a memset: memcpy (unlike memset) begins the inline array's lifetime, which the
    // string's destruction ended, so that reading it later is defined.
    static constexpr char zeros[inline_capacity]{};
    std::memcpy(inline_, zeros, inline_capacity);
    size_ = 0;
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
