// The published per-account snapshots the hot path reads (Seam 2 in the session's SEAMS.md).
//
// The account's state machine runs on a strand and is the only writer of its snapshot; readers
// (try_get, async_get's fast path) never enter the strand. This version is a simple correct one:
// mutex-sharded, each read a short critical section. The lock-free table replaces it with the same
// interface.
#pragma once

#include <apollo_oauth/secret.hpp>
#include <apollo_oauth/token_cache.hpp>

#include "sansio/refresh_policy.hpp"

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace apollo_oauth::detail {

struct token_snapshot {
    secret_string access_token;
    std::uint64_t generation = 0;
    sansio::sys_time usable_until{};  ///< expires_at minus the margin
    sansio::sys_time refresh_at{};    ///< the refresh-ahead point
};

enum class snapshot_read { fresh, refresh_due, miss };

class snapshot_table {
public:
    /// Any thread. `hash` is std::hash<std::string_view>{}(account). On fresh / refresh_due fills
    /// `out`. refresh_due goes to exactly one reader per published snapshot (a claim): that reader
    /// posts the one refresh-ahead event; the others see fresh.
    snapshot_read read(std::string_view account, std::size_t hash, sansio::sys_time now,
                       access_token& out) const noexcept;

    /// The account's strand only: publish or replace.
    void publish(std::string_view account, std::size_t hash, const token_snapshot& s);
    /// The account's strand only: readers miss from now on.
    void withdraw(std::string_view account, std::size_t hash);
    /// Any thread: withdraws the snapshot only while it is of `generation` (a 401 on that token),
    /// so the next reader misses and goes to the strand. A newer snapshot is left alone.
    void withdraw_generation(std::string_view account, std::size_t hash, std::uint64_t generation);

private:
    struct entry {
        token_snapshot snapshot;
        bool present = false;
        mutable bool refresh_claimed = false;
    };
    struct hash_of {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    struct shard {
        mutable std::mutex mutex;
        std::unordered_map<std::string, entry, hash_of, std::equal_to<>> entries;
    };
    shard& shard_for(std::size_t hash) const noexcept {
        return shards_[(hash * 0x9E3779B97F4A7C15ull) >> 58];
    }

    mutable std::array<shard, 64> shards_;
};

}  // namespace apollo_oauth::detail
