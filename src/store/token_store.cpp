// token_store's default coordination operations, written in terms of async_load and async_save,
// with leases held in this process: a lease_table per store object (the memory store's rules), so
// that the caches of one process sharing one store object refresh once per rotation. They exclude
// nobody in another process, or using another store object. Every handler runs through
// get_executor() or the derived store's own completions, never inline.
#include <apollo_oauth/token_store.hpp>

#include "store/lease_table.hpp"
#include "store/polling_wait.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <mutex>
#include <unordered_map>

namespace apollo_oauth {
namespace detail {

// The leases of one store object, its acquires whose load is on its way, and its waits.
class in_process_leases {
public:
    using steady = std::chrono::steady_clock;

    // An acquire's load is about to start: what it must be compared with when it answers.
    std::uint64_t loading(const std::string& account) {
        const std::lock_guard lock{mutex_};
        keeps_leases_ = true;
        auto& l = loads_[account];
        ++l.count;
        return l.writes;
    }

    // The answer of an acquire's load that began at `writes` (loading()), decided under the lock
    // the commits take too; nullopt when the load is to be read again.
    std::optional<lease_outcome> loaded(const std::string& account, std::uint64_t writes,
                                        const std::string& holder, std::uint64_t known_generation,
                                        std::chrono::milliseconds ttl, std::optional<stored_tokens> record) {
        const std::lock_guard lock{mutex_};
        const std::uint64_t stored = record ? record->generation : 0;
        const auto it = loads_.find(account);
        // A write through this store object ended the leases while the load was on its way, and
        // the load read before it landed: granted on what it read, the caller would send the
        // refresh token that write's holder just spent (and a revoke-on-reuse server revokes the
        // grant). Read again. A load is read again only for a write completed while it was on its
        // way, so this ends (a store that lost that write is read once more, then believed).
        const bool stale = it->second.writes != writes && it->second.highest_written > stored;
        end_load(it);
        if (stale) {
            return std::nullopt;
        }
        lease_outcome out;
        if (record && record->generation > known_generation) {
            out.what = lease_outcome::kind::newer;
        } else if (record && record->state == record_state::reauthorization_required) {
            out.what = lease_outcome::kind::reauthorization_required;
        } else {
            const auto lease = table_.acquire(account, holder, stored, ttl, steady::now());
            if (!lease.granted) {
                out.what = lease_outcome::kind::busy;
                out.time_left = lease.time_left;
                return out;  // with no record, as the memory store's
            }
            out.previous_holder_sent = lease.previous_holder_sent;
        }
        out.record = std::move(record);
        return out;
    }

    // An acquire's load failed: nothing was decided.
    void load_failed(const std::string& account) {
        const std::lock_guard lock{mutex_};
        end_load(loads_.find(account));
    }

    error_code touch(const std::string& account, const std::string& holder, std::uint64_t generation,
                     std::chrono::milliseconds ttl, bool sent) {
        const std::lock_guard lock{mutex_};
        return table_.touch(account, holder, generation, ttl, sent, steady::now());
    }

    void release(const std::string& account, const std::string& holder) {
        bool given_back = false;
        {
            const std::lock_guard lock{mutex_};
            given_back = table_.release(account, holder);
        }
        if (given_back) {
            // Caches waiting for this lease ask for it again now, not when its time would have run out.
            waits_.wake(account);
        }
    }

    // A write through this store object stored `generation` (`holder`: the commit's, which a
    // retry that found its record ends as the first attempt would have): the leases and marks on
    // older generations are spent, and the waits look at the record at once.
    void written(const std::string& account, std::uint64_t generation, const std::string* holder) {
        {
            const std::lock_guard lock{mutex_};
            table_.stored_at_least(account, generation);
            if (holder != nullptr) {
                table_.end_lease_of(account, *holder);
            }
            if (const auto it = loads_.find(account); it != loads_.end()) {
                ++it->second.writes;
                it->second.highest_written = std::max(it->second.highest_written, generation);
            }
        }
        waits_.wake(account);
    }

    // No lease keeps an acquire of a record at `stored` busy (given back or spent, not run out).
    // Only known when this table keeps the store's leases: a store that implements the lease
    // operations itself and leaves the wait to the default never acquires through it, and its
    // empty table would end every wait at the first poll (a holder waiting for a silent sender
    // would then send at once, the token that sender may have spent). Such a wait ends on a
    // change or at max_wait, as the default's waits did before the table.
    bool free(const std::string& account, std::uint64_t stored) const {
        const std::lock_guard lock{mutex_};
        return keeps_leases_ && table_.free(account, stored);
    }

    store::wakeable_waits& waits() { return waits_; }

private:
    // The acquires of an account whose load is on its way, and the writes through this store
    // object that completed meanwhile (kept only while such a load is).
    struct loads {
        unsigned count = 0;
        std::uint64_t writes = 0;
        std::uint64_t highest_written = 0;
    };

    // One of the account's loads answered (under mutex_): its entry goes with the last of them.
    void end_load(std::unordered_map<std::string, loads>::iterator it) {
        if (--it->second.count == 0) {
            loads_.erase(it);
        }
    }

    mutable std::mutex mutex_;
    bool keeps_leases_ = false;  ///< the default async_acquire was called: the leases are here
    store::lease_table table_;
    std::unordered_map<std::string, loads> loads_;
    store::wakeable_waits waits_;
};

}  // namespace detail

namespace {

using leases_ptr = std::shared_ptr<detail::in_process_leases>;

template <class Handler, class... Args>
void post_result(const boost::asio::any_io_executor& ex, Handler handler, Args... args) {
    boost::asio::post(ex, [handler = std::move(handler), ... args = std::move(args)]() mutable {
        std::move(handler)(std::move(args)...);
    });
}

// A load, then the lease decided on what it read (again when a commit made it stale meanwhile).
// The store outlives its operations (the cache holds it while it waits for one).
void load_and_acquire(token_store& store, leases_ptr leases, std::string account, std::string holder,
                      std::uint64_t known_generation, std::chrono::milliseconds ttl,
                      token_store::acquire_handler handler) {
    const std::uint64_t writes = leases->loading(account);
    store.async_load(account, [&store, leases = std::move(leases), account, holder = std::move(holder),
                               writes, known_generation, ttl, handler = std::move(handler)](
                                  error_code ec, std::optional<stored_tokens> record) mutable {
        if (ec) {
            leases->load_failed(account);
            return std::move(handler)(ec, lease_outcome{});
        }
        auto outcome = leases->loaded(account, writes, holder, known_generation, ttl, std::move(record));
        if (!outcome) {
            return load_and_acquire(store, std::move(leases), std::move(account), std::move(holder),
                                    known_generation, ttl, std::move(handler));
        }
        // async_load completes through a post already: calling on is not inline from the caller.
        std::move(handler)(ec, std::move(*outcome));
    });
}

}  // namespace

token_store::token_store() : leases_(std::make_shared<detail::in_process_leases>()) {}

token_store::token_store(const token_store&) : token_store() {}

token_store::~token_store() = default;

void token_store::async_acquire(std::string account, std::string holder, std::uint64_t known_generation,
                                std::chrono::milliseconds ttl, acquire_handler handler) {
    load_and_acquire(*this, leases_, std::move(account), std::move(holder), known_generation, ttl,
                     std::move(handler));
}

void token_store::async_mark_sent(std::string account, std::string holder, std::uint64_t generation,
                                  std::chrono::milliseconds ttl, lease_handler handler) {
    post_result(get_executor(), std::move(handler), leases_->touch(account, holder, generation, ttl, true));
}

void token_store::async_renew(std::string account, std::string holder, std::uint64_t generation,
                              std::chrono::milliseconds ttl, lease_handler handler) {
    post_result(get_executor(), std::move(handler), leases_->touch(account, holder, generation, ttl, false));
}

// async_save, then the lease ends. A conflict may be this commit's own earlier attempt, whose
// answer was lost: a load tells, and then the commit succeeds, as the contract asks.
void token_store::async_commit(std::string account, std::string holder, stored_tokens record,
                               std::uint64_t expected_generation, save_handler handler) {
    auto mine = record;  // to know it again (its tokens are wiped with it)
    async_save(account, std::move(record), expected_generation,
               [this, leases = leases_, account, holder = std::move(holder), mine = std::move(mine),
                handler = std::move(handler)](error_code ec) mutable {
                   if (!ec) {
                       leases->written(account, mine.generation, nullptr);
                       return std::move(handler)(ec);
                   }
                   if (ec != errc::generation_conflict) {
                       return std::move(handler)(ec);
                   }
                   async_load(account, [leases = std::move(leases), account, holder = std::move(holder),
                                        mine = std::move(mine), handler = std::move(handler)](
                                           error_code load_ec, std::optional<stored_tokens> stored) mutable {
                       if (load_ec || !stored || !store::same_pair(*stored, mine)) {
                           return std::move(handler)(make_error_code(errc::generation_conflict));
                       }
                       leases->written(account, mine.generation, &holder);
                       std::move(handler)(error_code{});
                   });
               });
}

void token_store::async_release(std::string account, std::string holder, lease_handler handler) {
    leases_->release(account, holder);
    post_result(get_executor(), std::move(handler), error_code{});
}

// async_save cannot record a state change (its generation must grow), so the default checks the
// generation and persists nothing: the cache that learned it remembers the state in memory.
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

// Loads every 100 ms, and at once when a commit or a release through this object wakes it, until
// the record moved past known_generation (or its state changed), the lease is found free (given
// back or spent: the caller asks for it again), max_wait passed, or the caller cancelled.
void token_store::async_wait_for_change(std::string account, std::uint64_t known_generation,
                                        std::chrono::milliseconds max_wait, load_handler handler) {
    auto poll = [this, leases = leases_, account](std::function<void(store::poll_answer)> done) {
        async_load(account, [leases, account, done = std::move(done)](error_code ec,
                                                                      std::optional<stored_tokens> record) {
            const bool lease_free = !ec && leases->free(account, record ? record->generation : 0);
            done({ec, std::move(record), lease_free});
        });
    };
    leases_->waits().start(
        std::move(account), get_executor(), known_generation, max_wait, std::move(poll),
        [] { return std::chrono::milliseconds(100); }, std::move(handler));
}

}  // namespace apollo_oauth
