// snapshot_table: mutex shards (the simple version of the seam; see the header).
#include "cache/snapshot_table.hpp"

namespace apollo_oauth::detail {

snapshot_read snapshot_table::read(std::string_view account, std::size_t hash, sansio::sys_time now,
                                   access_token& out) const noexcept {
    auto& s = shard_for(hash);
    const std::lock_guard lock{s.mutex};
    const auto it = s.entries.find(account);
    if (it == s.entries.end() || !it->second.present || now >= it->second.snapshot.usable_until) {
        return snapshot_read::miss;
    }
    const auto& e = it->second;
    try {
        out.value = e.snapshot.access_token;
    } catch (...) {  // bad_alloc: the caller takes the slow path
        return snapshot_read::miss;
    }
    out.generation = e.snapshot.generation;
    if (now >= e.snapshot.refresh_at && !e.refresh_claimed) {
        e.refresh_claimed = true;
        return snapshot_read::refresh_due;
    }
    return snapshot_read::fresh;
}

void snapshot_table::publish(std::string_view account, std::size_t hash, const token_snapshot& snap) {
    auto& s = shard_for(hash);
    const std::lock_guard lock{s.mutex};
    auto it = s.entries.find(account);
    if (it == s.entries.end()) {
        it = s.entries.emplace(std::string(account), entry{}).first;
    }
    it->second.snapshot = snap;
    it->second.present = true;
    it->second.refresh_claimed = false;
}

void snapshot_table::withdraw(std::string_view account, std::size_t hash) {
    auto& s = shard_for(hash);
    const std::lock_guard lock{s.mutex};
    if (const auto it = s.entries.find(account); it != s.entries.end()) {
        it->second.present = false;
    }
}

void snapshot_table::withdraw_generation(std::string_view account, std::size_t hash,
                                         std::uint64_t generation) {
    auto& s = shard_for(hash);
    const std::lock_guard lock{s.mutex};
    if (const auto it = s.entries.find(account);
        it != s.entries.end() && it->second.present && it->second.snapshot.generation == generation) {
        it->second.present = false;
    }
}

}  // namespace apollo_oauth::detail
