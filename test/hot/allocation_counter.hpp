// Counts the calls to operator new made by the calling thread (allocation_counter.cpp replaces
// the global operator new and delete of this test executable).
#pragma once

#include <cstddef>
#include <cstdint>

namespace apollo_oauth::test {

/// operator new calls on this thread since it started.
std::size_t allocations_on_this_thread() noexcept;

/// Whether the replaced operator new is the one in use (a sanitizer runtime may bring its own).
bool allocation_counter_active();

/// While one exists, the `failures` operator new calls on this thread after the first `allowed`
/// throw std::bad_alloc (by default every one after them), and those after succeed again (the
/// sanitizer builds' own allocator ignores it: check allocation_counter_active() first).
struct failing_allocations {
    explicit failing_allocations(std::size_t allowed = 0, std::size_t failures = SIZE_MAX) noexcept;
    ~failing_allocations();
    failing_allocations(const failing_allocations&) = delete;
    failing_allocations& operator=(const failing_allocations&) = delete;
};

/// The allocations `f()` made on this thread.
template <class F>
std::size_t allocations_during(F&& f) {
    const auto before = allocations_on_this_thread();
    f();
    return allocations_on_this_thread() - before;
}

}  // namespace apollo_oauth::test
