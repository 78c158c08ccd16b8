// make_memory_token_store: records and leases in a map under a mutex. Every cache sharing one
// memory store coalesces its refreshes through the leases, like processes sharing a file store.
#include <apollo_oauth/token_store.hpp>

#include "store/change_waiters.hpp"
#include "store/record_codec.hpp"

#include <boost/asio/post.hpp>

#include <mutex>
#include <unordered_map>

namespace apollo_oauth {
namespace {

using steady = std::chrono::steady_clock;

struct lease_record {
    std::string holder;
    std::uint64_t generation = 0;
    steady::time_point deadline{};
};

// Who last marked a request sent, and for which generation (the Redis store's sent_by /
// sent_gen). The account's, not the lease's: it outlives a lease taken over, given back by
// another holder, or replaced, until a write moves the generation or its sender gives the lease
// back. Kept in the lease, it was lost one holder after a silent sender: the holder that took
// over was told, but if it gave the lease back, the next one was not, and sent the refresh token
// the silent sender may have spent.
struct sent_mark {
    std::string by;
    std::uint64_t generation = 0;
};

struct account_record {
    std::optional<stored_tokens> record;
    std::optional<lease_record> lease;
    std::optional<sent_mark> sent;
};

bool same_pair(const stored_tokens& a, const stored_tokens& b) {
    return a.generation == b.generation && a.tokens.refresh_token == b.tokens.refresh_token &&
           a.tokens.access_token == b.tokens.access_token;
}

class memory_token_store final : public token_store {
public:
    explicit memory_token_store(boost::asio::any_io_executor ex) : ex_(ex), changes_(ex) {}

    boost::asio::any_io_executor get_executor() const override { return ex_; }

    void async_load(std::string account, load_handler handler) override {
        std::optional<stored_tokens> record;
        {
            const std::lock_guard lock(mutex_);
            if (const auto it = accounts_.find(account); it != accounts_.end()) {
                record = it->second.record;  // a copy: the caller may change it without touching the store
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
            auto& a = accounts_[account];
            const auto now = steady::now();
            if (a.record && a.record->generation > known_generation) {
                out.what = lease_outcome::kind::newer;
                out.record = a.record;
            } else if (a.record && a.record->generation == known_generation &&
                       a.record->state == record_state::reauthorization_required) {
                out.what = lease_outcome::kind::reauthorization_required;
                out.record = a.record;
            } else if (a.lease && a.lease->holder != holder && now < a.lease->deadline) {
                out.what = lease_outcome::kind::busy;
                out.time_left = std::chrono::ceil<std::chrono::milliseconds>(a.lease->deadline - now);
            } else {
                const std::uint64_t stored = a.record ? a.record->generation : 0;
                out.what = lease_outcome::kind::granted;
                out.record = a.record;
                // A holder that marked its request sent and never committed may have had the pair
                // rotated by the server: every holder after it is told, but itself.
                out.previous_holder_sent = a.sent && a.sent->generation == stored && a.sent->by != holder;
                a.lease = lease_record{std::move(holder), stored, now + ttl};
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
            if (const auto it = accounts_.find(account);
                it != accounts_.end() && it->second.lease && it->second.lease->holder == holder) {
                it->second.lease.reset();
                // A holder gives its lease back only with no rotated pair left to commit: its own
                // mark goes (nobody is left to wait for), another holder's stays.
                if (it->second.sent && it->second.sent->by == holder) {
                    it->second.sent.reset();
                }
                given_back = true;
            }
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
            const auto it = accounts_.find(account);
            if (it == accounts_.end() || !it->second.record) {
                ec = errc::unknown_account;
            } else if (it->second.record->generation != generation) {
                ec = errc::generation_conflict;
            } else {
                it->second.record->state = record_state::reauthorization_required;
                changed = it->second.record;
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
        bool lease_free = true;
        if (const auto it = accounts_.find(account); it != accounts_.end()) {
            now = it->second.record;
            lease_free = !it->second.lease;
        }
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
        const auto it = accounts_.find(account);
        const auto now = steady::now();
        // (A write that moved the stored generation ended every lease: compare_and_set.)
        if (it == accounts_.end() || !it->second.lease || it->second.lease->holder != holder ||
            it->second.lease->generation != generation || now >= it->second.lease->deadline) {
            return errc::lease_lost;
        }
        it->second.lease->deadline = now + ttl;
        if (sent) {
            it->second.sent = sent_mark{holder, generation};
        }
        return {};
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
            auto& a = accounts_[account];
            const std::uint64_t stored = a.record ? a.record->generation : 0;
            if (stored != expected_generation) {
                // A retry after an unknown outcome finds its own record: that is success, and
                // the holder's lease goes as on the first attempt (the other stores do the same).
                if (holder != nullptr && a.record && same_pair(*a.record, record)) {
                    if (a.lease && a.lease->holder == *holder) {
                        a.lease.reset();
                    }
                    return {};
                }
                return make_error_code(errc::generation_conflict);
            }
            a.record = std::move(record);
            // Any lease now names an older generation, whose refresh token is no longer the stored
            // one: it goes (as in the Redis store), so that a spent lease never keeps others busy,
            // and so does a mark of a request sent with that token.
            a.lease.reset();
            a.sent.reset();
            changed = a.record;
        }
        changes_.notify(account, *changed);
        return {};
    }

    boost::asio::any_io_executor ex_;
    std::mutex mutex_;
    std::unordered_map<std::string, account_record> accounts_;
    store::change_waiters changes_;
};

}  // namespace

std::shared_ptr<token_store> make_memory_token_store(boost::asio::any_io_executor ex) {
    return std::make_shared<memory_token_store>(std::move(ex));
}

}  // namespace apollo_oauth
