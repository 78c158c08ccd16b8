// secret_string: a string that is hard to leak.
//
// Client secrets, authorization codes, PKCE verifiers, access and refresh tokens are held in this
// type. It prints as "[redacted]", compares in constant time, and wipes its buffer (the one secure
// wipe, detail/secure_wipe.hpp) when destroyed or overwritten. The value is reachable only through
// reveal(), so every place that really needs the bytes (a request body, an Authorization header, a
// token file) is visible in a grep for "reveal(".
//
// A value of up to inline_capacity (64) bytes lives in the object itself: Apollo's tokens are 43
// characters, so copying one (what every token_cache::try_get does) never allocates. Longer
// values live in a heap block that is wiped before it is freed.
#pragma once

#include <apollo_oauth/detail/secure_wipe.hpp>

#include <cstdint>
#include <iosfwd>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>

namespace apollo_oauth {

namespace detail {
struct secret_inline_access;  ///< the cache's snapshot reads write a token's bytes in place
}  // namespace detail

class secret_string {
public:
    /// Values up to this many bytes are stored inline, without allocating.
    static constexpr std::size_t inline_capacity = 64;

    secret_string() noexcept : inline_{} {}
    /// A short value is copied inline and the caller's whole buffer wiped; a long one's heap block
    /// is adopted, its spare capacity wiped first.
    explicit secret_string(std::string&& value) noexcept;
    explicit secret_string(std::string_view value) : inline_{} { assign(value); }
    /// Throws std::invalid_argument for a null pointer: what std::getenv returns for a variable
    /// that is not set, which would otherwise be undefined behaviour, not an empty secret.
    explicit secret_string(const char* value) : secret_string(non_null(value)) {}

    secret_string(const secret_string& other) {
        if (other.on_heap_) [[unlikely]] {
            copy_heap_from(other);
        } else {
            copy_inline_from(other);
        }
    }
    /// A heap value is stolen (a pointer copy); an inline one is copied and the source wiped.
    secret_string(secret_string&& other) noexcept {
        if (other.on_heap_) [[unlikely]] {
            steal_heap_from(other);
        } else {
            copy_inline_from(other);
            other.wipe_inline();
        }
    }
    secret_string& operator=(const secret_string& other);
    secret_string& operator=(secret_string&& other) noexcept {
        if (this != &other) {
            release();
            take(other);
        }
        return *this;
    }
    ~secret_string() { release(); }

    /// The secret itself. Keep the result short-lived and never log it.
    std::string_view reveal() const noexcept {
        return on_heap_ ? std::string_view(heap_) : std::string_view(inline_, size_);
    }

    bool empty() const noexcept { return on_heap_ ? heap_.empty() : size_ == 0; }
    std::size_t size() const noexcept { return on_heap_ ? heap_.size() : size_; }

    /// Replaces the value, wiping the old one. Allocates only when `value` is longer than
    /// inline_capacity. `value` must not point into this object.
    void assign(std::string_view value);

    /// Wipes and empties.
    void clear() noexcept { release(); }

    /// Constant-time in the contents (the length is not secret).
    friend bool operator==(const secret_string& a, const secret_string& b) noexcept;

private:
    friend struct detail::secret_inline_access;

    static std::string_view non_null(const char* value) {
        if (value == nullptr) {
            throw std::invalid_argument(
                "secret_string: a null pointer (an environment variable that is not set?)");
        }
        return value;
    }

    // Invariant: when the value is inline, inline_[size_, inline_capacity) is zero. So an inline
    // copy moves the whole fixed-size buffer (a few vector moves, no length-dependent loop or
    // call) and an inline wipe is a fixed 64-byte store. These inline paths are what a token
    // passing through Asio's completion machinery pays at every move (try_get and async_get's hot
    // path move one several times), so they are branch-light and inline; the heap paths, which
    // no Apollo token takes, are out of line (secret.cpp).
    void copy_inline_from(const secret_string& other) noexcept {
        std::memcpy(inline_, other.inline_, inline_capacity);
        size_ = other.size_;
        on_heap_ = false;
    }
    void wipe_inline() noexcept {
        detail::secure_wipe_fixed(inline_);
        size_ = 0;
    }
    void take(secret_string& other) noexcept {
        if (other.on_heap_) [[unlikely]] {
            steal_heap_from(other);
        } else {
            copy_inline_from(other);
            other.wipe_inline();
        }
    }
    void release() noexcept {
        if (on_heap_) [[unlikely]] {
            release_heap();
        } else if (size_ != 0) {
            wipe_inline();
        }
    }
    // The heap paths: a value longer than inline_capacity. Each leaves `other`, or this object,
    // in the all-zero inline state when it gives the value up.
    void copy_heap_from(const secret_string& other);
    void steal_heap_from(secret_string& other) noexcept;
    void release_heap() noexcept;

    union {
        char inline_[inline_capacity];  ///< written whole by every constructor that does not make heap_
        std::string heap_;              ///< only when on_heap_, and then longer than inline_capacity
    };
    std::uint32_t size_ = 0;  ///< the inline value's length
    bool on_heap_ = false;
};

/// Constant-time equality of two byte strings of possibly different lengths.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

/// Always prints "[redacted]" (or "[empty]"), never the value.
std::ostream& operator<<(std::ostream& os, const secret_string& s);

}  // namespace apollo_oauth
