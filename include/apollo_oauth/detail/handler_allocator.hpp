// The allocator of a parked caller's handler when it is not held inline (parked_handler.hpp,
// src/cache/handler_pool.hpp).
#pragma once

#include <cstddef>
#include <new>

namespace apollo_oauth::detail {

class handler_pool;
void* handler_pool_allocate(handler_pool& pool, std::size_t size, std::size_t align);
void handler_pool_deallocate(handler_pool& pool, void* p, std::size_t size, std::size_t align) noexcept;

/// Allocates from a cache's handler_pool. A raw pointer, not a shared_ptr: the pool outlives
/// every block it handed out by itself (it counts them), so a copy of this allocator costs
/// nothing, and Asio copies it several times per handler.
template <class T>
class handler_allocator {
public:
    using value_type = T;

    explicit handler_allocator(handler_pool* pool) noexcept : pool_(pool) {}
    template <class U>
    handler_allocator(const handler_allocator<U>& other) noexcept : pool_(other.pool_) {}

    T* allocate(std::size_t n) {
        if (n > static_cast<std::size_t>(-1) / sizeof(T)) {
            throw std::bad_array_new_length();
        }
        return static_cast<T*>(handler_pool_allocate(*pool_, n * sizeof(T), alignof(T)));
    }
    void deallocate(T* p, std::size_t n) noexcept {
        handler_pool_deallocate(*pool_, p, n * sizeof(T), alignof(T));
    }

    template <class U>
    bool operator==(const handler_allocator<U>& other) const noexcept {
        return pool_ == other.pool_;
    }

private:
    template <class>
    friend class handler_allocator;
    handler_pool* pool_;
};

}  // namespace apollo_oauth::detail
