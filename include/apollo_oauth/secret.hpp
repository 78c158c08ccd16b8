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
    explicit secret_string(std::string value) noexcept : value_(std::move(value)) {}
    explicit secret_string(std::string_view value) : value_(value) {}
    explicit secret_string(const char* value) : value_(value) {}

    secret_string(const secret_string& other) : value_(other.value_) {}
    secret_string(secret_string&& other) noexcept;
    secret_string& operator=(const secret_string& other);
    secret_string& operator=(secret_string&& other) noexcept;
    ~secret_string();

    /// The secret itself. Keep the result short-lived and never log it.
    std::string_view reveal() const noexcept { return value_; }

    bool empty() const noexcept { return value_.empty(); }
    std::size_t size() const noexcept { return value_.size(); }

    /// Wipes and empties.
    void clear() noexcept;

    /// Constant-time in the contents (the length is not secret).
    friend bool operator==(const secret_string& a, const secret_string& b) noexcept;

private:
    std::string value_;
};

/// Constant-time equality of two byte strings of possibly different lengths.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

/// Always prints "[redacted]" (or "[empty]"), never the value.
std::ostream& operator<<(std::ostream& os, const secret_string& s);

}  // namespace apollo_oauth
