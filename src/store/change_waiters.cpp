// change_waiters: a map of waits under a mutex; each completes exactly once (change, timer or
// cancellation), through a post to the store's executor.
#include "store/change_waiters.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <mutex>
#include <unordered_map>
#include <vector>

namespace apollo_oauth::store {

namespace asio = boost::asio;

namespace {

bool moved_past(const stored_tokens& r, std::uint64_t known) {
    return r.generation > known || (r.generation == known && r.state != record_state::ok);
}

}  // namespace

struct change_waiters::state : std::enable_shared_from_this<change_waiters::state> {
    struct wait_op {
        wait_op(const asio::any_io_executor& ex, std::uint64_t known, token_store::load_handler h)
            : timer(ex), known(known), handler(std::move(h)) {}
        asio::steady_timer timer;
        std::uint64_t known;
        token_store::load_handler handler;
        bool done = false;  // guarded by state::mutex
    };

    explicit state(asio::any_io_executor ex) : ex(std::move(ex)) {}

    // Takes the op out of the map and completes it, unless something else did first.
    void complete(const std::string& account, const std::shared_ptr<wait_op>& op, error_code ec,
                  std::optional<stored_tokens> record) {
        {
            const std::lock_guard lock{mutex};
            if (op->done) {
                return;
            }
            op->done = true;  // from here on this thread alone touches op->handler
            auto range = waits.equal_range(account);
            for (auto it = range.first; it != range.second; ++it) {
                if (it->second == op) {
                    waits.erase(it);
                    break;
                }
            }
        }
        op->timer.cancel();
        // The cancellation hook stays installed (clearing it here could race with the caller's
        // emit on its own thread): a late emit finds `done` and does nothing. The handler is
        // moved by construction only: Boost 1.81's any_completion_handler breaks on assignment.
        asio::post(ex, [handler = std::move(op->handler), ec, record = std::move(record)]() mutable {
            std::move(handler)(ec, std::move(record));
        });
    }

    // Completes the waits on `account` that `chosen` picks (taken under the mutex, completed
    // outside it) with `record`.
    template <class Choose>
    void complete_where(const std::string& account, Choose chosen,
                        const std::optional<stored_tokens>& record) {
        std::vector<std::shared_ptr<wait_op>> picked;
        {
            const std::lock_guard lock{mutex};
            const auto range = waits.equal_range(account);
            for (auto it = range.first; it != range.second; ++it) {
                if (chosen(*it->second)) {
                    picked.push_back(it->second);
                }
            }
        }
        for (const auto& op : picked) {
            complete(account, op, {}, record);
        }
    }

    asio::any_io_executor ex;
    std::mutex mutex;
    std::unordered_multimap<std::string, std::shared_ptr<wait_op>> waits;
};

change_waiters::change_waiters(asio::any_io_executor ex) : state_(std::make_shared<state>(std::move(ex))) {}

void change_waiters::wait(std::string account, std::uint64_t known_generation,
                          const std::optional<stored_tokens>& current, bool lease_free,
                          std::chrono::milliseconds max_wait, token_store::load_handler handler) {
    const bool moved = current && moved_past(*current, known_generation);
    if (moved || lease_free) {
        asio::post(state_->ex,
                   [handler = std::move(handler), record = moved ? current : std::nullopt]() mutable {
                       std::move(handler)(error_code{}, std::move(record));
                   });
        return;
    }
    auto op = std::make_shared<state::wait_op>(state_->ex, known_generation, std::move(handler));
    // The timer and the cancellation hook are set up before the wait is visible to notify(), so
    // that only the one completion that sets `done` ever touches the timer from another thread.
    auto slot = asio::get_associated_cancellation_slot(op->handler);
    if (slot.is_connected()) {
        slot.assign([weak = std::weak_ptr<state>(state_), account, op](asio::cancellation_type type) {
            if ((type & (asio::cancellation_type::terminal | asio::cancellation_type::total)) ==
                asio::cancellation_type::none) {
                return;
            }
            if (auto s = weak.lock()) {
                s->complete(account, op, asio::error::operation_aborted, std::nullopt);
            }
        });
    }
    op->timer.expires_after(max_wait);
    op->timer.async_wait([s = state_, account, op](error_code ec) {
        if (!ec) {
            s->complete(account, op, {}, std::nullopt);
        }
    });
    const std::lock_guard lock{state_->mutex};
    if (!op->done) {
        state_->waits.emplace(std::move(account), op);
    }
}

void change_waiters::notify(const std::string& account, const stored_tokens& record) {
    state_->complete_where(
        account, [&](const state::wait_op& op) { return moved_past(record, op.known); }, record);
}

void change_waiters::lease_given_back(const std::string& account) {
    state_->complete_where(
        account, [](const state::wait_op&) { return true; }, std::nullopt);
}

}  // namespace apollo_oauth::store
