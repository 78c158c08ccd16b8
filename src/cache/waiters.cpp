#include "cache/waiters.hpp"

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
    const auto wake = [ec, &token](waiter_list group) {
        auto ex = group.front().ex;
        boost::asio::post(ex, [group = std::move(group), ec, token]() mutable {
            for (auto& w : group) {
                resume(w, ec, token);
            }
        });
    };
    if (batch.one_executor) {
        return wake(std::move(waiters));
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
        wake(std::move(group));
    }
}

}  // namespace apollo_oauth::detail
