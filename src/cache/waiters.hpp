// Callers waiting on an account's load or refresh, and how they are woken.
#pragma once

#include <apollo_oauth/token_cache.hpp>

#include <boost/asio/cancellation_signal.hpp>

#include <cstdint>
#include <vector>

namespace apollo_oauth::detail {

struct waiter {
    std::uint64_t id = 0;
    boost::asio::any_io_executor ex;  ///< the handler's executor (work-tracked)
    access_token_handler handler;
    boost::asio::cancellation_slot slot;
};

using waiter_list = std::vector<waiter>;

/// Completes one waiter through a post to its executor; its slot is cleared there, just before
/// the handler runs, on the executor that signals it.
void complete_one(waiter w, error_code ec, access_token token);

/// Completes every waiter with the same result. Waiters are grouped by executor and each group is
/// woken by one post that resumes them in a loop: one queue operation per executor instead of
/// one per waiter, which is what makes waking a herd of thousands cheap.
void complete_all(waiter_list waiters, error_code ec, const access_token& token);

}  // namespace apollo_oauth::detail
