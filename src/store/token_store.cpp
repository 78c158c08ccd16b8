// token_store's default coordination operations, written in terms of async_load and async_save.
// They give no exclusion between processes: right for a store used by one process, whose cache
// already coalesces refreshes. Every handler runs through get_executor(), never inline.
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <mutex>

namespace apollo_oauth {
namespace {

template <class Handler, class... Args>
void post_result(const boost::asio::any_io_executor& ex, Handler handler, Args... args) {
    boost::asio::post(ex, [handler = std::move(handler), ... args = std::move(args)]() mutable {
        std::move(handler)(std::move(args)...);
    });
}

// The default async_wait_for_change: loads every poll_interval until the record moved past
// known_generation (or its state changed), max_wait passed, or the caller cancelled.
class polling_wait : public std::enable_shared_from_this<polling_wait> {
public:
    static constexpr std::chrono::milliseconds poll_interval{100};

    polling_wait(token_store& store, std::string account, std::uint64_t known_generation,
                 std::chrono::milliseconds max_wait, token_store::load_handler handler)
        : store_(store),
          account_(std::move(account)),
          known_generation_(known_generation),
          deadline_(std::chrono::steady_clock::now() + max_wait),
          timer_(boost::asio::make_strand(store.get_executor())),
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
                    // touched from the store's executor, so the cancellation goes there too.
                    boost::asio::post(self->timer_.get_executor(), [self] {
                        if (!self->finished_) {
                            self->cancelled_ = true;
                            self->timer_.cancel();
                        }
                    });
                }
            });
        }
        poll();
    }

private:
    void poll() {
        store_.async_load(
            account_, [self = shared_from_this()](error_code ec, std::optional<stored_tokens> r) {
                boost::asio::post(self->timer_.get_executor(), [self, ec, r = std::move(r)]() mutable {
                    self->on_load(ec, std::move(r));
                });
            });
    }

    void on_load(error_code ec, std::optional<stored_tokens> record) {
        if (cancelled_) {
            return finish(boost::asio::error::operation_aborted, std::nullopt);
        }
        if (!ec && record &&
            (record->generation > known_generation_ ||
             (record->generation == known_generation_ && record->state != record_state::ok))) {
            return finish({}, std::move(record));
        }
        if (std::chrono::steady_clock::now() + poll_interval >= deadline_) {
            return finish({}, std::nullopt);
        }
        timer_.expires_after(poll_interval);
        timer_.async_wait([self = shared_from_this()](error_code) {
            if (self->cancelled_) {
                return self->finish(boost::asio::error::operation_aborted, std::nullopt);
            }
            self->poll();
        });
    }

    // The cancellation hook stays installed (clearing it here could race with the caller's emit
    // on its own thread): a late emit finds this object gone, or finished, and does nothing.
    void finish(error_code ec, std::optional<stored_tokens> record) {
        finished_ = true;
        std::move(handler_)(ec, std::move(record));
    }

    token_store& store_;
    std::string account_;
    std::uint64_t known_generation_;
    std::chrono::steady_clock::time_point deadline_;
    boost::asio::steady_timer timer_;  // on a strand: the cancellation and the poll touch cancelled_
    token_store::load_handler handler_;
    bool cancelled_ = false;
    bool finished_ = false;
};

}  // namespace

void token_store::async_acquire(std::string account, std::string, std::uint64_t known_generation,
                                std::chrono::milliseconds, acquire_handler handler) {
    async_load(std::move(account), [ex = get_executor(), known_generation, handler = std::move(handler)](
                                       error_code ec, std::optional<stored_tokens> record) mutable {
        lease_outcome outcome;
        if (!ec && record) {
            if (record->generation > known_generation) {
                outcome.what = lease_outcome::kind::newer;
            } else if (record->state == record_state::reauthorization_required) {
                outcome.what = lease_outcome::kind::reauthorization_required;
            }
            outcome.record = std::move(record);
        }
        // async_load completes through a post already: calling on is not inline from the caller.
        std::move(handler)(ec, std::move(outcome));
    });
}

void token_store::async_mark_sent(std::string, std::string, std::uint64_t, std::chrono::milliseconds,
                                  lease_handler handler) {
    post_result(get_executor(), std::move(handler), error_code{});
}

void token_store::async_renew(std::string, std::string, std::uint64_t, std::chrono::milliseconds,
                              lease_handler handler) {
    post_result(get_executor(), std::move(handler), error_code{});
}

void token_store::async_commit(std::string account, std::string, stored_tokens record,
                               std::uint64_t expected_generation, save_handler handler) {
    async_save(std::move(account), std::move(record), expected_generation, std::move(handler));
}

void token_store::async_release(std::string, std::string, lease_handler handler) {
    post_result(get_executor(), std::move(handler), error_code{});
}

// async_save cannot record a state change (its generation must grow), so the default checks the
// generation and persists nothing: a single-process store's cache remembers the state in memory.
void token_store::async_mark_reauthorization(std::string account, std::uint64_t generation,
                                             lease_handler handler) {
    async_load(std::move(account), [generation, handler = std::move(handler)](
                                       error_code ec, std::optional<stored_tokens> record) mutable {
        if (!ec && !record) {
            ec = errc::unknown_account;
        } else if (!ec && record->generation != generation) {
            ec = errc::generation_conflict;
        }
        std::move(handler)(ec);
    });
}

void token_store::async_wait_for_change(std::string account, std::uint64_t known_generation,
                                        std::chrono::milliseconds max_wait, load_handler handler) {
    std::make_shared<polling_wait>(*this, std::move(account), known_generation, max_wait, std::move(handler))
        ->start();
}

}  // namespace apollo_oauth
