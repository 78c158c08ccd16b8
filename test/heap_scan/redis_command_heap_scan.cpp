// The Redis store's formatted commands are wiped before their blocks are freed, also when the
// buffer they are appended to must grow: a commit's tokens, then the WAIT behind it in the same
// buffer (and the connection's write buffer, which takes several commands at once) used to free
// the smaller block with the tokens in it.
//
// Like rest_heap_scan, this program replaces the global operator delete: while scanning is on,
// every block freed is searched for the refresh token. A deliberate unwiped copy, freed the same
// way, must be found: the scanner works.
#include "store/redis/resp.hpp"

#include <cstdio>
#include <cstring>
#include <string>

#include "freed_block_scan.hpp"

using namespace apollo_oauth;

int main() {
    const std::string refresh = "rt-" + std::string(60, 'r') + "-end";
    heap_scan::needle_size = refresh.size();
    std::memcpy(heap_scan::needle, refresh.data(), heap_scan::needle_size);

    heap_scan::scanning = true;
    {
        redis::command commit{"FCALL", "apollo_oauth_v8_commit", "2", "p:{a}", "p:{a}:lease", "holder"};
        commit.arg(refresh);
        std::string out;
        commit.append_to(out);          // from nothing: the block it needs
        for (int i = 0; i < 64; ++i) {  // each growth frees a block holding the commit
            redis::command wait{"WAIT", "1", "100"};
            wait.arg(std::string(static_cast<std::size_t>(i) * 8, 'w'));
            wait.append_to(out);
        }
        std::string write_buffer = "*1\r\n$4\r\nPING\r\n";
        for (int i = 0; i < 16; ++i) {
            redis::append_wiping_growth(write_buffer, out);
        }
        redis::wipe(out);
        redis::wipe(write_buffer);
    }
    heap_scan::scanning = false;
    const int found_in_commands = heap_scan::found.load();

    const int found_in_control = heap_scan::found_in_an_unwiped_copy();
    std::memset(heap_scan::needle, 0, sizeof heap_scan::needle);

    std::printf(
        "redis_command_heap_scan: unwiped refresh-token blocks freed by formatted commands: %d; by the "
        "control: %d\n",
        found_in_commands, found_in_control);
    return found_in_commands == 0 && found_in_control == 1 ? 0 : 1;
}
