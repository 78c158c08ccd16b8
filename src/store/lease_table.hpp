// lease_table: the leases of a store whose every lease lives in this process, and each account's
// "sent" mark: the memory store's, and token_store's default coordination operations' (which
// exclude the caches of one process sharing one store object, src/store/token_store.cpp).
// Not thread-safe: its owner calls it under the lock that also orders its record reads and
// writes.
#pragma once

#include <apollo_oauth/error.hpp>
#include <apollo_oauth/token_store.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace apollo_oauth::store {

/// A commit retried after an unknown outcome finds its own record stored when this holds: the same
/// generation and the same tokens (and then succeeds, ending its holder's lease: end_lease_of).
inline bool same_pair(const stored_tokens& a, const stored_tokens& b) {
    return a.generation == b.generation && a.tokens.refresh_token == b.tokens.refresh_token &&
           a.tokens.access_token == b.tokens.access_token;
}

class lease_table {
public:
    using clock = std::chrono::steady_clock;

    /// The lease half of async_acquire, asked once the record's own answers (newer,
    /// reauthorization_required) are ruled out.
    struct answer {
        bool granted = false;
        std::chrono::milliseconds time_left{0};  ///< busy: what the other holder's lease has left
        bool previous_holder_sent = false;       ///< granted: another holder's mark is on `stored`
    };

    /// `stored` is the stored generation (0: none). Leases and marks on an older generation are
    /// spent first (stored_at_least). Busy while another holder's lease is live; otherwise
    /// `holder` is granted (again, when it holds the lease: renewed) for `ttl` on `stored`.
    answer acquire(const std::string& account, const std::string& holder, std::uint64_t stored,
                   std::chrono::milliseconds ttl, clock::time_point now);

    /// async_mark_sent (`sent`) and async_renew: errc::lease_lost unless `holder` holds a live
    /// lease on `generation`; otherwise the lease is renewed for `ttl`, and `sent` records the
    /// account's mark.
    error_code touch(const std::string& account, const std::string& holder, std::uint64_t generation,
                     std::chrono::milliseconds ttl, bool sent, clock::time_point now);

    /// Gives the lease back when `holder` holds it, ending `holder`'s own mark with it (another
    /// holder's stays): true when it did, and the waiters for the lease should ask again.
    bool release(const std::string& account, const std::string& holder);

    /// `holder`'s lease, if it holds one, ends (a commit retried after an unknown outcome that
    /// found its record stored). Nothing else changes.
    void end_lease_of(const std::string& account, const std::string& holder);

    /// The stored generation is now at least `generation`: a lease or a mark on an older one is
    /// spent (its refresh token is no longer the stored one) and goes. After a write that moved
    /// the generation, that is every lease and mark of the account.
    void stored_at_least(const std::string& account, std::uint64_t generation);

    /// No lease keeps an acquire of a record at `stored` busy: none is held, or the one held is
    /// spent. A lease that ran out still counts as held (it may be the asker's own, held while it
    /// waits for a holder that marked its request sent).
    bool free(const std::string& account, std::uint64_t stored) const;

private:
    struct lease {
        std::string holder;
        std::uint64_t generation = 0;
        clock::time_point deadline{};
    };

    // Who last marked a request sent, and for which generation (the Redis store's sent_by /
    // sent_gen). The account's, not the lease's: it outlives a lease taken over, given back by
    // another holder, or replaced, until a write moves the generation or its sender gives the
    // lease back. Kept in the lease, it was lost one holder after a silent sender: the holder
    // that took over was told, but if it gave the lease back, the next one was not, and sent the
    // refresh token the silent sender may have spent.
    struct sent_mark {
        std::string by;
        std::uint64_t generation = 0;
    };

    struct entry {
        std::optional<lease> held;
        std::optional<sent_mark> sent;
    };

    // Drops the entry of `it` once it holds neither a lease nor a mark.
    void forget_if_empty(std::unordered_map<std::string, entry>::iterator it);

    std::unordered_map<std::string, entry> accounts_;
};

}  // namespace apollo_oauth::store
