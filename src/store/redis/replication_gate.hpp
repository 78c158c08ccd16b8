// Which of the Redis store's replicated writes (redis_options::min_replicas) go to the server now,
// and which wait for the answer of one already sent.
#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace apollo_oauth::redis {

/// Why: each replicated write is followed by WAIT on one connection, and the server answers a
/// connection's commands in order, so WAITs sent one after another are served one after another.
/// While the replicas are missing each lasts its whole replica_timeout, and the k-th of k writes
/// sent together learnt its failure after k x replica_timeout. So once a write's WAIT has fallen
/// short, the gate lets one write through at a time (a probe) and holds those that come
/// meanwhile. When the probe is acknowledged, the replicas are back: the held writes go, and so
/// does every later one, at once, as before. When it is not, the held writes fail with it,
/// unsent (errc::coordination_unavailable, which the callers of the writes it may hold already
/// handle: a commit keeps its pair and is written again, a mark-sent sends nothing). Each then
/// learns its outcome within about two replica_timeouts, and the server runs one WAIT per
/// replica_timeout rather than one per write. A write the gate failed was not sent, which only
/// narrows what a retryable failure may mean (such a write may or may not have run). A write
/// that nothing retries is admitted with `may_hold` false: it goes at once, as every write did
/// before (a mark-reauthorization, which on the primary spares the other hosts the revoked
/// refresh token even unreplicated). A probe sent while its connection is reconnecting takes
/// connect_timeout longer.
///
/// Thread-safe: `admit` and `answered` may be called from any thread. What the gate returns is the
/// caller's to send or to fail, outside the gate.
template <class Write>
class replication_gate {
public:
    /// `write` back, to send now (in flight until `answered`), or nullopt: the gate holds it until
    /// a write in flight is answered (never when `may_hold` is false).
    std::optional<Write> admit(Write write, bool may_hold = true) {
        const std::lock_guard lock(mutex_);
        if (may_hold && degraded_ && in_flight_ > 0) {
            held_.push_back(std::move(write));
            return std::nullopt;
        }
        ++in_flight_;
        return std::optional<Write>(std::move(write));
    }

    /// A write `admit` let through was not sent after all (no memory to send it): its count is
    /// given back, as if it had never been admitted. Kept, it would have held the writes the gate
    /// holds, and (degraded) every later one, for ever: only an answer releases them. When no
    /// other write is in flight to be answered, the first one held takes its place: returned, to
    /// send now (in flight until `answered`, or withdrawn in turn).
    std::optional<Write> withdraw() {
        const std::lock_guard lock(mutex_);
        --in_flight_;
        if (in_flight_ != 0 || held_.empty()) {
            return std::nullopt;
        }
        std::optional<Write> next(std::move(held_.front()));
        held_.erase(held_.begin());
        ++in_flight_;
        return next;
    }

    /// The writes held until now, and what to do with them.
    struct released {
        std::vector<Write> writes;
        /// True: send them (they are in flight now). False: fail them.
        bool send = false;
    };

    /// A write in flight was answered. `by_server`: its WAIT's reply came (false: a transport
    /// error, which says nothing about the replicas); `acknowledged`: that reply counted enough
    /// replicas.
    released answered(bool by_server, bool acknowledged) {
        const std::lock_guard lock(mutex_);
        --in_flight_;
        if (by_server) {
            degraded_ = !acknowledged;
        }
        released out{std::exchange(held_, {}), !degraded_};
        if (out.send) {
            in_flight_ += out.writes.size();
        }
        return out;
    }

private:
    std::mutex mutex_;
    std::size_t in_flight_ = 0;
    /// The last WAIT answered counted too few replicas.
    bool degraded_ = false;
    /// Only while degraded_ with a write in flight, whose answer releases them.
    std::vector<Write> held_;
};

}  // namespace apollo_oauth::redis
