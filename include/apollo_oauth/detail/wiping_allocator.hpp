// The library's wiping allocator: std::allocator, except that every block is zeroed (secure_wipe)
// before it is given back. The client's connection read buffer uses it (src/http/wipe.hpp), and
// so does the command-line tool's login listener, which builds against the public headers only:
// one allocator, not a copy in each.
#pragma once

#include <apollo_oauth/detail/secure_wipe.hpp>

#include <cstddef>
#include <memory>

namespace apollo_oauth::detail {

/// For a buffer that holds secrets and is freed on paths that cannot all wipe it first: a growing
/// buffer frees its smaller block on its own, a string that grows moves its bytes and frees the
/// old block, and a connection dropped with bytes still unread frees its read buffer.
template <class T>
struct wiping_allocator {
    using value_type = T;

    wiping_allocator() noexcept = default;
    template <class U>
    wiping_allocator(const wiping_allocator<U>&) noexcept {}

    T* allocate(std::size_t n) { return std::allocator<T>{}.allocate(n); }
    void deallocate(T* p, std::size_t n) noexcept {
        secure_wipe(p, n * sizeof(T));
        std::allocator<T>{}.deallocate(p, n);
    }

    template <class U>
    bool operator==(const wiping_allocator<U>&) const noexcept {
        return true;
    }
};

}  // namespace apollo_oauth::detail
