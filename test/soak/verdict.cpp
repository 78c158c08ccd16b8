#include "verdict.hpp"

#include <cstdio>
#include <set>

#include "tally.hpp"

namespace apollo_oauth::soak {
namespace {

namespace json = boost::json;

double mib(std::uint64_t bytes) {
    return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

}  // namespace

json::object figures_of(const observations& o) {
    json::object figures;
    figures["run"] = json::object{{"date", o.started_at},
                                  {"accounts", o.opts.accounts},
                                  {"seconds", o.opts.duration.count()},
                                  {"callers", o.opts.concurrency},
                                  {"token_lifetime_s", o.opts.expires_in.count()},
                                  {"store", o.opts.store},
                                  {"client_threads", o.opts.client_threads},
                                  {"emulator_threads", o.opts.emulator_threads},
                                  {"emulator_retains_revoked", o.opts.retain_revoked},
                                  {"sanitizer_build", o.sanitized_build}};
    figures["seed"] = json::object{{"seconds", o.seed_seconds},
                                   {"seeded", o.seeded.seeded},
                                   {"failed", o.seeded.failed},
                                   {"accounts_per_s", static_cast<double>(o.seeded.seeded) / o.seed_seconds}};
    figures["load"] =
        json::object{{"seconds", o.load.seconds},
                     {"calls", o.load.calls_completed},
                     {"calls_per_s", static_cast<double>(o.load.calls_completed) / o.load.seconds},
                     {"tokens_expired_by_driver", o.load.tokens_expired},
                     {"tokens_revoked_by_driver", o.load.tokens_revoked},
                     {"api_5xx_injected", o.load.api_faults},
                     {"token_5xx_injected", o.load.token_faults}};
    json::object by_kind;
    for (const auto& [kind, count] : o.outcomes) {
        by_kind[kind] = count;
    }
    figures["outcomes"] = std::move(by_kind);
    figures["refresh"] =
        json::object{{"cache_rotations", o.cache_rotations},
                     {"emulator_successful_refreshes", o.emulator_refreshes},
                     {"refresh_requests", o.refresh_requests},
                     {"failed_refresh_requests", o.refresh_requests - o.emulator_refreshes},
                     {"max_refreshes_in_flight", o.max_refreshes_in_flight},
                     {"rotations_per_s", static_cast<double>(o.cache_rotations) / o.load.seconds},
                     {"reauthorizations", o.reauthorizations},
                     {"store_failures", o.store_failures}};
    figures["verify"] = json::object{{"accounts_checked", o.verified.checked},
                                     {"lost_rotations", o.verified.lost_rotations},
                                     {"missing_records", o.verified.missing}};
    figures["memory"] =
        json::object{{"rss_after_warmup_mib", mib(o.memory.first)},  {"rss_end_mib", mib(o.memory.last)},
                     {"rss_peak_mib", mib(o.memory.peak)},           {"warmup_s", o.warmup},
                     {"samples_fitted", o.memory.samples},           {"slope_bytes_per_s", o.memory.slope},
                     {"max_slope_bytes_per_s", o.opts.max_rss_slope}};
    return figures;
}

std::vector<check> checks_of(const observations& o) {
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
    for (const auto& [kind, count] : o.outcomes) {
        if (!expected_kinds.count(kind)) {
            unexpected += (unexpected.empty() ? "" : ", ") + kind;
        }
    }

    const auto n = [](auto v) { return std::to_string(v); };
    std::vector<check> checks;
    checks.push_back({"every account seeded", o.seeded.failed == 0 && o.seeded.seeded == o.opts.accounts,
                      n(o.seeded.seeded) + " of " + n(o.opts.accounts)});
    checks.push_back({"no lost rotation", o.verified.lost_rotations == 0 && o.verified.missing == 0,
                      n(o.verified.lost_rotations) + " stale, " + n(o.verified.missing) + " missing"});
    checks.push_back({"one refresh per rotation", o.emulator_refreshes == o.cache_rotations,
                      "emulator " + n(o.emulator_refreshes) + ", cache " + n(o.cache_rotations)});
    checks.push_back({"failed refreshes all injected",
                      o.refresh_requests - o.emulator_refreshes <= o.load.token_faults,
                      n(o.refresh_requests - o.emulator_refreshes) + " failed, " + n(o.load.token_faults) +
                          " token 5xx injected"});
    checks.push_back({"no invalid_grant", o.reauthorizations == 0, n(o.reauthorizations) + " grants lost"});
    checks.push_back({"no waiter left pending",
                      o.load.calls_started == o.load.calls_completed && o.refreshes_left == 0,
                      n(o.load.calls_completed) + " of " + n(o.load.calls_started) + " calls completed, " +
                          n(o.refreshes_left) + " refreshes in flight, io_context drained"});
    checks.push_back({"only injected failures", unexpected.empty(), unexpected.empty() ? "" : unexpected});
    checks.push_back({"faults and rotations happened",
                      o.cache_rotations > 0 && o.load.tokens_expired + o.load.tokens_revoked > 0 &&
                          o.load.api_faults + o.load.token_faults > 0,
                      n(o.cache_rotations) + " rotations"});
    if (o.sanitized_build) {
        checks.push_back({"resident memory flat", true, "not judged in a sanitizer build"});
    } else {
        char detail[96];
        std::snprintf(detail, sizeof detail, "%.0f B/s over %zu samples (limit %.0f)", o.memory.slope,
                      o.memory.samples, o.opts.max_rss_slope);
        checks.push_back({"resident memory flat",
                          o.memory.samples >= 5 && o.memory.slope <= o.opts.max_rss_slope, detail});
    }
    return checks;
}

}  // namespace apollo_oauth::soak
