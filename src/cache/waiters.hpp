// Callers waiting on an account's load or refresh, and how they are woken.
#pragma once

#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/cancellation_signal.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace apollo_oauth::detail {

/// A caller on its way in: its handler (which carries its cancellation slot) and the handler's
/// executor.
///
/// The executor is async_get's as it came: not work-tracked (a diagnostics caller's is, rare and
/// never a herd). Whoever holds a waiter keeps the caller's io_context running while the caller
/// waits in ours: a waiter_queue group holds one tracked copy for all its callers, a get on its
/// way to the strand holds one (track_work), a waiter taken out of a group (cancelled) holds one
/// until its completion is posted, and a completion is a queued operation there. (When the last
/// work goes, an io_context stops for good: a completion posted after that would never run.) Why
/// not one per waiter: preferring outstanding_work.tracked is a type-erased call and an atomic
/// increment (and later decrement) of one counter every thread of the io_context shares; in a
/// herd of 100,000 that was ~80 ns of each caller's ~300 ns way in.
struct waiter {
    std::uint64_t id;
    boost::asio::any_io_executor ex;
    access_token_handler handler;

    boost::asio::cancellation_slot slot() const noexcept { return handler.get_cancellation_slot(); }
};

/// Completes one waiter through a post to its executor; its slot is cleared there, just before
/// the handler runs, on the executor that signals it. noexcept: out of memory for the post, the
/// process terminates (see waiter_queue::complete_all).
void complete_one(waiter w, error_code ec, access_token token) noexcept;

/// The callers parked on one account, grouped by executor as they arrive (usually one group, or
/// one per io_context thread), each group in a few large blocks.
///
/// Why this shape: a herd of 100,000 callers is woken by one handler per executor that walks its
/// blocks, the way a bare wake-up loop walks an array, instead of a list of separately allocated
/// nodes each holding its own work-tracked executor. A group's executor is tracked once, for all
/// its callers, and a coroutine's handler (small, moved without throwing) is held in its block
/// itself (parked_handler), so parking allocates nothing but a new block now and then. A
/// cancelled caller leaves a hole (its handler moved out) rather than shifting the others.
/// Touched on the account's strand, or under the parking lot's mutex.
class waiter_queue {
public:
    /// Parks `w` in the group of its executor (appended, so each group stays in arrival order).
    /// Throws only when there is no memory for its place, and then leaves `w` as it was.
    void push(waiter&& w);

    /// Takes the waiter `id` out (it was cancelled); nullopt when it is not here (already woken).
    /// The waiter comes with a work-tracked executor, for as long as it is not completed.
    std::optional<waiter> remove(std::uint64_t id);

    std::size_t size() const noexcept { return live_; }
    bool empty() const noexcept { return live_ == 0; }

    /// Completes every parked caller with one result and leaves the queue empty. Each group is
    /// woken by one handler deferred to its executor, which resumes the group's callers in a loop:
    /// one queue operation per executor, never inline.
    /// Without memory for a group's copy of the token (one past secret_string's inline buffer),
    /// that group is told operation_aborted instead. noexcept: without memory for a group's
    /// wake-up operation there is no way left to tell its callers, and destroyed uncalled they
    /// would wait for good (a coroutine suspended in async_get would never resume). The process
    /// terminates instead, as Asio's own noexcept paths do: loud, and a supervisor restarts it.
    void complete_all(error_code ec, const access_token& token) noexcept;

private:
    struct parked {
        std::uint64_t id = 0;
        access_token_handler handler;  ///< empty once the caller was removed (a hole)
    };

    /// A group's callers in arrival order, in blocks that never move once made (8, 16, ... then
    /// 4,096 callers each). Why not a std::vector: its growth moved every caller parked so far,
    /// each through the handler's type-erased relocation, which was the largest single cost of
    /// parking a caller in a herd of 100,000.
    class parked_list {
    public:
        parked_list() = default;
        parked_list(parked_list&& other) noexcept
            : blocks_(std::move(other.blocks_)),
              size_(std::exchange(other.size_, 0)),
              filling_(std::exchange(other.filling_, 0)),
              used_in_filling_(std::exchange(other.used_in_filling_, 0)) {}
        parked_list& operator=(parked_list&& other) noexcept {
            blocks_ = std::move(other.blocks_);
            other.blocks_.clear();
            size_ = std::exchange(other.size_, 0);
            filling_ = std::exchange(other.filling_, 0);
            used_in_filling_ = std::exchange(other.used_in_filling_, 0);
            return *this;
        }

        /// Parks a caller after the last one (moved straight into its place). Throws only when a
        /// new block cannot be allocated, and then leaves the list as it was.
        void push_back(std::uint64_t id, access_token_handler&& handler);
        /// Allocates the blocks for `n` callers in all, so that as many push_backs cannot throw.
        void reserve(std::size_t n);
        std::size_t size() const noexcept { return size_; }

        /// Calls `f(parked&)` for each element (holes included), in arrival order.
        template <class F>
        void for_each(F&& f) {
            (void)find_if([&](parked& p) {
                f(p);
                return false;
            });
        }
        /// The first element (holes included) for which `pred` holds, or null.
        template <class Pred>
        parked* find_if(Pred&& pred) {
            std::size_t left = size_;
            for (std::size_t b = 0; b < blocks_.size() && left > 0; ++b) {
                const auto n = std::min(left, block_capacity(b));
                for (std::size_t i = 0; i < n; ++i) {
                    if (pred(blocks_[b][i])) {
                        return &blocks_[b][i];
                    }
                }
                left -= n;
            }
            return nullptr;
        }

    private:
        void add_block();

        static constexpr std::size_t block_capacity(std::size_t b) noexcept {
            return b < 9 ? std::size_t{8} << b : 4096;
        }
        std::vector<std::unique_ptr<parked[]>> blocks_;  ///< filled in order
        std::size_t size_ = 0;
        std::size_t filling_ = 0;          ///< the block the next caller goes in (may not be made yet)
        std::size_t used_in_filling_ = 0;  ///< callers in it
    };

    struct group {
        boost::asio::any_io_executor ex;    ///< the callers' executor, as they came
        boost::asio::any_io_executor work;  ///< ex, work-tracked, for every caller of the group
        parked_list callers;
        std::size_t holes = 0;
    };

    static void compact(group& g);
    struct wake_group;

    std::vector<group> groups_;
    std::size_t live_ = 0;
};

/// Where callers of one account wait without entering its strand, while another caller's get is on
/// its way to the account's machine or queued there.
///
/// Why: in a herd, every caller that missed the snapshot used to be posted to the account's strand
/// one by one (an allocated operation, the strand's lock, the event, the machine) only to be told
/// "wait" each time. Now the first caller that misses opens this lot and posts its get; until the
/// machine gives that get an outcome, a newcomer takes one uncontended lock and parks here, and
/// gets the same outcome. The machine closes the lot in the step that settles it (serve, fail, or
/// wake_waiters), under the lock, so a caller either parks before the close and is completed with
/// the others, or finds it closed and takes the strand path, where the machine serves it. Owned by
/// the snapshot table (never freed before it: a caller may hold its address), created only for
/// accounts that were once published, so unknown accounts leave nothing.
struct parking_lot {
    std::mutex mutex;
    bool open = false;              ///< guarded by mutex
    waiter_queue parked;            ///< guarded by mutex
    std::uint64_t ever_parked = 0;  ///< guarded by mutex; how many callers parked here (tests)
};

}  // namespace apollo_oauth::detail
