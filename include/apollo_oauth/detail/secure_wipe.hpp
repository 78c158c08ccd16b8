// The library's one secure wipe: every buffer that held a secret (secret_string, the transport's
// request and response copies, the token store's record text) is zeroed through these two
// functions, so there is one definition of "wiped" to review.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>

namespace apollo_oauth::detail {

/// Zeroes [p, p + n) in a way the optimiser may not drop as a dead store: the empty asm statement
/// takes the pointer and clobbers memory, so the compiler must assume the zeros are read (the same
/// construction as BoringSSL's OPENSSL_cleanse and glibc's explicit_bzero). Inline, unlike
/// OPENSSL_cleanse's call through a volatile function pointer: a fixed-size wipe of a token's
/// 64-byte buffer compiles to a few stores, which matters on the cache's hot path.
inline void secure_wipe(void* p, std::size_t n) noexcept {
    if (n != 0) {
        std::memset(p, 0, n);
    }
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

/// secure_wipe of a fixed-size buffer (a secret_string's inline 64 bytes). The asm statement names
/// exactly those bytes as read, rather than clobbering all memory: the zeros must still be stored,
/// but the compiler may keep everything else in registers across it. This wipe runs on every
/// move of a token, so the difference is visible on the cache's hot path.
template <std::size_t N>
inline void secure_wipe_fixed(char (&buffer)[N]) noexcept {
    std::memset(buffer, 0, N);
    __asm__ __volatile__("" : : "m"(buffer));
}

/// Zeroes every byte `s` owns (capacity, not only size: an earlier, longer value may still sit
/// past size()), then empties it.
inline void wipe(std::string& s) noexcept {
    secure_wipe(s.data(), s.capacity());
    s.clear();
}

}  // namespace apollo_oauth::detail
