// A parked caller's completion handler, type-erased without a heap allocation when it is small.
#pragma once

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/recycling_allocator.hpp>

#include <cassert>
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace apollo_oauth::detail {

template <class Signature>
class parked_handler;

/// Why not boost::asio::any_completion_handler: Boost 1.81's allocates its copy of every
/// handler, so a herd of 100,000 callers parked on one refresh made 100,000 allocations on the
/// way in and as many frees at the wake-up, which a bare wake-up loop (an array of the concrete
/// handlers) does not. Here a handler of up to `inline_size` bytes whose move cannot throw (a
/// coroutine's: 8 bytes for use_awaitable, and a small lambda's) lives inside this object:
/// parking a caller in a waiter queue allocates nothing of its own, waking it frees nothing.
/// Another handler is boxed: allocated with its associated allocator, as any_completion_handler
/// would, or with the fallback the owner gives (the cache's handler pool). Boxed too are small
/// handlers whose move constructor is not noexcept, which in Boost 1.81 includes every binder
/// (bind_executor, bind_cancellation_slot, bind_allocator) and composed operation: relocating a
/// held handler must not throw.
///
/// What it forwards: the handler's cancellation slot only (the waiter reads it when it is made).
/// The caller keeps the handler's executor itself. Unlike Boost 1.81's any_completion_handler it
/// may be move-assigned. Not thread-safe: one owner at a time, like any handler.
template <class... Args>
class parked_handler<void(Args...)> {
public:
    static constexpr std::size_t inline_size = 48;
    using cancellation_slot_type = boost::asio::cancellation_slot;

    parked_handler() noexcept = default;

    /// Takes `handler`. One it cannot hold inline (see holds_inline) is boxed with its associated
    /// allocator, or with `fallback` when it has none of its own (the cache passes its pool).
    template <class Handler, class Fallback = boost::asio::recycling_allocator<void>>
    requires(!std::is_same_v<std::decay_t<Handler>, parked_handler>) explicit parked_handler(
        Handler&& handler, const Fallback& fallback = {})
        : slot_(boost::asio::get_associated_cancellation_slot(handler)) {
        using H = std::decay_t<Handler>;
        if constexpr (fits_inline<H>()) {
            ::new (static_cast<void*>(storage_)) H(std::forward<Handler>(handler));
            ops_ = &inline_ops<H>;
        } else {
            using box = boxed<H, boost::asio::associated_allocator_t<H, Fallback>>;
            typename box::allocator alloc(boost::asio::get_associated_allocator(handler, fallback));
            box* b = std::allocator_traits<typename box::allocator>::allocate(alloc, 1);
            try {
                ::new (static_cast<void*>(b)) box{std::forward<Handler>(handler), alloc};
            } catch (...) {
                std::allocator_traits<typename box::allocator>::deallocate(alloc, b, 1);
                throw;
            }
            ::new (static_cast<void*>(storage_)) box*(b);
            ops_ = &boxed_ops<box>;
        }
    }

    /// Held in the object itself, without an allocation (tests).
    template <class Handler>
    static constexpr bool holds_inline() noexcept {
        return fits_inline<std::decay_t<Handler>>();
    }

    parked_handler(parked_handler&& other) noexcept : slot_(std::exchange(other.slot_, {})) { take(other); }

    parked_handler& operator=(parked_handler&& other) noexcept {
        if (this != &other) {
            reset();
            slot_ = std::exchange(other.slot_, {});
            take(other);
        }
        return *this;
    }

    ~parked_handler() { reset(); }

    /// Holds a handler (not moved from, not called yet).
    explicit operator bool() const noexcept { return ops_ != nullptr; }

    cancellation_slot_type get_cancellation_slot() const noexcept { return slot_; }

    /// Calls the handler once, after destroying what held it (a boxed handler's memory goes back
    /// first, as Asio requires). Leaves this object empty.
    void operator()(Args... args) && {
        assert(ops_ != nullptr && "a parked_handler is called once, and only when it holds a handler");
        const auto* ops = std::exchange(ops_, nullptr);
        slot_ = {};
        ops->invoke(storage_, std::move(args)...);
    }

private:
    struct ops {
        void (*relocate)(void* from, void* to) noexcept;  ///< move-constructs at `to`, destroys `from`
        void (*destroy)(void* storage) noexcept;
        /// Destroys what it holds, then calls. The arguments by reference: each move of a token is
        /// a copy and a wipe of its buffer, and a herd's every waiter pays for each one.
        void (*invoke)(void* storage, Args&&... args);
    };

    template <class H>
    static constexpr bool fits_inline() {
        return sizeof(H) <= inline_size && alignof(H) <= alignof(std::max_align_t) &&
               std::is_nothrow_move_constructible_v<H>;
    }

    template <class H>
    static constexpr ops inline_ops{
        [](void* from, void* to) noexcept {
            auto* h = std::launder(static_cast<H*>(from));
            ::new (to) H(std::move(*h));
            h->~H();
        },
        [](void* storage) noexcept { std::launder(static_cast<H*>(storage))->~H(); },
        [](void* storage, Args&&... args) {
            auto* stored = std::launder(static_cast<H*>(storage));
            H h(std::move(*stored));
            stored->~H();
            std::move(h)(std::forward<Args>(args)...);
        },
    };

    /// A handler not held inline, with the allocator that made its memory.
    template <class H, class Allocator>
    struct boxed {
        using handler_type = H;
        using allocator = typename std::allocator_traits<Allocator>::template rebind_alloc<boxed>;
        H handler;
        allocator alloc;

        static boxed* of(void* storage) noexcept { return *std::launder(static_cast<boxed**>(storage)); }
        static void free(boxed* b) noexcept {
            allocator alloc(std::move(b->alloc));
            b->~boxed();
            std::allocator_traits<allocator>::deallocate(alloc, b, 1);
        }
    };

    /// Frees a box on the way out of a scope, whatever leaves it.
    template <class Box>
    struct box_freer {
        Box* b;
        ~box_freer() { Box::free(b); }
    };

    template <class Box>
    static void invoke_boxed(void* storage, Args&&... args) {
        using H = typename Box::handler_type;
        auto* b = Box::of(storage);
        // The box is freed once the handler is out of it, even when moving it throws.
        H h = [b] {
            const box_freer<Box> freer{b};
            return H(std::move(b->handler));
        }();
        std::move(h)(std::forward<Args>(args)...);
    }

    template <class Box>
    static constexpr ops boxed_ops{
        [](void* from, void* to) noexcept { ::new (to) Box*(Box::of(from)); },
        [](void* storage) noexcept { Box::free(Box::of(storage)); },
        &invoke_boxed<Box>,
    };

    void take(parked_handler& other) noexcept {
        if (other.ops_ != nullptr) {
            other.ops_->relocate(other.storage_, storage_);
            ops_ = std::exchange(other.ops_, nullptr);
        }
    }

    void reset() noexcept {
        if (ops_ != nullptr) {
            std::exchange(ops_, nullptr)->destroy(storage_);
        }
    }

    const ops* ops_ = nullptr;
    cancellation_slot_type slot_;
    alignas(std::max_align_t) unsigned char storage_[inline_size];
};

}  // namespace apollo_oauth::detail
