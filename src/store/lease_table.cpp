// lease_table: one entry per account that has a lease or a mark, dropped when it has neither.
#include "store/lease_table.hpp"

namespace apollo_oauth::store {

lease_table::answer lease_table::acquire(const std::string& account, const std::string& holder,
                                         std::uint64_t stored, std::chrono::milliseconds ttl,
                                         clock::time_point now) {
    stored_at_least(account, stored);
    auto& a = accounts_[account];
    answer out;
    if (a.held && a.held->holder != holder && now < a.held->deadline) {
        out.time_left = std::chrono::ceil<std::chrono::milliseconds>(a.held->deadline - now);
        return out;
    }
    out.granted = true;
    // A holder that marked its request sent and never committed may have had the pair rotated by
    // the server: every holder after it is told, but itself.
    out.previous_holder_sent = a.sent && a.sent->generation == stored && a.sent->by != holder;
    a.held = lease{holder, stored, now + ttl};
    return out;
}

error_code lease_table::touch(const std::string& account, const std::string& holder, std::uint64_t generation,
                              std::chrono::milliseconds ttl, bool sent, clock::time_point now) {
    const auto it = accounts_.find(account);
    // (A write that moved the stored generation ended every lease: stored_at_least.)
    if (it == accounts_.end() || !it->second.held || it->second.held->holder != holder ||
        it->second.held->generation != generation || now >= it->second.held->deadline) {
        return errc::lease_lost;
    }
    it->second.held->deadline = now + ttl;
    if (sent) {
        it->second.sent = sent_mark{holder, generation};
    }
    return {};
}

bool lease_table::release(const std::string& account, const std::string& holder) {
    const auto it = accounts_.find(account);
    if (it == accounts_.end() || !it->second.held || it->second.held->holder != holder) {
        return false;
    }
    it->second.held.reset();
    // A holder gives its lease back only with no rotated pair left to commit: its own mark goes
    // (nobody is left to wait for), another holder's stays.
    if (it->second.sent && it->second.sent->by == holder) {
        it->second.sent.reset();
    }
    forget_if_empty(it);
    return true;
}

void lease_table::end_lease_of(const std::string& account, const std::string& holder) {
    const auto it = accounts_.find(account);
    if (it != accounts_.end() && it->second.held && it->second.held->holder == holder) {
        it->second.held.reset();
        forget_if_empty(it);
    }
}

void lease_table::stored_at_least(const std::string& account, std::uint64_t generation) {
    const auto it = accounts_.find(account);
    if (it == accounts_.end()) {
        return;
    }
    // A lease on an older generation names a refresh token that is no longer the stored one: it
    // goes (as in the Redis store), so that a spent lease never keeps others busy, and so does a
    // mark of a request sent with that token.
    if (it->second.held && it->second.held->generation < generation) {
        it->second.held.reset();
    }
    if (it->second.sent && it->second.sent->generation < generation) {
        it->second.sent.reset();
    }
    forget_if_empty(it);
}

bool lease_table::free(const std::string& account, std::uint64_t stored) const {
    const auto it = accounts_.find(account);
    return it == accounts_.end() || !it->second.held || it->second.held->generation < stored;
}

void lease_table::forget_if_empty(std::unordered_map<std::string, entry>::iterator it) {
    if (!it->second.held && !it->second.sent) {
        accounts_.erase(it);
    }
}

}  // namespace apollo_oauth::store
