// Callers waiting on an account's load or refresh, and how they are woken.
#pragma once

#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

namespace apollo_oauth::detail {

/// A caller on its way in: its handler, the handler's executor (work-tracked, so that the
/// caller's io_context keeps running while the caller waits in ours) and its cancellation slot.
struct waiter {
    waiter(std::uint64_t id, boost::asio::any_io_executor ex, access_token_handler handler)
        : id(id),
          ex(std::move(ex)),
          slot(boost::asio::get_associated_cancellation_slot(handler)),
          handler(std::move(handler)) {}

    std::uint64_t id;
    boost::asio::any_io_executor ex;
    boost::asio::cancellation_slot slot;
    access_token_handler handler;
};

/// Completes one waiter through a post to its executor; its slot is cleared there, just before
/// the handler runs, on the executor that signals it.
void complete_one(waiter w, error_code ec, access_token token);

/// The callers parked on one account, grouped by executor as they arrive (usually one group, or
/// one per io_context thread), each group in one contiguous array.
///
/// Why this shape: a herd of 100,000 callers is woken by one handler per executor that walks an
/// array, the way a bare wake-up loop would, instead of a list of separately allocated nodes each
/// holding its own work-tracked executor. A group's executor is tracked once, for all its
/// callers. A cancelled caller leaves a hole (its handler moved out) rather than shifting the
/// array: std::vector never move-assigns its elements here, which matters because Boost 1.81's
/// any_completion_handler must not be move-assigned. Touched on the account's strand only.
class waiter_queue {
public:
    /// Parks `w` in the group of its executor (appended, so each group stays in arrival order).
    void push(waiter w);

    /// Takes the waiter `id` out (it was cancelled); nullopt when it is not here (already woken).
    std::optional<waiter> remove(std::uint64_t id);

    std::size_t size() const noexcept { return live_; }
    bool empty() const noexcept { return live_ == 0; }

    /// Completes every parked caller with one result and leaves the queue empty. Each group is
    /// woken by one handler deferred to its executor, which resumes the group's callers in a loop:
    /// one queue operation per executor, never inline.
    void complete_all(error_code ec, const access_token& token);

private:
    struct parked {
        std::uint64_t id;
        boost::asio::cancellation_slot slot;
        access_token_handler handler;  ///< empty once the caller was removed
    };
    struct group {
        boost::asio::any_io_executor ex;  ///< work-tracked, for every caller of the group
        std::vector<parked> callers;
        std::size_t holes = 0;
    };
    static_assert(std::is_nothrow_move_constructible_v<parked>,
                  "growing a group must move its callers, never copy or assign them");

    static void compact(group& g);

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
/// the others, or finds it closed and takes the strand path, where the machine serves it. Owned by the
/// snapshot table (never freed before it: a caller may hold its address), created only for accounts that were
/// once published, so unknown accounts leave nothing.
struct parking_lot {
    std::mutex mutex;
    bool open = false;              ///< guarded by mutex
    waiter_queue parked;            ///< guarded by mutex
    std::uint64_t ever_parked = 0;  ///< guarded by mutex; how many callers parked here (tests)
};

}  // namespace apollo_oauth::detail
