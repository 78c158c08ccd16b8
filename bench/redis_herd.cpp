// Benchmark 5, the cross-process herd through Redis (issue 12): K = 1, 2, 4 processes
// (bench_redis_herd_child, fork/exec) share N callers on one expired token through one Redis,
// next to the same N callers in one process over the memory store. Figures per K: refreshes the
// emulator answered (must be 1), wall time, and Redis commands per rotation (INFO stats).
// Also the hot path over the Redis store against the memory store, interleaved: a valid token
// never touches Redis (its commands during the loops are counted, and must be 0).
//
// Wall time of the Redis herd is the parent's: from the release (one close() of the pipe every
// child blocks on) to the last child's "done" line; each child's own timer is reported beside it.
// Every process runs its cache on one io_context thread; the emulator has two.
#include <apollo_oauth/redis_token_store.hpp>
#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <future>
#include <iostream>
#include <map>
#include <sstream>

#include "bench_support.hpp"
#include "redis/redis_server.hpp"
#include "store/child_process.hpp"
#include "store/child_settings.hpp"
#include "store/redis/connection.hpp"

namespace apollo_oauth::bench {
namespace {

using std::chrono::system_clock;
using store_test::child_process;

/// The Redis server of the whole run, its statistics, and writes made from the benchmark itself.
class redis_fixture {
public:
    redis_fixture() {
        // CONFIG RESETSTAT and INFO count themselves (or not): measured, not assumed.
        reset_stats();
        after_reset_ = commands_processed();
        info_cost_ = commands_processed() - after_reset_;
    }
    ~redis_fixture() { admin_.close(); }

    std::string url(const std::string& prefix) const {
        return "redis://127.0.0.1:" + std::to_string(server_.port()) + "/0?key_prefix=" + prefix;
    }
    const std::string& directory() const { return server_.directory(); }

    void reset_stats() { exec({"CONFIG", "RESETSTAT"}); }
    /// Commands the server processed since reset_stats(), other than the statistics' own.
    long long commands_since_reset() { return commands_processed() - after_reset_; }
    /// INFO stats' total_commands_processed.
    long long commands_processed() {
        const auto info = exec({"INFO", "stats"}).text;
        const std::string field = "total_commands_processed:";
        const auto at = info.find(field);
        if (at == std::string::npos) {
            throw std::runtime_error("INFO stats without total_commands_processed");
        }
        return std::stoll(info.substr(at + field.size()));
    }
    /// Calls per command since reset_stats() (INFO commandstats), without the statistics' own.
    std::map<std::string, long long> calls_by_command() {
        std::map<std::string, long long> calls;
        std::istringstream info(exec({"INFO", "commandstats"}).text);
        std::string line;
        while (std::getline(info, line)) {
            // cmdstat_<name>:calls=<n>,usec=...
            const auto colon = line.find(":calls=");
            if (line.rfind("cmdstat_", 0) == 0 && colon != std::string::npos) {
                const auto name = line.substr(8, colon - 8);
                if (name != "info" && name.rfind("config", 0) != 0) {
                    calls[name] = std::stoll(line.substr(colon + 7));
                }
            }
        }
        return calls;
    }
    /// What one INFO adds to the count seen by the next.
    long long info_cost() const { return info_cost_; }

    /// Stores `tokens` as generation 1 of `account` under `prefix`.
    void store_first_generation(const std::string& prefix, const std::string& account, token_set tokens) {
        redis_options options;
        if (parse_redis_url(url(prefix), options)) {
            throw std::runtime_error("bad Redis URL");
        }
        auto store = make_redis_token_store(pool_.get_executor(), options);
        std::promise<error_code> saved;
        store->async_save(account, stored_tokens{std::move(tokens), 1, record_state::ok}, 0,
                          [&](error_code ec) { saved.set_value(ec); });
        if (const auto ec = saved.get_future().get()) {
            throw std::runtime_error("saving generation 1: " + ec.message());
        }
    }

private:
    redis::reply exec(redis::command cmd) {
        auto reply = admin_.async_exec(std::move(cmd), asio::use_future).get();
        if (reply.is_error()) {
            throw std::runtime_error("redis: " + reply.text);
        }
        return reply;
    }

    static redis::connection_config plain(std::uint16_t port) {
        redis::connection_config c;
        c.host = "127.0.0.1";
        c.port = port;
        return c;
    }

    asio::thread_pool pool_{1};
    redis_test::redis_server server_;
    redis::connection admin_{pool_.get_executor(), plain(server_.port())};
    long long after_reset_ = 0;
    long long info_cost_ = 0;
};

emulator::server_config two_threads() {
    emulator::server_config c;
    c.threads = 2;
    return c;
}

/// A pair already past its expiry: the next get must refresh.
token_set expired(token_set tokens) {
    tokens.expires_at = system_clock::now() - std::chrono::seconds(1);
    tokens.expires_in = std::chrono::seconds(30);
    tokens.created_at = tokens.expires_at - tokens.expires_in;
    return tokens;
}

struct herd_figures {
    double wall_ms = 0;
    double child_ms = 0;          // the slowest child's own timer (Redis herd only)
    std::uint64_t refreshes = 0;  // refresh requests the emulator received
    long failed = 0;
    long long redis_commands = 0;
    std::map<std::string, long long> calls;  // per Redis command
};

/// K processes, `callers` in all, on one expired token in Redis.
herd_figures redis_herd(redis_fixture& redis, const std::string& child_binary, std::size_t callers,
                        unsigned processes, const std::string& prefix) {
    emulator_setup env{two_threads()};
    {
        asio::io_context ioc;
        client oauth{ioc.get_executor(), env.config()};
        redis.store_first_generation(prefix, "acme", expired(env.obtain_tokens(ioc, oauth)));
    }
    const auto settings = redis.directory() + "/settings";
    store_test::write_child_settings(settings, env.config(), env.server.ca_file());

    // The start signal: every child blocks reading this pipe, and the parent's one close() of its
    // write end releases them all at the same moment. Only the read end crosses exec.
    int start[2];
    if (::pipe2(start, O_CLOEXEC) != 0 || ::fcntl(start[0], F_SETFD, 0) != 0) {
        throw std::runtime_error("start pipe");
    }
    std::vector<std::unique_ptr<child_process>> children;
    for (unsigned i = 0; i < processes; ++i) {
        const auto share = callers / processes + (i < callers % processes ? 1 : 0);
        children.push_back(std::make_unique<child_process>(
            std::vector<std::string>{child_binary, settings, redis.url(prefix), "acme", std::to_string(share),
                                     std::to_string(start[0])}));
    }
    ::close(start[0]);
    for (auto& c : children) {
        if (c->read_line() != "ready") {
            ::close(start[1]);
            throw std::runtime_error("a child did not start");
        }
    }
    redis.reset_stats();
    const auto before = env.server.stats();

    const auto released = bench_clock::now();
    ::close(start[1]);
    herd_figures f;
    for (auto& c : children) {
        const auto line = c->read_line();
        long served = 0, failed = 0, refreshes = 0, elapsed_us = 0;
        if (!line || std::sscanf(line->c_str(), "done served=%ld failed=%ld refreshes=%ld elapsed_us=%ld",
                                 &served, &failed, &refreshes, &elapsed_us) != 4) {
            throw std::runtime_error("a child did not report");
        }
        f.failed += failed;
        f.child_ms = std::max(f.child_ms, static_cast<double>(elapsed_us) / 1e3);
    }
    f.wall_ms = seconds_since(released) * 1e3;
    for (auto& c : children) {
        const int status = c->wait();  // after its shutdown: every command it sent is counted
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            throw std::runtime_error("a child failed (status " + std::to_string(status) + ")");
        }
    }
    f.redis_commands = redis.commands_since_reset();
    f.calls = redis.calls_by_command();
    f.refreshes = env.server.stats().refresh_token_grants - before.refresh_token_grants;
    return f;
}

/// The baseline: the same callers in this process, the memory store, one io_context thread.
herd_figures memory_herd(std::size_t callers) {
    emulator_setup env{two_threads()};
    asio::io_context ioc{1};
    client authorizing{ioc.get_executor(), env.config()};
    const auto tokens = expired(env.obtain_tokens(ioc, authorizing));
    // A client of its own, not yet connected: the children's clients also open their TLS
    // connection during the herd.
    client oauth{ioc.get_executor(), env.config()};
    token_cache cache{oauth, make_memory_token_store(ioc.get_executor())};
    run_coroutine(ioc, [&]() -> asio::awaitable<int> {
        auto stored = cache.async_store("acme", tokens, asio::deferred);
        co_await std::move(stored);
        co_return 0;
    });
    const auto before = env.server.stats();

    herd_figures f;
    std::size_t completed = 0;
    const auto released = bench_clock::now();
    for (std::size_t i = 0; i < callers; ++i) {
        cache.async_get("acme", [&](error_code ec, access_token) {
            f.failed += ec ? 1 : 0;
            if (++completed == callers) {
                f.wall_ms = seconds_since(released) * 1e3;
            }
        });
    }
    ioc.run();
    if (completed != callers) {
        throw std::runtime_error("not every caller completed");
    }
    f.refreshes = env.server.stats().refresh_token_grants - before.refresh_token_grants;
    return f;
}

/// The hot path: one valid token cached over each store, read in a tight loop.
struct hot_fixture {
    explicit hot_fixture(redis_fixture& redis) {
        token_set t;
        t.access_token = secret_string{std::string(43, 'a')};  // Apollo's length
        t.refresh_token = secret_string{std::string(43, 'r')};
        t.token_type = "Bearer";
        t.expires_in = std::chrono::hours(24 * 30);
        t.created_at = system_clock::now();
        t.expires_at = t.created_at + t.expires_in;
        redis.store_first_generation("hot:", "acme", t);
        redis_options options;
        if (parse_redis_url(redis.url("hot:"), options)) {
            throw std::runtime_error("bad Redis URL");
        }
        redis_cache.emplace(oauth, make_redis_token_store(ioc.get_executor(), options));
        // Loaded from Redis once, before the counted loops; stored into memory for the other.
        run_coroutine(ioc, [&]() -> asio::awaitable<int> {
            auto loaded = redis_cache->async_get("acme", asio::as_tuple(asio::deferred));
            auto [ec, token] = co_await std::move(loaded);
            if (ec) {
                throw std::runtime_error("loading from Redis: " + ec.message());
            }
            auto stored = memory_cache.async_store("acme", t, asio::deferred);
            co_await std::move(stored);
            co_return 0;
        });
    }

    static client_config never_used() {
        client_config c;
        c.client_id = "bench-client";
        c.client_secret = secret_string{"bench-secret-not-used"};
        c.redirect_uris = {"https://app.example.com/oauth/callback"};
        return c;
    }

    asio::io_context ioc{1};
    client oauth{ioc.get_executor(), never_used()};
    token_cache memory_cache{oauth, make_memory_token_store(ioc.get_executor())};
    std::optional<token_cache> redis_cache;
};

/// ns per try_get.
double measure_try_get(token_cache& cache, std::size_t gets) {
    const std::string account = "acme";
    std::size_t found = 0;
    const auto start = bench_clock::now();
    for (std::size_t i = 0; i < gets; ++i) {
        found += cache.try_get(account) ? 1 : 0;
    }
    const auto ns = seconds_since(start) * 1e9 / static_cast<double>(gets);
    if (found != gets) {
        throw std::runtime_error("try_get missed a valid token");
    }
    return ns;
}

/// ns per async_get, back to back in one coroutine.
double measure_async_get(asio::io_context& ioc, token_cache& cache, std::size_t gets) {
    const auto start = bench_clock::now();
    run_coroutine(ioc, [&]() -> asio::awaitable<int> {
        const std::string account = "acme";
        for (std::size_t i = 0; i < gets; ++i) {
            // The operation is built outside the co_await (GCC 12 and temporaries, STYLE.md).
            auto get = cache.async_get(account, asio::as_tuple(asio::deferred));
            auto [ec, token] = co_await std::move(get);
            if (ec) {
                throw std::runtime_error("async_get failed on a valid token");
            }
        }
        co_return 0;
    });
    return seconds_since(start) * 1e9 / static_cast<double>(gets);
}

}  // namespace
}  // namespace apollo_oauth::bench

int main(int argc, char** argv) try {
    using namespace apollo_oauth::bench;
    const auto opts = options::parse(argc, argv);
    const auto callers = static_cast<std::size_t>(opts.integer("callers", opts.quick ? 1'000 : 10'000));
    const auto hot_gets =
        static_cast<std::size_t>(opts.integer("hot-gets", opts.quick ? 200'000 : 2'000'000));
    const auto child_binary = opts.text("child", BENCH_REDIS_HERD_CHILD);
    const unsigned process_counts[] = {1, 2, 4};
    constexpr int hot_slices = 10;
    const auto slice_gets = std::max<std::size_t>(4, hot_gets / hot_slices);

    redis_fixture redis;
    hot_fixture hot{redis};
    std::map<unsigned, std::vector<herd_figures>> herds;
    std::vector<herd_figures> baseline;
    std::map<std::string, std::vector<double>> hot_ns;
    long long hot_commands = 0;
    for (int round = 0; round < opts.rounds; ++round) {
        // Interleaved: every variant sees the same machine noise in each round.
        for (auto k : process_counts) {
            const auto prefix = "r" + std::to_string(round) + "k" + std::to_string(k) + ":";
            herds[k].push_back(redis_herd(redis, child_binary, callers, k, prefix));
        }
        baseline.push_back(memory_herd(callers));

        const auto before = redis.commands_processed();
        // Short slices in pairs, alternating which store goes first: a pair's two measurements see
        // the same moment of the machine's noise, so their ratio is what the run reports.
        for (int slice = 0; slice < hot_slices; ++slice) {
            std::map<std::string, double> pair;
            for (bool on_redis : {slice % 2 == 0, slice % 2 != 0}) {
                auto& cache = on_redis ? *hot.redis_cache : hot.memory_cache;
                const std::string store = on_redis ? " redis" : " memory";
                pair["try_get" + store] = measure_try_get(cache, slice_gets);
                pair["async_get" + store] = measure_async_get(hot.ioc, cache, slice_gets / 4);
            }
            for (const auto& [name, ns] : pair) {
                hot_ns[name].push_back(ns);
            }
            for (const std::string op : {"try_get", "async_get"}) {
                hot_ns[op + " ratio"].push_back(pair[op + " redis"] / pair[op + " memory"]);
            }
        }
        hot_commands += redis.commands_processed() - before - redis.info_cost();
    }

    report out("redis_herd");
    const auto base_wall = [&] {
        std::vector<double> v;
        for (const auto& f : baseline) {
            v.push_back(f.wall_ms);
        }
        return median(v);
    }();
    std::uint64_t base_refreshes = 0;
    for (const auto& f : baseline) {
        base_refreshes = std::max(base_refreshes, f.refreshes);
    }
    out.row("memory store, one process",
            "N=" + std::to_string(callers) + ", one process, memory store: wall " + fixed(base_wall, 2) +
                " ms, " + std::to_string(base_refreshes) + " refresh(es) at most",
            {{"callers", callers}, {"wall_ms", base_wall}, {"refreshes_max", base_refreshes}});
    for (auto k : process_counts) {
        std::vector<double> walls, child_walls, commands;
        std::uint64_t fewest = ~std::uint64_t{0}, most = 0;
        long failed = 0;
        for (const auto& f : herds[k]) {
            walls.push_back(f.wall_ms);
            child_walls.push_back(f.child_ms);
            // Per rotation: the refreshes the emulator answered (1 when the target is met).
            commands.push_back(static_cast<double>(f.redis_commands) /
                               static_cast<double>(std::max<std::uint64_t>(1, f.refreshes)));
            fewest = std::min(fewest, f.refreshes);
            most = std::max(most, f.refreshes);
            failed = std::max(failed, f.failed);
        }
        const auto wall = median(walls);
        const auto key = "K=" + std::to_string(k);
        boost::json::object calls;
        std::string calls_text;
        for (const auto& [name, n] : herds[k].back().calls) {
            calls[name] = n;
            calls_text += (calls_text.empty() ? "" : ", ") + name + " " + std::to_string(n);
        }
        out.row(key,
                key + " processes x " + std::to_string(callers / k) + " callers through Redis: refreshes " +
                    std::to_string(fewest) + (fewest == most ? "" : ".." + std::to_string(most)) +
                    ", failed " + std::to_string(failed) + ", wall " + fixed(wall, 2) +
                    " ms (slowest child " + fixed(median(child_walls), 2) +
                    " ms; one process, memory store, x" + fixed(wall / base_wall, 2) +
                    "), Redis commands per rotation " + fixed(median(commands), 0),
                {{"processes", k},
                 {"callers", callers},
                 {"refreshes_min", fewest},
                 {"refreshes_max", most},
                 {"failed_max", failed},
                 {"wall_ms", wall},
                 {"slowest_child_ms", median(child_walls)},
                 {"over_memory_one_process", wall / base_wall},
                 {"redis_commands_per_rotation", median(commands)},
                 {"redis_calls_last_round", calls}});
        out.row(key + " commands", key + " Redis commands of the last round: " + calls_text, {});
        out.check(key + ": refreshes, every round (at most)", static_cast<double>(most), "<=", 1);
        out.check(key + ": refreshes, every round (at least)", static_cast<double>(fewest), ">=", 1);
        out.check(key + ": failed callers", static_cast<double>(failed), "<=", 0);
    }
    for (const std::string op : {"try_get", "async_get"}) {
        const auto on_redis = median(hot_ns[op + " redis"]);
        const auto on_memory = median(hot_ns[op + " memory"]);
        const auto ratio = median(hot_ns[op + " ratio"]);
        out.row("hot " + op,
                op + " of a valid token: Redis store " + fixed(on_redis) + " ns, memory store " +
                    fixed(on_memory) + " ns (median ratio of adjacent slices x" + fixed(ratio, 3) + ")",
                {{"redis_ns", on_redis}, {"memory_ns", on_memory}, {"ratio", ratio}});
        out.target(op + " on a valid token, Redis store / memory store", ratio, "<=", 1.1);
    }
    out.row("hot redis commands", "Redis commands during the hot loops: " + std::to_string(hot_commands),
            {{"redis_commands", hot_commands}});
    out.check("Redis commands during the hot loops", static_cast<double>(hot_commands), "<=", 0);
    return out.finish(opts);
} catch (const std::exception& e) {
    std::cerr << "redis_herd: " << e.what() << '\n';
    return 2;
}
