// The replaced global operator new and delete: malloc and free, with a per-thread count, and a
// per-thread switch that makes every allocation fail (after a given number that succeed).
// (operator new[] and the sized forms end in these by default; the nothrow form is replaced as well.)
#include "allocation_counter.hpp"

#include <cstdlib>
#include <new>

namespace {
thread_local std::size_t allocation_count = 0;
thread_local bool failing = false;
thread_local std::size_t allowed_before_failing = 0;
thread_local std::size_t failures_left = 0;
}  // namespace

apollo_oauth::test::failing_allocations::failing_allocations(std::size_t allowed,
                                                             std::size_t failures) noexcept {
    failing = true;
    allowed_before_failing = allowed;
    failures_left = failures;
}

apollo_oauth::test::failing_allocations::~failing_allocations() {
    failing = false;
    allowed_before_failing = 0;
    failures_left = 0;
}

std::size_t apollo_oauth::test::allocations_on_this_thread() noexcept {
    return allocation_count;
}

bool apollo_oauth::test::allocation_counter_active() {
    const auto before = allocation_count;
    ::operator delete(::operator new(sizeof(int)));  // a direct call: never elided, unlike a new-expression
    return allocation_count != before;
}

void* operator new(std::size_t size) {
    ++allocation_count;
    if (failing) {
        if (allowed_before_failing > 0) {
            --allowed_before_failing;
        } else if (failures_left > 0) {
            --failures_left;
            throw std::bad_alloc();
        }
    }
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
    throw std::bad_alloc();
}

// The nothrow form too, although by default it ends in the one above: AddressSanitizer's runtime
// replaces it with its own, whose memory the delete below (free) would then release, and ASan
// reports that as a mismatch (the RESP reader and the completion batch allocate with nothrow).
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    try {
        return ::operator new(size);
    } catch (...) {
        return nullptr;
    }
}

void operator delete(void* p) noexcept {
    std::free(p);
}

void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}

void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
