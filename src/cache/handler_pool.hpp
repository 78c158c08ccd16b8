// Fixed-size blocks for the type-erased handlers of the callers parked on a cache.
#pragma once

#include <apollo_oauth/detail/handler_allocator.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace apollo_oauth::detail {

/// Why: a coroutine's parked handler is held inline (parked_handler), but another (too large, or
/// with a move that may throw: a composed operation's, any Asio binder's) is boxed, and a herd of
/// 100,000 such callers on one refresh allocates 100,000 boxes on arrival and frees them all at
/// the wake-up, often on another thread. Through glibc each of those frees lands a small chunk in
/// a fastbin right before the caller's coroutine frame is freed beside large free chunks, and
/// glibc then consolidates on nearly every waiter (malloc_consolidate, unlink_chunk: the largest
/// share of the wake-up in perf). Here a block comes from chunks of `chunk_blocks` and goes back
/// on a free list.
///
/// Thread safety: allocate and deallocate may be called from any thread. A block is given back
/// with a lock-free push (the wake-up's side, one walk per executor, never blocks); blocks are
/// taken under a mutex, and the taker drains the pushed list whole, so no pop races another pop
/// (no ABA). Larger or over-aligned requests go to operator new.
///
/// Lifetime: the cache owns one reference, and the blocks handed out share another while any is
/// out; the pool deletes itself with the last one, so a handler destroyed after its cache (in an
/// io_context torn down later) still gives its block back. Once every block is back, all but one
/// chunk are freed, by the give-back that made the count of blocks out zero: a herd's memory does
/// not stay with the cache, even when its last blocks come back on several threads at once.
class handler_pool {
public:
    static constexpr std::size_t block_size = 128;  ///< a box: a handler and its allocator
    static constexpr std::size_t chunk_blocks = 256;

    /// A new pool, owned by the caller until release_owner().
    static handler_pool* create() { return new handler_pool; }
    /// The owner is done: the pool goes now, or with the last block still out.
    void release_owner() noexcept;

    void* allocate(std::size_t size, std::size_t align);
    void deallocate(void* p, std::size_t size, std::size_t align) noexcept;

    /// Chunks held now (tests).
    std::size_t chunks() const;
    /// Blocks handed out and not given back yet (tests).
    std::size_t blocks_out() const noexcept { return out_.load(std::memory_order_acquire); }

private:
    struct free_block {
        free_block* next;
    };
    static bool pooled(std::size_t size, std::size_t align) noexcept {
        return size <= block_size && align <= alignof(std::max_align_t);
    }

    handler_pool() = default;
    ~handler_pool();
    void unref() noexcept;
    void trim_if_idle() noexcept;

    /// The owner's reference, plus one shared by the blocks while any is out (taken by the
    /// allocation that makes out_ 1, dropped by the give-back that makes it 0).
    std::atomic<std::size_t> refs_{1};
    /// Pooled blocks handed out and not given back.
    std::atomic<std::size_t> out_{0};
    /// Blocks given back, pushed from any thread.
    std::atomic<free_block*> returned_{nullptr};

    mutable std::mutex mutex_;
    bool owned_ = true;                                 ///< release_owner() not called yet (under mutex_)
    free_block* free_ = nullptr;                        ///< blocks taken from returned_ (under mutex_)
    std::vector<std::unique_ptr<std::byte[]>> chunks_;  ///< under mutex_
    std::size_t next_unused_ = chunk_blocks;            ///< in chunks_.back() (under mutex_)
};

}  // namespace apollo_oauth::detail
