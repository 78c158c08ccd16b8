// web_app: a SaaS back end's Apollo integration, built on apollo_oauth. See README.md.
//
// The wiring a real server needs, in order: an io_context run by several threads; one client
// (connection pool, TLS trust), one token_cache over a persistent store, one api_client; the
// HTTPS server whose routes (app.cpp) use them, keeping each pending authorization in the
// browser session that started it (sessions.cpp).
#include "app.hpp"
#include "https_server.hpp"
#include "metrics.hpp"
#include "options.hpp"
#include "secret_file.hpp"

#include <apollo_oauth/api_client.hpp>
#include <apollo_oauth/authorization.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/emulator/client_config.hpp>
#include <apollo_oauth/emulator/localhost_certificate.hpp>
#include <apollo_oauth/emulator/server.hpp>
#include <apollo_oauth/token_cache.hpp>
#include <apollo_oauth/token_store.hpp>
#ifdef WEB_APP_HAS_REDIS
#include <apollo_oauth/redis_token_store.hpp>
#endif

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/url/parse.hpp>

#include <openssl/ssl.h>

#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using namespace apollo_oauth;
using namespace web_app;

namespace {

// --max-connections 0: the browsers' connections may take the process's descriptors up to its
// soft limit less a reserve, which the outgoing connection pool, the token store, Redis and an
// embedded emulator need. A cap above the limit never engages, and a client holding a thousand
// idle connections would leave a rotated pair unstorable.
std::size_t connection_cap(std::size_t asked) {
    constexpr std::size_t most = 10'000;
    constexpr rlim_t reserve = 256;
    if (asked != 0) {
        return asked;
    }
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) {
        return most;
    }
    const rlim_t room = limit.rlim_cur > 2 * reserve ? limit.rlim_cur - reserve : limit.rlim_cur / 2;
    const auto cap = std::min<std::size_t>(most, std::max<rlim_t>(room, 1));
    std::cout << "web_app: up to " << cap << " connections (descriptor limit " << limit.rlim_cur << ")"
              << std::endl;
    return cap;
}

// The redirect URI is the origin plus /oauth/callback: Apollo sends the browser to the origin's
// port. A server listening on another one is reached only through a proxy that forwards that port
// here; without one, every callback goes where nothing listens (--public-origin https://host with
// the default --port 8443 did). A note, not an error: behind a proxy it is the right set-up, and then
// every connection comes from the proxy's address: the per-address limit would cap them all together.
void note_origin_port(const std::string& origin, std::uint16_t listening, std::size_t per_address) {
    const auto url = boost::urls::parse_absolute_uri(origin);
    if (!url || url->scheme_id() != boost::urls::scheme::https) {
        std::cout << "web_app: note: --public-origin is not an https:// origin; browsers are sent to "
                  << origin << "/oauth/callback" << std::endl;
        return;
    }
    const std::uint16_t port = url->has_port() ? url->port_number() : 443;
    if (port != listening) {
        std::cout << "web_app: note: browsers come back to port " << port << " (--public-origin) but this "
                  << "server listens on port " << listening << ": right only behind a proxy that forwards "
                  << port << " here; otherwise give --port " << port << " or put :" << listening
                  << " in --public-origin" << std::endl;
        if (per_address != 0) {
            std::cout << "web_app: note: behind a proxy every connection comes from the proxy's address, "
                      << "and --max-connections-per-address (" << per_address << ") caps them all together: "
                      << "give --max-connections-per-address 0 there" << std::endl;
        }
    }
}

std::string env(const char* name) {
    const char* value = std::getenv(name);
    return value ? value : "";
}

// The server's own certificate: the operator's, or a fresh one whose CA the browser must trust.
std::string configure_tls(ssl::context& tls, const options& o) {
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
    if (!o.cert_file.empty()) {
        tls.use_certificate_chain_file(o.cert_file);
        tls.use_private_key_file(o.key_file, ssl::context::pem);
        return {};
    }
    const auto generated = emulator::make_localhost_certificate();
    tls.use_certificate_chain(asio::buffer(generated.cert_pem));
    tls.use_private_key(asio::buffer(generated.key_pem), ssl::context::pem);
    return generated.ca_pem;
}

// Where the pairs live: files in a directory (one host), or Redis (every process on every host
// that shares it refreshes once per rotation; docs/scale-out.md).
std::shared_ptr<token_store> make_store(asio::any_io_executor ex, const std::string& spec) {
    if (spec.starts_with("file:")) {
        return make_file_token_store(std::move(ex), spec.substr(5));
    }
#ifdef WEB_APP_HAS_REDIS
    if (spec.starts_with("redis://") || spec.starts_with("rediss://")) {
        redis_options redis;
        // The error never quotes the URL: it may hold a password.
        if (const auto ec = parse_redis_url(spec, redis)) {
            throw std::runtime_error("--store: not a Redis URL (" + ec.message() + ")");
        }
        if (!redis.password.empty()) {
            throw std::runtime_error(
                "--store: no password in the URL (ps shows it); set APOLLO_REDIS_PASSWORD");
        }
        redis.password = secret_string{env("APOLLO_REDIS_PASSWORD")};
        redis.tls.ca_file = env("APOLLO_REDIS_CA_FILE");  // rediss://: else the system's CAs
        redis.on_durability = [](const redis_durability& durability) {
            if (!durability.survives_crash()) {
                std::cerr << "web_app: this Redis may forget a pair written just before a crash "
                             "(set appendonly yes and appendfsync always; docs/scale-out.md)\n";
            }
            if (!durability.keeps_records()) {
                std::cerr << "web_app: this Redis may evict a pair (maxmemory-policy allkeys-*; use "
                             "noeviction; docs/scale-out.md)\n";
            }
        };
        return make_redis_token_store(std::move(ex), redis);
    }
    throw std::runtime_error("--store must be file:DIR, redis://... or rediss://...");
#else
    throw std::runtime_error(
        "--store must be file:DIR (this build has no Redis store: install libhiredis-dev)");
#endif
}

client_config apollo_config(const options& o, const std::string& redirect_uri) {
    client_config c;
    c.client_id = o.client_id.empty() ? env("APOLLO_CLIENT_ID") : o.client_id;
    if (c.client_id.empty()) {
        throw std::runtime_error("set APOLLO_CLIENT_ID (or --client-id), or run with --emulator");
    }
    // The secret comes from the environment or a file, never from the command line (ps shows it).
    std::string secret = env("APOLLO_CLIENT_SECRET");
    if (secret.empty() && !env("APOLLO_CLIENT_SECRET_FILE").empty()) {
        secret = read_secret_file(env("APOLLO_CLIENT_SECRET_FILE"), "APOLLO_CLIENT_SECRET_FILE");
    }
    if (secret.empty()) {
        throw std::runtime_error(
            "set APOLLO_CLIENT_SECRET or APOLLO_CLIENT_SECRET_FILE, or run with --emulator");
    }
    c.client_secret = secret_string{std::move(secret)};
    c.redirect_uris = {redirect_uri};
    c.endpoints = {o.authorize_url, o.token_url, o.profile_url, o.api_base};
    c.tls.ca_file = o.ca_file;
    return c;
}

std::unique_ptr<emulator::server> start_emulator(const options& o, const std::string& redirect_uri) {
    emulator::server_config e;
    e.consent_page = !o.auto_consent;
    e.clients.front().name = "Example CRM";
    e.clients.front().redirect_uris = {redirect_uri};
    e.threads = 2;
    e.retain_revoked = false;  // a long load run keeps memory flat
    return std::make_unique<emulator::server>(std::move(e));
}

// A pair for the emulator's user without a browser (its consent() approves the page itself).
asio::awaitable<token_set> authorize_without_browser(client& oauth, const emulator::server& emu) {
    auto started = start_authorization(oauth.config(), {}, std::chrono::system_clock::now());
    if (!started) {
        throw boost::system::system_error(started.error(), "authorize URL");
    }
    auto grant =
        verify_callback(started->pending, emu.consent(started->url), std::chrono::system_clock::now());
    if (!grant) {
        throw boost::system::system_error(grant.error(), "callback");
    }
    co_return co_await oauth.async_exchange_code(std::move(*grant), asio::use_awaitable);
}

std::string emulator_metrics(const emulator::server& emu) {
    const emulator::counters c = emu.stats();
    return counter("emulator_refresh_token_grants_total", "Refresh requests the embedded emulator received.",
                   c.refresh_token_grants) +
           counter("emulator_successful_refreshes_total",
                   "Refreshes the embedded emulator answered with a pair.", c.successful_refreshes) +
           counter("emulator_api_requests_total", "API requests the embedded emulator received.",
                   c.api_requests) +
           counter("emulator_unauthorized_total", "401 answers of the embedded emulator.",
                   c.unauthorized_responses);
}

// SIGTERM: no new connection, the requests being answered finish (up to --drain-timeout), then the
// cache stores what it still holds. Apollo revoked the old pair the moment it rotated, so a pair
// on the wire or refused by the store that the process drops is a customer locked out: the next
// process would read the revoked one.
asio::awaitable<error_code> shut_down(https_server& server, token_cache& cache, const options& o) {
    std::cout << "web_app: stopping" << std::endl;
    co_await server.stop(o.drain_timeout);
    // The completion token is a named constant: g++ 12 can destroy a temporary built inside a
    // co_await expression twice (README).
    static constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
    auto [ec] = co_await cache.async_shutdown(o.shutdown_timeout, use_tuple);
    if (ec) {
        std::cout << "web_app: token cache shutdown: " << ec.message()
                  << " (a rotated pair was not stored: its account must be connected again)" << std::endl;
    } else {
        std::cout << "web_app: token cache shutdown: every rotated pair is stored" << std::endl;
    }
    co_return ec;
}

int run(const options& o) {
    // Before the io_context: connections it destroys on the way out still hold SSL objects of it.
    ssl::context tls(ssl::context::tls_server);
    const std::string app_ca = configure_tls(tls, o);
    asio::io_context ioc(static_cast<int>(o.threads));
    // Registered first: a SIGTERM from here on is held for the wait below, however early it comes
    // (a supervisor that starts and stops at once), instead of killing the process.
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    auto keep_running = asio::make_work_guard(ioc);
    std::vector<std::jthread> threads;
    for (unsigned i = 0; i < o.threads; ++i) {
        threads.emplace_back([&ioc] { ioc.run(); });
    }
    struct stop_on_exit {
        asio::io_context& ioc;
        ~stop_on_exit() { ioc.stop(); }  // before the jthreads join
    } stopper{ioc};

    std::unique_ptr<app> routes;  // set before the server starts
    https_server server(
        ioc, tls, {asio::ip::make_address(o.listen_address), o.port},
        [&routes](request req, asio::ip::address peer) { return routes->handle(std::move(req), peer); },
        connection_limits{connection_cap(o.max_connections), o.max_connections_per_address});
    const auto port = server.local_endpoint().port();
    const std::string origin =
        o.public_origin.empty() ? "https://localhost:" + std::to_string(port) : o.public_origin;
    const std::string redirect_uri = origin + "/oauth/callback";
    if (!o.public_origin.empty()) {
        note_origin_port(o.public_origin, port, o.max_connections_per_address);
    }

    std::unique_ptr<emulator::server> emu;
    client_config config;
    if (o.emulator) {
        emu = start_emulator(o, redirect_uri);
        config = emulator::client_config_for(*emu);
    } else {
        config = apollo_config(o, redirect_uri);
    }
    config.pool.max_connections_per_host = 32;
    config.state_lifetime = o.authorization_lifetime;

    client oauth(ioc.get_executor(), config);
    cache_config cc;
    cc.expiry_margin = o.expiry_margin;
    cc.on_reauthorization_required = [](const std::string& account) {
        std::cerr << "web_app: account " << account << " must be connected again\n";
    };
    cc.on_store_failure = [](const std::string& account, error_code ec) {
        std::cerr << "web_app: storing the tokens of " << account << " failed: " << ec.message() << "\n";
    };
    token_cache cache(oauth, make_store(ioc.get_executor(), o.store), std::move(cc));
    api_client api(oauth, cache);

    app_settings settings{
        origin, o.scopes, std::nullopt, {}, {o.max_sessions, o.session_idle_timeout, o.max_authorizations}};
    if (const std::string fixed = env("APOLLO_BASELINE_TOKEN"); !fixed.empty()) {
        settings.baseline_token = secret_string{fixed};
        if (!emu) {
            // Benchmark only: POST /baseline/tasks spends that token for any browser session.
            std::cerr << "web_app: APOLLO_BASELINE_TOKEN is set: POST /baseline/tasks lets any browser "
                         "session call Apollo with it (benchmarks only, never in production)\n";
        }
    }
    if (emu) {
        // The baseline's fixed token is issued while tokens still live 30 days; later ones live
        // --token-lifetime.
        const token_set fixed =
            asio::co_spawn(ioc, authorize_without_browser(oauth, *emu), asio::use_future).get();
        settings.baseline_token = fixed.access_token;
        emu->set_expires_in(o.token_lifetime);
        settings.extra_metrics = [&emu] { return emulator_metrics(*emu); };
    }
    routes = std::make_unique<app>(oauth, cache, api, std::move(settings));
    if (emu && o.demo_account) {
        const token_set demo =
            asio::co_spawn(ioc, authorize_without_browser(oauth, *emu), asio::use_future).get();
        auto account = asio::co_spawn(ioc, routes->connect(demo), asio::use_future).get();
        std::cout << "web_app: demo account " << account.id
                  << " connected (shown to every visitor, usable by every session)" << std::endl;
        routes->set_demo_account(std::move(account));
    }

    if (!o.write_ca.empty()) {
        std::ofstream out(o.write_ca, std::ios::trunc);
        out << app_ca << (emu ? emu->ca_pem() : std::string());
        if (!out.flush()) {
            throw std::runtime_error("cannot write " + o.write_ca);
        }
    }
    if (emu) {
        // After the start-up's own authorizations, so that they only hit the routes under test.
        for (const auto& f : o.emulator_faults) {
            emu->inject(f);
        }
    }
    server.start();
    if (emu) {
        std::cout << "web_app: embedded Apollo emulator at " << emu->base_url()
                  << (o.auto_consent ? " (auto-consent)" : " (consent page on)") << "\n";
    }
    std::cout << "web_app: " << o.threads << " threads, store " << o.store << "\n"
              << "web_app: open " << origin << "/" << std::endl;

    std::promise<error_code> stopped;
    signals.async_wait([&](const error_code&, int) {
        asio::co_spawn(ioc, shut_down(server, cache, o), [&stopped](std::exception_ptr e, error_code ec) {
            stopped.set_value(e ? make_error_code(errc::shutting_down) : ec);
        });
        // A second signal while the drain and the cache's shutdown run (up to their deadlines):
        // the operator wants out now. What the shutdown had not stored yet is lost, as it says.
        signals.async_wait([](const error_code& ec, int) {
            if (!ec) {
                std::cerr << "web_app: second signal: stopping without waiting for the shutdown" << std::endl;
                std::_Exit(3);
            }
        });
    });
    const error_code lost = stopped.get_future().get();
    // No thread may run a handler once the objects it uses start to go: stop and join first.
    ioc.stop();
    threads.clear();
    return lost ? 3 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const auto o = parse_options(argc, argv, exit_code);
    if (!o) {
        return exit_code;
    }
    try {
        return run(*o);
    } catch (const std::exception& e) {
        std::cerr << "web_app: " << e.what() << "\n";
        return 1;
    }
}
