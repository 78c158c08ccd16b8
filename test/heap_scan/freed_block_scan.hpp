// A replaced global operator delete that searches every block freed while `scanning` is on (on the
// calling thread only) for `needle`, counting the blocks that still hold it. For one program's
// single translation unit: the replacements are global, so each heap-scan program is a program of
// its own and includes this header once.
#pragma once

#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

namespace heap_scan {

inline thread_local bool scanning = false;
inline char needle[512];
inline std::size_t needle_size = 0;
inline std::atomic<int> found{0};

inline void scan(void* p) noexcept {
    if (!scanning || p == nullptr || needle_size == 0) {
        return;
    }
    const std::size_t size = malloc_usable_size(p);
    if (size >= needle_size && memmem(p, size, needle, needle_size) != nullptr) {
        ++found;
    }
}

/// The control every scan ends with: an unwiped heap copy of the needle, freed while scanning,
/// must be found (1), or the scanner sees nothing and proves nothing.
inline int found_in_an_unwiped_copy() {
    const int before = found.load();
    scanning = true;
    {
        // Called, not a new-expression: a compiler may elide a new-expression's allocation.
        void* copy = ::operator new(needle_size);
        std::memcpy(copy, needle, needle_size);
        ::operator delete(copy);
    }
    scanning = false;
    return found.load() - before;
}

}  // namespace heap_scan

void* operator new(std::size_t n) {
    if (void* p = std::malloc(n == 0 ? 1 : n)) {
        return p;
    }
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    heap_scan::scan(p);
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    heap_scan::scan(p);
    std::free(p);
}
