#include "cache/snapshot_table.hpp"

#include "cache/account_hash.hpp"
#include "cache/waiters.hpp"
#include "sansio/secret_inline_access.hpp"

#include <time.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <thread>
#include <utility>

namespace apollo_oauth::detail {

namespace {

constexpr std::size_t inline_words = secret_string::inline_capacity / sizeof(std::uint64_t);
static_assert(inline_words * sizeof(std::uint64_t) == secret_string::inline_capacity);

/// Chunks of slots double from 64 to this many: small tables stay small, and large ones allocate
/// a chunk once per 4,096 accounts while the last, partly used chunk wastes at most ~0.7 MiB
/// (at 64k slots it was up to 13 MiB, 13 bytes per account of a million).
constexpr std::size_t largest_chunk = 4096;

std::size_t words_for(std::size_t bytes) noexcept {
    return (bytes + sizeof(std::uint64_t) - 1) / sizeof(std::uint64_t);
}

/// Whether two ids are equal, compared inline for ids of 8 to 32 bytes (overlapping word loads,
/// no call to memcmp): the probe's last check on every get, after the hashes matched. Apollo's
/// ids are 24 characters.
bool same_id(std::string_view a, std::string_view b) noexcept {
    const auto n = a.size();
    if (n != b.size()) {
        return false;
    }
    if (n < 8 || n > 32) {
        return a == b;
    }
    const auto word_at = [](std::string_view s, std::size_t offset) {
        std::uint64_t w;
        std::memcpy(&w, s.data() + offset, sizeof w);
        return w;
    };
    // Two words from each end cover 8..16 bytes; for 17..32 two more from the middle.
    auto differ = (word_at(a, 0) ^ word_at(b, 0)) | (word_at(a, n - 8) ^ word_at(b, n - 8));
    if (n > 16) {
        differ |= (word_at(a, 8) ^ word_at(b, 8)) | (word_at(a, n - 16) ^ word_at(b, n - 16));
    }
    return differ == 0;
}

/// The inline words into a reader's buffer, one load and one store each (a loop over atomics is
/// not unrolled by the compiler, and its counter costs as much as the copy).
template <std::size_t... W>
void copy_words(const std::atomic<std::uint64_t> (&words)[sizeof...(W)], char* out,
                std::index_sequence<W...>) noexcept {
    (
        [&] {
            const auto word = words[W].load(std::memory_order_relaxed);
            std::memcpy(out + W * sizeof word, &word, sizeof word);
        }(),
        ...);
}

void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

}  // namespace

sansio::sys_time coarse_system_now() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return sansio::sys_time{std::chrono::duration_cast<sansio::sys_time::duration>(
        std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec})};
}

namespace {

/// Zeroes `n` words that held a token's bytes, as secure_wipe does a buffer: atomic stores (a
/// reader may be copying them; its sequence check then fails), then a compiler barrier, so that
/// stores to an array about to be freed are not dropped as dead.
void wipe_words(std::atomic<std::uint64_t>* words, std::size_t n) noexcept {
    for (std::size_t w = 0; w < n; ++w) {
        words[w].store(0, std::memory_order_relaxed);
    }
    __asm__ __volatile__("" : : "r"(words) : "memory");
}

}  // namespace

/// A token longer than 64 bytes: its words in a heap array, replaced (never shrunk, never freed
/// before the table) when a longer one is published, and wiped when replaced, when a short token
/// follows, when withdrawn and when freed.
struct snapshot_table::long_words {
    explicit long_words(std::size_t n) : count(n), words(new std::atomic<std::uint64_t>[n]) {}
    long_words(const long_words&) = delete;
    long_words& operator=(const long_words&) = delete;
    ~long_words() { wipe_words(words.get(), count); }
    /// Copies every word's bytes to `to` (count * 8 bytes), as loaded now (relaxed).
    void copy_to(char* to) const noexcept {
        for (std::size_t w = 0; w < count; ++w) {
            const auto word = words[w].load(std::memory_order_relaxed);
            std::memcpy(to + w * sizeof word, &word, sizeof word);
        }
    }
    const std::size_t count;
    const std::unique_ptr<std::atomic<std::uint64_t>[]> words;
};

/// An account's id, inline when it is short (Apollo's are 24 characters): the probe compares it
/// in the line it loaded for the hash, where a std::string would send it to a heap block, one more
/// dependent cache miss per get on a large table (and 32 bytes of heap per account). 28 bytes and
/// 4-byte aligned, so that the slot's 4-byte served length fills its last word: a longer id's
/// heap pointer is kept in the inline bytes rather than in a union that would align it to 8.
class slot_id {
public:
    static constexpr std::size_t inline_capacity = 24;

    slot_id() = default;
    slot_id(const slot_id&) = delete;
    slot_id& operator=(const slot_id&) = delete;
    ~slot_id() {
        if (size_ > inline_capacity) {
            delete[] heap();
        }
    }

    /// Once, before the slot is reachable.
    void assign(std::string_view id) {
        if (id.size() > std::numeric_limits<std::uint32_t>::max()) {
            throw std::length_error("snapshot_table: an account id of 4 GiB or more");
        }
        char* to = bytes_;
        if (id.size() > inline_capacity) {
            to = new char[id.size()];
            std::memcpy(bytes_, &to, sizeof to);
        }
        size_ = static_cast<std::uint32_t>(id.size());
        if (size_ != 0) {  // an empty view's data() may be null, which memcpy may not be given
            std::memcpy(to, id.data(), size_);
        }
    }
    std::string_view view() const noexcept { return {size_ > inline_capacity ? heap() : bytes_, size_}; }

private:
    char* heap() const noexcept {
        char* p;
        std::memcpy(&p, bytes_, sizeof p);
        return p;
    }

    char bytes_[inline_capacity]{};  ///< the id, or (longer than this) a pointer to its owned copy
    std::uint32_t size_ = 0;
};
static_assert(sizeof(slot_id) == 28 && alignof(slot_id) == 4);

/// One account. `hash` and `id` are written before the slot is reachable and never change;
/// everything else is a seqlock-protected atomic, except `claimed`. The fields a reader loads
/// come first and in order (hash, id, the served length, sequence, the snapshot, the words), so
/// that a get walks adjacent lines.
struct snapshot_table::slot {
    std::size_t hash = 0;
    slot_id id;
    // The token's length plus one while one is served, 0 while none is (withdrawn, or never
    // published): one field, so that it fills the id's last word.
    std::atomic<std::uint32_t> served_length{0};

    // Odd while the writer is between its two increments.
    std::atomic<std::uint64_t> sequence{0};
    std::atomic<std::uint64_t> generation{0};
    std::atomic<sansio::sys_time::rep> usable_until{0};
    std::atomic<sansio::sys_time::rep> refresh_at{0};
    // The newest generation rejected by a 401 (withdraw_generation). Only ever raised, by any
    // thread; outside the seqlock, so it needs no writer exclusivity.
    std::atomic<std::uint64_t> rejected{0};
    std::atomic<std::uint64_t> words[inline_words]{};

    /// What the seqlock protects besides the words, loaded relaxed: inside a reader's critical
    /// section (its sequence checks order them), or by the writer itself.
    struct served_fields {
        bool present;
        std::uint32_t length;  ///< 0 when nothing is served
        std::uint64_t generation;
        sansio::sys_time usable_until;
        sansio::sys_time refresh_at;
    };
    served_fields load_served() const noexcept {
        const auto n = served_length.load(std::memory_order_relaxed);
        const auto time_of = [](const std::atomic<sansio::sys_time::rep>& t) {
            return sansio::sys_time{sansio::sys_time::duration{t.load(std::memory_order_relaxed)}};
        };
        return {n != 0, n != 0 ? n - 1 : 0, generation.load(std::memory_order_relaxed), time_of(usable_until),
                time_of(refresh_at)};
    }

    // The sequence number of the last publication whose refresh-ahead a reader claimed. Only ever
    // raised, so a reader that saw an older publication cannot claim after a newer one.
    mutable std::atomic<std::uint64_t> claimed{0};
    std::atomic<const long_words*> heap_words{nullptr};  ///< only for tokens over 64 bytes
    /// Made by the first caller that needs it, then never replaced; freed with the slot.
    std::atomic<parking_lot*> parking{nullptr};
    /// The account's rest while it is idle (rest_of): its driver's, never read by readers, so last.
    sansio::packed_rest rest;

    slot() = default;
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    /// The served token's words are wiped: a table destroyed before its accounts were withdrawn
    /// (an io_context torn down before the cache's stop ran) must not leave tokens in freed memory.
    ~slot() {
        wipe_words(words, inline_words);
        delete parking.load(std::memory_order_relaxed);
    }

    /// The writer's critical section: readers that overlap it retry.
    template <class Write>
    void write(Write&& w) noexcept {
        const auto s = sequence.load(std::memory_order_relaxed);
        sequence.store(s + 1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_release);
        w();
        sequence.store(s + 2, std::memory_order_release);
    }
};

/// How many slots chunk `c` has: 64, 128, ..., 4,096, then 4,096 each (new_slot makes them so).
constexpr std::size_t chunk_size(std::size_t c) noexcept {
    return std::min(std::size_t{64} << std::min<std::size_t>(c, 6), largest_chunk);
}

/// Where slot number `n` (counted from 0 in the order the slots were made) is, in chunks of
/// chunk_size(). With m = n + 64, chunk k < 6
/// holds m in [64 * 2^k, 64 * 2^(k+1)), and from 4,096 on every 4,096 values of m are a chunk.
struct slot_place {
    std::size_t chunk;
    std::size_t offset;
};
constexpr slot_place place_of(std::uint32_t n) noexcept {
    const std::size_t m = std::size_t{n} + 64;
    if (m < largest_chunk) {
        const auto top = static_cast<std::size_t>(std::bit_width(m)) - 1;
        return {top - 6, m - (std::size_t{1} << top)};
    }
    return {m / largest_chunk + 5, m % largest_chunk};
}
static_assert(place_of(0).chunk == 0 && place_of(63).offset == 63 && place_of(64).chunk == 1 &&
              place_of(4031).chunk == 5 && place_of(4031).offset == 2047 && place_of(4032).chunk == 6 &&
              place_of(4032).offset == 0 && place_of(8128).chunk == 7 && place_of(8128).offset == 0);
static_assert(place_of(chunk_size(0) + chunk_size(1) - 1).offset == chunk_size(1) - 1 &&
              place_of(4032 + chunk_size(6) + chunk_size(7) - 1).offset == chunk_size(7) - 1);

/// Open addressing with linear probing, at most half full, of slot numbers (plus one: 0 is an
/// empty bucket) rather than pointers: 4 bytes a bucket instead of 8, which halves the index and
/// the retired ones kept for their readers (about 17 bytes of every account of a million). A
/// number is found in the index's own copy of the chunk pointers, a small array that stays in
/// cache, so the probe makes no more dependent misses than a pointer would. Numbers are published
/// with a release store after their chunk's pointer was written, so a reader that finds a number
/// sees the chunk, and the slot's id and hash.
///
/// Every get reads the index and its chunk pointers, from every thread: both are given whole cache
/// lines (alignas), so that no object the heap puts beside them, written by some thread, makes
/// the readers' lines bounce between cores (a 16-byte chunk array beside such an object took
/// try_get's two-thread scaling from 1.9x to 1.4x).
struct alignas(64) snapshot_table::index {
    static constexpr std::size_t per_line = 64 / sizeof(const slot*);
    struct alignas(64) chunk_line {
        // Atomic (relaxed: a number's release and acquire order them) because the writer adds a
        // new chunk's entry while readers read the others of its line.
        std::atomic<const slot*> chunks[per_line]{};
    };

    explicit index(std::size_t capacity)
        : mask(capacity - 1),
          buckets(new std::atomic<std::uint32_t>[capacity]),
          lines(new chunk_line[place_of(static_cast<std::uint32_t>(capacity / 2 - 1)).chunk / per_line + 1]) {
        for (std::size_t i = 0; i < capacity; ++i) {
            buckets[i].store(0, std::memory_order_relaxed);
        }
    }
    /// The writer, under the insert mutex: the slot's chunk is in add_chunk() already.
    void insert(std::uint32_t number, std::size_t hash) noexcept {
        auto i = hash & mask;
        while (buckets[i].load(std::memory_order_relaxed) != 0) {
            i = (i + 1) & mask;
        }
        buckets[i].store(number + 1, std::memory_order_release);
    }
    const slot& at(std::uint32_t number) const noexcept {
        const auto [chunk, offset] = place_of(number);
        return entry(chunk).load(std::memory_order_relaxed)[offset];
    }
    /// The writer, under the insert mutex, before it publishes a number in the chunk. Written
    /// once: a store on every insert would be a write to a line every get reads.
    void add_chunk(std::size_t chunk, const slot* slots) noexcept {
        auto& e = entry(chunk);
        if (e.load(std::memory_order_relaxed) != slots) {
            e.store(slots, std::memory_order_relaxed);
        }
    }
    std::atomic<const slot*>& entry(std::size_t chunk) const noexcept {
        return lines[chunk / per_line].chunks[chunk % per_line];
    }

    const std::size_t mask;
    const std::unique_ptr<std::atomic<std::uint32_t>[]> buckets;
    /// Room for the chunks of as many slots as the index may hold (half its buckets); a chunk's
    /// entry is written once, before the first number in it is published.
    const std::unique_ptr<chunk_line[]> lines;
};

snapshot_table::snapshot_table(unsigned partition_bits) : partition_bits_(partition_bits) {
    // What every cached account costs, idle or not: a tripwire for a field added without a thought
    // for the million-account figure (bench/README.md).
    static_assert(sizeof(slot) == 176);
    if (partition_bits > max_partition_bits) {
        throw std::invalid_argument("snapshot_table: a partition is kept in one byte");
    }
    indexes_.push_back(std::make_unique<index>(64));
    index_.store(indexes_.back().get(), std::memory_order_release);
}

snapshot_table::~snapshot_table() = default;

const snapshot_table::slot* snapshot_table::find(const index& ix, std::string_view account,
                                                 std::size_t hash) noexcept {
    for (auto i = hash & ix.mask;; i = (i + 1) & ix.mask) {
        const auto number = ix.buckets[i].load(std::memory_order_acquire);
        if (number == 0) {
            return nullptr;
        }
        const slot& s = ix.at(number - 1);
        if (s.hash == hash && same_id(s.id.view(), account)) {
            return &s;
        }
    }
}

namespace {

/// Empties `out` on a miss, wiping what it held, unless this read opened nothing in it and it is
/// empty already: the usual miss (async_get reads into a fresh token) then costs no wipe. An
/// empty secret_string's bytes are all zero (its invariant), so nothing is left behind.
void empty_on_miss(access_token& out, bool opened) noexcept {
    if (opened || !out.value.empty() || out.generation != 0) {
        out = access_token{};
    }
}

}  // namespace

snapshot_read snapshot_table::read(std::string_view account, std::size_t hash, sansio::sys_time now,
                                   access_token& out, parking_lot** lot_on_miss) const noexcept {
    if (lot_on_miss != nullptr) {
        *lot_on_miss = nullptr;  // until a miss finds the account's lot
    }
    const slot* s = find(*index_.load(std::memory_order_acquire), account, hash);
    if (s == nullptr) {
        empty_on_miss(out, false);
        return snapshot_read::miss;
    }
    // The words are copied straight into the caller's inline buffer; a torn copy is overwritten
    // by the retry, and one given up on is wiped. `bytes` is that buffer once opened, and null
    // again while `out` holds a long (heap) token from an earlier attempt.
    char* bytes = nullptr;
    for (unsigned attempt = 0;; ++attempt) {
        const auto before = s->sequence.load(std::memory_order_acquire);
        if ((before & 1) == 0) {
            const auto [present, length, generation, usable_until, refresh_at] = s->load_served();
            const bool servable =
                present && now < usable_until && generation > s->rejected.load(std::memory_order_relaxed);
            bool copied = true;
            if (servable && length <= secret_string::inline_capacity) {
                // The words past the token are zero (publish packs it so), as secret_string's
                // inline tail must be.
                if (bytes == nullptr) {
                    bytes = secret_inline_access::open(out.value);
                }
                copy_words(s->words, bytes, std::make_index_sequence<inline_words>{});
            } else if (servable) {
                if (bytes != nullptr) {
                    secret_inline_access::abandon(out.value);
                    bytes = nullptr;
                }
                // Rare (no Apollo token is this long): the copy allocates, inside the retry loop.
                // Acquire: the array's count and words were written before its pointer was
                // published, and are read before the fence below.
                const long_words* heap = s->heap_words.load(std::memory_order_acquire);
                copied = heap != nullptr && words_for(length) <= heap->count;
                if (copied) {
                    std::string text;
                    try {
                        text.resize(heap->count * sizeof(std::uint64_t));
                    } catch (const std::bad_alloc&) {
                        // No memory for the copy (this function cannot throw): a miss, which the
                        // slow path serves, or reports its own failure from.
                        empty_on_miss(out, false);
                        return snapshot_read::miss;
                    }
                    heap->copy_to(text.data());
                    std::atomic_thread_fence(std::memory_order_acquire);
                    if (s->sequence.load(std::memory_order_relaxed) == before) {
                        text.resize(length);
                        out.value = secret_string(std::move(text));
                        out.generation = generation;
                        // The claim below, as for a short token.
                    } else {
                        detail::wipe(text);
                        continue;
                    }
                }
            }
            std::atomic_thread_fence(std::memory_order_acquire);
            if (s->sequence.load(std::memory_order_relaxed) == before && copied) {
                if (!servable) {
                    // Also overwrites a torn copy with the empty token's zeros.
                    empty_on_miss(out, bytes != nullptr);
                    if (lot_on_miss != nullptr) {
                        *lot_on_miss = s->parking.load(std::memory_order_acquire);
                    }
                    return snapshot_read::miss;
                }
                if (length <= secret_string::inline_capacity) {
                    secret_inline_access::commit(out.value, length);
                    out.generation = generation;
                }
                if (now < refresh_at) {
                    return snapshot_read::fresh;
                }
                // Refresh-ahead is due: the first reader of this publication claims it. Only a
                // load for everyone after that, so the shared line is written once per snapshot.
                auto seen = s->claimed.load(std::memory_order_relaxed);
                while (seen < before) {
                    if (s->claimed.compare_exchange_weak(seen, before, std::memory_order_relaxed)) {
                        return snapshot_read::refresh_due;
                    }
                }
                return snapshot_read::fresh;
            }
        }
        // A publication is in progress (a handful of stores): wait for it, yielding if the writer
        // was descheduled mid-way rather than burning the reader's time slice.
        if (attempt < 64) {
            cpu_relax();
        } else {
            std::this_thread::yield();
        }
    }
}

snapshot_table::slot& snapshot_table::new_slot() {
    if (slot_chunks_.empty() || slot_chunks_.back().used == chunk_size(slot_chunks_.size() - 1)) {
        const std::size_t size = chunk_size(slot_chunks_.size());  // the shapes place_of() finds
        slot_chunks_.reserve(slot_chunks_.size() + 1);             // so that the push below cannot throw
        slot_chunks_.push_back({std::make_unique<slot[]>(size), std::make_unique<std::uint8_t[]>(size), 0});
    }
    ++slot_count_;
    auto& chunk = slot_chunks_.back();
    return chunk.slots[chunk.used++];
}

snapshot_table::slot& snapshot_table::find_or_insert(std::string_view account, std::size_t hash) {
    if (const slot* s = find(*index_.load(std::memory_order_acquire), account, hash)) {
        return const_cast<slot&>(*s);  // the writer's own slot: only readers see it as const
    }
    std::lock_guard lock{insert_mutex_};
    index& current = *indexes_.back();
    if (const slot* s = find(current, account, hash)) {  // another writer added it meanwhile
        return const_cast<slot&>(*s);
    }
    if (slot_count_ + 1 >= std::numeric_limits<std::uint32_t>::max()) {
        throw std::length_error("snapshot_table: more accounts than a 32-bit slot number counts");
    }
    // Whatever may fail (no memory) is had before the slot is counted, or the slot is given back:
    // a slot counted but not indexed would be indexed by the next growth, beside the account's
    // real one.
    std::unique_ptr<index> bigger;
    if ((slot_count_ + 1) * 2 > current.mask + 1) {
        bigger = std::make_unique<index>((current.mask + 1) * 2);
        indexes_.reserve(indexes_.size() + 1);
    }
    slot& s = new_slot();
    try {
        s.id.assign(account);  // an id longer than the inline bytes allocates
    } catch (...) {
        --slot_chunks_.back().used;
        --slot_count_;
        throw;
    }
    s.hash = hash;
    auto& chunk = slot_chunks_.back();
    chunk.partitions[chunk.used - 1] = static_cast<std::uint8_t>(partition_of(hash, partition_bits_));
    const auto number = static_cast<std::uint32_t>(slot_count_ - 1);
    if (bigger) {
        // Grow: a new index with every slot, published whole; the old one stays for its readers.
        std::uint32_t n = 0;
        for (std::size_t c = 0; c < slot_chunks_.size(); ++c) {
            bigger->add_chunk(c, slot_chunks_[c].slots.get());
            for (std::size_t i = 0; i < slot_chunks_[c].used; ++i, ++n) {
                bigger->insert(n, slot_chunks_[c].slots[i].hash);
            }
        }
        indexes_.push_back(std::move(bigger));
        index_.store(indexes_.back().get(), std::memory_order_release);
    } else {
        current.add_chunk(place_of(number).chunk, chunk.slots.get());
        current.insert(number, hash);
    }
    return s;
}

void snapshot_table::publish(std::string_view account, std::size_t hash, const token_snapshot& snap) {
    const auto token = snap.access_token.reveal();
    if (token.size() >= std::numeric_limits<std::uint32_t>::max()) {  // before a slot is made for it
        throw std::length_error("snapshot_table: an access token of 4 GiB or more");
    }
    const auto word_count = words_for(token.size());
    std::uint64_t packed[inline_words]{};
    const long_words* heap = nullptr;
    const long_words* made = nullptr;  // an array made for this publication
    // The slot's array of a long token published before (only this writer changes it).
    const long_words* old_heap = nullptr;
    if (token.size() > secret_string::inline_capacity) {
        // The array before the slot: without memory for it, a new account gets no slot (not one
        // published empty), and an account's readers are not left with the token this one
        // replaces, which a rotation has revoked: they miss, and the slow path serves the account.
        if (const slot* existing = find(*index_.load(std::memory_order_acquire), account, hash)) {
            old_heap = existing->heap_words.load(std::memory_order_relaxed);
        }
        heap = old_heap;
        if (heap == nullptr || heap->count < word_count) {
            // At least doubled, so that the arrays kept for readers (never freed before the
            // table) add up to less than the one in use: tokens growing a word at a time would
            // otherwise keep an array per length.
            const auto count =
                std::max({word_count, 2 * inline_words, old_heap != nullptr ? 2 * old_heap->count : 0});
            try {
                auto array = std::make_unique<long_words>(count);
                std::lock_guard lock{insert_mutex_};
                long_tokens_.push_back(std::move(array));
                heap = made = long_tokens_.back().get();
            } catch (...) {
                withdraw(account, hash);
                throw;
            }
        }
    }
    slot* found = nullptr;
    try {
        found = &find_or_insert(account, hash);
    } catch (...) {
        if (made != nullptr) {  // no reader has seen it: not kept
            std::lock_guard lock{insert_mutex_};
            const auto it = std::find_if(long_tokens_.rbegin(), long_tokens_.rend(),
                                         [made](const auto& array) { return array.get() == made; });
            long_tokens_.erase(std::next(it).base());
        }
        throw;
    }
    slot& s = *found;
    if (heap == nullptr) {
        old_heap = s.heap_words.load(std::memory_order_relaxed);
        std::memcpy(packed, token.data(), token.size());
    }
    s.write([&] {
        s.served_length.store(static_cast<std::uint32_t>(token.size() + 1), std::memory_order_relaxed);
        s.generation.store(snap.generation, std::memory_order_relaxed);
        s.usable_until.store(snap.usable_until.time_since_epoch().count(), std::memory_order_relaxed);
        s.refresh_at.store(snap.refresh_at.time_since_epoch().count(), std::memory_order_relaxed);
        if (heap == nullptr) {
            for (std::size_t w = 0; w < inline_words; ++w) {
                s.words[w].store(packed[w], std::memory_order_relaxed);
            }
        } else {
            for (std::size_t w = 0; w < heap->count; ++w) {
                std::uint64_t word = 0;
                const auto offset = w * sizeof word;
                if (offset < token.size()) {
                    std::memcpy(&word, token.data() + offset, std::min(sizeof word, token.size() - offset));
                }
                heap->words[w].store(word, std::memory_order_relaxed);
            }
            // Release, although the write's fence already orders the array's words before it (a
            // reader's acquire of the pointer then synchronises with the fence): ThreadSanitizer
            // does not model fences, and took the reader's read of the new array's count for a
            // race with its construction (a writer growing a long token while a reader reads it).
            s.heap_words.store(heap, std::memory_order_release);
            wipe_words(s.words, inline_words);  // a short token served before
        }
        // An older long token's array no longer in use, or not in use while a short token is
        // served: wiped now rather than left holding that token until the table goes. (It stays
        // the slot's array when a short token replaced it, for the next long one.)
        if (old_heap != nullptr && old_heap != heap) {
            wipe_words(old_heap->words.get(), old_heap->count);
        }
    });
    detail::secure_wipe(packed, sizeof packed);
}

std::size_t snapshot_table::long_arrays_kept() const {
    std::lock_guard lock{insert_mutex_};
    return long_tokens_.size();
}

std::size_t snapshot_table::long_arrays_holding(std::string_view bytes) const {
    std::lock_guard lock{insert_mutex_};
    std::size_t holding = 0;
    for (const auto& array : long_tokens_) {
        std::string text(array->count * sizeof(std::uint64_t), '\0');
        array->copy_to(text.data());
        holding += text.find(bytes) != std::string::npos ? 1 : 0;
        detail::wipe(text);
    }
    return holding;
}

void snapshot_table::withdraw_generation(std::string_view account, std::size_t hash,
                                         std::uint64_t generation) {
    const slot* found = find(*index_.load(std::memory_order_acquire), account, hash);
    if (found == nullptr) {
        return;
    }
    // A generation this table never published for the account is none of its tokens (a token of
    // another account, or of another cache over the same store): marked, it would hide every
    // publication up to it, and each get would then take the rejection to the machine, which
    // would rotate the pair once per get until its generation passed the mark. A token served
    // from this table happens-before its invalidate, so the generation read here is at least its
    // own. (One the machine serves before its publication reaches the table is told to the
    // machine all the same, through cache_impl::invalidate's event.)
    if (generation > found->generation.load(std::memory_order_acquire)) {
        return;
    }
    auto& rejected = const_cast<slot&>(*found).rejected;
    auto seen = rejected.load(std::memory_order_relaxed);
    while (seen < generation &&
           !rejected.compare_exchange_weak(seen, generation, std::memory_order_release)) {
    }
}

void snapshot_table::withdraw(std::string_view account, std::size_t hash) {
    const slot* found = find(*index_.load(std::memory_order_acquire), account, hash);
    if (found == nullptr) {
        return;
    }
    auto& s = const_cast<slot&>(*found);
    s.write([&] {
        s.served_length.store(0, std::memory_order_relaxed);
        // The token's words are zeroed too: a withdrawn token (revoked, invalidated) should not
        // linger in memory any longer than a secret_string would keep it.
        wipe_words(s.words, inline_words);
        if (const long_words* heap = s.heap_words.load(std::memory_order_relaxed)) {
            wipe_words(heap->words.get(), heap->count);
        }
    });
}

std::uint64_t snapshot_table::rejected_generation(std::string_view account, std::size_t hash) const noexcept {
    const slot* found = find(*index_.load(std::memory_order_acquire), account, hash);
    return found == nullptr ? 0 : found->rejected.load(std::memory_order_acquire);
}

parking_lot* snapshot_table::lot_of(std::string_view account, std::size_t hash) {
    const slot* found = find(*index_.load(std::memory_order_acquire), account, hash);
    if (found == nullptr) {
        return nullptr;
    }
    auto& lot = const_cast<slot&>(*found).parking;  // a lot is made once, by whoever comes first
    if (auto* existing = lot.load(std::memory_order_acquire)) {
        return existing;
    }
    auto made = std::make_unique<parking_lot>();
    parking_lot* expected = nullptr;
    if (lot.compare_exchange_strong(expected, made.get(), std::memory_order_acq_rel)) {
        return made.release();  // the slot owns it now
    }
    return expected;
}

sansio::packed_rest* snapshot_table::rest_of(std::string_view account, std::size_t hash) noexcept {
    return const_cast<sansio::packed_rest*>(
        std::as_const(*this).rest_of(account, hash));  // the driver's own field
}

const sansio::packed_rest* snapshot_table::rest_of(std::string_view account,
                                                   std::size_t hash) const noexcept {
    const slot* found = find(*index_.load(std::memory_order_acquire), account, hash);
    return found == nullptr ? nullptr : &found->rest;
}

std::optional<token_snapshot> snapshot_table::served_inline(std::string_view account,
                                                            std::size_t hash) const noexcept {
    const slot* s = find(*index_.load(std::memory_order_acquire), account, hash);
    if (s == nullptr) {
        return std::nullopt;
    }
    const auto served = s->load_served();
    if (served.length > secret_string::inline_capacity) {
        return std::nullopt;  // in heap words
    }
    token_snapshot out;
    char* bytes = secret_inline_access::open(out.access_token);
    copy_words(s->words, bytes, std::make_index_sequence<inline_words>{});
    secret_inline_access::commit(out.access_token, served.length);
    out.generation = served.generation;
    out.usable_until = served.usable_until;
    out.refresh_at = served.refresh_at;
    return out;
}

std::vector<snapshot_table::resting_account> snapshot_table::resting(
    std::optional<std::size_t> partition) const {
    // The chunks are never moved or freed, and a slot's hash, id and partition are written before
    // the mutex is released; only the list of chunks may grow meanwhile, so it is copied under
    // the mutex.
    struct chunk_view {
        const slot* slots;
        const std::uint8_t* partitions;
        std::size_t used;
    };
    std::vector<chunk_view> chunks;
    {
        std::lock_guard lock{insert_mutex_};
        chunks.reserve(slot_chunks_.size());
        for (const auto& chunk : slot_chunks_) {
            chunks.push_back({chunk.slots.get(), chunk.partitions.get(), chunk.used});
        }
    }
    std::vector<resting_account> out;
    for (const auto& chunk : chunks) {
        for (std::size_t i = 0; i < chunk.used; ++i) {
            // Another partition's rest is not looked at: its driver may be writing it.
            if ((!partition || chunk.partitions[i] == *partition) && chunk.slots[i].rest) {
                out.push_back({chunk.slots[i].id.view(), chunk.slots[i].hash});
            }
        }
    }
    return out;
}

}  // namespace apollo_oauth::detail
