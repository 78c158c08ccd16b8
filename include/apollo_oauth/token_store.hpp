// token_store: where the token cache persists each account's token pair, and how caches in many
// processes (and on many hosts) agree on who refreshes an account.
//
// Apollo revokes the old pair on every refresh, so the newest refresh token is the only key to a
// customer's grant: the cache writes it here *before* anyone sees the new access token. Records
// carry a generation number (1 for the first pair stored for an account, +1 per rotation) and
// every write is compare-and-set on it (the fence), so a slow writer holding an older pair can
// never overwrite a newer one.
//
// The coordination protocol (docs/lifecycle.md, docs/scale-out.md), one refresh per rotation
// across every cache that shares the store:
//   1. async_acquire(account, holder, known_generation, ttl): the lease, and a re-read in the same
//      step. `newer` hands back a pair stored since the caller's generation (adopt it, send
//      nothing: the lesson of the distributed locks that let a waiter refresh with the token it
//      read before waiting); `busy` says how long another holder's lease has left;
//      `reauthorization_required` says another process already learned the grant is gone;
//      `granted` hands back *the stored* record of the caller's generation, whose refresh token
//      is the one to send.
//   2. async_mark_sent(...) just before the token request: still the owner, lease renewed. When it
//      fails (errc::lease_lost) the request is not sent.
//   3. async_renew(...) while the request is on the wire (the lease outlives the request's hard
//      deadline plus the commit, with margin; renewing covers a slow commit).
//   4. async_commit(..., record, expected_generation): compare-and-set on the generation; clears
//      the lease; wakes other processes' waiters. A holder whose lease lapsed may still commit
//      when the generation did not move (its pair is then the only live one). Idempotent: a retry
//      after an unknown outcome that finds its own record already stored succeeds.
//   5. async_release(...) on any path that does not commit (compare-and-delete: owner only).
//   6. async_mark_reauthorization(account, generation): records that the grant is gone, only when
//      the generation has not moved (else errc::generation_conflict: someone has a newer pair).
// async_save (a new authorization from a code exchange) clears reauthorization_required.
// async_wait_for_change lets one waiter per process learn of another process's commit.
//
// The memory, file and Redis stores implement the whole protocol. A store that implements only
// async_load, async_save and get_executor gets the rest from token_store's defaults: leases kept
// in this process, in a table of the store object's own, with the memory store's rules. What they
// guarantee, and no more: one refresh per rotation among the caches of ONE process that share the
// SAME store object (several caches; or, on a reload, the new cache and the old one whose refresh
// is still on the wire). They exclude nobody else: not a cache in another process, nor one over
// another store object (a second object over the same data, a decorator deriving from token_store
// itself), which would send the same refresh token again, and Apollo revokes the grant on that. A
// store shared by processes implements the coordination operations itself, or is the file store
// (one host) or the Redis store.
#pragma once

#include <apollo_oauth/error.hpp>
#include <apollo_oauth/token_set.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace apollo_oauth {

namespace detail {
class in_process_leases;
}  // namespace detail

/// Whether a stored grant can still be refreshed.
enum class record_state : std::uint8_t {
    ok,
    /// invalid_grant was answered to this generation's refresh token: every process must send the
    /// customer to re-authorize (and none should spend another refresh on it).
    reauthorization_required,
};

struct stored_tokens {
    token_set tokens;
    std::uint64_t generation = 0;
    record_state state = record_state::ok;
};

/// The answer to async_acquire.
struct lease_outcome {
    enum class kind {
        /// The caller holds the lease for `ttl`. `record` is the stored record of the caller's
        /// generation (or nullopt when nothing is stored): refresh with *its* refresh token.
        granted,
        /// A generation above the caller's is stored: `record` holds it. Adopt it; do not refresh.
        newer,
        /// Another holder has the lease for `time_left` more (including, when that holder marked
        /// its request sent and then went silent, a grace period: the server may have rotated).
        busy,
        /// The stored record of the caller's generation is marked reauthorization_required.
        reauthorization_required,
    };
    kind what = kind::granted;
    std::optional<stored_tokens> record;
    std::chrono::milliseconds time_left{0};
    /// granted only: an earlier holder marked a request sent for this generation and neither
    /// committed nor released, whoever held the lease since (one that took it over and then gave
    /// it back, or died, does not end that holder's mark). The refresh token may already be
    /// spent; invalid_grant is then expected. The cache holds the lease and waits up to
    /// backoff_max for that holder's commit, once per refresh cycle, before it sends the token.
    bool previous_holder_sent = false;
};

/// The persistence and coordination interface. Implementations must be thread-safe. Handlers may
/// be invoked on any thread but never inline from the initiating call (callers rely on it). An
/// initiating call that throws must neither have called its handler nor keep it to call later:
/// the cache answers a call that threw as a failed one itself, and a second answer would be
/// taken for another call's.
class token_store {
public:
    using load_handler = boost::asio::any_completion_handler<void(error_code, std::optional<stored_tokens>)>;
    using save_handler = boost::asio::any_completion_handler<void(error_code)>;
    using acquire_handler = boost::asio::any_completion_handler<void(error_code, lease_outcome)>;
    using lease_handler = boost::asio::any_completion_handler<void(error_code)>;

    virtual ~token_store();

    /// The account's record, or nullopt when there is none.
    /// Errors: errc::store_failure (I/O), errc::corrupt_record (unreadable record),
    /// errc::coordination_unavailable (a shared store cannot be reached; retryable).
    virtual void async_load(std::string account, load_handler handler) = 0;

    /// Writes `record` when the stored generation equals `expected_generation` (0: no record yet).
    /// Errors: errc::generation_conflict when another generation is stored (nothing is written),
    /// errc::store_failure (I/O: nothing or the complete record is written, never a torn one),
    /// errc::invalid_argument when record.generation is not above expected_generation (a store
    /// never goes back), or above 2^53 - 1, or a string of the record (a token, the token type, a
    /// scope) is not valid UTF-8, or the record is more
    /// than the store can hold and read back (the file store: a record file over 1 MiB; nothing is
    /// written), errc::coordination_unavailable.
    virtual void async_save(std::string account, stored_tokens record, std::uint64_t expected_generation,
                            save_handler handler) = 0;

    /// Step 1 of a refresh: the lease and a re-read, atomically. `holder` names the caller (unique
    /// per cache object and process); `known_generation` is the newest generation it holds (0:
    /// none). Completes with the outcome (see lease_outcome). A holder that asks again while it
    /// holds the lease is granted again (and renewed).
    /// Default: a load, then this store object's lease table: `newer` when the load is ahead,
    /// `reauthorization_required` when its record is marked so, `busy` while another holder's
    /// lease taken through this object is live, else `granted` (with `previous_holder_sent`). A
    /// load that a commit through this object outran (it read before that commit landed and
    /// answered after the commit ended the committer's lease) is read again, never granted on.
    virtual void async_acquire(std::string account, std::string holder, std::uint64_t known_generation,
                               std::chrono::milliseconds ttl, acquire_handler handler);

    /// Step 2, just before the token request: errc::lease_lost when `holder` no longer holds the
    /// lease for `generation` (then the request must not be sent); otherwise the lease is renewed
    /// for `ttl` and the refresh is recorded as sent. Default: that, in this object's table.
    virtual void async_mark_sent(std::string account, std::string holder, std::uint64_t generation,
                                 std::chrono::milliseconds ttl, lease_handler handler);

    /// Renews the lease for `ttl` (owner only: errc::lease_lost otherwise). Default: that, in this
    /// object's table.
    virtual void async_renew(std::string account, std::string holder, std::uint64_t generation,
                             std::chrono::milliseconds ttl, lease_handler handler);

    /// Step 4: stores the rotated pair (compare-and-set on expected_generation, like async_save,
    /// whether or not the lease is still held), clears `holder`'s lease and wakes other waiters.
    /// Succeeds when the same record is already stored (a retry after an unknown outcome).
    /// An empty `holder` names no lease to clear: the cache writes back a pair whose first write
    /// failed that way, because a refresh cycle of its own may hold the lease meanwhile, and a
    /// retry that finds its record stored then leaves that lease alone. (A write that moves the
    /// stored generation ends every lease on the older one: its mark_sent and renew fail.)
    /// Errors: those of async_save. Default: async_save; once it succeeds, the leases and marks of
    /// this object's table on older generations end (`holder`'s with them) and its waits read the
    /// record at once. On generation_conflict, a load: the same record stored (generation and
    /// tokens) is success, and ends `holder`'s lease.
    virtual void async_commit(std::string account, std::string holder, stored_tokens record,
                              std::uint64_t expected_generation, save_handler handler);

    /// Gives the lease back when `holder` holds it; does nothing otherwise. A release that gives
    /// the lease back ends `holder`'s mark_sent too: the next holder is not told
    /// previous_holder_sent for it (the cache releases only with no rotated pair left to commit).
    /// Like every operation here, it must call `handler` exactly once, success or not (within the
    /// store's own timeouts): token_cache::async_shutdown waits for the answer before it reports
    /// the shutdown complete (a release still on its way when the process exits leaves the lease
    /// to every other process until lease_ttl), and the account is not set aside until then.
    /// Default: that, in this object's table, waking its waits on the account.
    virtual void async_release(std::string account, std::string holder, lease_handler handler);

    /// Records that the grant of `generation` is gone, when that generation is still the stored
    /// one (the generation does not move for a state change). Errors: errc::generation_conflict
    /// when a newer generation is stored (adopt it instead), errc::unknown_account when nothing is
    /// stored. Default: a load and those checks only; nothing is persisted (async_save cannot
    /// write a state change: its generation must grow), so other processes do not learn it.
    virtual void async_mark_reauthorization(std::string account, std::uint64_t generation,
                                            lease_handler handler);

    /// Completes with the record once a generation above `known_generation` is stored (or the
    /// state of `known_generation` changed), or with nullopt after `max_wait`, or with nullopt
    /// sooner when the store learns that the account's lease is free (given back without a
    /// commit, or found free when the wait begins or re-reads; free meaning that an acquire now
    /// would not be busy), so that the caller asks for it again (the memory, file and Redis
    /// stores; the file store reads the lease with the record every 50 to 150 ms).
    /// Never sooner for a caller
    /// that holds the lease itself while it waits (for the commit of a holder that marked its
    /// request sent): only that commit, or `max_wait`, may end such a wait. One waiter per
    /// process is enough: the cache's single flight merges its callers. Cancellation: total and
    /// terminal complete it with operation_aborted. Default: polls async_load every 100 ms up to
    /// max_wait, and at once when a commit or a release through this object wakes it; the lease
    /// is free when this object's table holds none on the record's generation or a newer one.
    ///
    /// The defaults' table learns of writes through this object's async_commit. A write made
    /// with async_save (a new authorization: token_cache::async_store), or by anyone else, is
    /// learned at the next acquire's load: a lease on an older generation ends then (until then
    /// its holder's mark_sent and renew succeed; its commit, compare-and-set, fails).
    virtual void async_wait_for_change(std::string account, std::uint64_t known_generation,
                                       std::chrono::milliseconds max_wait, load_handler handler);

    /// The executor the default operations use for their timers and posts.
    virtual boost::asio::any_io_executor get_executor() const = 0;

protected:
    token_store();
    /// A copy is another store object: its lease table is a new, empty one.
    token_store(const token_store& other);
    /// Keeps this object's lease table.
    token_store& operator=(const token_store&) noexcept { return *this; }

private:
    /// The default coordination operations' leases (src/store/token_store.cpp).
    std::shared_ptr<detail::in_process_leases> leases_;
};

/// Keeps records in memory: every cache sharing one memory store coalesces its refreshes through
/// the store's leases (tests, and processes that accept re-authorization after a restart).
/// Refuses what async_save's contract refuses, a string that is not valid UTF-8 included.
/// Completes on `ex` through a post.
std::shared_ptr<token_store> make_memory_token_store(boost::asio::any_io_executor ex);

/// One file per account in `directory` (created 0700 if missing; a directory writable by group or
/// others, or owned by another user than this one or root, is refused with store_failure on every
/// call), each written atomically: a temporary file in the same directory, fsync, rename over the
/// old one, fsync of the directory. Files are mode 0600 (a record found readable by others, say
/// restored by hand, is made 0600 when read; one owned by another user is refused); a process
/// killed at any instant leaves the old or the new record, never a torn one. Leases are real across
/// the processes of one host: an flock on a per-account lease file, with a time bound, released by
/// the kernel when the holder dies. A process may fork() without exec while it holds a lease or
/// is inside a store call (a pre-fork server's workers, daemon(), a sandbox helper): the child
/// shares the lease's and the account lock's descriptors, but the store gives its locks back
/// explicitly, so the child keeps none after the commit, release or call (and its copy of a store
/// object, destroyed, gives back none of its parent's; the child cannot use that copy: the store's
/// thread is not forked). Should the holder die with such a child alive, the child keeps the
/// lease's flock: a lease ends by its time bound and is taken over by a new lease file renamed over
/// it (a commit or release leaves one that has run out; one that cannot be read while its flock is
/// held counts as busy only until lease_ttl after it was last written), but an account lock kept
/// so (a holder killed within a store call, a few milliseconds) fails that account's calls with
/// store_failure until the child exits. The store's process-wide mutexes are not given back so: a
/// child forked while another thread was inside a store call finds the accounts that share that
/// call's mutex (about 1 in 64) failing with store_failure in its own stores: a pre-fork server
/// forks before it makes a store. A call whose account lock another process keeps (one stopped
/// under SIGSTOP or a debugger) waits for it on a timer, never on the store's thread, so the other
/// accounts' calls go on meanwhile and the account's later calls wait behind it in the order they
/// were made; 2 s after the call was made it fails with store_failure rather than wait for as long
/// as that process stays stopped (retryable: the cache tells the callers waiting for that refresh,
/// tries again on the next call after its backoff, and retries a commit). A local file system
/// only: never a directory that several hosts share (NFS), where flock may not exclude the other
/// hosts' processes and the lease's monotonic deadlines are another machine's; several hosts share
/// a Redis store. The blocking file work runs on a private thread, never on the caller's executor;
/// handlers run on `ex`.
std::shared_ptr<token_store> make_file_token_store(boost::asio::any_io_executor ex,
                                                   std::filesystem::path directory);

}  // namespace apollo_oauth
