#include "metrics.hpp"

#include <sstream>

namespace web_app {
namespace {

std::string metric(std::string_view type, std::string_view name, std::string_view help, std::uint64_t value) {
    std::ostringstream out;
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
        << name << ' ' << value << '\n';
    return out.str();
}

}  // namespace

std::string counter(std::string_view name, std::string_view help, std::uint64_t value) {
    return metric("counter", name, help, value);
}

std::string gauge(std::string_view name, std::string_view help, std::uint64_t value) {
    return metric("gauge", name, help, value);
}

std::string prometheus_text(const apollo_oauth::cache_metrics& cache, const apollo_oauth::api_metrics& api) {
    std::string out;
    out += counter("apollo_oauth_cache_refreshes_total", "Token refresh requests sent.", cache.refreshes);
    out += counter("apollo_oauth_cache_rotations_total", "New token pairs committed by the cache.",
                   cache.rotations);
    out += counter("apollo_oauth_cache_adopted_total",
                   "Newer pairs found in the store instead of refreshing.", cache.adopted);
    out += counter("apollo_oauth_cache_refresh_failures_total", "Refreshes that failed.",
                   cache.refresh_failures);
    out +=
        counter("apollo_oauth_cache_waiters_total", "Callers that had to wait for a token.", cache.waiters);
    out += gauge("apollo_oauth_cache_waiting", "Callers waiting for a token now.", cache.waiting_now);
    out += counter("apollo_oauth_cache_store_failures_total", "Token store writes that failed.",
                   cache.store_failures);
    out += counter("apollo_oauth_cache_reauthorizations_total", "Accounts whose grant is gone.",
                   cache.reauthorizations);
    out += counter("apollo_oauth_api_requests_total",
                   "API requests started (api_client::async_request calls).", api.requests);
    out +=
        counter("apollo_oauth_api_retries_401_total", "API requests retried after a 401.", api.retries_401);
    out += counter("apollo_oauth_api_rate_limited_total", "API answers that were 429.", api.rate_limited);

    std::ostringstream h;
    constexpr std::string_view name = "apollo_oauth_api_request_duration_seconds";
    h << "# HELP " << name << " API request latency, token wait included.\n# TYPE " << name << " histogram\n";
    const auto& latency = api.latency;
    for (std::size_t i = 0; i < latency.bounds.size(); ++i) {
        h << name << "_bucket{le=\"" << latency.bounds[i] << "\"} " << latency.cumulative[i] << '\n';
    }
    h << name << "_bucket{le=\"+Inf\"} " << latency.count << '\n';
    h << name << "_sum " << latency.sum_seconds << '\n' << name << "_count " << latency.count << '\n';
    out += h.str();
    return out;
}

}  // namespace web_app
