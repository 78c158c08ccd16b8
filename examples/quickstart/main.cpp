// apollo_oauth quickstart: the whole authorization-code flow, step by step.
//
// With no configuration it starts the embedded Apollo emulator on 127.0.0.1 and runs against it,
// so it needs no account and no network. To run it against the real Apollo, set
//   APOLLO_CLIENT_ID       your app's client id
//   APOLLO_CLIENT_SECRET   its secret (from the environment, never from the command line), or
//   APOLLO_CLIENT_SECRET_FILE  a file holding it
//   APOLLO_REDIRECT_URI    one of the redirect URIs registered for the app
// The program then prints the authorize URL; after consenting in a browser, paste the URL you
// were redirected to. Secrets are printed as [redacted] throughout.
#include <apollo_oauth/api_client.hpp>
#include <apollo_oauth/authorization.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/emulator/server.hpp>
#include <apollo_oauth/token_cache.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

namespace asio = boost::asio;
using namespace apollo_oauth;

namespace {

std::optional<std::string> env(const char* name) {
    const char* value = std::getenv(name);
    return value && *value ? std::optional<std::string>{value} : std::nullopt;
}

// The redirect carries the authorization code, a secret: show the URL without it.
std::string redact_code(std::string url) {
    for (auto at = url.find("code="); at != std::string::npos; at = url.find("code=", at + 1)) {
        if (at == 0 || (url[at - 1] != '?' && url[at - 1] != '&')) {
            continue;  // "error_code=" and the like
        }
        const auto value = at + 5;
        const auto end = url.find_first_of("&#", value);
        url.replace(value, (end == std::string::npos ? url.size() : end) - value, "[redacted]");
    }
    return url;
}

void step(int n, const std::string& what) {
    std::cout << "\n[" << n << "] " << what << "\n";
}

struct setup {
    std::unique_ptr<emulator::server> emulator;  // empty when talking to the real Apollo
    client_config config;
};

setup make_setup() {
    setup s;
    auto id = env("APOLLO_CLIENT_ID");
    if (!id) {
        s.emulator = std::make_unique<emulator::server>();
        const auto& app = s.emulator->config().clients.front();
        s.config.client_id = app.client_id;
        s.config.client_secret = secret_string{app.client_secret};
        s.config.redirect_uris = app.redirect_uris;
        s.config.endpoints = {.authorize_url = s.emulator->authorize_url(),
                              .token_url = s.emulator->token_url(),
                              .profile_url = s.emulator->profile_url(),
                              .api_base = s.emulator->api_base()};
        s.config.tls.use_system_trust_store = false;
        s.config.tls.ca_pem = s.emulator->ca_pem();
        std::cout << "Running against the embedded Apollo emulator at " << s.emulator->base_url() << "\n";
        return s;
    }
    s.config.client_id = *id;
    if (auto secret = env("APOLLO_CLIENT_SECRET")) {
        s.config.client_secret = secret_string{*secret};
    } else if (auto file = env("APOLLO_CLIENT_SECRET_FILE")) {
        std::ifstream in{*file};
        std::string line;
        std::getline(in, line);
        s.config.client_secret = secret_string{std::move(line)};
    }
    if (s.config.client_secret.empty()) {
        throw std::runtime_error("set APOLLO_CLIENT_SECRET or APOLLO_CLIENT_SECRET_FILE");
    }
    auto redirect = env("APOLLO_REDIRECT_URI");
    if (!redirect) {
        throw std::runtime_error("set APOLLO_REDIRECT_URI to a redirect URI registered for the app");
    }
    s.config.redirect_uris = {*redirect};
    std::cout << "Running against Apollo (app.apollo.io / api.apollo.io)\n";
    return s;
}

// What the user's browser does: with the emulator, it consents at once; with Apollo, a person
// consents and pastes the URL they were redirected to.
std::string browser(const setup& s, const std::string& authorize_url) {
    if (s.emulator) {
        return s.emulator->consent(authorize_url);
    }
    std::cout << "Open this URL, approve, then paste the URL you were redirected to:\n"
              << authorize_url << "\n> ";
    std::string redirected;
    std::getline(std::cin, redirected);
    return redirected;
}

void fail(const char* what, error_code ec, const diagnostics& diag) {
    std::ostringstream out;
    out << what << ": " << ec.message() << " [" << diag << "]";
    throw std::runtime_error(out.str());
}

asio::awaitable<void> run_flow(setup& s) {
    client api{co_await asio::this_coro::executor, s.config};
    authorization_flow flow{s.config};
    diagnostics diag;

    step(1, "Build the authorize URL (a fresh CSRF state is remembered)");
    // One user at one terminal, so there is no browser session to bind the state to. A web
    // application passes its session's id as .session instead (README), or keeps the pending
    // authorization in the browser's server-side session (start_authorization, examples/web_app).
    auto url =
        flow.make_authorization_url({.scopes = {"contacts_search", "person_read"}, .any_browser = true});
    if (!url) {
        fail("authorize URL", url.error(), diag);
    }
    std::cout << "    " << url->url << "\n";

    step(2, "The user consents; the browser is redirected back with a code");
    const auto redirected = browser(s, url->url);
    std::cout << "    " << redact_code(redirected) << "\n";

    step(3, "Verify the callback (state checked in constant time, then consumed)");
    auto grant = flow.verify_callback(redirected, &diag);
    if (!grant) {
        fail("callback", grant.error(), diag);
    }
    std::cout << "    state ok, code " << grant->code << "\n";

    step(4, "Exchange the code for tokens");
    auto [ec, tokens] = co_await api.async_exchange_code(*grant, diag, asio::as_tuple(asio::use_awaitable));
    if (ec) {
        fail("exchange", ec, diag);
    }
    std::cout << "    " << tokens << "\n";

    step(5, "Fetch the profile of the token's owner");
    auto [pec, profile] =
        co_await api.async_get_profile(tokens.access_token, diag, asio::as_tuple(asio::use_awaitable));
    if (pec) {
        fail("profile", pec, diag);
    }
    std::cout << "    " << profile.name << " <" << profile.email << "> id " << profile.id << "\n";

    step(6, "Call the API: POST /v1/tasks/bulk_create");
    api_request create{.method = boost::beast::http::verb::post,
                       .target = "/v1/tasks/bulk_create",
                       .body = R"({"tasks":[{"type":"call","note":"quickstart"}]})"};
    auto [aec, created] =
        co_await api.async_api_request(tokens.access_token, create, asio::as_tuple(asio::use_awaitable));
    if (aec) {
        fail("api", aec, diag);
    }
    std::cout << "    HTTP " << created.status << " " << created.body.substr(0, 120) << "\n";

    step(7, "Refresh: Apollo rotates both tokens and revokes the old pair");
    auto [rec, fresh] =
        co_await api.async_refresh(tokens.refresh_token, {}, diag, asio::as_tuple(asio::use_awaitable));
    if (rec) {
        fail("refresh", rec, diag);
    }
    std::cout << "    " << fresh << "\n";

    step(8, "The old access token is now refused, the new one accepted");
    // The old refresh token is not sent again here: a rotating provider may take a spent refresh
    // token for a stolen one and revoke the whole grant (step 10 shows it, on the emulator only).
    auto [old_ec, old_call] =
        co_await api.async_api_request(tokens.access_token, create, asio::as_tuple(asio::use_awaitable));
    std::cout << "    old access token at the API: HTTP " << old_call.status << "\n";
    auto [new_ec, new_call] =
        co_await api.async_api_request(fresh.access_token, create, asio::as_tuple(asio::use_awaitable));
    std::cout << "    new access token at the API: HTTP " << new_call.status << "\n";
    if (s.emulator && (old_call.status != 401 || new_call.status != 200)) {
        throw std::runtime_error("the emulator did not revoke the old pair as Apollo does");
    }

    step(9, "1000 concurrent API calls through the token cache, on a token the server rejects");
    // The executor first, in a statement of its own: g++ 12 mishandles class temporaries (here the
    // default cache_config) built in the same full-expression as a co_await (docs/api.md).
    const auto executor = co_await asio::this_coro::executor;
    token_cache cache{api, make_memory_token_store(executor)};
    api_client calls{api, cache};
    co_await cache.async_store("customer-1", fresh, asio::use_awaitable);
    const auto refreshes_before = s.emulator ? s.emulator->stats().refresh_token_grants : 0;
    if (s.emulator) {
        // As if Apollo had expired the token early: every call gets a 401 and needs a new one.
        s.emulator->expire_access_token(std::string{fresh.access_token.reveal()});
    }
    constexpr int concurrent = 1000;
    int done = 0, ok = 0;
    asio::steady_timer all_done{co_await asio::this_coro::executor, asio::steady_timer::time_point::max()};
    for (int i = 0; i < concurrent; ++i) {
        calls.async_request("customer-1", create, [&](error_code call_ec, api_response res) {
            ok += !call_ec && res.status == 200;
            if (++done == concurrent) {
                all_done.cancel();
            }
        });
    }
    co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
    std::cout << "    " << ok << " of " << concurrent << " calls succeeded\n";
    if (s.emulator) {
        const auto refreshes = s.emulator->stats().refresh_token_grants - refreshes_before;
        std::cout << "    refreshes the server saw: " << refreshes << "\n";
        if (refreshes != 1 || ok != concurrent) {
            throw std::runtime_error("expected every call to succeed after exactly one refresh");
        }
    }
    if (!s.emulator) {
        co_return;  // step 10 would revoke the real customer's grant
    }

    step(10, "A spent refresh token sent again revokes the whole grant: the lockout the cache prevents");
    const auto current = co_await cache.async_get("customer-1", asio::use_awaitable);
    auto [spent_ec, ignored] =
        co_await api.async_refresh(tokens.refresh_token, {}, diag, asio::as_tuple(asio::use_awaitable));
    std::cout << "    the refresh token spent in step 7: " << spent_ec.message() << " [" << diag << "]\n";
    auto [after_ec, after] =
        co_await api.async_api_request(current.value, create, asio::as_tuple(asio::use_awaitable));
    std::cout << "    the cache's current access token at the API: HTTP " << after.status
              << " (the customer must authorize again)\n";
    if (spent_ec != errc::invalid_grant || after.status != 401) {
        throw std::runtime_error("the emulator did not revoke the grant on a reused refresh token");
    }
}

}  // namespace

int main() {
    try {
        auto s = make_setup();
        asio::io_context ioc;
        std::exception_ptr failure;
        asio::co_spawn(ioc, run_flow(s), [&](std::exception_ptr e) { failure = e; });
        ioc.run();
        if (failure) {
            std::rethrow_exception(failure);
        }
        std::cout << "\nquickstart: done\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "quickstart: " << e.what() << "\n";
        return 1;
    }
}
