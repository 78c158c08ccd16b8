// Shared helpers of the benchmarks: timing, order statistics, the results document, and an
// emulator-backed client set-up. Every benchmark measures its baselines in the same process and
// the same run, interleaved with the measured code, and reports medians over several rounds:
// the machines are shared and noisy, so only ratios measured side by side mean anything.
#pragma once

#include <apollo_oauth/authorization.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/emulator/client_config.hpp>
#include <apollo_oauth/emulator/server.hpp>
#include <apollo_oauth/secret.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace apollo_oauth::bench {

namespace asio = boost::asio;
using bench_clock = std::chrono::steady_clock;

inline double seconds_since(bench_clock::time_point start) {
    return std::chrono::duration<double>(bench_clock::now() - start).count();
}

double median(std::vector<double> values);
/// The q-quantile (0..1) by nearest rank; values need not be sorted.
double quantile(std::vector<double> values, double q);

/// Command-line options shared by every benchmark: --rounds N, --json FILE, --quick (CI smoke
/// sizes), plus benchmark-specific integers given as --name value.
struct options {
    int rounds = 5;
    bool quick = false;
    std::string json_path;
    std::vector<std::pair<std::string, std::string>> extra;

    static options parse(int argc, char** argv);
    long long integer(const std::string& name, long long fallback) const;
    /// A benchmark-specific text option given as --name value.
    std::string text(const std::string& name, const std::string& fallback) const;
};

/// Collects one benchmark's figures: a table for people on stdout, a JSON document for scripts.
class report {
public:
    explicit report(std::string benchmark);
    /// A row of the printed table; `fields` also goes into the JSON document under `key`.
    void row(const std::string& key, const std::string& text, boost::json::object fields);
    /// A performance target: printed as MET/MISSED with the measured value and the bound. How fast
    /// or how small: a shared machine's noise, or a smoke run's tiny sizes, may miss it.
    void target(const std::string& name, double measured, const std::string& relation, double bound);
    /// A count the benchmark must get right on any machine at any size (refreshes, errors,
    /// allocations): a wrong one means the library broke a promise, or the benchmark is broken.
    void check(const std::string& name, double measured, const std::string& relation, double bound);
    /// Writes the JSON document (to options::json_path when set) and returns the exit status:
    /// 3 when a check was wrong, else 1 when a target was missed, else 0. (2: the benchmark
    /// failed, from main's catch.)
    int finish(const options& opts);

private:
    std::string benchmark_;
    boost::json::object rows_;
    boost::json::array targets_;
    enum class kind { performance, count };
    /// Prints and records one target or check; whether it held.
    bool record(const std::string& name, kind k, double measured, const std::string& relation, double bound);

    bool all_met_ = true;
    bool all_right_ = true;
};

/// Prints a number with a unit-friendly precision ("12.3", "0.871").
std::string fixed(double value, int decimals = 1);

/// A file only this user can read (0600, in a new 0700 directory), holding `contents`, for a child
/// process's secrets; removed with its directory on destruction.
class private_temp_file {
public:
    explicit private_temp_file(const secret_string& contents);
    ~private_temp_file();
    private_temp_file(const private_temp_file&) = delete;
    private_temp_file& operator=(const private_temp_file&) = delete;
    std::string path() const { return (directory_ / "secrets").string(); }

private:
    std::filesystem::path directory_;
};

/// An emulator and a client trusting its CA, for the benchmarks that go over loopback TLS.
struct emulator_setup {
    explicit emulator_setup(emulator::server_config config = {});

    emulator::server server;
    client_config config() const;
    /// The authorization-code flow, blocking: consent through the emulator, then the exchange.
    token_set obtain_tokens(asio::io_context& ioc, client& c);
};

/// Runs `make()`'s awaitable on `ioc` (run() on this thread, plus `extra_threads`) to completion.
template <class Factory>
auto run_coroutine(asio::io_context& ioc, Factory make) {
    using value_type = typename decltype(make())::value_type;
    std::optional<value_type> result;
    std::exception_ptr failure;
    asio::co_spawn(ioc, make(), [&](std::exception_ptr e, value_type v) {
        failure = e;
        if (!e) {
            result.emplace(std::move(v));
        }
    });
    ioc.run();
    ioc.restart();
    if (failure) {
        std::rethrow_exception(failure);
    }
    return std::move(*result);
}

}  // namespace apollo_oauth::bench
