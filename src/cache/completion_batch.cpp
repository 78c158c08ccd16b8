// The batch of hot-path completions (include/apollo_oauth/detail/completion_batch.hpp).
#include <apollo_oauth/detail/completion_batch.hpp>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/post.hpp>

#include <cassert>
#include <exception>

// A spare node block is poisoned but for its link (see handler_pool.cpp).
#include "cache/poison.hpp"

namespace apollo_oauth::detail {
namespace {

thread_local bool exiting = false;
std::atomic<std::size_t> batches_alive{0};

}  // namespace

/// Frees or orphans the thread's batch as the thread exits.
struct completion_batch_owner {
    ~completion_batch_owner() {
        exiting = true;
        if (auto* batch = std::exchange(completion_batch::this_threads_, nullptr)) {
            batch->leave();
        }
    }
    static completion_batch* make() noexcept { return new (std::nothrow) completion_batch; }
};

completion_batch::completion_batch() noexcept {
    batches_alive.fetch_add(1, std::memory_order_relaxed);
}
completion_batch::~completion_batch() {
    batches_alive.fetch_sub(1, std::memory_order_relaxed);
}
std::size_t completion_batch::alive() noexcept {
    return batches_alive.load(std::memory_order_relaxed);
}

completion_batch* completion_batch::make_this_threads() noexcept {
    if (exiting) {
        return nullptr;
    }
    static thread_local completion_batch_owner owner;  // its destructor runs at the thread's exit
    this_threads_ = completion_batch_owner::make();
    return this_threads_;
}

bool completion_batch::try_add(batched_completion* node) noexcept {
    auto head = head_.load(std::memory_order_relaxed);
    do {
        if (head == closed) {
            node->next = nullptr;  // not the list a failed exchange linked it to: that is the closer's
            return false;
        }
        node->next = reinterpret_cast<batched_completion*>(head);
    } while (!head_.compare_exchange_weak(head, reinterpret_cast<std::uintptr_t>(node),
                                          std::memory_order_release, std::memory_order_relaxed));
    ++joined_;
    return true;
}

batched_completion* completion_batch::take_added() noexcept {
    // The owner is the only thread that adds, so the head moves under it only by the operation's
    // close; the owner's flag `ownerless` is never set while the owner runs.
    auto head = head_.load(std::memory_order_relaxed);
    do {
        if (head == closed || head == 0) {
            return nullptr;
        }
    } while (!head_.compare_exchange_weak(head, 0, std::memory_order_relaxed, std::memory_order_relaxed));
    return oldest_first(head);
}

batched_completion* completion_batch::close_from_another_thread() noexcept {
    const auto head = head_.exchange(closed, std::memory_order_acq_rel);
    assert(head != closed && "a batch is closed once per opening");
    if ((head & ownerless) != 0) {
        delete this;  // the owner has exited; nothing refers to the batch any more
    }
    return oldest_first(head & ~ownerless);
}

batched_completion* completion_batch::oldest_first(std::uintptr_t head) noexcept {
    // Added newest first: reversed, they run in the order they were made.
    auto* newest = reinterpret_cast<batched_completion*>(head);
    batched_completion* oldest = nullptr;
    while (newest != nullptr) {
        auto* next = newest->next;
        newest->next = oldest;
        oldest = newest;
        newest = next;
    }
    return oldest;
}

void completion_batch::leave() noexcept {
    auto head = head_.load(std::memory_order_acquire);
    do {
        if (head == closed) {
            delete this;
            return;
        }
    } while (!head_.compare_exchange_weak(head, head | ownerless, std::memory_order_acq_rel,
                                          std::memory_order_acquire));
}

namespace {
/// This thread's spare node blocks (a singly linked list through the blocks themselves).
struct node_cache_state {
    struct free_block {
        free_block* next;
    };
    free_block* spare = nullptr;
    std::size_t count = 0;
    ~node_cache_state() {
        while (spare != nullptr) {
            auto* block = std::exchange(spare, spare->next);
            APOLLO_OAUTH_UNPOISON(block, thread_node_cache::block_size);
            ::operator delete(block);
        }
        node_cache_gone = true;
    }
    static thread_local bool node_cache_gone;
};
thread_local bool node_cache_state::node_cache_gone = false;
thread_local node_cache_state node_cache;
}  // namespace

void* thread_node_cache::allocate() {
    if (!node_cache_state::node_cache_gone && node_cache.spare != nullptr) {
        --node_cache.count;
        auto* block = std::exchange(node_cache.spare, node_cache.spare->next);
        APOLLO_OAUTH_UNPOISON(block, block_size);
        return block;
    }
    return ::operator new(block_size);
}

void thread_node_cache::deallocate(void* block) noexcept {
    if (!node_cache_state::node_cache_gone && node_cache.count < capacity) {
        auto* b = ::new (block) node_cache_state::free_block{node_cache.spare};
        APOLLO_OAUTH_POISON(reinterpret_cast<std::byte*>(b) + sizeof(*b), block_size - sizeof(*b));
        node_cache.spare = b;
        ++node_cache.count;
        return;
    }
    ::operator delete(block);
}

namespace {
/// A list of completions queued as one operation, outside any batch.
class list_operation {
public:
    list_operation(batched_completion* list, boost::asio::io_context::executor_type io)
        : list_(list), io_(io) {}
    list_operation(list_operation&& other) noexcept
        : list_(std::exchange(other.list_, nullptr)), io_(other.io_) {}
    list_operation& operator=(list_operation&&) = delete;
    ~list_operation() { discard_batched(list_); }
    void operator()() { run_batched(io_, std::exchange(list_, nullptr)); }

private:
    batched_completion* list_;
    boost::asio::io_context::executor_type io_;
};
}  // namespace

void run_batched(const boost::asio::io_context::executor_type& io, batched_completion* list) {
    while (list != nullptr) {
        auto* node = std::exchange(list, list->next);
        try {
            node->run(node);
        } catch (...) {
            requeue_rest(io, list);
            throw;
        }
    }
}

void discard_batched(batched_completion* list) noexcept {
    while (list != nullptr) {
        auto* node = std::exchange(list, list->next);
        node->discard(node);
    }
}

void defer_list(const boost::asio::io_context::executor_type& io, batched_completion* list) {
    boost::asio::defer(io, list_operation(list, io));
}

namespace {
/// Hands Asio the block taken before the chunk was (then once more from the node cache, should
/// Asio ask twice); frees to the node cache of whichever thread destroys the operation. `reserved`
/// points into post_chunk's frame: only the post allocates. The copy the operation keeps only
/// deallocates, later, and never reads it.
template <class T>
struct reserved_block_allocator {
    using value_type = T;
    void** reserved;
    explicit reserved_block_allocator(void** r) noexcept : reserved(r) {}
    template <class U>
    reserved_block_allocator(const reserved_block_allocator<U>& other) noexcept : reserved(other.reserved) {}
    T* allocate(std::size_t n) {
        // Asio's operation around a list_operation: a handful of pointers.
        static_assert(sizeof(T) <= thread_node_cache::block_size && alignof(T) <= alignof(std::max_align_t));
        assert(n == 1);
        (void)n;
        void* block = std::exchange(*reserved, nullptr);
        return static_cast<T*>(block != nullptr ? block : thread_node_cache::allocate());
    }
    void deallocate(T* p, std::size_t) noexcept { thread_node_cache::deallocate(p); }
    template <class U>
    bool operator==(const reserved_block_allocator<U>&) const noexcept {
        return true;
    }
};
}  // namespace

void post_chunk(const boost::asio::io_context::executor_type& io, completion_batch& batch) noexcept {
    void* block = nullptr;
    try {
        block = thread_node_cache::allocate();
    } catch (...) {
        return;  // the completions wait for the batch's own operation, on this thread
    }
    auto* list = batch.take_added();
    if (list == nullptr) {
        thread_node_cache::deallocate(block);
        return;
    }
    // post, not defer: defer would keep the chunk on this thread until the handler making the
    // completions returns, which is what a chunk is for not doing. With its memory reserved, the
    // post does not throw.
    boost::asio::post(
        io, boost::asio::bind_allocator(reserved_block_allocator<void>(&block), list_operation(list, io)));
    if (block != nullptr) {
        thread_node_cache::deallocate(block);  // not asked for (an Asio that allocates elsewhere)
    }
}

void requeue_rest(const boost::asio::io_context::executor_type& io, batched_completion* rest) noexcept {
    if (rest == nullptr) {
        return;
    }
    try {
        defer_list(io, rest);
    } catch (...) {
        std::terminate();
    }
}

}  // namespace apollo_oauth::detail
