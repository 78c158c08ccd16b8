// secret_string: a string that is hard to leak.
//
// Client secrets, authorization codes, PKCE verifiers, access and refresh tokens are held in this
// type. It prints as "[redacted]", compares in constant time, and wipes its buffer with
// OPENSSL_cleanse when destroyed or overwritten. The value is reachable only through reveal(), so
// every place that really needs the bytes (a request body, an Authorization header, a token
// file) is visible in a grep for "reveal(".
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>

namespace apollo_oauth {

class secret_string {
public:
    secret_string() = default;
    /// Adopts `value`'s buffer and wipes what the move leaves behind in `value`.
    explicit secret_string(std::string&& value) noexcept;
    explicit secret_string(std::string_view value) : value_(value) {}
    explicit secret_string(const char* value) : value_(value) {}

    secret_string(const secret_string& other) : value_(other.value_) {}
    /// A heap value is stolen, so the hot move is a pointer copy; a short value is copied out of
    /// the small-string buffer, and the source's buffer is then wiped.
    secret_string(secret_string&& other) noexcept : value_(std::move(other.value_)) {
        // libstdc++ and libc++ copy a short value into the new object's own buffer and steal a
        // heap block: an inline result means the source still holds the characters.
        if (!value_.empty() && stored_inline(value_)) {
            wipe(other.value_);
        }
    }
    secret_string& operator=(const secret_string& other);
    secret_string& operator=(secret_string&& other) noexcept;
    ~secret_string() {
        // An empty inline string holds no secret: whatever emptied it wiped it (see wipe).
        if (!(value_.empty() && stored_inline(value_))) {
            wipe(value_);
        }
    }

    /// The secret itself. Keep the result short-lived and never log it.
    std::string_view reveal() const noexcept { return value_; }

    bool empty() const noexcept { return value_.empty(); }
    std::size_t size() const noexcept { return value_.size(); }

    /// Wipes and empties.
    void clear() noexcept;

    /// Constant-time in the contents (the length is not secret).
    friend bool operator==(const secret_string& a, const secret_string& b) noexcept;

private:
    static bool stored_inline(const std::string& s) noexcept {
        const auto* object = reinterpret_cast<const char*>(&s);
        return s.data() >= object && s.data() < object + sizeof(std::string);
    }
    /// Zeroes [data(), data() + capacity()) with OPENSSL_cleanse, then empties the string.
    static void wipe(std::string& s) noexcept;

    std::string value_;
};

/// Constant-time equality of two byte strings of possibly different lengths.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

/// Always prints "[redacted]" (or "[empty]"), never the value.
std::ostream& operator<<(std::ostream& os, const secret_string& s);

}  // namespace apollo_oauth
