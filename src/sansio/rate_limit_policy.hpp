// The API client's answer to a 429, without clocks, timers or randomness of its own: return the
// 429, or retry after how long. The client feeds it the request's rate-limit retries so far, the
// parsed Retry-After and a uniform draw; unit tests drive it directly.
#pragma once

#include <chrono>
#include <optional>

namespace apollo_oauth::sansio {

/// api_client_config's 429 fields, under the same names.
struct rate_limit_settings {
    unsigned max_rate_limit_retries = 2;
    std::chrono::seconds max_retry_after{30};
    std::chrono::milliseconds default_retry_after{1'000};
    std::chrono::milliseconds retry_after_spread{1'000};
};

/// The wait before a request is sent again after a 429, or nullopt when the 429 is to be returned.
/// - `retries`: the rate-limit retries this request has made already (0 at its first 429). At
///   max_rate_limit_retries: nullopt.
/// - `retry_after`: the answer's Retry-After as parse_retry_after reads it (an HTTP-date in the
///   past is 0); nullopt when there is none or it does not parse. Above max_retry_after: nullopt.
///   Otherwise Retry-After plus retry_after_spread × u: never sooner than the server named.
/// - Without one: equal jitter over an exponential backoff. b = default_retry_after × 2^retries,
///   at most max_retry_after; the wait is b/2 + b/2 × u. A default_retry_after above
///   max_retry_after: nullopt, as a Retry-After that long.
/// - `u`: a uniform draw in [0, 1] (clamped into it; NaN counts as 0).
/// Negative durations count as 0; max_retry_after and the spread count as at most 366 days
/// (sansio::max_retry_after), so the result can be added to any clock's now.
std::optional<std::chrono::microseconds> rate_limit_wait(unsigned retries,
                                                         std::optional<std::chrono::seconds> retry_after,
                                                         const rate_limit_settings& settings,
                                                         double u) noexcept;

}  // namespace apollo_oauth::sansio
