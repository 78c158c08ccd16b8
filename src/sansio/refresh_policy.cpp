#include "sansio/refresh_policy.hpp"

#include <algorithm>
#include <cmath>

namespace apollo_oauth::sansio {

get_action decide_get(const entry_snapshot& entry, sys_time now) noexcept {
    if (entry.reauth_required) {
        return get_action::fail_reauthorization;
    }
    if (!entry.has_tokens) {
        return entry.loading ? get_action::join_load : get_action::start_load;
    }
    const bool usable = !entry.invalidated && now < entry.usable_until;
    if (usable) {
        const bool ahead = now >= entry.refresh_at && !entry.refreshing && now >= entry.retry_not_before;
        return ahead ? get_action::serve_and_refresh_ahead : get_action::serve;
    }
    if (entry.refreshing) {
        return get_action::join_refresh;
    }
    return now < entry.retry_not_before ? get_action::fail_backoff : get_action::start_refresh;
}

std::chrono::seconds effective_margin(std::chrono::seconds configured,
                                      std::chrono::seconds lifetime) noexcept {
    return std::max(std::chrono::seconds{0}, std::min(configured, lifetime / 4));
}

sys_time refresh_ahead_point(sys_time issued_at, std::chrono::seconds lifetime, double fraction,
                             double jitter, double u) noexcept {
    const double share = std::clamp(fraction + jitter * std::clamp(u, -1.0, 1.0), 0.0, 1.0);
    const auto offset = std::chrono::duration_cast<sys_time::duration>(
        std::chrono::duration<double>(static_cast<double>(lifetime.count()) * share));
    return issued_at + offset;
}

std::chrono::milliseconds backoff_after(unsigned consecutive_failures, std::chrono::milliseconds initial,
                                        std::chrono::milliseconds max) noexcept {
    if (consecutive_failures == 0) {
        return std::chrono::milliseconds{0};
    }
    auto delay = initial;
    for (unsigned i = 1; i < consecutive_failures && delay < max; ++i) {
        delay *= 2;
    }
    return std::min(delay, max);
}

}  // namespace apollo_oauth::sansio
