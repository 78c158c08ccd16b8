// The cache's hot path: every account's current token, published by the account's writer and read
// by any thread without a lock and without writing to memory other readers share.
//
// Why a seqlock over atomic words: readers of one hot account on several threads must scale, so
// they may not bump a reference count or take a lock (libstdc++ 12's atomic<shared_ptr> is a
// locked refcount, 2.5x slower than a mutex on two threads here). A seqlock reader only loads: a
// sequence number, the snapshot's words, the sequence number again; it retries if a publication
// overlapped. A token fits in eight 64-bit words (Apollo's are 43 bytes), so the copy out is a
// few loads into the caller's inline secret_string, without allocating. Every shared field is a
// std::atomic (relaxed inside the critical section, ordered by the fences of the protocol), so
// the C++ memory model and ThreadSanitizer see no data race.
//
// What is never freed before the table: slots (one per account ever published), index arrays
// replaced by a larger one, and heap word arrays of tokens longer than 64 bytes replaced by a
// larger one. A reader may still be looking at any of them; each replacement is at least twice
// the size of what it replaces, so what is kept is less than what is in use. A slot's words and a
// long token's array are wiped when their token is withdrawn or replaced, and when freed.
#pragma once

#include <apollo_oauth/token_cache.hpp>

#include "sansio/packed_rest.hpp"
#include "sansio/refresh_policy.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace apollo_oauth::detail {

struct parking_lot;

/// What readers are served for one account, between two publications.
struct token_snapshot {
    secret_string access_token;  ///< copied out to readers without allocating (inline buffer)
    std::uint64_t generation = 0;
    sansio::sys_time usable_until{};  ///< expires_at minus the margin
    sansio::sys_time refresh_at{};    ///< the refresh-ahead point
};

enum class snapshot_read {
    fresh,        ///< `out` holds a usable token
    refresh_due,  ///< `out` holds a usable token, and this reader claimed the one refresh-ahead
    miss,         ///< nothing usable published: take the slow path
};

/// The system clock read coarsely (CLOCK_REALTIME_COARSE: the kernel's last tick, a few ms old,
/// read from the vDSO without touching the TSC). The cache decides with a 60 s margin, so a few
/// ms of lag cost nothing, and the read is several times cheaper than system_clock::now().
sansio::sys_time coarse_system_now() noexcept;

class snapshot_table {
public:
    /// Accounts are told apart by partition_of(hash, partition_bits) (account_hash.hpp), so that
    /// resting() can list one partition's without visiting the others' slots.
    /// Throws std::invalid_argument for more than max_partition_bits.
    explicit snapshot_table(unsigned partition_bits = 0);
    static constexpr unsigned max_partition_bits = 8;
    ~snapshot_table();
    snapshot_table(const snapshot_table&) = delete;
    snapshot_table& operator=(const snapshot_table&) = delete;

    /// Readers: any thread, no lock, no write to a shared cache line (except the one claim of a
    /// refresh-ahead per publication). `hash` is account_hash(account) (account_hash.hpp). On fresh
    /// and refresh_due fills `out` (no allocation for a token of up to 64 bytes); `now` decides
    /// usability (now < usable_until) and refresh-ahead (now >= refresh_at). refresh_due is
    /// returned to exactly one reader per published snapshot; the others see fresh. On a miss `out`
    /// is emptied (its old value wiped) and its generation is 0, and `*lot_on_miss` (when given)
    /// is the account's parking lot if it has one already, or null: the get that follows the miss
    /// need not look the account up again.
    snapshot_read read(std::string_view account, std::size_t hash, sansio::sys_time now, access_token& out,
                       parking_lot** lot_on_miss = nullptr) const noexcept;

    /// Writer (one at a time per account: the account's strand, or its lock): publishes or
    /// replaces the account's snapshot. A new publication may be claimed for refresh-ahead again.
    void publish(std::string_view account, std::size_t hash, const token_snapshot& s);

    /// Writer: readers miss until the next publication (invalidated, expired, reauthorization,
    /// stop). Does nothing for an account never published.
    void withdraw(std::string_view account, std::size_t hash);

    /// Any thread (a 401 seen by any caller): readers miss the account's snapshot while it is of
    /// `generation` or older, so the next get goes to the account's machine, which hears of the
    /// 401 next. A newer publication is served again. A generation above the newest published
    /// for the account is ignored: not a token this table served. Lock-free: a raise-only mark
    /// beside the seqlock, so it never races the single writer.
    void withdraw_generation(std::string_view account, std::size_t hash, std::uint64_t generation);

    /// Any thread: the newest generation withdraw_generation marked for `account` (0: none).
    std::uint64_t rejected_generation(std::string_view account, std::size_t hash) const noexcept;

    /// Any thread: the account's parking lot (waiters.hpp), made on first use and kept as long as
    /// the table; nullptr for an account never published (the store may not know it, and such an
    /// account must leave nothing behind).
    parking_lot* lot_of(std::string_view account, std::size_t hash);

    /// The account's driver only (its strand): where the account's packed rest is kept while it is
    /// idle, beside its snapshot, so that an idle account has no entry of its own anywhere else;
    /// nullptr for an account never published. Readers never look at it.
    sansio::packed_rest* rest_of(std::string_view account, std::size_t hash) noexcept;
    const sansio::packed_rest* rest_of(std::string_view account, std::size_t hash) const noexcept;

    /// The account's driver only: what the account's slot serves (its token, generation,
    /// usable-until and refresh-at, as its last publication or withdrawal left them), when the
    /// token is in the slot's inline words; nullopt for an account never published or a token
    /// longer than the words. Nothing but the driver writes a slot, so a rest may leave what the
    /// slot serves to it (sansio::served_snapshot) and take it back from here when it wakes.
    std::optional<token_snapshot> served_inline(std::string_view account, std::size_t hash) const noexcept;

    struct resting_account {
        std::string_view account;  ///< valid as long as the table
        std::size_t hash;
    };
    /// The accounts of one partition with a rest kept here. A driver asks for its own partition's
    /// (its strand's), whose rests no other thread touches meanwhile. Reads one byte per account
    /// of the table, and the slots of that partition only. Without a partition: every
    /// partition's (tests, while no driver runs).
    std::vector<resting_account> resting(std::optional<std::size_t> partition = std::nullopt) const;

    /// Tests: the word arrays of long tokens kept so far (each replaced one is kept for its
    /// readers), and how many of them hold `bytes` (a token's text, or part of it) right now.
    std::size_t long_arrays_kept() const;
    std::size_t long_arrays_holding(std::string_view bytes) const;

private:
    struct long_words;
    struct slot;
    struct index;

    static const slot* find(const index& ix, std::string_view account, std::size_t hash) noexcept;

    slot& find_or_insert(std::string_view account, std::size_t hash);
    slot& new_slot();

    std::atomic<const index*> index_{nullptr};
    mutable std::mutex insert_mutex_;  ///< writers adding an account, growing the index, or a long token
    // Slots in chunks of growing size, never moved: readers hold plain pointers to them, and the
    // index finds a slot number's chunk by the chunks' shapes (place_of in the .cpp, which
    // new_slot follows, both through chunk_size). Each chunk says how many of its slots are in
    // use (under insert_mutex_).
    struct slot_chunk {
        std::unique_ptr<slot[]> slots;
        /// Each slot's partition, apart from the slots: listing one partition's rests reads these
        /// bytes, not a line of every slot (64 shards each reading a million slots' lines were
        /// most of a million-account shutdown's time).
        std::unique_ptr<std::uint8_t[]> partitions;
        std::size_t used = 0;
    };
    const unsigned partition_bits_;
    std::vector<slot_chunk> slot_chunks_;
    std::size_t slot_count_ = 0;
    std::vector<std::unique_ptr<index>> indexes_;  ///< the current one last; older ones are retired
    std::vector<std::unique_ptr<long_words>> long_tokens_;
};

}  // namespace apollo_oauth::detail
