// Benchmark 3, token endpoint and API throughput over loopback TLS to the emulator, at
// concurrency 1 and 64, side by side with a bare Beast client doing the same requests:
//   library       api_client.async_request (token from the cache) / client.async_refresh, over the
//                 library's keep-alive pool;
//   bare beast    one keep-alive ssl_stream per concurrent caller, the same request bytes;
//   reconnect     bare Beast with a new TCP + TLS connection per request: what the pool saves.
// The emulator serves on its own thread in this process, so every figure includes its work; the
// ratios compare clients under the same server.
#include <apollo_oauth/api_client.hpp>
#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <map>

#include "bench_support.hpp"

namespace apollo_oauth::bench {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

enum class workload { api, refresh };
enum class client_kind { library, bare, reconnect };

const char* name_of(client_kind k) {
    switch (k) {
        case client_kind::library:
            return "library";
        case client_kind::bare:
            return "bare beast keep-alive";
        case client_kind::reconnect:
            return "new TLS connection per request";
    }
    return "";
}

/// application/x-www-form-urlencoded for the characters a redirect URI has.
std::string encode_form(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += c;
        } else {
            static constexpr char hex[] = "0123456789ABCDEF";
            out += '%';
            out += hex[static_cast<unsigned char>(c) >> 4];
            out += hex[static_cast<unsigned char>(c) & 15];
        }
    }
    return out;
}

constexpr std::string_view api_target = "/v1/tasks/bulk_create";
constexpr std::string_view api_body = R"({"tasks":[]})";

struct bench_env {
    emulator_setup env;
    asio::io_context ioc{1};
    client oauth{ioc.get_executor(), library_config()};
    std::shared_ptr<token_store> store = make_memory_token_store(ioc.get_executor());
    token_cache cache{oauth, store};
    api_client api{oauth, cache};
    asio::ssl::context tls{asio::ssl::context::tls_client};
    std::string access_token;  // the cached account's, for the bare API client
    // The bare client's keep-alive connections, kept across measurements as the library's pool
    // keeps its own: both pay their handshakes once, in the warm-up.
    struct bare_connection {
        std::optional<beast::ssl_stream<beast::tcp_stream>> stream;
        beast::flat_buffer buffer;
    };
    std::vector<bare_connection> bare_connections{64};

    client_config library_config() {
        auto c = env.config();
        c.pool.max_connections_per_host = 64;  // as many connections as the bare client opens
        return c;
    }

    bench_env() {
        tls.set_verify_mode(asio::ssl::verify_peer);
        tls.add_certificate_authority(asio::buffer(env.server.ca_pem()));
        auto tokens = env.obtain_tokens(ioc, oauth);
        access_token = std::string(tokens.access_token.reveal());
        run_coroutine(ioc, [&]() -> asio::awaitable<int> {
            co_await cache.async_store("account", std::move(tokens), asio::use_awaitable);
            co_return 0;
        });
    }

    http::request<http::string_body> bare_request(workload w, const std::string& refresh_token) const {
        const auto& registered = env.server.config().clients.front();
        http::request<http::string_body> req;
        req.version(11);
        req.set(http::field::host, "127.0.0.1:" + std::to_string(env.server.port()));
        if (w == workload::api) {
            req.method(http::verb::post);
            req.target(api_target);
            req.set(http::field::authorization, "Bearer " + access_token);
            req.set(http::field::content_type, "application/json");
            req.body() = api_body;
        } else {
            req.method(http::verb::post);
            req.target("/api/v1/oauth/token");
            req.set(http::field::content_type, "application/x-www-form-urlencoded");
            req.body() = "grant_type=refresh_token&refresh_token=" + refresh_token +
                         "&client_id=" + registered.client_id + "&client_secret=" + registered.client_secret +
                         "&redirect_uri=" + encode_form(registered.redirect_uris.front());
        }
        req.prepare_payload();
        return req;
    }
};

/// One bare caller: `count` requests on one keep-alive connection (or a new one each time).
asio::awaitable<void> bare_caller(bench_env& b, workload w, std::string refresh_token, std::size_t count,
                                  bool reconnect, bench_env::bare_connection& connection) {
    auto ex = co_await asio::this_coro::executor;
    const tcp::endpoint server{asio::ip::make_address("127.0.0.1"), b.env.server.port()};
    auto& stream = connection.stream;
    auto& buffer = connection.buffer;
    for (std::size_t i = 0; i < count; ++i) {
        if (!stream) {
            stream.emplace(ex, b.tls);
            stream->set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
            co_await beast::get_lowest_layer(*stream).async_connect(server, asio::use_awaitable);
            co_await stream->async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
        }
        auto req = b.bare_request(w, refresh_token);
        if (reconnect) {
            req.keep_alive(false);
        }
        co_await http::async_write(*stream, req, asio::use_awaitable);
        http::response<http::string_body> res;
        co_await http::async_read(*stream, buffer, res, asio::use_awaitable);
        if (res.result() != http::status::ok) {
            throw std::runtime_error("bare client: HTTP " + std::to_string(res.result_int()) + " " +
                                     res.body().substr(0, 200));
        }
        if (w == workload::refresh) {
            refresh_token = std::string(boost::json::parse(res.body()).at("refresh_token").as_string());
        }
        if (reconnect) {
            stream.reset();
            buffer.clear();
        }
    }
}

asio::awaitable<void> library_caller(bench_env& b, workload w, secret_string refresh_token,
                                     std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
        if (w == workload::api) {
            api_request request;
            request.method = http::verb::post;
            request.target = api_target;
            request.body = api_body;
            auto response = co_await b.api.async_request("account", std::move(request), asio::use_awaitable);
            if (response.status != 200) {
                throw std::runtime_error("library: HTTP " + std::to_string(response.status));
            }
        } else {
            auto fresh = co_await b.oauth.async_refresh(std::move(refresh_token), {}, asio::use_awaitable);
            refresh_token = std::move(fresh.refresh_token);
        }
    }
}

/// Requests per second for `concurrency` callers sharing `total` requests.
double measure(bench_env& b, workload w, client_kind k, std::size_t concurrency, std::size_t total,
               std::vector<secret_string>& chains) {
    const auto per_caller = std::max<std::size_t>(1, total / concurrency);
    std::exception_ptr failure;
    for (std::size_t c = 0; c < concurrency; ++c) {
        auto handler = [&](std::exception_ptr e) {
            if (e && !failure) {
                failure = e;
            }
        };
        if (k == client_kind::library) {
            asio::co_spawn(
                b.ioc, library_caller(b, w, w == workload::refresh ? chains[c] : secret_string{}, per_caller),
                handler);
        } else {
            auto chain = w == workload::refresh ? std::string(chains[c].reveal()) : std::string{};
            asio::co_spawn(
                b.ioc,
                bare_caller(b, w, chain, per_caller, k == client_kind::reconnect, b.bare_connections[c]),
                handler);
        }
    }
    const auto start = bench_clock::now();
    b.ioc.run();
    b.ioc.restart();
    const auto elapsed = seconds_since(start);
    if (failure) {
        std::rethrow_exception(failure);
    }
    return static_cast<double>(per_caller * concurrency) / elapsed;
}

}  // namespace
}  // namespace apollo_oauth::bench

int main(int argc, char** argv) try {
    using namespace apollo_oauth::bench;
    const auto opts = options::parse(argc, argv);
    const auto total = static_cast<std::size_t>(opts.integer("requests", opts.quick ? 256 : 4'096));
    const auto reconnect_total =
        static_cast<std::size_t>(opts.integer("reconnect-requests", opts.quick ? 64 : 512));
    bench_env b;
    report out("throughput");

    // Refresh chains: each concurrent refresher rotates its own grant. The library's and the bare
    // client's chains are separate grants; after each round the chains are re-read from the
    // emulator (every refresh rotates them).
    const std::size_t max_concurrency = 64;
    std::map<client_kind, std::vector<apollo_oauth::secret_string>> chains;
    for (auto k : {client_kind::library, client_kind::bare, client_kind::reconnect}) {
        for (std::size_t c = 0; c < max_concurrency; ++c) {
            chains[k].push_back(b.env.obtain_tokens(b.ioc, b.oauth).refresh_token);
        }
    }
    const auto refresh_newest = [&](client_kind k) {
        for (auto& chain : chains[k]) {
            chain = apollo_oauth::secret_string{
                b.env.server.newest_refresh_token_of(std::string(chain.reveal()))};
        }
    };

    if (const auto only = opts.integer("only-kind", -1); only >= 0) {
        // For syscall counting or profiling one client: API requests at --concurrency (1), once.
        const auto k = static_cast<client_kind>(only);
        const auto concurrency = std::clamp<std::size_t>(
            static_cast<std::size_t>(opts.integer("concurrency", 1)), 1, max_concurrency);
        measure(b, workload::api, k, concurrency, 64 * concurrency, chains[k]);  // warm-up: connections open
        std::cout << name_of(k) << ": "
                  << fixed(measure(b, workload::api, k, concurrency, total, chains[k]), 0) << "/s\n";
        return 0;
    }
    std::map<std::tuple<workload, client_kind, std::size_t>, std::vector<double>> rps;
    for (int round = -1; round < opts.rounds; ++round) {  // round -1 warms up and is not counted
        for (auto w : {workload::api, workload::refresh}) {
            for (std::size_t concurrency : {std::size_t{1}, max_concurrency}) {
                for (auto k : {client_kind::library, client_kind::bare, client_kind::reconnect}) {
                    const auto n = k == client_kind::reconnect ? reconnect_total : total;
                    const auto rate = measure(b, w, k, concurrency, n, chains[k]);
                    if (round >= 0) {
                        rps[{w, k, concurrency}].push_back(rate);
                    }
                    refresh_newest(k);
                }
            }
        }
    }
    for (auto w : {workload::api, workload::refresh}) {
        const std::string what = w == workload::api ? "API requests" : "refreshes";
        for (std::size_t concurrency : {std::size_t{1}, max_concurrency}) {
            const auto lib = median(rps[{w, client_kind::library, concurrency}]);
            const auto bare = median(rps[{w, client_kind::bare, concurrency}]);
            const auto fresh = median(rps[{w, client_kind::reconnect, concurrency}]);
            const auto key = what + " c=" + std::to_string(concurrency);
            out.row(key,
                    key + ": library " + fixed(lib, 0) + "/s, " + name_of(client_kind::bare) + " " +
                        fixed(bare, 0) + "/s (x" + fixed(lib / bare, 2) + "), " +
                        name_of(client_kind::reconnect) + " " + fixed(fresh, 0) + "/s",
                    {{"library_per_s", lib},
                     {"bare_per_s", bare},
                     {"reconnect_per_s", fresh},
                     {"library_vs_bare", lib / bare}});
            out.target(key + ": library / bare beast", lib / bare, ">=", 0.8);
        }
    }
    return out.finish(opts);
} catch (const std::exception& e) {
    std::cerr << "throughput: " << e.what() << '\n';
    return 2;
}
