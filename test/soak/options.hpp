// The soak's command line.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace apollo_oauth::soak {

struct options {
    std::size_t accounts = 100'000;
    std::chrono::seconds duration{60};
    std::size_t concurrency = 2'000;     ///< API calls in flight at once
    std::size_t seed_concurrency = 64;   ///< authorizations in flight while seeding
    std::chrono::seconds expires_in{4};  ///< emulator token lifetime
    double hot_share = 0.5;              ///< share of calls that go to the hot accounts
    double hot_fraction = 0.01;          ///< share of accounts that are hot
    std::chrono::milliseconds chaos_period{10};
    double fault_probability = 0.2;              ///< per chaos tick: inject one 5xx
    std::optional<std::chrono::seconds> warmup;  ///< default: a quarter of the duration
    double max_rss_slope = 32 * 1024;            ///< bytes/s after warm-up
    std::string store = "memory";                ///< memory | file
    std::string store_dir;                       ///< for the file store (default: a fresh temp dir)
    unsigned client_threads = 2;
    unsigned emulator_threads = 2;
    std::size_t connections = 32;  ///< pool.max_connections_per_host
    bool retain_revoked = false;   ///< the emulator's knob (true shows the slope check at work)
    std::uint64_t seed = 1;

    std::chrono::seconds warmup_or_default() const { return warmup.value_or(duration / 4); }
};

/// Parses argv. Returns nullopt after printing help or an error (exit code in `exit_code`).
std::optional<options> parse_options(int argc, char** argv, int& exit_code);

}  // namespace apollo_oauth::soak
