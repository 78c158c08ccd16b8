// The snapshot table wipes the tokens its slots and long-token word arrays hold before their
// memory is freed: a table destroyed while tokens are still published (an io_context torn down
// before the cache's stop ran, so no account was withdrawn) leaves none of them in freed blocks.
//
// Like the other heap scans, this program replaces the global operator delete: while scanning is
// on, every block freed is searched for the token. A deliberate unwiped copy, freed the same way,
// must be found: the scanner works.
#include "cache/account_hash.hpp"
#include "cache/snapshot_table.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "freed_block_scan.hpp"

using namespace apollo_oauth;
using namespace apollo_oauth::detail;

namespace {

/// Publishes `token` for one account, reads it back, and destroys the table, scanning every block
/// freed meanwhile for `token`. Returns how many held it.
int unwiped_blocks_after_publishing(const std::string& token) {
    heap_scan::needle_size = std::min(token.size(), sizeof heap_scan::needle);
    std::memcpy(heap_scan::needle, token.data(), heap_scan::needle_size);
    const int before = heap_scan::found.load();
    heap_scan::scanning = true;
    {
        snapshot_table table;
        const sansio::sys_time now{std::chrono::hours(24 * 365 * 56)};
        const std::string account = "5f0c1e2d3b4a591000000001";  // Apollo's length
        table.publish(account, account_hash(account),
                      {.access_token = secret_string(token),
                       .generation = 1,
                       .usable_until = now + std::chrono::hours(1),
                       .refresh_at = now + std::chrono::minutes(30)});
        access_token out;
        if (table.read(account, account_hash(account), now, out) != snapshot_read::fresh ||
            out.value.reveal() != token) {
            std::printf("snapshot_heap_scan: the published token was not served\n");
            std::exit(1);
        }
    }
    heap_scan::scanning = false;
    const int found = heap_scan::found.load() - before;
    const int control = heap_scan::found_in_an_unwiped_copy();
    std::memset(heap_scan::needle, 0, sizeof heap_scan::needle);
    if (control != 1) {
        std::printf("snapshot_heap_scan: the scanner did not find its control copy\n");
        std::exit(1);
    }
    return found;
}

}  // namespace

int main() {
    // Apollo's length: held in the slot's own words, freed with the slot chunk.
    const int in_slots = unwiped_blocks_after_publishing("at-short-" + std::string(34, 's'));
    // Longer than the 64-byte inline words: held in a heap word array, freed with the table.
    const int in_arrays = unwiped_blocks_after_publishing("at-long-" + std::string(200, 'l'));
    std::printf(
        "snapshot_heap_scan: unwiped blocks freed by a destroyed table: %d holding a short token, "
        "%d holding a long one\n",
        in_slots, in_arrays);
    return in_slots == 0 && in_arrays == 0 ? 0 : 1;
}
