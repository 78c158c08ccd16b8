#include "heap_counter.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

// Each block carries its size in a 16-byte header (keeps max_align_t alignment), so unsized
// deletes are counted too. Over-aligned allocations go through the same path with a larger header.
namespace {

std::atomic<std::ptrdiff_t> live{0};
thread_local std::size_t allocations_here = 0;  // per thread: counting must not contend
constexpr std::size_t header = 16;

void* allocate(std::size_t size, std::size_t alignment) {
    const std::size_t offset = alignment > header ? alignment : header;
    void* raw = alignment > header
                    ? std::aligned_alloc(alignment, (offset + size + alignment - 1) / alignment * alignment)
                    : std::malloc(offset + size);
    if (raw == nullptr) {
        throw std::bad_alloc();
    }
    auto* user = static_cast<unsigned char*>(raw) + offset;
    reinterpret_cast<std::size_t*>(user)[-1] = size;
    reinterpret_cast<std::size_t*>(user)[-2] = offset;
    live.fetch_add(static_cast<std::ptrdiff_t>(size), std::memory_order_relaxed);
    ++allocations_here;
    return user;
}

void release(void* p) noexcept {
    if (p == nullptr) {
        return;
    }
    auto* user = static_cast<unsigned char*>(p);
    const auto size = reinterpret_cast<std::size_t*>(user)[-1];
    const auto offset = reinterpret_cast<std::size_t*>(user)[-2];
    live.fetch_sub(static_cast<std::ptrdiff_t>(size), std::memory_order_relaxed);
    std::free(user - offset);
}

}  // namespace

namespace apollo_oauth::bench {
std::ptrdiff_t live_heap_bytes() noexcept {
    return live.load(std::memory_order_relaxed);
}

std::size_t allocations_on_this_thread() noexcept {
    return allocations_here;
}
}  // namespace apollo_oauth::bench

void* operator new(std::size_t size) {
    return allocate(size, alignof(std::max_align_t));
}
void* operator new[](std::size_t size) {
    return allocate(size, alignof(std::max_align_t));
}
void* operator new(std::size_t size, std::align_val_t alignment) {
    return allocate(size, static_cast<std::size_t>(alignment));
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
    return allocate(size, static_cast<std::size_t>(alignment));
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    try {
        return allocate(size, alignof(std::max_align_t));
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
    try {
        return allocate(size, alignof(std::max_align_t));
    } catch (...) {
        return nullptr;
    }
}
void operator delete(void* p) noexcept {
    release(p);
}
void operator delete[](void* p) noexcept {
    release(p);
}
void operator delete(void* p, std::size_t) noexcept {
    release(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    release(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
    release(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
    release(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    release(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
    release(p);
}
