// The allocator bound to a parked caller's type-erased handler (src/cache/handler_pool.hpp).
#pragma once

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/recycling_allocator.hpp>

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

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

/// `handler` with the pool as its associated allocator, which is what any_completion_handler
/// allocates its type-erased copy with; a handler that brings its own allocator keeps it.
/// (Probed against recycling_allocator, any_completion_handler's own default: a handler bound to
/// that explicitly loses nothing by the swap.)
template <class Handler>
auto with_handler_pool(handler_pool* pool, Handler&& handler) {
    using probe =
        boost::asio::associated_allocator_t<std::decay_t<Handler>, boost::asio::recycling_allocator<void>>;
    if constexpr (std::is_same_v<probe, boost::asio::recycling_allocator<void>>) {
        return boost::asio::bind_allocator(handler_allocator<void>(pool), std::forward<Handler>(handler));
    } else {
        return std::decay_t<Handler>(std::forward<Handler>(handler));
    }
}

}  // namespace apollo_oauth::detail
