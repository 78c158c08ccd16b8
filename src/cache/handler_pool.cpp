#include "cache/handler_pool.hpp"

#include <new>

// A block on the free list is poisoned but for its link, so that ASan still catches a handler
// touched after it was freed.
#include "cache/poison.hpp"

namespace apollo_oauth::detail {

void* handler_pool_allocate(handler_pool& pool, std::size_t size, std::size_t align) {
    return pool.allocate(size, align);
}

void handler_pool_deallocate(handler_pool& pool, void* p, std::size_t size, std::size_t align) noexcept {
    pool.deallocate(p, size, align);
}

void* handler_pool::allocate(std::size_t size, std::size_t align) {
    if (!pooled(size, align)) {
        return ::operator new(size, std::align_val_t(align));
    }
    // Before the lock: a trim_if_idle that takes the lock after this sees a block out. Whoever
    // calls this holds the pool alive (the owner, or a handler whose own block is out), so the
    // blocks' shared reference may be taken without a check.
    if (out_.fetch_add(1, std::memory_order_acq_rel) == 0) {
        refs_.fetch_add(1, std::memory_order_relaxed);
    }
    std::lock_guard lock{mutex_};
    if (free_ == nullptr) {
        // Everything given back so far, at once: no block is ever popped alone from returned_,
        // so no pop races another (the ABA problem of a lock-free stack does not arise).
        free_ = returned_.exchange(nullptr, std::memory_order_acquire);
    }
    void* out;
    if (free_ != nullptr) {
        out = free_;
        free_ = free_->next;
    } else {
        if (next_unused_ == chunk_blocks) {
            try {
                chunks_.push_back(std::make_unique_for_overwrite<std::byte[]>(chunk_blocks * block_size));
            } catch (...) {
                // Not handed out after all. The caller still holds the pool alive, so dropping
                // the blocks' reference here cannot delete it.
                if (out_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                    refs_.fetch_sub(1, std::memory_order_relaxed);
                }
                throw;
            }
            next_unused_ = 0;
        }
        out = chunks_.back().get() + block_size * next_unused_++;
    }
    APOLLO_OAUTH_UNPOISON(out, block_size);
    return out;
}

void handler_pool::deallocate(void* p, std::size_t size, std::size_t align) noexcept {
    if (p == nullptr) {
        return;
    }
    if (!pooled(size, align)) {
        // Unsized: clang 14 does not declare the sized form without -fsized-deallocation.
        ::operator delete(p, std::align_val_t(align));
        return;
    }
    auto* block = ::new (p) free_block{returned_.load(std::memory_order_relaxed)};
    APOLLO_OAUTH_POISON(static_cast<std::byte*>(p) + sizeof(free_block), block_size - sizeof(free_block));
    while (!returned_.compare_exchange_weak(block->next, block, std::memory_order_release,
                                            std::memory_order_relaxed)) {
    }
    // One count, taken after the push: of several give-backs at once, exactly one sees the last
    // block come back (a check of a count before giving back a reference let two concurrent
    // give-backs each see the other's block out, and neither trimmed). That one still holds the
    // blocks' reference while it trims.
    if (out_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        trim_if_idle();
        unref();
    }
}

void handler_pool::trim_if_idle() noexcept {
    std::lock_guard lock{mutex_};
    // Under the mutex: no block is out, and an allocation that has started since made out_
    // non-zero before waiting for the lock (it then takes blocks after this trim).
    if (!owned_ || out_.load(std::memory_order_acquire) != 0 || chunks_.size() <= 1) {
        return;
    }
    (void)returned_.exchange(nullptr, std::memory_order_acquire);
    free_ = nullptr;
    for (auto& c : chunks_) {
        APOLLO_OAUTH_UNPOISON(c.get(), chunk_blocks * block_size);
    }
    chunks_.resize(1);
    next_unused_ = 0;
}

handler_pool::~handler_pool() {
    for (auto& c : chunks_) {
        APOLLO_OAUTH_UNPOISON(c.get(), chunk_blocks * block_size);
    }
}

void handler_pool::release_owner() noexcept {
    {
        std::lock_guard lock{mutex_};
        owned_ = false;  // from now on refs_ counts blocks only: trim_if_idle must not free chunks
    }
    unref();
}

void handler_pool::unref() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        delete this;
    }
}

std::size_t handler_pool::chunks() const {
    std::lock_guard lock{mutex_};
    return chunks_.size();
}

}  // namespace apollo_oauth::detail
