// A wait that polls, on a strand of the store's executor: the cancellation, a wake-up and the
// poll's answer all touch its flags there.
#include "store/polling_wait.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace apollo_oauth::store {
namespace {

// Now plus `max_wait`, saturating: max_wait may come from a store's answer (the time left on a
// lease whose deadline another process wrote), and steady_clock counts nanoseconds, so a sum past
// its range would overflow (undefined; in practice a deadline in the past).
std::chrono::steady_clock::time_point deadline_after(std::chrono::milliseconds max_wait) {
    const auto now = std::chrono::steady_clock::now();
    const auto room =
        std::chrono::floor<std::chrono::milliseconds>(std::chrono::steady_clock::time_point::max() - now);
    return max_wait >= room ? std::chrono::steady_clock::time_point::max()
                            : now + std::max(max_wait, std::chrono::milliseconds::zero());
}

class polling_wait : public std::enable_shared_from_this<polling_wait> {
public:
    polling_wait(const boost::asio::any_io_executor& ex, std::uint64_t known_generation,
                 std::chrono::milliseconds max_wait, poll_step poll,
                 std::function<std::chrono::milliseconds()> pause, token_store::load_handler handler)
        : known_generation_(known_generation),
          deadline_(deadline_after(max_wait)),
          timer_(boost::asio::make_strand(ex)),
          poll_(std::move(poll)),
          pause_(std::move(pause)),
          handler_(std::move(handler)) {}

    // Called once, on the strand, when the wait finishes (before its handler runs). Set before
    // start().
    void on_finish(std::function<void()> f) { on_finish_ = std::move(f); }

    void start() {
        auto slot = boost::asio::get_associated_cancellation_slot(handler_);
        if (slot.is_connected()) {
            slot.assign([weak = weak_from_this()](boost::asio::cancellation_type type) {
                if ((type &
                     (boost::asio::cancellation_type::terminal | boost::asio::cancellation_type::total)) ==
                    boost::asio::cancellation_type::none) {
                    return;
                }
                if (auto self = weak.lock()) {
                    // The slot is invoked on the handler's executor; the timer and the flag are
                    // touched from the strand, so the cancellation goes there too.
                    boost::asio::post(self->timer_.get_executor(), [self] {
                        if (!self->finished_) {
                            self->cancelled_ = true;
                            self->timer_.cancel();
                        }
                    });
                }
            });
        }
        // Through the strand: the first poll's answer may come back before start() returns.
        boost::asio::post(timer_.get_executor(), [self = shared_from_this()] { self->poll(); });
    }

    // Polls now instead of at the end of the pause; a poll on its way is followed by another at
    // once, since it may have read before what woke this wait. From any thread.
    void wake() {
        boost::asio::post(timer_.get_executor(), [self = shared_from_this()] {
            if (self->finished_) {
                return;
            }
            if (self->polling_) {
                self->again_ = true;
            } else {
                self->timer_.cancel();  // its handler polls
            }
        });
    }

private:
    void poll() {
        if (cancelled_) {
            return finish(boost::asio::error::operation_aborted, std::nullopt);
        }
        polling_ = true;
        poll_([self = shared_from_this()](poll_answer answer) {
            boost::asio::post(self->timer_.get_executor(), [self, answer = std::move(answer)]() mutable {
                self->on_poll(std::move(answer));
            });
        });
    }

    void on_poll(poll_answer answer) {
        polling_ = false;
        if (cancelled_ || answer.ec == boost::asio::error::operation_aborted) {
            return finish(boost::asio::error::operation_aborted, std::nullopt);
        }
        if (!answer.ec && answer.record &&
            (answer.record->generation > known_generation_ ||
             (answer.record->generation == known_generation_ && answer.record->state != record_state::ok))) {
            return finish({}, std::move(answer.record));
        }
        const auto now = std::chrono::steady_clock::now();
        if ((!answer.ec && answer.lease_free) || now >= deadline_) {
            return finish({}, std::nullopt);
        }
        if (again_) {
            again_ = false;
            return poll();
        }
        timer_.expires_at(std::min(now + pause_(), deadline_));
        timer_.async_wait([self = shared_from_this()](error_code) { self->poll(); });
    }

    // The cancellation hook stays installed (clearing it here could race with the caller's emit
    // on its own thread): a late emit finds this object gone, or finished, and does nothing.
    void finish(error_code ec, std::optional<stored_tokens> record) {
        finished_ = true;
        if (on_finish_) {
            on_finish_();
        }
        std::move(handler_)(ec, std::move(record));
    }

    std::uint64_t known_generation_;
    std::chrono::steady_clock::time_point deadline_;
    boost::asio::steady_timer timer_;  // on a strand: the cancellation and the poll touch cancelled_
    poll_step poll_;
    std::function<std::chrono::milliseconds()> pause_;
    token_store::load_handler handler_;
    std::function<void()> on_finish_;
    bool cancelled_ = false;
    bool finished_ = false;
    bool polling_ = false;  // a poll is on its way: a wake-up asks for another one after it
    bool again_ = false;    // woken while polling: poll again at once
};

}  // namespace

struct wakeable_waits::state {
    std::mutex mutex;
    std::unordered_multimap<std::string, std::weak_ptr<polling_wait>> waits;

    // Takes `wait` out once it has finished (it is still alive: this runs inside its finish()),
    // and any wait of the account that is gone.
    void forget(const std::string& account, const polling_wait* wait) {
        const std::lock_guard lock{mutex};
        auto [it, end] = waits.equal_range(account);
        while (it != end) {
            const auto w = it->second.lock();
            it = !w || w.get() == wait ? waits.erase(it) : std::next(it);
        }
    }
};

wakeable_waits::wakeable_waits() : state_(std::make_shared<state>()) {}

wakeable_waits::~wakeable_waits() = default;

void wakeable_waits::start(std::string account, boost::asio::any_io_executor ex,
                           std::uint64_t known_generation, std::chrono::milliseconds max_wait, poll_step poll,
                           std::function<std::chrono::milliseconds()> pause,
                           token_store::load_handler handler) {
    auto wait = std::make_shared<polling_wait>(ex, known_generation, max_wait, std::move(poll),
                                               std::move(pause), std::move(handler));
    wait->on_finish([weak = std::weak_ptr<state>(state_), account, raw = wait.get()] {
        if (const auto s = weak.lock()) {
            s->forget(account, raw);
        }
    });
    {
        // Known before it starts, so that its finish (which may come on another thread before
        // start() returns) finds it to take out.
        const std::lock_guard lock{state_->mutex};
        state_->waits.emplace(std::move(account), wait);
    }
    wait->start();
}

void wakeable_waits::wake(const std::string& account) {
    std::vector<std::shared_ptr<polling_wait>> woken;
    {
        const std::lock_guard lock{state_->mutex};
        const auto range = state_->waits.equal_range(account);
        for (auto it = range.first; it != range.second; ++it) {
            if (auto w = it->second.lock()) {
                woken.push_back(std::move(w));
            }
        }
    }
    for (const auto& w : woken) {
        w->wake();
    }
}

void start_polling_wait(boost::asio::any_io_executor ex, std::uint64_t known_generation,
                        std::chrono::milliseconds max_wait, poll_step poll,
                        std::function<std::chrono::milliseconds()> pause, token_store::load_handler handler) {
    std::make_shared<polling_wait>(ex, known_generation, max_wait, std::move(poll), std::move(pause),
                                   std::move(handler))
        ->start();
}

}  // namespace apollo_oauth::store
