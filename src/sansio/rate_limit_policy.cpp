#include "sansio/rate_limit_policy.hpp"

#include "sansio/refresh_policy.hpp"
#include "sansio/token_protocol.hpp"

#include <algorithm>

namespace apollo_oauth::sansio {

namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;

template <class Duration>
Duration within_a_year(Duration d) noexcept {
    return std::clamp(d, Duration::zero(), std::chrono::duration_cast<Duration>(max_retry_after));
}

// u × d, for u in [0, 1] and d within a year (fewer than 2^45 µs: exact in a double).
microseconds share_of(microseconds d, double u) noexcept {
    return microseconds(static_cast<microseconds::rep>(static_cast<double>(d.count()) * u));
}

}  // namespace

std::optional<microseconds> rate_limit_wait(unsigned retries, std::optional<seconds> retry_after,
                                            const rate_limit_settings& settings, double u) noexcept {
    if (retries >= settings.max_rate_limit_retries) {
        return std::nullopt;
    }
    u = u > 0.0 ? std::min(u, 1.0) : 0.0;  // NaN too fails `> 0`
    const seconds longest = within_a_year(settings.max_retry_after);
    if (retry_after) {
        // RFC 9110 §10.2.3: the server named the earliest time to come back. The spread only adds
        // to it, so that requests told the same time (0 included) do not come back together.
        const seconds named = std::max(*retry_after, seconds::zero());
        if (named > longest) {
            return std::nullopt;  // for the caller to reschedule, rather than hold a request that long
        }
        return microseconds(named) + share_of(within_a_year(settings.retry_after_spread), u);
    }
    // Equal jitter (b/2 + b/2 × u), not full jitter (b × u). In the AWS Architecture Blog's analysis
    // ("Exponential Backoff And Jitter", 2015) full jitter finishes a contended herd's work
    // soonest, but there a retry only competes with the others; here the server has said "too
    // many", and a retry drawn near 0 comes back inside the same rate-limit window, is refused
    // again and spends one of the few retries a request has (max_rate_limit_retries, default 2)
    // for nothing. Equal jitter keeps every wait at least half the backoff, so the doubling still
    // backs off, and spreads the herd over the other half.
    const milliseconds initial = within_a_year(settings.default_retry_after);
    if (initial > longest) {
        return std::nullopt;  // as a Retry-After that long: the caller reschedules (max_retry_after 0
                              // included)
    }
    const microseconds backoff{backoff_after(retries + 1, initial, milliseconds(longest))};
    const microseconds half = backoff / 2;
    return backoff - half + share_of(half, u);
}

}  // namespace apollo_oauth::sansio
