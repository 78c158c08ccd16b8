// The token cache's decisions, without locks, clocks or I/O: what a caller of async_get gets,
// when to refresh ahead, how long to back off. The cache feeds it a snapshot of an entry and
// the time; unit tests drive it directly.
#pragma once

#include <chrono>
#include <cstdint>

namespace apollo_oauth::sansio {

using sys_time = std::chrono::system_clock::time_point;

/// What the cache knows about one account, at one instant.
struct entry_snapshot {
    bool has_tokens = false;       ///< a pair is in memory
    bool loading = false;          ///< a store load is in flight
    bool refreshing = false;       ///< a refresh is in flight
    bool invalidated = false;      ///< the current access token got a 401
    bool reauth_required = false;  ///< the grant is gone
    sys_time usable_until{};       ///< expires_at minus the expiry margin
    sys_time refresh_at{};         ///< the refresh-ahead point
    sys_time retry_not_before{};   ///< end of the backoff after a failed refresh
};

enum class get_action {
    serve,                    ///< hand out the current token
    serve_and_refresh_ahead,  ///< hand it out, and start the one background refresh
    start_load,               ///< nothing in memory: load from the store, then decide again
    join_load,                ///< a load is in flight: wait for it
    start_refresh,            ///< expired or invalidated: refresh, and wait for it
    join_refresh,             ///< a refresh is in flight: wait for it
    fail_backoff,             ///< expired, and the last refresh failed recently: its error, at once
    fail_reauthorization,     ///< the grant is gone
};

get_action decide_get(const entry_snapshot& entry, sys_time now) noexcept;

/// The margin actually applied: the configured one, but at most a quarter of the lifetime, so a
/// short-lived token is not born expired (which would refresh on every call).
std::chrono::seconds effective_margin(std::chrono::seconds configured,
                                      std::chrono::seconds lifetime) noexcept;

/// The refresh-ahead point of a pair issued at `issued_at` for `lifetime`: issued_at plus
/// lifetime × (fraction + jitter × u), where u ∈ [-1, 1] is the caller's uniform draw. Clamped
/// into [issued_at, issued_at + lifetime].
sys_time refresh_ahead_point(sys_time issued_at, std::chrono::seconds lifetime, double fraction,
                             double jitter, double u) noexcept;

/// Exponential backoff: initial, doubled per consecutive failure, at most max.
std::chrono::milliseconds backoff_after(unsigned consecutive_failures, std::chrono::milliseconds initial,
                                        std::chrono::milliseconds max) noexcept;

}  // namespace apollo_oauth::sansio
