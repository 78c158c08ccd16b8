// soak: a bounded, loopback-only endurance run of the client, the token cache and the API client
// against the emulator. See docs/soak.md.
#include <apollo_oauth/api_client.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/emulator/client_config.hpp>
#include <apollo_oauth/emulator/server.hpp>
#include <apollo_oauth/token_cache.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <future>
#include <thread>
#include <vector>

#include "options.hpp"
#include "phases.hpp"
#include "report.hpp"
#include "rss_monitor.hpp"
#include "tally.hpp"
#include "verdict.hpp"

namespace {

namespace asio = boost::asio;
using namespace apollo_oauth;
using namespace apollo_oauth::soak;

// ASan's quarantine and TSan's shadow memory grow by design, so their RSS says nothing about ours.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitized_build = true;
#else
constexpr bool sanitized_build = false;
#endif

// Long enough for a sanitizer build to finish its last requests (their deadlines are 30 s).
constexpr std::chrono::seconds drain_timeout{120};

client_config client_settings(const emulator::server& server, const options& opts) {
    auto c = emulator::client_config_for(server);
    c.pool.max_connections_per_host = opts.connections;
    c.minimum_lifetime = std::chrono::seconds(1);  // the soak's tokens live seconds on purpose
    return c;
}

std::string utc_now() {
    const std::time_t now = std::time(nullptr);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    return text;
}

double since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Joins the client threads, which return once no operation is pending. A waiter that never
/// completes keeps them running: that is reported and the process ends.
void join_or_fail(std::vector<std::thread>& threads) {
    std::promise<void> drained;
    auto done = drained.get_future();
    std::thread joiner([&] {
        for (auto& t : threads) {
            t.join();
        }
        drained.set_value();
    });
    if (done.wait_for(drain_timeout) != std::future_status::ready) {
        std::printf(
            "FAIL: the client's io_context still has work %lld s after the last call: a waiter or "
            "an operation was left pending\n",
            static_cast<long long>(drain_timeout.count()));
        std::fflush(stdout);
        std::_Exit(1);
    }
    joiner.join();
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const auto parsed = parse_options(argc, argv, exit_code);
    if (!parsed) {
        return exit_code;
    }
    const options& opts = *parsed;
    const std::string started_at = utc_now();
    std::printf("soak: %zu accounts, %lld s, %zu callers, tokens live %lld s, %s store, %s build\n",
                opts.accounts, static_cast<long long>(opts.duration.count()), opts.concurrency,
                static_cast<long long>(opts.expires_in.count()), opts.store.c_str(),
                sanitized_build ? "sanitizer" : "plain");
    std::fflush(stdout);

    emulator::server_config server_config;
    server_config.expires_in = opts.expires_in;
    server_config.threads = opts.emulator_threads;
    server_config.retain_revoked = opts.retain_revoked;
    emulator::server server{server_config};

    asio::io_context ioc{static_cast<int>(opts.client_threads)};
    client oauth{ioc.get_executor(), client_settings(server, opts)};

    std::filesystem::path temp_dir;
    std::shared_ptr<token_store> store;
    if (opts.store == "file") {
        std::filesystem::path dir = opts.store_dir;
        if (dir.empty()) {
            std::string pattern = (std::filesystem::temp_directory_path() / "apollo-soak-XXXXXX").string();
            if (mkdtemp(pattern.data()) == nullptr) {
                std::perror("soak: mkdtemp");
                return 1;
            }
            dir = temp_dir = pattern;
        }
        store = make_file_token_store(ioc.get_executor(), dir);
    } else {
        store = make_memory_token_store(ioc.get_executor());
    }

    std::atomic<std::uint64_t> rotations{0}, reauthorizations{0}, store_failures{0};
    cache_config cache_settings;
    // Short backoff: an account whose refresh met an injected 5xx recovers within the run.
    cache_settings.backoff_initial = std::chrono::milliseconds(200);
    cache_settings.backoff_max = std::chrono::seconds(2);
    cache_settings.on_rotation = [&](const std::string&, const token_set&) { ++rotations; };
    cache_settings.on_reauthorization_required = [&](const std::string&) { ++reauthorizations; };
    cache_settings.on_store_failure = [&](const std::string&, error_code) { ++store_failures; };
    token_cache cache{oauth, store, cache_settings};
    api_client api{oauth, cache};

    auto work = asio::make_work_guard(ioc);
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < opts.client_threads; ++i) {
        threads.emplace_back([&ioc] { ioc.run(); });
    }
    environment env{opts, server, ioc, oauth, store, cache, api};

    const auto seed_start = std::chrono::steady_clock::now();
    const seed_result seeded = seed_accounts(env);
    const double seed_seconds = since(seed_start);
    std::printf("seeded %llu accounts in %.1f s\n", static_cast<unsigned long long>(seeded.seeded),
                seed_seconds);
    std::fflush(stdout);
    const std::uint64_t rotations_before = rotations;
    const std::uint64_t emulator_refreshes_before = server.stats().successful_refreshes;
    const std::uint64_t refresh_requests_before = server.stats().refresh_token_grants;

    tally outcomes;
    rss_monitor memory{std::chrono::milliseconds(1000)};
    const load_result load = run_load(env, outcomes);
    memory.stop();
    work.reset();
    join_or_fail(threads);
    const std::size_t refreshes_left = cache.refreshes_in_flight();
    const verify_result verified = verify_accounts(env);
    const auto stats = server.stats();

    const double warmup = static_cast<double>(opts.warmup_or_default().count());

    observations seen{.opts = opts,
                      .started_at = started_at,
                      .sanitized_build = sanitized_build,
                      .seeded = seeded,
                      .seed_seconds = seed_seconds,
                      .load = load,
                      .outcomes = outcomes.snapshot(),
                      .cache_rotations = rotations - rotations_before,
                      .emulator_refreshes = stats.successful_refreshes - emulator_refreshes_before,
                      .refresh_requests = stats.refresh_token_grants - refresh_requests_before,
                      .max_refreshes_in_flight = stats.max_refreshes_in_flight,
                      .reauthorizations = reauthorizations,
                      .store_failures = store_failures,
                      .refreshes_left = refreshes_left,
                      .verified = verified,
                      .warmup = warmup,
                      .memory = fit_after(memory.samples(), warmup)};
    const bool passed = print_report(figures_of(seen), checks_of(seen));
    if (!temp_dir.empty()) {
        std::error_code ignored;
        std::filesystem::remove_all(temp_dir, ignored);
    }
    return passed ? 0 : 1;
}
