#include "cache/waiters.hpp"

#include <boost/asio/defer.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>

namespace apollo_oauth::detail {

namespace {

void resume(waiter& w, error_code ec, access_token token) {
    if (w.slot.is_connected()) {
        w.slot.clear();
    }
    auto handler = std::move(w.handler);
    std::move(handler)(ec, std::move(token));
}

/// Resumes a group of waiters that share one executor, in one handler on that executor. `defer`:
/// when the group's io_context is the one running the refresh's completion (the usual case), the
/// batch goes on this thread's private queue, without a cross-thread wake-up, and runs right after
/// the current handler, on the thread that already holds the rotation in cache.
void wake(waiter_list group, error_code ec, const access_token& token) {
    auto ex = group.front().ex;
    boost::asio::defer(ex, [group = std::move(group), ec, token]() mutable {
        // Each node is freed right after its waiter resumes, while it is still in cache: the
        // list is walked once, not a second time (cold) by its destructor.
        while (!group.empty()) {
            resume(group.front(), ec, token);
            group.pop_front();
        }
    });
}

}  // namespace

void complete_one(waiter w, error_code ec, access_token token) {
    auto ex = w.ex;
    boost::asio::post(
        ex, [w = std::move(w), ec, token = std::move(token)]() mutable { resume(w, ec, std::move(token)); });
}

void complete_all(waiter_batch batch, error_code ec, const access_token& token) {
    auto& waiters = batch.list;
    if (waiters.empty()) {
        return;
    }
    if (batch.one_executor) {
        return wake(std::move(waiters), ec, token);
    }
    // Usually one or a few executors: a linear scan beats hashing them.
    std::list<waiter_list> groups;
    while (!waiters.empty()) {
        const auto& ex = waiters.front().ex;
        auto group = std::find_if(groups.begin(), groups.end(),
                                  [&](const waiter_list& g) { return g.front().ex == ex; });
        if (group == groups.end()) {
            group = groups.emplace(groups.end());
        }
        group->splice(group->end(), waiters, waiters.begin());
    }
    for (auto& group : groups) {
        wake(std::move(group), ec, token);
    }
}

}  // namespace apollo_oauth::detail
