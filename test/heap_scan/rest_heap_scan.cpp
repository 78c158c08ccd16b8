// An idle account's packed rest (src/sansio/packed_rest.hpp) is wiped before its block is freed.
//
// Like bearer_heap_scan, this program replaces the global operator delete: while scanning is on,
// every block freed is searched for the account's refresh token. Packing a rest, unpacking it,
// replacing the block and resetting it must free no such block. A deliberate unwiped copy, freed
// the same way, must be found: the scanner works.
#include "sansio/packed_rest.hpp"

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

namespace {

bool scanning = false;
char needle[64];
std::size_t needle_size = 0;
int found = 0;

void scan(void* p) noexcept {
    if (!scanning || p == nullptr || needle_size == 0) {
        return;
    }
    const std::size_t size = malloc_usable_size(p);
    if (size >= needle_size && memmem(p, size, needle, needle_size) != nullptr) {
        ++found;
    }
}

}  // namespace

void* operator new(std::size_t n) {
    if (void* p = std::malloc(n == 0 ? 1 : n)) {
        return p;
    }
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    scan(p);
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    scan(p);
    std::free(p);
}

using namespace apollo_oauth;

int main() {
    // Longer than a secret_string's inline buffer too, so that the unpacked copy is on the heap
    // (a secret_string wipes it; the scan covers both).
    const std::string refresh = "rt-" + std::string(80, 'q') + "-end";
    std::memcpy(needle, refresh.data(), sizeof needle);
    needle_size = sizeof needle;

    scanning = true;
    {
        sansio::account_rest rest;
        rest.current.tokens.access_token = secret_string(std::string(43, 'a'));
        rest.current.tokens.refresh_token = secret_string(refresh);
        rest.current.tokens.token_type = "Bearer";
        rest.current.tokens.scopes = {"read_user"};
        sansio::packed_rest packed{rest};
        sansio::packed_rest other{rest};
        const auto unpacked = packed.unpack();
        packed = std::move(other);  // the first block is wiped and freed
        packed.reset();             // and the second
    }
    scanning = false;
    const int found_in_rests = found;

    // The control: an unwiped heap copy of the same bytes, freed while scanning.
    scanning = true;
    {
        auto* copy = new char[needle_size];
        std::memcpy(copy, needle, needle_size);
        delete[] copy;
    }
    scanning = false;
    const int found_in_control = found - found_in_rests;
    std::memset(needle, 0, sizeof needle);

    std::printf(
        "rest_heap_scan: unwiped refresh-token blocks freed by packed rests: %d; by the control: %d\n",
        found_in_rests, found_in_control);
    return found_in_rests == 0 && found_in_control == 1 ? 0 : 1;
}
