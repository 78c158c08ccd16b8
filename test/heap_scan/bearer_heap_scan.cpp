// The "Bearer <token>" strings the client builds are wiped before they are freed (issue 10 §2).
//
// This program replaces the global operator delete: while scanning is on (on the client's thread
// only; the emulator's threads hold their own copies of what they received), every block freed is
// searched for "Bearer <access token>". Three API calls and one profile call must free no such
// block. A deliberate unwiped copy, freed the same way, must be found: the scanner works.
#include <apollo_oauth/authorization.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/emulator/client_config.hpp>
#include <apollo_oauth/emulator/server.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>
#include <cstring>
#include <string>

#include "freed_block_scan.hpp"

namespace asio = boost::asio;
using namespace apollo_oauth;

int main() {
    emulator::server server;
    auto config = emulator::client_config_for(server);
    authorization_flow flow{config};
    auto url = flow.make_authorization_url({.any_browser = true});
    auto grant = flow.verify_callback(server.consent(url->url));
    if (!grant) {
        std::puts("bearer_heap_scan: authorization failed");
        return 1;
    }

    asio::io_context ioc;
    client c{ioc.get_executor(), config};
    int statuses_ok = 0;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            auto tokens = co_await c.async_exchange_code(std::move(*grant), asio::use_awaitable);
            const std::string bearer = "Bearer " + std::string(tokens.access_token.reveal());
            std::memcpy(heap_scan::needle, bearer.data(), bearer.size());
            heap_scan::needle_size = bearer.size();
            heap_scan::scanning = true;
            api_request request;
            request.method = boost::beast::http::verb::post;
            request.target = "/v1/tasks/bulk_create";
            request.body = R"({"tasks":[]})";
            for (int i = 0; i < 3; ++i) {
                auto res = co_await c.async_api_request(tokens.access_token, request, asio::use_awaitable);
                statuses_ok += res.status == 200;
            }
            auto profile = co_await c.async_get_profile(tokens.access_token, asio::use_awaitable);
            statuses_ok += !profile.email.empty();
            heap_scan::scanning = false;
        },
        [](std::exception_ptr e) {
            if (e) {
                std::rethrow_exception(e);
            }
        });
    ioc.run();
    const int found_in_calls = heap_scan::found.load();

    const int found_in_control = heap_scan::found_in_an_unwiped_copy();
    std::memset(heap_scan::needle, 0, sizeof heap_scan::needle);

    std::printf(
        "bearer_heap_scan: %d of 4 calls succeeded; unwiped Bearer blocks freed by the calls: %d; "
        "by the control: %d\n",
        statuses_ok, found_in_calls, found_in_control);
    return statuses_ok == 4 && found_in_calls == 0 && found_in_control == 1 ? 0 : 1;
}
