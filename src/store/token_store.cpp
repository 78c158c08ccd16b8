// token_store's default coordination operations, written in terms of async_load and async_save.
// They give no exclusion between processes: right for a store used by one process, whose cache
// already coalesces refreshes. Every handler runs through get_executor(), never inline.
#include <apollo_oauth/token_store.hpp>

#include "store/polling_wait.hpp"

#include <boost/asio/post.hpp>

namespace apollo_oauth {
namespace {

template <class Handler, class... Args>
void post_result(const boost::asio::any_io_executor& ex, Handler handler, Args... args) {
    boost::asio::post(ex, [handler = std::move(handler), ... args = std::move(args)]() mutable {
        std::move(handler)(std::move(args)...);
    });
}

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

// Loads every 100 ms until the record moved past known_generation (or its state changed),
// max_wait passed, or the caller cancelled.
void token_store::async_wait_for_change(std::string account, std::uint64_t known_generation,
                                        std::chrono::milliseconds max_wait, load_handler handler) {
    store::start_polling_wait(
        get_executor(), known_generation, max_wait,
        [this, account = std::move(account)](std::function<void(store::poll_answer)> done) {
            async_load(account, [done = std::move(done)](error_code ec, std::optional<stored_tokens> record) {
                done({ec, std::move(record), false});
            });
        },
        [] { return std::chrono::milliseconds(100); }, std::move(handler));
}

}  // namespace apollo_oauth
