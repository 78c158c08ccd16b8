// Benchmark 2, the refresh herd: N coroutines call async_get at once on an expired token, against
// the emulator over loopback TLS. Measured side by side in the same run:
//   token_cache    the library: one refresh, every waiter woken in one batch per executor;
//   serialised     the common design: callers queue on one async lock held across the refresh,
//                  and each re-checks the token when its turn comes;
//   no coalescing  every caller refreshes with the token it read (rotation turns all but one into
//                  invalid_grant: the storm that locks customers out);
//   bare wake-up   N coroutines parked on a bare queue of their concrete handlers and resumed by
//                  one loop: the floor for waking waiters, and for memory per waiter.
//   Go             golang.org/x/oauth2's ReuseTokenSource (bench/go, when --go names its binary):
//                  N goroutines call Token() on the expired token against the same emulator.
// Also the herd whose refresh fails (one request, N errors) and the herd on a token whose lifetime
// is shorter than the refresh-ahead margin (one rotation, not N).
#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <iterator>
#include <list>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "bench_support.hpp"
#include "heap_counter.hpp"

namespace apollo_oauth::bench {
namespace {

using std::chrono::milliseconds;

/// Parks coroutines as their concrete handlers (no type erasure, no allocation beyond the
/// reserved vector) and resumes them all from one handler: the bare wake-up loop.
class parking_lot {
public:
    explicit parking_lot(std::size_t expected) : expected_(expected) {}

    template <class CompletionToken>
    auto async_wait(CompletionToken&& token) {
        return asio::async_initiate<CompletionToken, void()>(
            [this](auto handler) {
                using handler_type = decltype(handler);
                auto& parked = parked_of<handler_type>();
                if (parked.capacity() < expected_) {
                    parked.reserve(expected_);
                }
                parked.push_back(std::move(handler));
                release_ = [] {
                    auto all = std::move(parked_of<handler_type>());
                    parked_of<handler_type>().clear();
                    for (auto& h : all) {
                        std::move(h)();
                    }
                };
            },
            token);
    }

    /// Resumes every parked coroutine, in one handler on `ex`.
    void release(asio::any_io_executor ex) {
        asio::post(ex, [release = release_] { release(); });
    }

private:
    template <class Handler>
    static std::vector<Handler>& parked_of() {
        static std::vector<Handler> parked;
        return parked;
    }
    std::size_t expected_;
    std::function<void()> release_;
};

/// The common design's lock: FIFO, handed to the next waiter through a post.
class async_lock {
public:
    explicit async_lock(asio::any_io_executor ex) : ex_(std::move(ex)) {}

    template <class CompletionToken>
    auto async_acquire(CompletionToken&& token) {
        return asio::async_initiate<CompletionToken, void()>(
            [this](auto handler) {
                std::unique_lock lock{mutex_};
                if (!held_) {
                    held_ = true;
                    lock.unlock();
                    asio::post(ex_, std::move(handler));
                    return;
                }
                waiting_.emplace_back(std::move(handler));
            },
            token);
    }

    void release() {
        std::unique_lock lock{mutex_};
        if (waiting_.empty()) {
            held_ = false;
            return;
        }
        // Moved out by construction: any_completion_handler must not be move-assigned (Boost 1.81).
        std::optional<asio::any_completion_handler<void()>> next;
        next.emplace(std::move(waiting_.front()));
        waiting_.pop_front();
        lock.unlock();
        asio::post(ex_, [h = std::move(*next)]() mutable { std::move(h)(); });
    }

private:
    asio::any_io_executor ex_;
    std::mutex mutex_;
    bool held_ = false;
    std::deque<asio::any_completion_handler<void()>> waiting_;
};

enum class design { cache, serialised, no_coalescing, bare };
enum class scenario { succeeds, refresh_fails, short_lifetime };

/// One herd: its own emulator, client and cache, N callers parked at a gate, then released.
struct herd {
    herd(std::size_t n, design d, scenario sc, unsigned thread_count = 1)
        : callers(n), kind(d), situation(sc), threads(thread_count), gate(n), bare_lot(n), latency(n, 0) {
        if (situation == scenario::short_lifetime) {
            env.server.set_expires_in(std::chrono::seconds(30));  // shorter than the 60 s margin
        }
        auto tokens = env.obtain_tokens(ioc, oauth);
        refresh_token = tokens.refresh_token;
        stale_access_token = std::string(tokens.access_token.reveal());
        // Expired a second ago: the next get must refresh.
        tokens.expires_at = std::chrono::system_clock::now() - std::chrono::seconds(1);
        tokens.expires_in = std::chrono::seconds(30);
        tokens.created_at = tokens.expires_at - tokens.expires_in;
        serialised_expires_at = tokens.expires_at;
        run_coroutine(ioc, [&]() -> asio::awaitable<int> {
            co_await cache.async_store("account", std::move(tokens), asio::use_awaitable);
            co_return 0;
        });
        if (situation == scenario::refresh_fails) {
            env.server.inject({.what = emulator::fault::kind::http_status, .where = emulator::route::token});
        }
        before = env.server.stats();
        release_started = {};  // on_rotation also ran for the pair stored above
    }

    asio::awaitable<void> caller(std::size_t i) {
        co_await gate.async_wait(asio::deferred);
        const auto start = bench_clock::now();
        if (++called == callers) {
            all_called = start;
        }
        bool failed = false;
        switch (kind) {
            case design::cache: {
                auto [ec, token] = co_await cache.async_get("account", asio::as_tuple(asio::deferred));
                failed = ec.failed();
                break;
            }
            case design::serialised: {
                co_await lock.async_acquire(asio::deferred);
                if (std::chrono::system_clock::now() >= serialised_expires_at) {
                    auto [ec, fresh] =
                        co_await oauth.async_refresh(refresh_token, {}, asio::as_tuple(asio::deferred));
                    if (!ec) {
                        refresh_token = fresh.refresh_token;
                        serialised_expires_at = fresh.expires_at - std::chrono::seconds(60);
                    }
                    failed = ec.failed();
                }
                lock.release();
                break;
            }
            case design::no_coalescing: {
                auto [ec, fresh] =
                    co_await oauth.async_refresh(refresh_token, {}, asio::as_tuple(asio::deferred));
                failed = ec.failed();
                invalid_grants += ec == errc::invalid_grant ? 1 : 0;
                break;
            }
            case design::bare:
                co_await bare_lot.async_wait(asio::deferred);
                break;
        }
        const auto end = bench_clock::now();
        latency[i] = std::chrono::duration<double, std::micro>(end - start).count();
        auto seen = last_resumed_ticks.load();
        while (seen < end.time_since_epoch().count() &&
               !last_resumed_ticks.compare_exchange_weak(seen, end.time_since_epoch().count())) {
        }
        errors += failed ? 1 : 0;
    }

    /// Spawns the callers and runs until every one has reached the gate.
    void park_at_gate() {
        for (std::size_t i = 0; i < callers; ++i) {
            asio::co_spawn(ioc, caller(i), asio::detached);
        }
        while (ioc.poll_one() != 0) {
        }
    }

    /// Opens the gate and runs until every caller is inside its operation (parked on the cache,
    /// the lock, the bare lot or the network), then returns the live heap bytes at that moment.
    std::ptrdiff_t release_and_park() {
        gate.release(ioc.get_executor());
        run_until_every_caller_called();
        return live_heap_bytes();
    }

    /// On this thread only: every caller is then inside its operation.
    void run_until_every_caller_called() {
        while (called < callers) {
            ioc.run_one();
        }
    }

    void run_to_completion() {
        if (kind == design::bare) {
            run_until_every_caller_called();  // every caller must be parked before the release
            release_started = bench_clock::now();
            bare_lot.release(ioc.get_executor());
        }
        // The callers and the cache run on `threads` threads; the gate's loop resumed them all on
        // one, and their completions go wherever the io_context sends them.
        std::vector<std::thread> pool;
        for (unsigned t = 1; t < threads; ++t) {
            pool.emplace_back([this] { ioc.run(); });
        }
        ioc.run();
        for (auto& t : pool) {
            t.join();
        }
        ioc.restart();
    }

    bench_clock::time_point last_resumed() const {
        return bench_clock::time_point{bench_clock::duration{last_resumed_ticks.load()}};
    }

    emulator_setup env;
    asio::io_context ioc;
    client oauth{ioc.get_executor(), env.config()};
    std::shared_ptr<token_store> store = make_memory_token_store(ioc.get_executor());
    token_cache cache{oauth, store, cache_hooks()};

    std::size_t callers;
    design kind;
    scenario situation;
    unsigned threads;
    parking_lot gate;
    parking_lot bare_lot;
    async_lock lock{ioc.get_executor()};
    secret_string refresh_token;
    std::string stale_access_token;
    std::chrono::system_clock::time_point serialised_expires_at;
    emulator::counters before;

    std::atomic<std::size_t> called{0};
    std::atomic<std::size_t> errors{0};
    std::atomic<std::size_t> invalid_grants{0};
    std::vector<double> latency;
    bench_clock::time_point release_started{};  // the rotation's publication, or the bare release
    std::atomic<bench_clock::rep> last_resumed_ticks{0};
    bench_clock::time_point all_called{};

private:
    cache_config cache_hooks() {
        cache_config c;
        c.on_rotation = [this](const std::string&, const token_set&) {
            if (release_started == bench_clock::time_point{}) {
                release_started = bench_clock::now();
            }
        };
        return c;
    }
};

struct herd_figures {
    double wall_ms = 0;
    double p50_us = 0;
    double p99_us = 0;
    double release_ns_per_waiter = 0;
    std::uint64_t refresh_requests = 0;
    std::uint64_t successful_refreshes = 0;
    std::size_t errors = 0;
    std::size_t invalid_grants = 0;
    double park_ms = 0;     // gate opened -> the last caller has called
    double refresh_ms = 0;  // -> the rotation is published (cache only)
};

/// The largest ratio of `design`'s figure to `baseline`'s in the same round (the rounds run side by
/// side, so each round's pair saw the same machine).
double worst_round(const std::vector<herd_figures>& design, const std::vector<herd_figures>& baseline,
                   double herd_figures::*field) {
    double worst = 0;
    for (std::size_t round = 0; round < design.size() && round < baseline.size(); ++round) {
        worst = std::max(worst, design[round].*field / baseline[round].*field);
    }
    return worst;
}

herd_figures run_herd(std::size_t n, design d, scenario sc, unsigned threads = 1) {
    herd h(n, d, sc, threads);
    h.park_at_gate();
    const auto released = bench_clock::now();
    h.gate.release(h.ioc.get_executor());
    h.run_to_completion();
    if (h.called != n) {
        throw std::runtime_error("not every caller ran");
    }
    const auto after = h.env.server.stats();
    herd_figures f;
    f.wall_ms = std::chrono::duration<double, std::milli>(h.last_resumed() - released).count();
    f.p50_us = quantile(h.latency, 0.5);
    f.p99_us = quantile(h.latency, 0.99);
    // With two threads the rotation may be published while the gate's loop is still letting
    // callers in (the late ones find a valid token): the wake-up is timed from whichever is later.
    if (h.release_started != bench_clock::time_point{} && h.release_started < h.all_called) {
        h.release_started = h.all_called;
    }
    if (h.release_started != bench_clock::time_point{}) {
        f.release_ns_per_waiter =
            std::chrono::duration<double, std::nano>(h.last_resumed() - h.release_started).count() /
            static_cast<double>(n);
    }
    f.park_ms = std::chrono::duration<double, std::milli>(h.all_called - released).count();
    if (h.release_started != bench_clock::time_point{}) {
        f.refresh_ms = std::chrono::duration<double, std::milli>(h.release_started - h.all_called).count();
    }
    f.refresh_requests = after.refresh_token_grants - h.before.refresh_token_grants;
    f.successful_refreshes = after.successful_refreshes - h.before.successful_refreshes;
    f.errors = h.errors;
    f.invalid_grants = h.invalid_grants;
    return f;
}

/// Go's herd (bench/go/main.go): N goroutines, GOMAXPROCS = `threads`, call Token() at once on a
/// ReuseTokenSource holding an expired token; the emulator refreshes it over loopback TLS.
herd_figures run_go_herd(const std::string& go_binary, std::size_t n, unsigned threads) {
    emulator_setup env;
    asio::io_context ioc;
    client oauth{ioc.get_executor(), env.config()};
    const auto tokens = env.obtain_tokens(ioc, oauth);
    const auto& registered = env.server.config().clients.front();
    // The secrets reach the child in a file only this user can read, never on its command line.
    std::string text;  // one buffer, adopted (or copied and wiped) by the secret_string
    text.append(registered.client_secret).append(1, '\n');
    text.append(tokens.refresh_token.reveal()).append(1, '\n');
    const private_temp_file secrets(secret_string(std::move(text)));
    const auto command = go_binary + " herd -n " + std::to_string(n) + " -threads " +
                         std::to_string(threads) + " -token-url " + env.server.token_url() + " -ca " +
                         env.server.ca_file() + " -client-id " + registered.client_id + " -secrets '" +
                         secrets.path() + "' -redirect-uri " + registered.redirect_uris.front();
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
    if (!pipe) {
        throw std::runtime_error("cannot run " + go_binary);
    }
    herd_figures f;
    unsigned long long refreshes = 0, errors = 0;
    if (std::fscanf(pipe.get(), "wall_ms %lf refreshes %llu errors %llu", &f.wall_ms, &refreshes, &errors) !=
        3) {
        throw std::runtime_error("unexpected output from the Go herd");
    }
    f.refresh_requests = refreshes;
    f.errors = errors;
    return f;
}

/// Heap bytes per parked caller: the herd parked on the cache (its refresh held back by the
/// emulator) minus the same herd parked on the bare lot, divided by N. The coroutine frames and
/// everything else common to both cancel out.
double bytes_per_waiter(std::size_t n) {
    const auto parked = [n](design d) {
        herd h(n, d, scenario::succeeds);
        // Holds the refresh long enough for every caller to park behind it.
        h.env.server.inject({.what = emulator::fault::kind::latency,
                             .where = emulator::route::token,
                             .delay = milliseconds(3000)});
        h.park_at_gate();
        const auto base = live_heap_bytes();
        const auto with_waiters = h.release_and_park();
        h.run_to_completion();
        return static_cast<double>(with_waiters - base);
    };
    const auto cache_bytes = parked(design::cache);
    const auto bare_bytes = parked(design::bare);
    return (cache_bytes - bare_bytes) / static_cast<double>(n);
}

}  // namespace
}  // namespace apollo_oauth::bench

int main(int argc, char** argv) try {
    using namespace apollo_oauth::bench;
    const auto opts = options::parse(argc, argv);
    std::vector<std::size_t> sizes{1'000, 10'000, 100'000};
    if (opts.quick) {
        sizes = {200, 2'000};
    }
    const auto storm_limit = static_cast<std::size_t>(opts.integer("storm-limit", 10'000));
    const auto go_binary = opts.text("go", "");
    if (const auto only = opts.integer("only-n", 0); only > 0) {
        // For profiling (perf record, callgrind): the cache's herd alone, at one size, once.
        const auto threads = static_cast<unsigned>(opts.integer("threads", 1));
        const auto f = run_herd(static_cast<std::size_t>(only), design::cache, scenario::succeeds, threads);
        const auto bare = run_herd(static_cast<std::size_t>(only), design::bare, scenario::succeeds, threads);
        std::cout << "cache: wall " << fixed(f.wall_ms, 2) << " ms, wake-up "
                  << fixed(f.release_ns_per_waiter) << " ns/waiter, " << f.refresh_requests
                  << " refresh(es), callers in " << fixed(f.park_ms, 2) << " ms, refresh "
                  << fixed(f.refresh_ms, 2) << " ms; bare wake-up " << fixed(bare.release_ns_per_waiter)
                  << " ns/waiter, bare wall " << fixed(bare.wall_ms, 2) << " ms (callers in "
                  << fixed(bare.park_ms, 2) << " ms)";
        if (opts.integer("serialised", 0) != 0) {
            const auto s =
                run_herd(static_cast<std::size_t>(only), design::serialised, scenario::succeeds, threads);
            std::cout << "; serialised wall " << fixed(s.wall_ms, 2) << " ms (callers in "
                      << fixed(s.park_ms, 2) << " ms)";
        }
        std::cout << '\n';
        return 0;
    }
    report out("herd");
    std::ofstream plot_data;
    if (!opts.json_path.empty()) {
        plot_data.open(opts.json_path + ".dat");
        plot_data << "# N, then for 1 and 2 threads: cache_wall_ms serialised_wall_ms bare_release_ns "
                     "cache_release_ns\n";
    }

    const auto largest = sizes.back();
    for (auto n : sizes) {
        std::ostringstream plot_row;
        plot_row << n;
        for (unsigned threads : {1u, 2u}) {
            std::map<design, std::vector<herd_figures>> runs;
            std::vector<herd_figures> go_runs;
            for (int round = 0; round < opts.rounds; ++round) {
                // The order rotates every round: a herd inherits the heap the one before it left
                // (100,000 coroutine frames freed in its own order), which moved the bare loop's
                // figure by a third between two builds whose bare loop was the same code. With the
                // rounds a multiple of 3, each design runs once in each position.
                const design order[] = {design::cache, design::serialised, design::bare};
                for (std::size_t k = 0; k < std::size(order); ++k) {
                    const auto d = order[(k + static_cast<std::size_t>(round)) % std::size(order)];
                    runs[d].push_back(run_herd(n, d, scenario::succeeds, threads));
                }
                if (!go_binary.empty()) {
                    go_runs.push_back(run_go_herd(go_binary, n, threads));
                }
            }
            const auto med = [&](design d, auto field) {
                std::vector<double> v;
                for (const auto& f : runs[d]) {
                    v.push_back(static_cast<double>(f.*field));
                }
                return median(v);
            };
            std::uint64_t most_requests = 0;
            std::size_t most_errors = 0;
            for (const auto& f : runs[design::cache]) {
                most_requests = std::max(most_requests, f.refresh_requests);
                most_errors = std::max(most_errors, f.errors);
            }
            const auto cache_wall = med(design::cache, &herd_figures::wall_ms);
            const auto serial_wall = med(design::serialised, &herd_figures::wall_ms);
            const auto cache_release = med(design::cache, &herd_figures::release_ns_per_waiter);
            const auto bare_release = med(design::bare, &herd_figures::release_ns_per_waiter);
            const auto key = "N=" + std::to_string(n) + ", " + std::to_string(threads) + " thread" +
                             (threads > 1 ? "s" : "");
            out.row(key + " token_cache",
                    key + " token_cache: " + std::to_string(most_requests) + " refresh request(s), " +
                        std::to_string(most_errors) + " errors, wall " + fixed(cache_wall, 2) + " ms, p50 " +
                        fixed(med(design::cache, &herd_figures::p50_us)) + " us, p99 " +
                        fixed(med(design::cache, &herd_figures::p99_us)) + " us, release " +
                        fixed(cache_release) + " ns/waiter (callers in " +
                        fixed(med(design::cache, &herd_figures::park_ms), 2) + " ms, refresh " +
                        fixed(med(design::cache, &herd_figures::refresh_ms), 2) + " ms)",
                    {{"refresh_requests_max", most_requests},
                     {"callers_call_ms", med(design::cache, &herd_figures::park_ms)},
                     {"refresh_ms", med(design::cache, &herd_figures::refresh_ms)},
                     {"errors_max", most_errors},
                     {"wall_ms", cache_wall},
                     {"p50_us", med(design::cache, &herd_figures::p50_us)},
                     {"p99_us", med(design::cache, &herd_figures::p99_us)},
                     {"release_ns_per_waiter", cache_release}});
            out.row(key + " serialised",
                    key + " serialised behind one lock: wall " + fixed(serial_wall, 2) + " ms, p50 " +
                        fixed(med(design::serialised, &herd_figures::p50_us)) + " us, p99 " +
                        fixed(med(design::serialised, &herd_figures::p99_us)) + " us, callers in " +
                        fixed(med(design::serialised, &herd_figures::park_ms), 2) +
                        " ms (cache/serialised wall x" + fixed(cache_wall / serial_wall, 2) + ")",
                    {{"wall_ms", serial_wall},
                     {"p50_us", med(design::serialised, &herd_figures::p50_us)},
                     {"p99_us", med(design::serialised, &herd_figures::p99_us)},
                     {"refresh_requests_median", med(design::serialised, &herd_figures::refresh_requests)}});
            // The bare loop's wall time: the same gate, a park that is a push into a vector
            // reserved at the first park, no refresh, a resumption without a token. On one thread,
            // where every cache caller parks, the cache's wall is that plus its dearer park (~2x),
            // its refresh and its own wake-up, so when this is above half the serialised wall the
            // wall target below is very unlikely to be met in that run; printed, so the table
            // shows it. (On two threads the cache's refresh and wake-up overlap the gate: not a
            // floor there.)
            const auto bare_wall = med(design::bare, &herd_figures::wall_ms);
            out.row(key + " bare",
                    key + " bare wake-up loop: release " + fixed(bare_release) + " ns/waiter (cache x" +
                        fixed(cache_release / bare_release, 2) + "), wall " + fixed(bare_wall, 2) +
                        " ms (bare/serialised wall x" + fixed(bare_wall / serial_wall, 2) +
                        ": gate, park and wake-up, no refresh)",
                    {{"release_ns_per_waiter", bare_release},
                     {"wall_ms", bare_wall},
                     {"wall_over_serialised", bare_wall / serial_wall}});
            if (!go_binary.empty()) {
                std::vector<double> walls;
                std::uint64_t go_requests = 0;
                std::size_t go_errors = 0;
                for (const auto& f : go_runs) {
                    walls.push_back(f.wall_ms);
                    go_requests = std::max(go_requests, f.refresh_requests);
                    go_errors = std::max(go_errors, f.errors);
                }
                const auto go_wall = median(walls);
                out.row(key + " go",
                        key + " Go ReuseTokenSource: wall " + fixed(go_wall, 2) + " ms, " +
                            std::to_string(go_requests) + " refresh request(s), " +
                            std::to_string(go_errors) + " errors (cache/Go wall x" +
                            fixed(cache_wall / go_wall, 2) + ")",
                        {{"wall_ms", go_wall},
                         {"refresh_requests_max", go_requests},
                         {"errors_max", go_errors},
                         {"cache_over_go_wall", cache_wall / go_wall}});
            }
            out.check(key + ": refresh requests (every round)", static_cast<double>(most_requests), "<=", 1);
            out.check(key + ": errors (every round)", static_cast<double>(most_errors), "<=", 0);
            if (n == largest) {
                out.target(key + ": wall time / serialised", cache_wall / serial_wall, "<=", 0.5);
                out.target(key + ": release cost / bare wake-up loop", cache_release / bare_release,
                           "<=", 1.5);
                // The issue asks for both in every round: the worst round's ratio, each to its own
                // baseline of the same round.
                out.target(key + ": wall time / serialised, worst round",
                           worst_round(runs[design::cache], runs[design::serialised], &herd_figures::wall_ms),
                           "<=", 0.5);
                out.target(key + ": release cost / bare wake-up loop, worst round",
                           worst_round(runs[design::cache], runs[design::bare],
                                       &herd_figures::release_ns_per_waiter),
                           "<=", 1.5);
            }
            plot_row << ' ' << cache_wall << ' ' << serial_wall << ' ' << bare_release << ' '
                     << cache_release;
        }
        if (plot_data.is_open()) {
            plot_data << plot_row.str() << '\n';
        }
        const auto key = "N=" + std::to_string(n);

        const auto failing = run_herd(n, design::cache, scenario::refresh_fails);
        out.row(key + " refresh fails",
                key + " refresh answered 503: " + std::to_string(failing.refresh_requests) + " request(s), " +
                    std::to_string(failing.errors) + " errors",
                {{"refresh_requests", failing.refresh_requests}, {"errors", failing.errors}});
        out.check(key + ": failing refresh, requests", static_cast<double>(failing.refresh_requests),
                  "<=", 1);
        out.check(key + ": failing refresh, callers told", static_cast<double>(failing.errors),
                  ">=", static_cast<double>(n));

        const auto short_lived = run_herd(n, design::cache, scenario::short_lifetime);
        out.row(key + " short lifetime",
                key +
                    " 30 s tokens under a 60 s margin: " + std::to_string(short_lived.successful_refreshes) +
                    " rotation(s), " + std::to_string(short_lived.errors) + " errors",
                {{"rotations", short_lived.successful_refreshes}, {"errors", short_lived.errors}});
        out.check(key + ": short lifetime, rotations", static_cast<double>(short_lived.successful_refreshes),
                  "<=", 1);

        if (n <= storm_limit) {
            const auto storm = run_herd(n, design::no_coalescing, scenario::succeeds);
            out.row(key + " no coalescing",
                    key + " no coalescing: " + std::to_string(storm.refresh_requests) +
                        " refresh requests, " + std::to_string(storm.successful_refreshes) + " succeeded, " +
                        std::to_string(storm.invalid_grants) + " invalid_grant",
                    {{"refresh_requests", storm.refresh_requests},
                     {"successful", storm.successful_refreshes},
                     {"invalid_grant", storm.invalid_grants},
                     {"wall_ms", storm.wall_ms}});
        }
    }
    const auto per_waiter = bytes_per_waiter(largest);
    out.row(
        "memory",
        "heap the cache adds per waiter (N=" + std::to_string(largest) + "): " + fixed(per_waiter) + " bytes",
        {{"bytes_per_waiter", per_waiter}, {"n", largest}});
    out.target("bytes per waiter", per_waiter, "<=", 256);
    return out.finish(opts);
} catch (const std::exception& e) {
    std::cerr << "herd: " << e.what() << '\n';
    return 2;
}
