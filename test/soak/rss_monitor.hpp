// Samples this process's resident memory (the client and the in-process emulator together) and
// fits its growth rate, to tell a leak from a working set that settled.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace apollo_oauth::soak {

/// Resident set size now, from /proc/self/statm.
std::uint64_t resident_bytes();

struct rss_sample {
    double seconds = 0;  ///< since the monitor started
    std::uint64_t bytes = 0;
};

struct rss_fit {
    double slope = 0;  ///< bytes per second, least squares over the samples fitted
    std::size_t samples = 0;
    std::uint64_t first = 0;  ///< first and last fitted sample
    std::uint64_t last = 0;
    std::uint64_t peak = 0;  ///< over every sample, warm-up included
};

/// Least-squares slope of the samples taken at or after `from_seconds`.
rss_fit fit_after(const std::vector<rss_sample>& samples, double from_seconds);

/// A thread that samples every `period` until stop().
class rss_monitor {
public:
    explicit rss_monitor(std::chrono::milliseconds period);
    ~rss_monitor();
    rss_monitor(const rss_monitor&) = delete;
    rss_monitor& operator=(const rss_monitor&) = delete;

    void stop();
    std::vector<rss_sample> samples() const;

private:
    void sample_until_stopped();

    const std::chrono::milliseconds period_;
    const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
    mutable std::mutex mutex_;
    std::condition_variable stop_requested_;
    bool stopped_ = false;
    std::vector<rss_sample> samples_;
    std::thread thread_;
};

}  // namespace apollo_oauth::soak
