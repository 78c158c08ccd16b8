// Writing a short secret's bytes in place: the cache's snapshot table copies a token from its
// seqlock words straight into the caller's secret_string, instead of into a stack buffer that is
// then copied again and wiped. Private to the library (secret_string befriends it).
#pragma once

#include <apollo_oauth/secret.hpp>

#include <cstdint>

namespace apollo_oauth::detail {

struct secret_inline_access {
    static constexpr std::size_t capacity = secret_string::inline_capacity;

    /// Empties `s` (wiping what it held) and returns its inline buffer, all zero, for up to
    /// `capacity` bytes. The value stays empty until commit().
    static char* open(secret_string& s) noexcept {
        s.release();
        return s.inline_;
    }

    /// Makes the first `size` bytes written since open() the value. The caller wrote zeros past
    /// `size` (secret_string's invariant: an inline value's tail is zero).
    static void commit(secret_string& s, std::uint32_t size) noexcept { s.size_ = size; }

    /// Wipes whatever was written since open(), leaving `s` empty: a copy abandoned half-way.
    static void abandon(secret_string& s) noexcept { s.wipe_inline(); }
};

}  // namespace apollo_oauth::detail
