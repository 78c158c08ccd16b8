// The state an api_client shares with its requests.
#pragma once

#include <apollo_oauth/api_client.hpp>

#include "api/api_metrics_recorder.hpp"
#include "sansio/rate_limit_policy.hpp"

#include <chrono>
#include <functional>
#include <memory>

namespace apollo_oauth::detail {

class cache_impl;
class client_impl;

class api_client_impl {
public:
    api_client_impl(std::shared_ptr<client_impl> oauth, std::shared_ptr<cache_impl> cache,
                    const api_client_config& config)
        : oauth(std::move(oauth)),
          cache(std::move(cache)),
          rate_limits{.max_rate_limit_retries = config.max_rate_limit_retries,
                      .max_retry_after = config.max_retry_after,
                      .default_retry_after = config.default_retry_after,
                      .retry_after_spread = config.retry_after_spread},
          retry_unavailable_with_retry_after(config.retry_unavailable_with_retry_after) {}

    std::shared_ptr<client_impl> oauth;
    std::shared_ptr<cache_impl> cache;
    sansio::rate_limit_settings rate_limits;
    bool retry_unavailable_with_retry_after;
    api_metrics_recorder metrics;

    /// For tests, which cannot time a random wait: called with each wait a request is about to
    /// make after a 429 (its rate-limit retries before it, the wait), on the request's strand, so
    /// from several threads at once. Set it before the first request.
    std::function<void(unsigned retries, std::chrono::microseconds wait)> on_rate_limit_wait;
};

}  // namespace apollo_oauth::detail
