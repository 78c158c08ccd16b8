#include "cache/waiters.hpp"

#include <boost/asio/defer.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <exception>
#include <new>

namespace apollo_oauth::detail {

namespace {

/// Just before a caller's handler runs, on the executor that signals its slot: the canceller goes.
/// (The handler is then moved out of its place before it runs, parked_handler, so the place is
/// free, and the handler empty, whatever the call does.)
void clear_canceller(const access_token_handler& handler) {
    if (auto slot = handler.get_cancellation_slot(); slot.is_connected()) {
        slot.clear();
    }
}

}  // namespace

void complete_one(waiter w, error_code ec, access_token token) noexcept {
    auto ex = w.ex;
    boost::asio::post(ex, [w = std::move(w), ec, token = std::move(token)]() mutable {
        clear_canceller(w.handler);
        std::move(w.handler)(ec, std::move(token));
    });
}

void waiter_queue::parked_list::add_block() {
    // Default-initialised (no zeroing of the handlers' bytes): each place is assigned on arrival.
    auto block = std::make_unique_for_overwrite<parked[]>(block_capacity(blocks_.size()));
    blocks_.push_back(std::move(block));
}

void waiter_queue::parked_list::reserve(std::size_t n) {
    std::size_t capacity = 0;
    for (std::size_t b = 0; b < blocks_.size(); ++b) {
        capacity += block_capacity(b);
    }
    while (capacity < n) {
        add_block();
        capacity += block_capacity(blocks_.size() - 1);
    }
}

void waiter_queue::parked_list::push_back(std::uint64_t id, access_token_handler&& handler) {
    if (filling_ == blocks_.size()) {
        add_block();  // the only step that may throw, before anything changed
    }
    auto& place = blocks_[filling_][used_in_filling_++];
    place.id = id;
    place.handler = std::move(handler);
    ++size_;
    if (used_in_filling_ == block_capacity(filling_)) {
        ++filling_;  // made by the next push_back, unless reserve() made it already
        used_in_filling_ = 0;
    }
}

void waiter_queue::push(waiter&& w) {
    // Usually one or a few executors: a linear scan beats hashing them.
    auto g = std::find_if(groups_.begin(), groups_.end(), [&](const group& x) { return x.ex == w.ex; });
    if (g == groups_.end()) {
        // A copy of the caller's executor, not its own: should its place not be made below, the
        // caller still has the executor its answer must be posted to (once per group).
        auto work = track_work(w.ex);
        g = groups_.insert(groups_.end(), group{w.ex, std::move(work), {}, 0});
    }
    try {
        g->callers.push_back(w.id, std::move(w.handler));
    } catch (...) {
        if (g->callers.size() == 0) {
            groups_.erase(g);  // a group of nobody would keep its io_context running
        }
        throw;
    }
    ++live_;
}

std::optional<waiter> waiter_queue::remove(std::uint64_t id) {
    for (auto it = groups_.begin(); it != groups_.end(); ++it) {
        auto& g = *it;
        parked* found = g.callers.find_if([id](const parked& x) { return x.id == id && x.handler; });
        if (found == nullptr) {
            continue;
        }
        std::optional<waiter> out;
        // With the group's tracked executor: the group may go below, and the caller's io_context
        // must not run out of work (and stop for good) before the completion is posted there.
        out.emplace(waiter{id, g.work, std::move(found->handler)});  // the moved-from handler is the hole
        ++g.holes;
        --live_;
        if (g.holes == g.callers.size()) {
            // The group's last caller left: its tracked executor goes now, or that caller's
            // io_context would be kept running until this account's refresh ends.
            groups_.erase(it);
        } else if (g.holes > 64 && g.holes > g.callers.size() / 2) {
            // A queue that callers keep leaving stays proportional to who is left. Optional: out
            // of memory, the holes stay (compact moves nothing before its blocks are made).
            try {
                compact(g);
            } catch (const std::bad_alloc&) {
            }
        }
        return out;
    }
    return std::nullopt;
}

void waiter_queue::compact(group& g) {
    parked_list kept;
    kept.reserve(g.callers.size() - g.holes);  // may throw: nothing has moved yet
    g.callers.for_each([&](parked& p) {
        if (p.handler) {
            kept.push_back(p.id, std::move(p.handler));
        }
    });
    g.callers = std::move(kept);
    g.holes = 0;
}

/// One group's wake-up: resumes its callers in arrival order, each with its own copy of the
/// outcome. A caller's handler is moved out of its place before it runs (parked_handler), so a
/// called one is a hole whatever it did.
struct waiter_queue::wake_group {
    boost::asio::any_io_executor ex;
    parked_list callers;
    error_code ec;
    access_token token;

    void operator()() {
        try {
            callers.for_each([&](parked& p) {
                if (p.handler) {
                    clear_canceller(p.handler);
                    // The caller's copy, built straight into the handler's argument.
                    std::move(p.handler)(ec, access_token(token));
                }
            });
        } catch (...) {
            // A handler threw: the callers after it are queued again, to run after what the
            // handlers before them queued (as Asio leaves the rest of its queue for the next run),
            // and the exception goes on. Destroyed uncalled instead, they would never be told.
            // Without memory for that one operation there is no one to tell: terminate.
            auto again = ex;
            try {
                boost::asio::defer(again, std::move(*this));
            } catch (...) {
                std::terminate();
            }
            throw;
        }
    }
};

void waiter_queue::complete_all(error_code ec, const access_token& token) noexcept {
    auto groups = std::move(groups_);
    groups_.clear();
    live_ = 0;
    for (auto& g : groups) {  // never all holes: remove() drops a group its last caller left
        // `defer`: when the group's io_context is the one running the refresh's completion (the
        // usual case), the batch goes on this thread's private queue, without a cross-thread
        // wake-up, and runs right after the current handler, on the thread that already holds the
        // rotation in cache. The deferred handler itself keeps the io_context running.
        auto ex = g.ex;
        wake_group wake{std::move(g.ex), std::move(g.callers), ec, {}};
        try {
            wake.token = token;  // a token past secret_string's inline buffer is copied to the heap
        } catch (const std::bad_alloc&) {
            // Without memory for the group's copy its callers are told operation_aborted, as a
            // caller without memory for its place is: they may ask again (the pair is served).
            wake.ec = boost::asio::error::operation_aborted;
            wake.token = access_token{};
        }
        boost::asio::defer(ex, std::move(wake));
    }
}

}  // namespace apollo_oauth::detail
