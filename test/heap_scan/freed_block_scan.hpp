// A replaced global operator delete that searches every block freed while `scanning` is on (on the
// calling thread only) for `needle`, counting the blocks that still hold it; and, for secrets not
// known yet when their blocks are freed (what a server issues during the call under test), copies
// aside every block freed while `recording` is on, to be searched afterwards. For one program's
// single translation unit: the replacements are global, so each heap-scan program is a program of
// its own and includes this header once.
#pragma once

#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>

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

inline thread_local bool recording = false;

struct recorded_block {
    char* copy;
    std::size_t size;
    const char* freed_by;  ///< "operator delete", or the other deallocator that recorded it
};
// A fixed table, not a container: recording runs inside operator delete, where a container's own
// growth would free (and record) its old storage.
inline constexpr std::size_t max_recorded = 1 << 16;
inline recorded_block recorded[max_recorded];
inline std::size_t recorded_count = 0;
inline bool recorded_overflow = false;  ///< a block was freed with the table full: the search misses it

/// Copies the block at `p` aside (malloc, which operator new does not reach) when recording.
inline void record(void* p, const char* freed_by = "operator delete") noexcept {
    if (!recording || p == nullptr) {
        return;
    }
    if (recorded_count == max_recorded) {
        recorded_overflow = true;
        return;
    }
    const std::size_t size = malloc_usable_size(p);
    char* copy = static_cast<char*>(std::malloc(size == 0 ? 1 : size));
    if (copy == nullptr) {
        recorded_overflow = true;
        return;
    }
    std::memcpy(copy, p, size);
    recorded[recorded_count++] = {copy, size, freed_by};
}

/// How many recorded blocks hold `secret` (only those `freed_by` that deallocator, when given).
inline int recorded_blocks_holding(std::string_view secret, std::string_view freed_by = {}) {
    int hits = 0;
    for (std::size_t i = 0; i < recorded_count && !secret.empty(); ++i) {
        hits += (freed_by.empty() || freed_by == recorded[i].freed_by) &&
                memmem(recorded[i].copy, recorded[i].size, secret.data(), secret.size()) != nullptr;
    }
    return hits;
}

/// Wipes and frees the copies (they hold what the program failed to wipe).
inline void forget_recorded() noexcept {
    for (std::size_t i = 0; i < recorded_count; ++i) {
        explicit_bzero(recorded[i].copy, recorded[i].size);
        std::free(recorded[i].copy);
    }
    recorded_count = 0;
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
    heap_scan::record(p);
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    heap_scan::scan(p);
    heap_scan::record(p);
    std::free(p);
}
