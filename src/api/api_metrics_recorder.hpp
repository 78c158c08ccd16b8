// The counters behind api_client::metrics(): relaxed atomics, since they order nothing and a
// request pays one uncontended increment per event. The histogram keeps per-bucket counts and
// makes them cumulative (Prometheus' `le`) only when read.
#pragma once

#include <apollo_oauth/api_client.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace apollo_oauth::detail {

class api_metrics_recorder {
public:
    void count_request() noexcept { requests_.fetch_add(1, std::memory_order_relaxed); }
    void count_retry_401() noexcept { retries_401_.fetch_add(1, std::memory_order_relaxed); }
    void count_rate_limited() noexcept { rate_limited_.fetch_add(1, std::memory_order_relaxed); }

    void record_latency(std::chrono::steady_clock::duration elapsed) noexcept {
        const double seconds = std::chrono::duration<double>(elapsed).count();
        std::size_t bucket = 0;
        while (bucket < bounds.size() && seconds > bounds[bucket]) {
            ++bucket;
        }
        buckets_[bucket].fetch_add(1, std::memory_order_relaxed);  // bucket == size(): +Inf only
        const auto nanoseconds = std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count();
        sum_ns_.fetch_add(nanoseconds > 0 ? static_cast<std::uint64_t>(nanoseconds) : 0,
                          std::memory_order_relaxed);
    }

    api_metrics snapshot() const noexcept {
        api_metrics out;
        out.requests = requests_.load(std::memory_order_relaxed);
        out.retries_401 = retries_401_.load(std::memory_order_relaxed);
        out.rate_limited = rate_limited_.load(std::memory_order_relaxed);
        std::uint64_t running = 0;
        for (std::size_t i = 0; i < bounds.size(); ++i) {
            running += buckets_[i].load(std::memory_order_relaxed);
            out.latency.cumulative[i] = running;
        }
        out.latency.count = running + buckets_[bounds.size()].load(std::memory_order_relaxed);
        out.latency.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) * 1e-9;
        return out;
    }

private:
    static constexpr auto& bounds = api_latency_histogram::bounds;

    std::atomic<std::uint64_t> requests_{0};
    std::atomic<std::uint64_t> retries_401_{0};
    std::atomic<std::uint64_t> rate_limited_{0};
    std::array<std::atomic<std::uint64_t>, bounds.size() + 1> buckets_{};  // the last is (30 s, +Inf)
    std::atomic<std::uint64_t> sum_ns_{0};
};

}  // namespace apollo_oauth::detail
