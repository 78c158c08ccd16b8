// The valid-token completions a thread makes for an io_context it runs, queued as one operation.
#pragma once

#include <boost/asio/defer.hpp>
#include <boost/asio/detail/call_stack.hpp>
#include <boost/asio/detail/thread_context.hpp>
#include <boost/asio/detail/thread_info_base.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/query.hpp>

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

namespace apollo_oauth::detail {

/// A completion waiting in a batch, type-erased. Its memory: see defer_in_batch. Not glibc's for a
/// herd: its nodes, freed between coroutine frames, made glibc consolidate its fastbins on nearly
/// every completion; not Asio's recycling allocator, which goes through memalign (callgrind, per
/// completion of a 100,000 herd: 1,232 instructions with it, 1,289 with operator new, 1,096 with
/// the cache's handler pool, 919 for a bare wake-up).
struct batched_completion {
    batched_completion* next = nullptr;
    /// Calls the handler, then frees the node.
    void (*run)(batched_completion* self) = nullptr;
    /// Frees the node and the handler without calling it.
    void (*discard)(batched_completion* self) noexcept = nullptr;
};

/// Why: a handler that resumes many coroutines (a herd let in at once, a batch of parked callers)
/// makes one hot-path completion per coroutine that finds a valid token. Queued as one operation
/// each, they reach the io_context's shared queue when the handler returns, and every thread
/// running that io_context then takes them one at a time: each take is the scheduler's mutex, and
/// each coroutine frame made on one thread is freed on another (malloc's arena lock). Measured on
/// 2 threads (bench/README.md), a herd of 100,000 woke at 660-1,030 ns per caller against
/// 130-290 ns for a bare loop. Here the first such completion is queued as one operation and the
/// ones after it join that operation, so they run one after another inside it, on one thread, as
/// the bare loop does. A server thread's few coroutines in flight gain too: each turn's gets share
/// one queued operation (async_get 22-24 -> 9-10 ns above the co_await floor, 8 coroutines).
/// What that changes for the application: a joined completion runs with the operation, so before
/// handlers queued after the operation (its maker's own posts included); once running, the
/// operation runs every completion in it before anything else on that thread (io_context::stop()
/// from one of them does not stop the rest), as a waiter batch does.
///
/// One batch per thread, for the thread's life, owned by it: only the owner opens it, adds to it
/// and takes chunks out of it (batch_chunk); the operation the owner queued closes it, on whichever
/// thread runs (or destroys) it. Until
/// that operation runs, the batch takes every completion its thread makes for the same run of the
/// same io_context, in the handler that opened it or in later ones. A completion for another
/// io_context, or made inside a nested run (a handler that runs an io_context itself, whose own
/// queue the outer run's operation is not on), is queued on its own, as before. The memory
/// outlives the owner thread while its operation is queued (the operation frees it then). While
/// the operation waits in an io_context that is stopped and not run again, the batch stays open
/// for it, and the thread's completions for other io_contexts are queued one each until that
/// io_context runs or is destroyed (nothing waits longer than it would have: each is queued).
class alignas(64) completion_batch {  // its own cache line: another thread may close it
public:
    /// This thread's batch, made on first use; null once the thread's thread-local objects are
    /// being destroyed, or when there is no memory for one. (Inline, as are open, run_of and the
    /// owner's close: a lone get, one per turn, pays for every call on this path.)
    static completion_batch* of_this_thread() noexcept {
        auto* batch = this_threads_;
        return batch != nullptr ? batch : make_this_threads();
    }

    /// Owner only: no operation is queued for the batch, so the owner may open it.
    bool is_closed() const noexcept { return head_.load(std::memory_order_acquire) == closed; }

    /// Owner only, on a closed batch: opens it for `io`'s run `run` (run_of(io)). The caller must
    /// then queue the one operation that closes it.
    void open(const boost::asio::io_context& io, const void* run) noexcept {
        assert(is_closed());
        io_ = &io;
        run_ = run;
        joined_ = 0;
        // Relaxed: only the owner reads the batch open; the operation's close reads what the adds
        // published (release), not this.
        head_.store(0, std::memory_order_relaxed);
    }

    /// Owner only: open for `io`'s run `run` (a completion may join; try_add can still find the
    /// batch closed by its operation on another thread in the meantime). Both: a run's record is
    /// on the stack, so another io_context's run, later, may have the same address.
    bool is_open_for(const boost::asio::io_context& io, const void* run) const noexcept {
        return io_ == &io && run_ == run && head_.load(std::memory_order_relaxed) != closed;
    }

    /// Asio's record of the innermost run of `io` on this thread, or null when this thread is not
    /// running it. A deferred operation goes to that run's own queue: a batch opened in one run
    /// must not be joined from another (a handler that runs the io_context again, nested, while
    /// the batch's operation waits in the outer run's queue until that handler returns). A record
    /// lives on the stack of its run: two live runs never share an address, and a record whose
    /// address is used again belongs to a run that has ended, whose queue went to the shared one.
    static const void* run_of(boost::asio::io_context& io) noexcept {
        // What io_context::executor_type::running_in_this_thread() looks up, kept: Boost 1.81 has
        // no public name for the record itself.
        namespace d = boost::asio::detail;
        return d::call_stack<d::thread_context, d::thread_info_base>::contains(
            &boost::asio::use_service<d::io_context_impl>(io));
    }

    /// Owner only, after is_open_for: adds `node`; false when the operation closed the batch in
    /// the meantime.
    bool try_add(batched_completion* node) noexcept;

    /// Owner only: completions added since the batch was opened.
    std::size_t joined() const noexcept { return joined_; }

    /// Owner only: takes the completions added so far, oldest first, and leaves the batch open
    /// (its operation then runs only what is added after); null when none are left or when the
    /// operation has closed the batch.
    batched_completion* take_added() noexcept;

    /// By the operation that the opener queued, once, on any thread: closes the batch and returns
    /// what was added to it, oldest first. Frees the batch when its owner thread has exited.
    batched_completion* close() noexcept {
        if (this == this_threads_) {
            // Run (or destroyed) on the owner thread, the only one that adds: nothing races.
            const auto head = head_.load(std::memory_order_relaxed);
            assert(head != closed && "a batch is closed once per opening");
            head_.store(closed, std::memory_order_release);
            return head == 0 ? nullptr : oldest_first(head);
        }
        return close_from_another_thread();
    }

    /// Batches not yet freed, over all threads (tests: a thread's is freed after its exit).
    static std::size_t alive() noexcept;

    completion_batch(const completion_batch&) = delete;
    completion_batch& operator=(const completion_batch&) = delete;

private:
    friend struct completion_batch_owner;
    completion_batch() noexcept;
    ~completion_batch();
    static completion_batch* make_this_threads() noexcept;
    batched_completion* close_from_another_thread() noexcept;
    /// The nodes of a closed batch's `head`, reversed: oldest first.
    static batched_completion* oldest_first(std::uintptr_t head) noexcept;

    /// The calling thread's batch (null until made, and again once its owner object is gone).
    static inline thread_local completion_batch* this_threads_ = nullptr;
    /// At the owner thread's exit: frees the batch when closed, else leaves it to its operation.
    void leave() noexcept;

    static constexpr std::uintptr_t closed = 1;     ///< no operation queued; nodes are 8-aligned
    static constexpr std::uintptr_t ownerless = 2;  ///< flag: the owner thread has exited
    /// The added nodes, newest first, or `closed`. Written by the owner (add) and by the operation
    /// (close), so an atomic; the owner's close (the usual case) is a plain load and store.
    std::atomic<std::uintptr_t> head_{closed};
    const void* io_ = nullptr;   ///< the io_context it is open for (owner only)
    const void* run_ = nullptr;  ///< run_of(io_) when it was opened (owner only)
    std::size_t joined_ = 0;     ///< owner only
};

/// Node memory for the first completions that join a batch: a per-thread cache of fixed-size
/// blocks in front of operator new. Why: a server thread's coroutines in flight (a handful to a
/// few hundred) join its batch on every turn; the cache's handler pool (which a herd's larger
/// batches use, see defer_in_batch) takes a mutex per block and is shared by every thread, which
/// took async_get on two io_contexts from 1.9x to 0.8-1.0x the one-thread throughput.
struct thread_node_cache {
    static constexpr std::size_t block_size = 128;
    static constexpr std::size_t capacity = 256;  ///< blocks kept per thread (32 KiB)
    /// A block from this thread's cache, or from operator new.
    static void* allocate();
    /// Back to this thread's cache, or to operator delete when it is full (or the thread exits).
    static void deallocate(void* block) noexcept;
};

/// thread_node_cache as an allocator, for objects of up to its block size.
template <class T>
struct thread_node_allocator {
    using value_type = T;
    thread_node_allocator() noexcept = default;
    template <class U>
    thread_node_allocator(const thread_node_allocator<U>&) noexcept {}
    T* allocate(std::size_t n) {
        static_assert(sizeof(T) <= thread_node_cache::block_size && alignof(T) <= alignof(std::max_align_t));
        assert(n == 1);
        (void)n;
        return static_cast<T*>(thread_node_cache::allocate());
    }
    void deallocate(T* p, std::size_t) noexcept { thread_node_cache::deallocate(p); }
    friend bool operator==(thread_node_allocator, thread_node_allocator) noexcept { return true; }
};

/// Runs `list` in order. When a handler throws, the ones after it are queued again on `io` (as
/// Asio leaves the rest of its queue for the next run) and the exception goes on.
void run_batched(const boost::asio::io_context::executor_type& io, batched_completion* list);
/// Frees `list` without calling its handlers (an operation destroyed unrun: the io_context's
/// shutdown).
void discard_batched(batched_completion* list) noexcept;
/// Queues `list` as one operation of its own. Throws what the allocation throws (the list is
/// then discarded).
void defer_list(const boost::asio::io_context::executor_type& io, batched_completion* list);
/// defer_list for the rest of a batch whose handler threw, with that exception on its way out
/// (the rest then runs after what the handlers before it queued). There is no caller to tell, and
/// handlers destroyed uncalled would leave coroutines waiting for ever, so running out of memory
/// for that one operation terminates. (Asio's recycled memory, the block of the operation that
/// just ran, usually serves it.)
void requeue_rest(const boost::asio::io_context::executor_type& io, batched_completion* rest) noexcept;

inline boost::asio::io_context& context_of(const boost::asio::io_context::executor_type& io) noexcept {
    return boost::asio::query(io, boost::asio::execution::context);
}

/// The operation that closes the batch: runs `First` (the completion that opened it, held in the
/// operation itself: a lone completion costs no node), then what joined it.
template <class First>
class batch_operation {
public:
    /// Holds no batch yet: the batch is opened only once this exists (`attach`), so a throwing
    /// move of `first` leaves it closed.
    batch_operation(First&& first, boost::asio::io_context::executor_type io)
        : first_(std::move(first)), io_(io) {}
    batch_operation(batch_operation&& other) noexcept(std::is_nothrow_move_constructible_v<First>)
        : first_(std::move(other.first_)), batch_(std::exchange(other.batch_, nullptr)), io_(other.io_) {}
    batch_operation& operator=(batch_operation&&) = delete;
    ~batch_operation() {
        if (batch_ != nullptr) {
            discard_batched(batch_->close());
        }
    }

    /// Opens `batch` (closed, this thread's) for `io`'s run `run`, for this operation, which
    /// closes it when it runs or is destroyed.
    void attach(completion_batch* batch, const boost::asio::io_context& io, const void* run) noexcept {
        batch->open(io, run);
        batch_ = batch;
    }

    void operator()() {
        assert(batch_ != nullptr && "a batch operation runs once");
        // Closed first: a completion that gets again (a coroutine in a loop) opens a new batch
        // for the next turn instead of growing this one without end.
        auto* rest = std::exchange(batch_, nullptr)->close();
        try {
            std::move(first_)();
        } catch (...) {
            requeue_rest(io_, rest);
            throw;
        }
        if (rest != nullptr) {
            run_batched(io_, rest);
        }
    }

private:
    First first_;
    completion_batch* batch_ = nullptr;
    boost::asio::io_context::executor_type io_;
};

/// A completion of type `Completion` (hot_completion<Handler>) as a node of a batch, made with
/// `Allocator` (which it keeps, to free itself).
template <class Completion, class Allocator>
struct completion_node : batched_completion {
    using allocator = typename std::allocator_traits<Allocator>::template rebind_alloc<completion_node>;
    Completion completion;
    [[no_unique_address]] allocator alloc;

    completion_node(Completion&& c, const allocator& a) : completion(std::move(c)), alloc(a) {
        run = &run_node;
        discard = &discard_node;
    }

    static void free(completion_node* n) noexcept {
        allocator a(std::move(n->alloc));
        n->~completion_node();
        std::allocator_traits<allocator>::deallocate(a, n, 1);
    }
    /// Called where it lies and freed after, not moved out and freed first as Asio's operations
    /// are: a move of a completion is a copy and a wipe of its token, which a herd's every caller
    /// would pay for. The memory is the batch's, never the handler's to reuse.
    static void run_node(batched_completion* self) {
        auto* n = static_cast<completion_node*>(self);
        struct freer {
            completion_node* n;
            ~freer() { free(n); }
        } f{n};
        std::move(n->completion)();
    }
    static void discard_node(batched_completion* self) noexcept { free(static_cast<completion_node*>(self)); }

    static completion_node* make(Completion&& c, const Allocator& from) {
        allocator a(from);
        auto* n = std::allocator_traits<allocator>::allocate(a, 1);
        try {
            return ::new (static_cast<void*>(n)) completion_node(std::move(c), a);
        } catch (...) {
            std::allocator_traits<allocator>::deallocate(a, n, 1);
            throw;
        }
    }
};

/// Completions past this many in one batch (a herd) take their nodes from the caller's allocator.
inline constexpr std::size_t small_batch = 64;
/// Every this many completions joined to one batch, the ones joined since are posted as an
/// operation of their own (post_chunk). Why: one handler that resumes a herd makes its completions for as
/// long as its loop runs, and a batch runs only after that handler returns, on the same thread. Posted in
/// chunks, they are taken by the io_context's other threads while the loop goes on (a herd of 100,000 on two
/// threads: bench/README.md). Left in the batch, they would wait for the loop and then run on one thread. A
/// thread alone on its io_context pays one post per chunk. 2,048 rather than 1,024: in six interleaved
/// runs of the 100,000 herd on two threads, the worst of 5 rounds stayed at or under 0.497x the
/// serialised wall, against up to 0.583x (bench/README.md, 2026-12-06).
inline constexpr std::size_t batch_chunk = 2048;

/// Owner only: posts what joined this thread's open `batch` so far as one operation, which any
/// thread running `io` may take. The operation's memory is taken first: without it, the
/// completions stay in the batch (a caller whose completion is in a batch must not see a throw).
void post_chunk(const boost::asio::io_context::executor_type& io, completion_batch& batch) noexcept;

/// Queues `completion` on `io`. On a thread running `io`, the first completion opens the thread's
/// batch in an operation of its own and the ones after it join that operation until it runs, each
/// in a node: from this thread's node cache for the first `small_batch`, then from
/// `make_allocator()` (the cache's handler pool). Elsewhere, one operation each. Throws what an
/// allocation throws, as boost::asio::defer does.
template <class Completion, class MakeAllocator>
requires(!std::is_lvalue_reference_v<Completion>) void defer_in_batch(
    const boost::asio::io_context::executor_type& io, Completion&& completion, MakeAllocator make_allocator) {
    // A completion whose move may throw is queued on its own: Asio moves the operation out before
    // it runs it, and a throw there would destroy the operation and every completion in it.
    // (hot_completion with Asio's coroutine handlers, as_tuple's included, moves without throwing.)
    if constexpr (!std::is_nothrow_move_constructible_v<Completion>) {
        boost::asio::defer(io, std::move(completion));
        return;
    }
    auto& ctx = context_of(io);
    const void* run = completion_batch::run_of(ctx);
    auto* batch = run != nullptr ? completion_batch::of_this_thread() : nullptr;
    if (batch != nullptr && batch->is_closed()) {
        batch_operation<Completion> op(std::move(completion), io);
        op.attach(batch, ctx, run);
        boost::asio::defer(io, std::move(op));  // should it throw, the operation closes the batch
        return;
    }
    if (batch != nullptr && batch->is_open_for(ctx, run)) {
        batched_completion* node = nullptr;
        using small_node = completion_node<Completion, thread_node_allocator<void>>;
        if constexpr (sizeof(small_node) <= thread_node_cache::block_size &&
                      alignof(small_node) <= alignof(std::max_align_t)) {
            if (batch->joined() < small_batch) {
                node = small_node::make(std::move(completion), {});
            }
        }
        if (node == nullptr) {
            node = completion_node<Completion, decltype(make_allocator())>::make(std::move(completion),
                                                                                 make_allocator());
        }
        if (!batch->try_add(node)) {
            defer_list(io, node);  // its operation closed it on another thread just now
        } else if (batch->joined() % batch_chunk == 0) {
            post_chunk(io, *batch);
        }
        return;
    }
    // Not running `io` here, open for another io_context or run, or no batch: on its own.
    boost::asio::defer(io, std::move(completion));
}

}  // namespace apollo_oauth::detail
