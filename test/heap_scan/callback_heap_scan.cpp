// The authorization code a callback carries is wiped before its block is freed, whether the
// callback is accepted (the code moves into the grant's secret_string) or refused: an unknown,
// replayed, expired or other session's state, another redirect URI, an error from the server, a
// malformed callback. Before, every refusal freed the decoded code unwiped.
//
// Like the other heap scans, this program replaces the global operator delete: while scanning is
// on, every block freed is searched for the code. The callback URLs (the caller's strings) are
// made before the scan and freed after it. A deliberate unwiped copy, freed the same way, must be
// found: the scanner works.
#include <apollo_oauth/authorization.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "freed_block_scan.hpp"

using namespace apollo_oauth;

namespace {

const std::string redirect = "https://app.example.com/callback";

client_config config() {
    client_config c;
    c.client_id = "client-123";
    c.client_secret = secret_string("secret-xyz");
    c.redirect_uris = {redirect, "https://app.example.com/other"};
    return c;
}

// Counts the blocks holding `code` that verifying each callback in `urls` freed.
int freed_with_code(authorization_flow& flow, const std::string& code, const std::vector<std::string>& urls,
                    const std::string& session) {
    heap_scan::needle_size = code.size();
    std::memcpy(heap_scan::needle, code.data(), code.size());
    const int before = heap_scan::found.load();
    heap_scan::scanning = true;
    for (const auto& url : urls) {
        auto result = flow.verify_callback(url, session);
        (void)result;
    }
    heap_scan::scanning = false;
    std::memset(heap_scan::needle, 0, sizeof heap_scan::needle);
    return heap_scan::found.load() - before;
}

}  // namespace

int main() {
    int found = 0;
    // A code a secret_string holds inline (up to 64 bytes) and a long one it keeps on the heap.
    for (const std::size_t length : {40, 100}) {
        std::int64_t now_s = 1'000'000;
        authorization_flow flow(
            config(), [&] { return std::chrono::steady_clock::time_point(std::chrono::seconds(now_s)); });
        const std::string code = "c0de" + std::string(length - 8, 'k') + "end!";
        const auto make = [&](const std::string& session) {
            authorization_request request;
            request.session = session;
            return flow.make_authorization_url(std::move(request)).value().state;
        };
        const std::string accepted = make("s1");
        const std::string expiring = make("s1");
        const std::string with_error = make("s1");
        const std::string elsewhere = make("s1");
        const std::string other_session = make("s2");
        const auto callback = [&](const std::string& state, const std::string& extra = {},
                                  const std::string& base = redirect) {
            return base + "?code=" + code + "&state=" + state + extra;
        };
        const std::vector<std::string> refused_early{
            callback("no-such-state"),
            callback(other_session),                                   // made for another session
            callback(accepted, "&code=again"),                         // malformed: a repeated parameter
            callback(elsewhere, {}, "https://app.example.com/other"),  // another redirect URI
            callback(with_error, "&error=access_denied"),
        };
        const std::vector<std::string> accepted_then_replayed{callback(accepted), callback(accepted)};
        found += freed_with_code(flow, code, refused_early, "s1");
        found += freed_with_code(flow, code, accepted_then_replayed, "s1");
        now_s += 3600 * 24;  // past the state's lifetime
        found += freed_with_code(flow, code, {callback(expiring)}, "s1");
    }

    heap_scan::needle_size = 16;
    std::memcpy(heap_scan::needle, "c0dekkkkkkkkkkkk", 16);
    const int found_in_control = heap_scan::found_in_an_unwiped_copy();
    std::memset(heap_scan::needle, 0, sizeof heap_scan::needle);

    std::printf("callback_heap_scan: unwiped code blocks freed by verify_callback: %d; by the control: %d\n",
                found, found_in_control);
    return found == 0 && found_in_control == 1 ? 0 : 1;
}
