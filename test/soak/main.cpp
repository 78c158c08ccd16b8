// soak: a bounded, loopback-only endurance run of the client, the token cache and the API client
// against the emulator. See docs/soak.md.
#include <apollo_oauth/api_client.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/emulator/server.hpp>
#include <apollo_oauth/token_cache.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <future>
#include <set>
#include <thread>
#include <vector>

#include "options.hpp"
#include "phases.hpp"
#include "report.hpp"
#include "rss_monitor.hpp"
#include "tally.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
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
    const auto& registered = server.config().clients.front();
    client_config c;
    c.client_id = registered.client_id;
    c.client_secret = secret_string{registered.client_secret};
    c.redirect_uris = registered.redirect_uris;
    c.endpoints.authorize_url = server.authorize_url();
    c.endpoints.token_url = server.token_url();
    c.endpoints.profile_url = server.profile_url();
    c.endpoints.api_base = server.api_base();
    c.tls.use_system_trust_store = false;
    c.tls.ca_pem = server.ca_pem();
    c.pool.max_connections_per_host = opts.connections;
    return c;
}

std::string utc_now() {
    const std::time_t now = std::time(nullptr);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    return text;
}

double mib(std::uint64_t bytes) {
    return static_cast<double>(bytes) / (1024.0 * 1024.0);
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

    const std::uint64_t cache_rotations = rotations - rotations_before;
    const std::uint64_t emulator_refreshes = stats.successful_refreshes - emulator_refreshes_before;
    const std::uint64_t refresh_requests = stats.refresh_token_grants - refresh_requests_before;
    const double warmup = static_cast<double>(opts.warmup_or_default().count());
    const rss_fit fit = fit_after(memory.samples(), warmup);

    json::object figures;
    figures["run"] = json::object{{"date", started_at},
                                  {"accounts", opts.accounts},
                                  {"seconds", opts.duration.count()},
                                  {"callers", opts.concurrency},
                                  {"token_lifetime_s", opts.expires_in.count()},
                                  {"store", opts.store},
                                  {"client_threads", opts.client_threads},
                                  {"emulator_threads", opts.emulator_threads},
                                  {"emulator_retains_revoked", opts.retain_revoked},
                                  {"sanitizer_build", sanitized_build}};
    figures["seed"] = json::object{{"seconds", seed_seconds},
                                   {"seeded", seeded.seeded},
                                   {"failed", seeded.failed},
                                   {"accounts_per_s", static_cast<double>(seeded.seeded) / seed_seconds}};
    figures["load"] = json::object{{"seconds", load.seconds},
                                   {"calls", load.calls_completed},
                                   {"calls_per_s", static_cast<double>(load.calls_completed) / load.seconds},
                                   {"tokens_expired_by_driver", load.tokens_expired},
                                   {"tokens_revoked_by_driver", load.tokens_revoked},
                                   {"api_5xx_injected", load.api_faults},
                                   {"token_5xx_injected", load.token_faults}};
    json::object by_kind;
    for (const auto& [kind, count] : outcomes.snapshot()) {
        by_kind[kind] = count;
    }
    figures["outcomes"] = std::move(by_kind);
    figures["refresh"] =
        json::object{{"cache_rotations", cache_rotations},
                     {"emulator_successful_refreshes", emulator_refreshes},
                     {"refresh_requests", refresh_requests},
                     {"failed_refresh_requests", refresh_requests - emulator_refreshes},
                     {"max_refreshes_in_flight", stats.max_refreshes_in_flight},
                     {"rotations_per_s", static_cast<double>(cache_rotations) / load.seconds},
                     {"reauthorizations", reauthorizations.load()},
                     {"store_failures", store_failures.load()}};
    figures["verify"] = json::object{{"accounts_checked", verified.checked},
                                     {"lost_rotations", verified.lost_rotations},
                                     {"missing_records", verified.missing}};
    figures["memory"] = json::object{{"rss_after_warmup_mib", mib(fit.first)},
                                     {"rss_end_mib", mib(fit.last)},
                                     {"rss_peak_mib", mib(fit.peak)},
                                     {"warmup_s", warmup},
                                     {"samples_fitted", fit.samples},
                                     {"slope_bytes_per_s", fit.slope},
                                     {"max_slope_bytes_per_s", opts.max_rss_slope}};

    // Outcomes the injected faults explain; anything else (a timeout, a reset, a lost grant) fails.
    const std::set<std::string> expected_kinds = [] {
        tally probe;
        probe.add_call(errc::unexpected_status, 0);  // a refresh that met an injected 5xx
        std::set<std::string> kinds;
        for (const auto& [kind, count] : probe.snapshot()) {
            kinds.insert(kind);
        }
        for (const char* status : {"http 200", "http 401", "http 500", "http 502", "http 503"}) {
            kinds.insert(status);
        }
        return kinds;
    }();
    std::string unexpected;
    for (const auto& [kind, count] : outcomes.snapshot()) {
        if (!expected_kinds.count(kind)) {
            unexpected += (unexpected.empty() ? "" : ", ") + kind;
        }
    }

    const auto n = [](auto v) { return std::to_string(v); };
    std::vector<check> checks;
    checks.push_back({"every account seeded", seeded.failed == 0 && seeded.seeded == opts.accounts,
                      n(seeded.seeded) + " of " + n(opts.accounts)});
    checks.push_back({"no lost rotation", verified.lost_rotations == 0 && verified.missing == 0,
                      n(verified.lost_rotations) + " stale, " + n(verified.missing) + " missing"});
    checks.push_back({"one refresh per rotation", emulator_refreshes == cache_rotations,
                      "emulator " + n(emulator_refreshes) + ", cache " + n(cache_rotations)});
    checks.push_back({"failed refreshes all injected",
                      refresh_requests - emulator_refreshes <= load.token_faults,
                      n(refresh_requests - emulator_refreshes) + " failed, " + n(load.token_faults) +
                          " token 5xx injected"});
    checks.push_back(
        {"no invalid_grant", reauthorizations == 0, n(reauthorizations.load()) + " grants lost"});
    checks.push_back({"no waiter left pending",
                      load.calls_started == load.calls_completed && refreshes_left == 0,
                      n(load.calls_completed) + " of " + n(load.calls_started) + " calls completed, " +
                          n(refreshes_left) + " refreshes in flight, io_context drained"});
    checks.push_back({"only injected failures", unexpected.empty(), unexpected.empty() ? "" : unexpected});
    checks.push_back({"faults and rotations happened",
                      cache_rotations > 0 && load.tokens_expired + load.tokens_revoked > 0 &&
                          load.api_faults + load.token_faults > 0,
                      n(cache_rotations) + " rotations"});
    if (sanitized_build) {
        checks.push_back({"resident memory flat", true, "not judged in a sanitizer build"});
    } else {
        char detail[96];
        std::snprintf(detail, sizeof detail, "%.0f B/s over %zu samples (limit %.0f)", fit.slope, fit.samples,
                      opts.max_rss_slope);
        checks.push_back(
            {"resident memory flat", fit.samples >= 5 && fit.slope <= opts.max_rss_slope, detail});
    }

    const bool passed = print_report(std::move(figures), checks);
    if (!temp_dir.empty()) {
        std::error_code ignored;
        std::filesystem::remove_all(temp_dir, ignored);
    }
    return passed ? 0 : 1;
}
