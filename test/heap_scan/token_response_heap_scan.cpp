// The tokens of a refresh's response are wiped from every block freed on the client's thread, by
// operator delete or by OpenSSL (CRYPTO_free: its TLS record buffers), during the refresh and while
// the client is destroyed (its pooled connection with it):
// - `served`: the refresh succeeds. OpenSSL used to keep the decrypted response in its read
//   buffer until the connection was freed, unwiped (the client's TLS context lacked
//   SSL_OP_CLEANSE_PLAINTEXT);
// - `stalled`: the server sends the header and half the body, then nothing; the refresh times out
//   after the server has rotated. The partly read body used to be freed unwiped;
// - `over_limit`: the response's Content-Length is past the body limit, so the refresh fails at
//   the header after the server has rotated, its body still unread in the connection's read
//   buffer, which used to be freed unwiped with the connection;
// - `chunked`: the refresh succeeds, its answer chunked in 16-byte chunks. The body grew chunk by
//   chunk, and each time it moved it freed its previous copy, tokens included, unwiped.
//
// The new tokens are not known until the server has issued them, so the blocks are recorded
// (copied aside as they are freed) and searched afterwards for every secret the server issued
// during the refresh. Deliberate unwiped copies, freed both ways, must be found: the recording works.
#include <apollo_oauth/authorization.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/emulator/client_config.hpp>
#include <apollo_oauth/emulator/server.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "openssl_freed_blocks.hpp"

namespace asio = boost::asio;
using namespace apollo_oauth;

namespace {

// Records an unwiped copy of `secret` freed by operator delete and one freed by OpenSSL: both
// must be found.
int found_in_unwiped_copies(const std::string& secret) {
    const int before = heap_scan::recorded_blocks_holding(secret);
    heap_scan::recording = true;
    {
        void* copy = ::operator new(secret.size());  // called: a new-expression's allocation may be elided
        std::memcpy(copy, secret.data(), secret.size());
        ::operator delete(copy);
        void* openssl_copy = OPENSSL_malloc(secret.size());
        std::memcpy(openssl_copy, secret.data(), secret.size());
        OPENSSL_free(openssl_copy);
    }
    heap_scan::recording = false;
    return heap_scan::recorded_blocks_holding(secret) - before;
}

}  // namespace

int main(int argc, char** argv) {
    if (!heap_scan::hook_openssl_frees()) {
        std::puts("token_response_heap_scan: OpenSSL allocated before its frees could be hooked");
        return 2;
    }
    const std::string_view scenario = argc > 1 ? argv[1] : "served";
    const bool stalled = scenario == "stalled";
    const bool over_limit = scenario == "over_limit";
    const bool chunked = scenario == "chunked";

    emulator::server server;
    auto config = emulator::client_config_for(server);
    config.timeouts.response_body = std::chrono::milliseconds(200);  // the stalled body's deadline
    authorization_flow flow{config};
    auto url = flow.make_authorization_url({.any_browser = true});
    auto grant = flow.verify_callback(server.consent(url->url));
    if (!grant) {
        std::puts("token_response_heap_scan: authorization failed");
        return 1;
    }

    std::vector<std::string> issued_before;
    error_code refresh_ec;
    {
        asio::io_context ioc;
        std::optional<client> c;
        c.emplace(ioc.get_executor(), config);
        asio::co_spawn(
            ioc,
            [&]() -> asio::awaitable<void> {
                auto tokens = co_await c->async_exchange_code(std::move(*grant), asio::use_awaitable);
                issued_before = server.issued_secrets();  // before recording: its copies are ours
                if (stalled) {
                    server.inject(
                        {.what = emulator::fault::kind::stall_body, .where = emulator::route::token});
                }
                if (chunked) {
                    server.inject(
                        {.what = emulator::fault::kind::chunked_body, .where = emulator::route::token});
                }
                if (over_limit) {
                    // Another client for the refresh: the exchange's response needed the room.
                    auto limited = config;
                    limited.limits.token_body_bytes = 64;
                    c.emplace(ioc.get_executor(), limited);
                }
                heap_scan::recording = true;
                auto [ec, fresh] =
                    co_await c->async_refresh(tokens.refresh_token, {}, asio::as_tuple(asio::use_awaitable));
                refresh_ec = ec;
                c.reset();  // the pooled connection to the token endpoint goes with it
            },
            [](std::exception_ptr e) {
                if (e) {
                    std::rethrow_exception(e);
                }
            });
        ioc.run();
    }  // what the io_context still held is freed here, still recorded
    heap_scan::recording = false;

    auto issued = server.issued_secrets();
    std::erase_if(issued, [&](const std::string& s) {
        return std::find(issued_before.begin(), issued_before.end(), s) != issued_before.end();
    });
    int leaks = 0;
    for (const auto& secret : issued) {
        const int by_delete = heap_scan::recorded_blocks_holding(secret, "operator delete");
        const int by_openssl = heap_scan::recorded_blocks_holding(secret, "CRYPTO_free");
        if (by_delete + by_openssl != 0) {
            std::printf(
                "token_response_heap_scan: a newly issued secret (%zu bytes) in %d blocks freed by "
                "operator delete, %d freed by CRYPTO_free\n",
                secret.size(), by_delete, by_openssl);
        }
        leaks += by_delete + by_openssl;
    }
    const bool refresh_as_expected = stalled      ? refresh_ec == asio::error::timed_out
                                     : over_limit ? refresh_ec == boost::beast::http::error::body_limit
                                                  : !refresh_ec;
    const int found_in_control = issued.empty() ? 0 : found_in_unwiped_copies(issued.front());
    std::printf(
        "token_response_heap_scan %s: refresh: %s; secrets issued during it: %zu; blocks recorded: %zu%s; "
        "unwiped blocks holding one: %d; found in the two control copies: %d\n",
        std::string(scenario).c_str(), refresh_ec.message().c_str(), issued.size(), heap_scan::recorded_count,
        heap_scan::recorded_overflow ? " (table full: some missed)" : "", leaks, found_in_control);
    heap_scan::forget_recorded();
    return refresh_as_expected && issued.size() == 2 && !heap_scan::recorded_overflow && leaks == 0 &&
                   found_in_control == 2
               ? 0
               : 1;
}
