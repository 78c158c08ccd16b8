// The library's counters in the Prometheus text exposition format (version 0.0.4).
#pragma once

#include <apollo_oauth/api_client.hpp>
#include <apollo_oauth/token_cache.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace web_app {

/// The token cache's and the API client's counters, and the API latency histogram.
std::string prometheus_text(const apollo_oauth::cache_metrics& cache, const apollo_oauth::api_metrics& api);

/// One metric with its HELP and TYPE lines.
std::string counter(std::string_view name, std::string_view help, std::uint64_t value);
std::string gauge(std::string_view name, std::string_view help, std::uint64_t value);

}  // namespace web_app
