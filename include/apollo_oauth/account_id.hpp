// apollo_oauth::account_id: the account argument of token_cache::async_get, copied into the
// operation without allocating.
//
// Why a type of its own: an asynchronous operation keeps its own copy of its arguments (a
// deferred or use_awaitable operation runs after the call that made it returns, and the caller's
// string may be gone by then). A std::string parameter makes that copy on every get, and an id of
// Apollo's length (24 characters) is past libstdc++'s 15-byte small-string buffer, so every get of
// a valid token paid a heap allocation and a free for the copy (about 10 ns of the hot path,
// bench/README.md). account_id keeps ids of up to 32 bytes inline; a longer one is held in a
// std::string (moved in when the caller gives up its own).
//
// Made implicitly from a std::string, a std::string_view, a string literal or a non-null
// const char*, and from any other type that converts implicitly to std::string_view (such as
// boost::core::string_view, which Beast, URL and JSON use). No default constructor: an operation
// is always for an account. A moved-from account_id holds a valid but unspecified id.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace apollo_oauth {

/// The longest account id token_cache takes: a get or store for a longer one fails with
/// errc::invalid_argument before any store sees it. Apollo's ids are 24 characters; 1 KiB leaves
/// room for an application's own keys ("tenant/user@example.com"). Why a bound at all: a
/// rotated pair must be writable. The file store's record (1 MiB) holds the largest pair token
/// responses can bring (config.hpp, max_token_body_bytes) and an id of this length with room to
/// spare; an id of hundreds of kilobytes would make every write of its pair fail, leaving the
/// only live refresh token in memory.
inline constexpr std::size_t max_account_id_bytes = 1024;

class account_id final {
public:
    /// Ids of up to this many bytes are kept inline.
    static constexpr std::size_t inline_capacity = 32;

    account_id(std::string_view id) : size_(id.size()) {  // NOLINT(google-explicit-constructor)
        if (is_long()) {
            ::new (static_cast<void*>(&long_)) std::string(id);
        } else {
            set_inline(id.data());
        }
    }
    account_id(const std::string& id)
        : account_id(std::string_view(id)) {}  // NOLINT(google-explicit-constructor)
    /// Takes a long id's buffer instead of copying it.
    account_id(std::string&& id) : size_(id.size()) {  // NOLINT(google-explicit-constructor)
        if (is_long()) {
            ::new (static_cast<void*>(&long_)) std::string(std::move(id));
        } else {
            set_inline(id.data());
        }
    }
    account_id(const char* id) : account_id(std::string_view(id)) {}  // NOLINT(google-explicit-constructor)
    account_id(std::nullptr_t) = delete;
    /// Any other string type that converts to std::string_view (one conversion, not two).
    template <class Text>
    requires(std::is_convertible_v<const Text&, std::string_view> &&
             !std::is_convertible_v<const Text&, const char*> && !std::is_same_v<Text, std::string> &&
             !std::is_same_v<Text, std::string_view> && !std::is_same_v<Text, account_id>)
        account_id(const Text& id)
        : account_id(std::string_view(id)) {}  // NOLINT(google-explicit-constructor)

    // A short id is copied by its whole inline buffer (a fixed 32 bytes: a few register moves,
    // where a copy of the id's own length is a call to memcpy); a long one allocates.
    account_id(const account_id& other) : size_(other.size_) {
        if (is_long()) {
            ::new (static_cast<void*>(&long_)) std::string(other.long_);
        } else {
            std::memcpy(inline_, other.inline_, inline_capacity);
        }
    }
    // The operation moves its copy along twice before it runs: each move copies the inline
    // buffer whole, or takes a long id's string, and never allocates.
    account_id(account_id&& other) noexcept : size_(other.size_) {
        if (is_long()) {
            ::new (static_cast<void*>(&long_)) std::string(std::move(other.long_));
        } else {
            std::memcpy(inline_, other.inline_, inline_capacity);
        }
    }
    account_id& operator=(const account_id& other) {
        if (this != &other) {
            *this = account_id(other);
        }
        return *this;
    }
    account_id& operator=(account_id&& other) noexcept {
        if (this != &other) {
            this->~account_id();
            ::new (static_cast<void*>(this)) account_id(std::move(other));
        }
        return *this;
    }
    ~account_id() {
        if (is_long()) {
            long_.~basic_string();
        }
    }

    std::string_view view() const noexcept {
        return is_long() ? std::string_view(long_) : std::string_view(inline_, size_);
    }
    /// The id as a std::string.
    std::string to_string() const& { return std::string(view()); }
    /// The same, a long id's buffer moved out (the id is left unspecified).
    std::string to_string() && { return is_long() ? std::move(long_) : std::string(view()); }

private:
    bool is_long() const noexcept { return size_ > inline_capacity; }
    /// A short id into the inline buffer, written whole (zeros after the id), so that a copy or
    /// move may copy all of it.
    void set_inline(const char* data) noexcept {
        std::memset(inline_, 0, inline_capacity);
        if (size_ != 0) {  // an empty view's data() may be null, which memcpy may not be given
            std::memcpy(inline_, data, size_);
        }
    }

    std::size_t size_;
    union {
        char inline_[inline_capacity];  ///< the id, then zeros: always written whole
        std::string long_;              ///< alive when size_ > inline_capacity
    };
};

}  // namespace apollo_oauth
