// OpenSSL's allocations routed through malloc, so that the blocks it frees (its TLS record
// buffers among them) are searched and recorded like operator delete's (freed_block_scan.hpp).
// OpenSSL accepts the hooks only before its first allocation: install them first thing in main.
#pragma once

#include <openssl/crypto.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "freed_block_scan.hpp"

namespace heap_scan {

inline void* openssl_malloc(std::size_t n, const char*, int) {
    return std::malloc(n);
}

// By hand rather than realloc: the block given up must be scanned before it is freed.
inline void* openssl_realloc(void* p, std::size_t n, const char*, int) {
    if (p == nullptr) {
        return std::malloc(n);
    }
    void* moved = std::malloc(n);
    if (moved == nullptr) {
        return nullptr;
    }
    std::memcpy(moved, p, std::min(malloc_usable_size(p), n));
    scan(p);
    record(p, "CRYPTO_free");
    std::free(p);
    return moved;
}

inline void openssl_free(void* p, const char*, int) {
    scan(p);
    record(p, "CRYPTO_free");
    std::free(p);
}

/// False when OpenSSL has already allocated: the hooks cannot be installed any more.
inline bool hook_openssl_frees() {
    return CRYPTO_set_mem_functions(openssl_malloc, openssl_realloc, openssl_free) == 1;
}

}  // namespace heap_scan
