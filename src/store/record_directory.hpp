// The file store's blocking half: compare-and-set of record files in one directory, with every
// file operation done on the calling thread. The token_store around it moves the calls to a
// private thread.
#pragma once

#include <apollo_oauth/error.hpp>
#include <apollo_oauth/token_store.hpp>

#include "store/posix_file.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace apollo_oauth::store {

/// Thread-safe. The directory is opened again by path for every call, so a directory replaced or
/// moved away is noticed instead of written to. It is refused (errc::store_failure) when it is
/// writable by group or others, or owned by neither this user nor root: whoever can write to it
/// can replace a record, and so choose the tokens this process sends.
class record_directory {
public:
    explicit record_directory(std::filesystem::path directory);

    /// What save, acquire, touch, commit and mark_reauthorization return at once when someone else
    /// keeps the account's lock (this process's stripe for it, or its flock), before the call
    /// changed any record or lease (the directory and the lock file may have been made): it may be
    /// made again as it is. Never waited for here: the file store tries again on a timer, so that
    /// its thread serves the other accounts meanwhile. (boost::system::errc::
    /// resource_unavailable_try_again; never a store's answer to its caller, which is
    /// errc::store_failure.)
    static error_code lock_busy() noexcept;

    /// nullopt when there is no record (or no directory). Takes no lock: a record file is only
    /// ever replaced by rename, so a reader sees the old one or the new one.
    error_code load(std::string_view account, std::optional<stored_tokens>& out) const;

    /// Compare-and-set under the account's lock. A corrupt current record refuses the write with
    /// errc::corrupt_record: its generation is unknown, and a person should look at it before it
    /// is replaced. errc::invalid_argument when record.generation is not above
    /// expected_generation (generations only grow), or the record could not be read back: a
    /// string that is not valid UTF-8, a generation past max_generation, a time past what a
    /// time_point holds, or a record file over max_record_size (reads_back).
    error_code save(std::string_view account, const stored_tokens& record,
                    std::uint64_t expected_generation) const;

    /// Creates the directory (0700) when missing, and removes temporary files that writers which
    /// died mid-save left behind: only those of accounts whose lock is free, so a live writer's
    /// file is never taken from it. Best effort: errors are left for load and save to report.
    void prepare() const;

    // Leases, real across the processes of one host. <key>.lease holds the holder's name, the
    // generation, a deadline (CLOCK_MONOTONIC, shared by every process of the host), the phase
    // (acquired, sent) and the sent mark: who last marked a request sent, for which generation.
    // Its holder keeps an flock on it for as long as it holds the lease, so the kernel frees it
    // when the holder dies; a holder that is alive but past its deadline is replaced by renaming a
    // new lease file over its own (its flock stays on the old inode, and it sees it lost the
    // lease). The mark goes from each lease to the next until a write moves the generation or its
    // sender gives its lease back (the Redis store's sent_by / sent_gen): a holder is granted with
    // previous_holder_sent when it carries another holder's mark for the stored generation. A
    // lease file that holds something but no lease (a torn write) is read as a mark of an unknown
    // sender: a false mark costs a wait for a commit, a lost one may cost the grant.
    // Every lease operation but release runs under the account's <key>.lock.

    /// async_acquire's decision (see token_store.hpp).
    error_code acquire(std::string_view account, const std::string& holder, std::uint64_t known_generation,
                       std::chrono::milliseconds ttl, lease_outcome& out);
    /// errc::lease_lost unless `holder` holds the lease of `generation` here; renews it, and
    /// records the phase `sent` when asked.
    error_code touch(std::string_view account, const std::string& holder, std::uint64_t generation,
                     std::chrono::milliseconds ttl, bool sent);
    /// save(), idempotent for a retry that finds its own record, then the holder's lease goes.
    error_code commit(std::string_view account, const std::string& holder, const stored_tokens& record,
                      std::uint64_t expected_generation);
    /// What a waiter reads (async_wait_for_change): the record, and whether an acquire now would
    /// find the lease free, as acquire decides it: no lease file, its flock free (given back, or
    /// its holder died), or lapsed, or on an older generation than the stored one. Never free
    /// while this object holds a lease on the account, for any holder: such a waiter may be that
    /// holder, waiting for a silent sender's commit (token_store.hpp). Reads only, under the
    /// account's lock, tried once: kept by someone else, the lease does not count as free.
    error_code probe(std::string_view account, std::optional<stored_tokens>& record, bool& lease_free);
    /// Gives `holder`'s lease back; the sent mark it carries stays, unless it is `holder`'s own.
    void release(std::string_view account, const std::string& holder);
    /// Rewrites the record of `generation` with state reauthorization_required.
    error_code mark_reauthorization(std::string_view account, std::uint64_t generation);

private:
    struct held_lease {
        flocked_fd fd;
        std::string holder;
        std::uint64_t generation = 0;
    };
    /// open_directory, creating it, and the directory's entry synced into its parent once.
    error_code open_for_records(unique_fd& dir) const;
    bool holds(int dir, const std::string& key, const std::string& holder) const;
    void drop(int dir, const std::string& key, bool end_lease);

    std::filesystem::path directory_;
    mutable std::atomic<bool> parent_synced_{false};
    std::map<std::string, held_lease> held_;  ///< leases this object holds, by key (under held_mutex_)
    std::mutex held_mutex_;
};

}  // namespace apollo_oauth::store
