#include "cache/waiters.hpp"

#include <boost/asio/defer.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>

namespace apollo_oauth::detail {

namespace {

void resume(boost::asio::cancellation_slot& slot, access_token_handler& handler, error_code ec,
            access_token token) {
    if (slot.is_connected()) {
        slot.clear();
    }
    auto h = std::move(handler);
    std::move(h)(ec, std::move(token));
}

}  // namespace

void complete_one(waiter w, error_code ec, access_token token) {
    auto ex = w.ex;
    boost::asio::post(ex, [w = std::move(w), ec, token = std::move(token)]() mutable {
        resume(w.slot, w.handler, ec, std::move(token));
    });
}

void waiter_queue::push(waiter w) {
    // Usually one or a few executors: a linear scan beats hashing them.
    auto g = std::find_if(groups_.begin(), groups_.end(), [&](const group& x) { return x.ex == w.ex; });
    if (g == groups_.end()) {
        g = groups_.insert(groups_.end(), group{std::move(w.ex), {}, 0});
    }
    // The caller's own tracked executor (w.ex, when it joined a group) goes here: the group's
    // keeps the io_context running for it.
    g->callers.push_back(parked{w.id, w.slot, std::move(w.handler)});
    ++live_;
}

std::optional<waiter> waiter_queue::remove(std::uint64_t id) {
    for (auto it = groups_.begin(); it != groups_.end(); ++it) {
        auto& g = *it;
        const auto p = std::find_if(g.callers.begin(), g.callers.end(),
                                    [id](const parked& x) { return x.id == id && x.handler; });
        if (p == g.callers.end()) {
            continue;
        }
        std::optional<waiter> out;
        out.emplace(id, g.ex, std::move(p->handler));  // the moved-from handler is the hole
        ++g.holes;
        --live_;
        if (g.holes == g.callers.size()) {
            // The group's last caller left: its tracked executor goes now, or that caller's
            // io_context would be kept running until this account's refresh ends. (erase
            // move-assigns whole groups, never an any_completion_handler.)
            groups_.erase(it);
        } else if (g.holes > 64 && g.holes > g.callers.size() / 2) {
            compact(g);  // a queue that callers keep leaving stays proportional to who is left
        }
        return out;
    }
    return std::nullopt;
}

void waiter_queue::compact(group& g) {
    std::vector<parked> kept;
    kept.reserve(g.callers.size() - g.holes);
    for (auto& p : g.callers) {
        if (p.handler) {
            kept.push_back(parked{p.id, p.slot, std::move(p.handler)});
        }
    }
    g.callers.swap(kept);
    g.holes = 0;
}

void waiter_queue::complete_all(error_code ec, const access_token& token) {
    auto groups = std::move(groups_);
    groups_.clear();
    live_ = 0;
    for (auto& g : groups) {  // never all holes: remove() drops a group its last caller left
        // `defer`: when the group's io_context is the one running the refresh's completion (the
        // usual case), the batch goes on this thread's private queue, without a cross-thread
        // wake-up, and runs right after the current handler, on the thread that already holds the
        // rotation in cache. The deferred handler itself keeps the io_context running.
        boost::asio::defer(g.ex, [callers = std::move(g.callers), ec, token]() mutable {
            for (auto& p : callers) {
                if (p.handler) {
                    resume(p.slot, p.handler, ec, token);
                }
            }
        });
    }
}

}  // namespace apollo_oauth::detail
