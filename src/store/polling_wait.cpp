// A wait that polls, on a strand of the store's executor: the cancellation and the poll's answer
// both touch its flags there.
#include "store/polling_wait.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <memory>

namespace apollo_oauth::store {
namespace {

class polling_wait : public std::enable_shared_from_this<polling_wait> {
public:
    polling_wait(const boost::asio::any_io_executor& ex, std::uint64_t known_generation,
                 std::chrono::milliseconds max_wait, poll_step poll,
                 std::function<std::chrono::milliseconds()> pause, token_store::load_handler handler)
        : known_generation_(known_generation),
          deadline_(std::chrono::steady_clock::now() + max_wait),
          timer_(boost::asio::make_strand(ex)),
          poll_(std::move(poll)),
          pause_(std::move(pause)),
          handler_(std::move(handler)) {}

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

private:
    void poll() {
        if (cancelled_) {
            return finish(boost::asio::error::operation_aborted, std::nullopt);
        }
        poll_([self = shared_from_this()](poll_answer answer) {
            boost::asio::post(self->timer_.get_executor(), [self, answer = std::move(answer)]() mutable {
                self->on_poll(std::move(answer));
            });
        });
    }

    void on_poll(poll_answer answer) {
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
        timer_.expires_at(std::min(now + pause_(), deadline_));
        timer_.async_wait([self = shared_from_this()](error_code) { self->poll(); });
    }

    // The cancellation hook stays installed (clearing it here could race with the caller's emit
    // on its own thread): a late emit finds this object gone, or finished, and does nothing.
    void finish(error_code ec, std::optional<stored_tokens> record) {
        finished_ = true;
        std::move(handler_)(ec, std::move(record));
    }

    std::uint64_t known_generation_;
    std::chrono::steady_clock::time_point deadline_;
    boost::asio::steady_timer timer_;  // on a strand: the cancellation and the poll touch cancelled_
    poll_step poll_;
    std::function<std::chrono::milliseconds()> pause_;
    token_store::load_handler handler_;
    bool cancelled_ = false;
    bool finished_ = false;
};

}  // namespace

void start_polling_wait(boost::asio::any_io_executor ex, std::uint64_t known_generation,
                        std::chrono::milliseconds max_wait, poll_step poll,
                        std::function<std::chrono::milliseconds()> pause, token_store::load_handler handler) {
    std::make_shared<polling_wait>(ex, known_generation, max_wait, std::move(poll), std::move(pause),
                                   std::move(handler))
        ->start();
}

}  // namespace apollo_oauth::store
