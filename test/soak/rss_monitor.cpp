#include "rss_monitor.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>

namespace apollo_oauth::soak {

std::uint64_t resident_bytes() {
    // statm: size resident shared text lib data dt, in pages.
    std::ifstream statm("/proc/self/statm");
    std::uint64_t size = 0;
    std::uint64_t resident = 0;
    statm >> size >> resident;
    return resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

rss_fit fit_after(const std::vector<rss_sample>& samples, double from_seconds) {
    rss_fit fit;
    double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (const auto& s : samples) {
        fit.peak = std::max(fit.peak, s.bytes);
        if (s.seconds < from_seconds) {
            continue;
        }
        if (fit.samples == 0) {
            fit.first = s.bytes;
        }
        fit.last = s.bytes;
        ++fit.samples;
        const double y = static_cast<double>(s.bytes);
        n += 1;
        sx += s.seconds;
        sy += y;
        sxx += s.seconds * s.seconds;
        sxy += s.seconds * y;
    }
    const double denominator = n * sxx - sx * sx;
    if (fit.samples >= 2 && denominator > 0) {
        fit.slope = (n * sxy - sx * sy) / denominator;
    }
    return fit;
}

rss_monitor::rss_monitor(std::chrono::milliseconds period)
    : period_(period), thread_([this] { sample_until_stopped(); }) {}

rss_monitor::~rss_monitor() {
    stop();
}

void rss_monitor::stop() {
    {
        const std::lock_guard lock(mutex_);
        stopped_ = true;
    }
    stop_requested_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

std::vector<rss_sample> rss_monitor::samples() const {
    const std::lock_guard lock(mutex_);
    return samples_;
}

void rss_monitor::sample_until_stopped() {
    std::unique_lock lock(mutex_);
    while (!stopped_) {
        const std::chrono::duration<double> since = std::chrono::steady_clock::now() - start_;
        samples_.push_back({since.count(), resident_bytes()});
        // A sampling period, not synchronisation: stop() wakes it at once.
        stop_requested_.wait_for(lock, period_, [this] { return stopped_; });
    }
}

}  // namespace apollo_oauth::soak
