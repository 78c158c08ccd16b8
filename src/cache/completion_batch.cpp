// The batch of hot-path completions (include/apollo_oauth/detail/completion_batch.hpp).
#include <apollo_oauth/detail/completion_batch.hpp>

#include <boost/asio/detail/thread_context.hpp>

#include <exception>

namespace apollo_oauth::detail {
namespace {

thread_local completion_batch* this_threads_batch = nullptr;
thread_local bool exiting = false;
std::atomic<std::size_t> batches_alive{0};

/// Asio's record of the innermost run of an io_context on this thread. A handler that runs an
/// io_context itself (Asio allows it, warning of deadlock) starts a nested run whose deferred
/// operations go to its own queue: a completion made there must not join a batch whose operation
/// waits on the outer run's queue until the outer handler returns, which may be waiting for it.
/// running_in_this_thread() reads the same call stack; Boost 1.81 offers no public name for it.
const void* current_run() noexcept {
    return boost::asio::detail::thread_context::top_of_thread_call_stack();
}

}  // namespace

/// Frees or orphans the thread's batch as the thread exits.
struct completion_batch_owner {
    ~completion_batch_owner() {
        exiting = true;
        if (auto* batch = std::exchange(this_threads_batch, nullptr)) {
            batch->leave();
        }
    }
    static completion_batch* make() { return new completion_batch; }
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

completion_batch* completion_batch::of_this_thread() {
    if (this_threads_batch != nullptr || exiting) {
        return this_threads_batch;
    }
    static thread_local completion_batch_owner owner;  // its destructor runs at the thread's exit
    this_threads_batch = completion_batch_owner::make();
    return this_threads_batch;
}

void completion_batch::open(const boost::asio::io_context& io) noexcept {
    assert(is_closed());
    io_ = &io;
    run_ = current_run();
    joined_ = 0;
    // Relaxed: only the owner reads the batch open; the operation's close reads what the adds
    // published (release), not this.
    head_.store(0, std::memory_order_relaxed);
}

bool completion_batch::is_open_for(const boost::asio::io_context& io) const noexcept {
    return io_ == &io && run_ == current_run() && head_.load(std::memory_order_relaxed) != closed;
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

batched_completion* completion_batch::close() noexcept {
    std::uintptr_t head = 0;
    if (this == this_threads_batch) {
        // Run (or destroyed) on the owner thread, the only one that adds: nothing races.
        head = head_.load(std::memory_order_relaxed);
        head_.store(closed, std::memory_order_release);
    } else {
        head = head_.exchange(closed, std::memory_order_acq_rel);
    }
    assert(head != closed && "a batch is closed once per opening");
    auto* newest = reinterpret_cast<batched_completion*>(head & ~ownerless);
    if ((head & ownerless) != 0) {
        delete this;  // the owner has exited; nothing refers to the batch any more
    }
    // Added newest first: reversed, they run in the order they were made.
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
            ::operator delete(std::exchange(spare, spare->next));
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
        return std::exchange(node_cache.spare, node_cache.spare->next);
    }
    return ::operator new(block_size);
}

void thread_node_cache::deallocate(void* block) noexcept {
    if (!node_cache_state::node_cache_gone && node_cache.count < capacity) {
        auto* b = ::new (block) node_cache_state::free_block{node_cache.spare};
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
