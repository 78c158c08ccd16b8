// Callers waiting on an account's load or refresh, and how they are woken.
#pragma once

#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <cstdint>
#include <list>

namespace apollo_oauth::detail {

struct waiter {
    waiter(std::uint64_t id, boost::asio::any_io_executor ex, access_token_handler handler)
        : id(id),
          ex(std::move(ex)),
          slot(boost::asio::get_associated_cancellation_slot(handler)),
          handler(std::move(handler)) {}

    std::uint64_t id;
    boost::asio::any_io_executor ex;  ///< the handler's executor (work-tracked)
    boost::asio::cancellation_slot slot;
    access_token_handler handler;
};

/// A list, not a vector: removing from the middle (cancellation) and regrouping (wake-up) splice
/// nodes, because any_completion_handler must never be move-assigned (broken in Boost 1.81).
using waiter_list = std::list<waiter>;

/// Waiters taken from an entry to be woken, and whether they all complete on one executor.
struct waiter_batch {
    waiter_list list;
    bool one_executor = true;
};

/// Completes one waiter through a post to its executor; its slot is cleared there, just before
/// the handler runs, on the executor that signals it.
void complete_one(waiter w, error_code ec, access_token token);

/// Completes every waiter with the same result. Waiters are grouped by executor and each group is
/// woken by one post that resumes them in a loop: one queue operation per executor instead of
/// one per waiter, which is what makes waking a herd of thousands cheap. A batch known to share
/// one executor is posted whole, without the grouping pass over its (cold) nodes.
void complete_all(waiter_batch waiters, error_code ec, const access_token& token);

}  // namespace apollo_oauth::detail
