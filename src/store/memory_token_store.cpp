// make_memory_token_store: records in a map and leases in a lease_table, under one mutex. Every
// cache sharing one memory store coalesces its refreshes through the leases, like processes
// sharing a file store.
#include <apollo_oauth/token_store.hpp>

#include "store/change_waiters.hpp"
#include "store/lease_table.hpp"
#include "store/record_codec.hpp"

#include <boost/asio/post.hpp>

#include <mutex>
#include <unordered_map>

namespace apollo_oauth {
namespace {

using steady = std::chrono::steady_clock;

class memory_token_store final : public token_store {
public:
    explicit memory_token_store(boost::asio::any_io_executor ex) : ex_(ex), changes_(ex) {}

    boost::asio::any_io_executor get_executor() const override { return ex_; }

    void async_load(std::string account, load_handler handler) override {
        std::optional<stored_tokens> record;
        {
            const std::lock_guard lock(mutex_);
            if (const auto it = records_.find(account); it != records_.end()) {
                record = it->second;  // a copy: the caller may change it without touching the store
            }
        }
        post(std::move(handler), error_code{}, std::move(record));
    }

    void async_save(std::string account, stored_tokens record, std::uint64_t expected_generation,
                    save_handler handler) override {
        const error_code ec = compare_and_set(account, std::move(record), expected_generation, nullptr);
        post(std::move(handler), ec);
    }

    void async_acquire(std::string account, std::string holder, std::uint64_t known_generation,
                       std::chrono::milliseconds ttl, acquire_handler handler) override {
        lease_outcome out;
        {
            const std::lock_guard lock(mutex_);
            const auto it = records_.find(account);
            const stored_tokens* record = it == records_.end() ? nullptr : &it->second;
            if (record && record->generation > known_generation) {
                out.what = lease_outcome::kind::newer;
                out.record = *record;
            } else if (record && record->generation == known_generation &&
                       record->state == record_state::reauthorization_required) {
                out.what = lease_outcome::kind::reauthorization_required;
                out.record = *record;
            } else {
                const std::uint64_t stored = record ? record->generation : 0;
                const auto lease = leases_.acquire(account, holder, stored, ttl, steady::now());
                if (lease.granted) {
                    out.what = lease_outcome::kind::granted;
                    if (record) {
                        out.record = *record;
                    }
                    out.previous_holder_sent = lease.previous_holder_sent;
                } else {
                    out.what = lease_outcome::kind::busy;
                    out.time_left = lease.time_left;
                }
            }
        }
        post(std::move(handler), error_code{}, std::move(out));
    }

    void async_mark_sent(std::string account, std::string holder, std::uint64_t generation,
                         std::chrono::milliseconds ttl, lease_handler handler) override {
        post(std::move(handler), touch_lease(account, holder, generation, ttl, true));
    }

    void async_renew(std::string account, std::string holder, std::uint64_t generation,
                     std::chrono::milliseconds ttl, lease_handler handler) override {
        post(std::move(handler), touch_lease(account, holder, generation, ttl, false));
    }

    void async_commit(std::string account, std::string holder, stored_tokens record,
                      std::uint64_t expected_generation, save_handler handler) override {
        const error_code ec = compare_and_set(account, std::move(record), expected_generation, &holder);
        post(std::move(handler), ec);
    }

    void async_release(std::string account, std::string holder, lease_handler handler) override {
        bool given_back = false;
        {
            const std::lock_guard lock(mutex_);
            given_back = leases_.release(account, holder);
        }
        if (given_back) {
            // Caches waiting for this lease ask for it again now, not when its time would have run out.
            changes_.lease_given_back(account);
        }
        post(std::move(handler), error_code{});
    }

    void async_mark_reauthorization(std::string account, std::uint64_t generation,
                                    lease_handler handler) override {
        error_code ec;
        std::optional<stored_tokens> changed;
        {
            const std::lock_guard lock(mutex_);
            const auto it = records_.find(account);
            if (it == records_.end()) {
                ec = errc::unknown_account;
            } else if (it->second.generation != generation) {
                ec = errc::generation_conflict;
            } else {
                it->second.state = record_state::reauthorization_required;
                changed = it->second;
            }
        }
        if (changed) {
            changes_.notify(account, *changed);
        }
        post(std::move(handler), ec);
    }

    void async_wait_for_change(std::string account, std::uint64_t known_generation,
                               std::chrono::milliseconds max_wait, load_handler handler) override {
        // Registered under the store's mutex, so that no commit can slip between the check and
        // the registration.
        const std::lock_guard lock(mutex_);
        std::optional<stored_tokens> now;
        // A lease given back between the caller's busy acquire and this wait: the release's
        // wake-up went by, so the wait ends at once rather than when the lease would have run
        // out. Given back, not run out: a lease past its deadline may be the caller's own, held
        // while it waits for a holder that marked its request sent (a strand stalled past the
        // lease's time), a wait only that holder's commit or max_wait may end. (A busy caller's
        // max_wait is the lease's time left anyway.)
        if (const auto it = records_.find(account); it != records_.end()) {
            now = it->second;
        }
        const bool lease_free = leases_.free(account, now ? now->generation : 0);
        changes_.wait(std::move(account), known_generation, now, lease_free, max_wait, std::move(handler));
    }

private:
    template <class Handler, class... Args>
    void post(Handler handler, Args... args) {
        boost::asio::post(ex_, [handler = std::move(handler), ... args = std::move(args)]() mutable {
            std::move(handler)(std::move(args)...);
        });
    }

    error_code touch_lease(const std::string& account, const std::string& holder, std::uint64_t generation,
                           std::chrono::milliseconds ttl, bool sent) {
        const std::lock_guard lock(mutex_);
        return leases_.touch(account, holder, generation, ttl, sent, steady::now());
    }

    // `holder`, for a commit: clears that holder's lease on success.
    error_code compare_and_set(const std::string& account, stored_tokens record,
                               std::uint64_t expected_generation, const std::string* holder) {
        // Generations only grow: otherwise a record could come back to an old generation and let
        // a writer holding that old pair overwrite it. And a record stays within what the file and
        // Redis stores can read back (a generation up to max_generation; tokens of valid UTF-8,
        // checked as the file store checks them), so that a cache behaves the same on every store.
        if (store::refuses_write(record, expected_generation)) {
            return make_error_code(errc::invalid_argument);
        }
        std::optional<stored_tokens> changed;
        {
            const std::lock_guard lock(mutex_);
            const auto it = records_.find(account);
            const std::uint64_t stored = it == records_.end() ? 0 : it->second.generation;
            if (stored != expected_generation) {
                // A retry after an unknown outcome finds its own record: that is success, and
                // the holder's lease goes as on the first attempt (the other stores do the same).
                if (holder != nullptr && it != records_.end() && store::same_pair(it->second, record)) {
                    leases_.end_lease_of(account, *holder);
                    return {};
                }
                return make_error_code(errc::generation_conflict);
            }
            // Any lease now names an older generation, whose refresh token is no longer the stored
            // one: it goes, and so does a mark of a request sent with that token.
            leases_.stored_at_least(account, record.generation);
            changed = record;
            records_.insert_or_assign(account, std::move(record));
        }
        changes_.notify(account, *changed);
        return {};
    }

    boost::asio::any_io_executor ex_;
    std::mutex mutex_;
    std::unordered_map<std::string, stored_tokens> records_;
    store::lease_table leases_;
    store::change_waiters changes_;
};

}  // namespace

std::shared_ptr<token_store> make_memory_token_store(boost::asio::any_io_executor ex) {
    return std::make_shared<memory_token_store>(std::move(ex));
}

}  // namespace apollo_oauth
