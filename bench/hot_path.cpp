// Benchmark 1, the hot path: async_get for an account whose token is valid, from coroutines,
// with 10k accounts cached, on a 1-thread and a 2-thread io_context, side by side with:
//   (a) floor:  co_await of an operation that completes at once (a post to the caller),
//   (b) mutex:  one global mutex around a hash map plus an expiry check (mutex-based libraries),
//   (c) strand: a hop through a strand that owns the map, then back to the caller.
// Every variant completes through the caller's executor, as the cache does (never inline): the
// comparison isolates the cache's own cost. Also: try_get against the same mutex map called
// synchronously, and 10M back-to-back gets in one coroutine, checking the stack does not grow.
#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>

#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "bench_support.hpp"

namespace apollo_oauth::bench {
namespace {

using std::chrono::system_clock;

constexpr std::size_t account_count = 10'000;
constexpr int coroutines_per_run = 8;

std::vector<std::string> make_accounts() {
    std::vector<std::string> accounts;
    accounts.reserve(account_count);
    for (std::size_t i = 0; i < account_count; ++i) {
        accounts.push_back("account-" + std::to_string(100'000 + i));
    }
    return accounts;
}

/// A 43-character token, the length of Apollo's (32 random bytes, base64url).
std::string token_for(std::size_t i) {
    auto t = std::string(43, 'x');
    auto digits = std::to_string(i);
    t.replace(0, digits.size(), digits);
    return t;
}

/// What mutex-based libraries do: a global lock around a map, an expiry check, a copy out.
class mutex_map {
public:
    void put(const std::string& account, std::string token, system_clock::time_point expires_at) {
        std::lock_guard lock{mutex_};
        map_[account] = {std::move(token), expires_at};
    }

    std::optional<std::string> get(const std::string& account) {
        std::lock_guard lock{mutex_};
        return get_unlocked(account);
    }

    template <class CompletionToken>
    auto async_get(std::string account, CompletionToken&& token) {
        return asio::async_initiate<CompletionToken, void(error_code, std::string)>(
            [this](auto handler, std::string account) {
                auto value = get(account);
                auto ex = asio::get_associated_executor(handler);
                asio::post(ex, [h = std::move(handler), v = std::move(value)]() mutable {
                    std::move(h)(v ? error_code{} : make_error_code(errc::unknown_account), v.value_or(""));
                });
            },
            token, std::move(account));
    }

    // Unsynchronised access for the strand variant, which serialises callers itself.
    std::optional<std::string> get_unlocked(const std::string& account) const {
        auto it = map_.find(account);
        if (it == map_.end() || it->second.expires_at <= system_clock::now()) {
            return std::nullopt;
        }
        return it->second.token;
    }

private:
    struct record {
        std::string token;
        system_clock::time_point expires_at;
    };
    std::mutex mutex_;
    std::unordered_map<std::string, record> map_;
};

/// (c): the map belongs to a strand; each call hops onto it and back.
template <class CompletionToken>
auto async_get_via_strand(asio::strand<asio::io_context::executor_type>& strand, const mutex_map& map,
                          std::string account, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(error_code, std::string)>(
        [&](auto handler, std::string account) {
            asio::post(strand, [&map, h = std::move(handler), account = std::move(account)]() mutable {
                auto value = map.get_unlocked(account);
                auto ex = asio::get_associated_executor(h);
                asio::post(ex, [h = std::move(h), v = std::move(value)]() mutable {
                    std::move(h)(v ? error_code{} : make_error_code(errc::unknown_account), v.value_or(""));
                });
            });
        },
        token, std::move(account));
}

enum class variant { floor, mutex, strand, cache };
const char* name_of(variant v) {
    switch (v) {
        case variant::floor:
            return "floor (a)";
        case variant::mutex:
            return "mutex map (b)";
        case variant::strand:
            return "strand hop (c)";
        case variant::cache:
            return "token_cache";
    }
    return "";
}

struct fixture {
    asio::io_context setup_ioc;
    client oauth{setup_ioc.get_executor(), dummy_config()};
    std::shared_ptr<token_store> store = make_memory_token_store(setup_ioc.get_executor());
    token_cache cache{oauth, store};
    mutex_map baseline;
    std::vector<std::string> accounts = make_accounts();

    static client_config dummy_config() {
        client_config c;
        c.client_id = "bench-client";
        c.client_secret = secret_string{"bench-secret-not-used"};
        c.redirect_uris = {"https://app.example.com/oauth/callback"};
        return c;
    }

    fixture() {
        const auto now = system_clock::now();
        run_coroutine(setup_ioc, [&]() -> asio::awaitable<int> {
            for (std::size_t i = 0; i < accounts.size(); ++i) {
                token_set t;
                t.access_token = secret_string{token_for(i)};
                t.refresh_token = secret_string{token_for(i + account_count)};
                t.token_type = "Bearer";
                t.expires_in = std::chrono::hours(24 * 30);
                t.created_at = now;
                t.expires_at = now + t.expires_in;
                baseline.put(accounts[i], token_for(i), t.expires_at);
                co_await cache.async_store(accounts[i], std::move(t), asio::use_awaitable);
            }
            co_return 0;
        });
    }
};

/// One coroutine's share: `count` gets spread over the accounts (a stride, so consecutive calls
/// touch different shards and map buckets). Returns a checksum so nothing is optimised away.
asio::awaitable<std::size_t> caller(fixture& f, variant v, int seed, std::size_t count,
                                    asio::strand<asio::io_context::executor_type>* strand) {
    std::size_t checksum = 0;
    std::size_t index = static_cast<std::size_t>(seed) * 7919;
    for (std::size_t i = 0; i < count; ++i) {
        index = (index + 7919) % account_count;
        const auto& account = f.accounts[index];
        switch (v) {
            case variant::floor:
                co_await asio::post(asio::deferred);
                checksum += 1;
                break;
            case variant::mutex: {
                auto [ec, token] = co_await f.baseline.async_get(account, asio::as_tuple(asio::deferred));
                checksum += token.size() + static_cast<std::size_t>(ec.value());
                break;
            }
            case variant::strand: {
                auto [ec, token] = co_await async_get_via_strand(*strand, f.baseline, account,
                                                                 asio::as_tuple(asio::deferred));
                checksum += token.size() + static_cast<std::size_t>(ec.value());
                break;
            }
            case variant::cache: {
                auto [ec, token] = co_await f.cache.async_get(account, asio::as_tuple(asio::deferred));
                checksum += token.value.reveal().size() + static_cast<std::size_t>(ec.value());
                break;
            }
        }
    }
    co_return checksum;
}

/// How the callers' threads are arranged: one io_context run by all of them (its scheduler queue
/// is shared), or one io_context per thread (the usual layout of servers built for throughput).
enum class layout { shared_context, context_per_thread };

/// ns per get (wall time / total gets) for `threads` threads running `coroutines_per_run` callers.
double measure_async(fixture& f, variant v, unsigned threads, std::size_t gets, layout arrangement) {
    const auto contexts = arrangement == layout::shared_context ? 1u : threads;
    std::vector<std::unique_ptr<asio::io_context>> iocs;
    for (unsigned c = 0; c < contexts; ++c) {
        iocs.push_back(std::make_unique<asio::io_context>(static_cast<int>(threads / contexts)));
    }
    // One strand for (c): the map it guards is shared by every caller.
    auto strand = asio::make_strand(iocs.front()->get_executor());
    std::atomic<std::size_t> checksum{0};
    // Every io_context stays alive until the last caller is done: the strand of (c) lives on the
    // first one and serves callers of the others.
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
    for (auto& ioc : iocs) {
        keep_running.push_back(asio::make_work_guard(*ioc));
    }
    std::atomic<int> running{coroutines_per_run};
    const auto per_caller = gets / coroutines_per_run;
    for (int k = 0; k < coroutines_per_run; ++k) {
        auto& ioc = *iocs[static_cast<std::size_t>(k) % contexts];
        asio::co_spawn(ioc, caller(f, v, k, per_caller, &strand), [&](std::exception_ptr e, std::size_t sum) {
            if (e) {
                std::rethrow_exception(e);
            }
            checksum += sum;
            if (--running == 0) {
                for (auto& ioc : iocs) {
                    ioc->stop();
                }
            }
        });
    }
    const auto start = bench_clock::now();
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t) {
        pool.emplace_back([&, t] { iocs[t % contexts]->run(); });
    }
    iocs.front()->run();
    for (auto& t : pool) {
        t.join();
    }
    const auto elapsed = seconds_since(start);
    const auto expected =
        v == variant::floor ? per_caller * coroutines_per_run : per_caller * coroutines_per_run * 43;
    if (checksum != expected) {
        throw std::runtime_error(std::string(name_of(v)) + ": a get failed");
    }
    return elapsed * 1e9 / static_cast<double>(per_caller * coroutines_per_run);
}

/// ns per synchronous lookup: try_get against the mutex map called directly, on `threads` threads.
double measure_sync(fixture& f, bool use_cache, unsigned threads, std::size_t gets) {
    std::atomic<std::size_t> failures{0};
    const auto per_thread = gets / threads;
    const auto work = [&](unsigned seed) {
        std::size_t index = seed * 7919;
        std::size_t missing = 0;
        for (std::size_t i = 0; i < per_thread; ++i) {
            index = (index + 7919) % account_count;
            const auto& account = f.accounts[index];
            const bool found =
                use_cache ? f.cache.try_get(account).has_value() : f.baseline.get(account).has_value();
            missing += found ? 0 : 1;
        }
        failures += missing;
    };
    const auto start = bench_clock::now();
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t) {
        pool.emplace_back(work, t);
    }
    work(0);
    for (auto& t : pool) {
        t.join();
    }
    const auto elapsed = seconds_since(start);
    if (failures != 0) {
        throw std::runtime_error("a synchronous lookup failed");
    }
    return elapsed * 1e9 / static_cast<double>(per_thread * threads);
}

[[gnu::noinline]] std::uintptr_t stack_position() {
    return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
}

/// 10M (or `gets`) back-to-back gets in one coroutine: how far the native stack moved between
/// the first resumption and the deepest one. Inline completions would nest resumptions and grow
/// it until the 8 MiB stack overflows; the cache completes through the executor, so it stays flat.
std::size_t stack_growth(fixture& f, std::size_t gets) {
    asio::io_context ioc{1};
    std::uintptr_t lowest = ~std::uintptr_t{0};
    std::uintptr_t highest = 0;
    run_coroutine(ioc, [&]() -> asio::awaitable<int> {
        for (std::size_t i = 0; i < gets; ++i) {
            auto [ec, token] =
                co_await f.cache.async_get(f.accounts[i % account_count], asio::as_tuple(asio::deferred));
            if (ec) {
                throw std::runtime_error("get failed during the stack check");
            }
            const auto sp = stack_position();
            lowest = std::min(lowest, sp);
            highest = std::max(highest, sp);
        }
        co_return 0;
    });
    return highest - lowest;
}

}  // namespace
}  // namespace apollo_oauth::bench

int main(int argc, char** argv) try {
    using namespace apollo_oauth::bench;
    const auto opts = options::parse(argc, argv);
    const auto gets = static_cast<std::size_t>(opts.integer("gets", opts.quick ? 80'000 : 2'000'000));
    const auto stack_gets =
        static_cast<std::size_t>(opts.integer("stack-gets", opts.quick ? 100'000 : 10'000'000));
    fixture f;
    if (const auto only = opts.integer("only-variant", -1); only >= 0) {
        // For instruction counting under callgrind (noise-free, one thread): one variant, once.
        const auto v = static_cast<variant>(only);
        if (only > 4) {
            throw std::invalid_argument("--only-variant 0..4 (floor, mutex, strand, cache, try_get)");
        }
        const double ns =
            only == 4 ? measure_sync(f, true, 1, gets) : measure_async(f, v, 1, gets, layout::shared_context);
        std::cout << (only == 4 ? "try_get" : name_of(v)) << ": " << fixed(ns) << " ns/get\n";
        return 0;
    }
    report out("hot_path");

    const variant variants[] = {variant::floor, variant::mutex, variant::strand, variant::cache};
    std::map<std::pair<variant, unsigned>, std::vector<double>> async_ns;
    std::map<variant, std::vector<double>> per_thread_context_ns;
    std::map<std::pair<bool, unsigned>, std::vector<double>> sync_ns;
    for (int round = 0; round < opts.rounds; ++round) {
        // Interleaved: every variant sees the same machine noise in each round.
        for (unsigned threads : {1u, 2u}) {
            for (auto v : variants) {
                async_ns[{v, threads}].push_back(measure_async(f, v, threads, gets, layout::shared_context));
                if (threads == 2) {
                    per_thread_context_ns[v].push_back(
                        measure_async(f, v, 2, gets, layout::context_per_thread));
                }
            }
            for (bool use_cache : {false, true}) {
                sync_ns[{use_cache, threads}].push_back(measure_sync(f, use_cache, threads, gets));
            }
        }
    }

    const auto ns = [&](variant v, unsigned t) { return median(async_ns[{v, t}]); };
    for (auto v : variants) {
        const double one = ns(v, 1), two = ns(v, 2);
        out.row(
            std::string("async_") + name_of(v),
            std::string(name_of(v)) + ": " + fixed(one) + " ns/get on 1 thread, " + fixed(two) +
                " ns/get on 2 threads (x" + fixed(one / two, 2) + " throughput)",
            {{"ns_per_get_1_thread", one}, {"ns_per_get_2_threads", two}, {"scaling_2_threads", one / two}});
    }
    for (auto v : variants) {
        const double one = ns(v, 1), two = median(per_thread_context_ns[v]);
        out.row(std::string("async_context_per_thread_") + name_of(v),
                std::string(name_of(v)) + ", one io_context per thread: " + fixed(two) +
                    " ns/get on 2 threads (x" + fixed(one / two, 2) + " the 1-thread throughput)",
                {{"ns_per_get_2_threads", two}, {"scaling_2_threads", one / two}});
    }
    for (bool use_cache : {false, true}) {
        const double one = median(sync_ns[{use_cache, 1}]), two = median(sync_ns[{use_cache, 2}]);
        const std::string label = use_cache ? "try_get (sync)" : "mutex map get (sync)";
        out.row(
            label,
            label + ": " + fixed(one) + " ns on 1 thread, " + fixed(two) + " ns on 2 threads (x" +
                fixed(one / two, 2) + ")",
            {{"ns_per_get_1_thread", one}, {"ns_per_get_2_threads", two}, {"scaling_2_threads", one / two}});
    }
    const auto growth = stack_growth(f, stack_gets);
    out.row("stack",
            std::to_string(stack_gets) + " back-to-back gets in one coroutine: the stack moved " +
                std::to_string(growth) + " bytes",
            {{"gets", stack_gets}, {"stack_growth_bytes", growth}});

    out.target("cache / mutex map, 1 thread (ns ratio)", ns(variant::cache, 1) / ns(variant::mutex, 1),
               "<=", 1.0);
    out.target("cache 2-thread throughput / 1-thread", ns(variant::cache, 1) / ns(variant::cache, 2),
               ">=", 1.6);
    out.target("stack growth over the back-to-back gets (bytes)", static_cast<double>(growth), "<=", 4096);
    return out.finish(opts);
} catch (const std::exception& e) {
    std::cerr << "hot_path: " << e.what() << '\n';
    return 2;
}
