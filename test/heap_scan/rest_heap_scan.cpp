// An idle account's packed rest (src/sansio/packed_rest.hpp) is wiped before its block is freed.
//
// Like bearer_heap_scan, this program replaces the global operator delete: while scanning is on,
// every block freed is searched for the account's refresh token. Packing a rest, unpacking it,
// replacing the block and resetting it must free no such block. A deliberate unwiped copy, freed
// the same way, must be found: the scanner works.
#include "sansio/packed_rest.hpp"

#include <cstdio>
#include <cstring>
#include <string>

#include "freed_block_scan.hpp"

using namespace apollo_oauth;

int main() {
    // Longer than a secret_string's inline buffer too, so that the unpacked copy is on the heap
    // (a secret_string wipes it; the scan covers both).
    const std::string refresh = "rt-" + std::string(80, 'q') + "-end";
    heap_scan::needle_size = 64;
    std::memcpy(heap_scan::needle, refresh.data(), heap_scan::needle_size);

    heap_scan::scanning = true;
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
    heap_scan::scanning = false;
    const int found_in_rests = heap_scan::found.load();

    const int found_in_control = heap_scan::found_in_an_unwiped_copy();
    std::memset(heap_scan::needle, 0, sizeof heap_scan::needle);

    std::printf(
        "rest_heap_scan: unwiped refresh-token blocks freed by packed rests: %d; by the control: %d\n",
        found_in_rests, found_in_control);
    return found_in_rests == 0 && found_in_control == 1 ? 0 : 1;
}
