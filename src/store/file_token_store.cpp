// make_file_token_store: record_directory's blocking calls moved to a private thread, which never
// waits for an account's lock: a call that finds it kept tries again on a timer.
#include "store/file_token_store.hpp"
#include "sansio/random.hpp"
#include "store/polling_wait.hpp"
#include "store/record_directory.hpp"

#include <apollo_oauth/detail/async_support.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <type_traits>
#include <utility>

namespace apollo_oauth {
namespace {

using deadline = std::chrono::steady_clock::time_point;

/// The pauses between the attempts at a call whose account lock is kept (flock(2) cannot block with
/// a time bound, and the thread must not): 0.1 ms doubling to 5 ms, plus up to as much again at
/// random, so that the processes waiting for one lock do not poll in step, and a waiter is never
/// more than 10 ms late to a lock let go.
struct lock_backoff {
    static constexpr std::chrono::nanoseconds first = std::chrono::microseconds(100);
    static constexpr std::chrono::nanoseconds longest = std::chrono::milliseconds(5);

    static std::chrono::nanoseconds jittered(std::chrono::nanoseconds pause) {
        return pause + std::chrono::nanoseconds(
                           static_cast<std::chrono::nanoseconds::rep>(sansio::jitter_draw() * pause.count()));
    }
    static std::chrono::nanoseconds after(std::chrono::nanoseconds pause) {
        return std::min(pause * 2, longest);
    }
};

/// One call on the private thread: its work, and the handler its outcome goes to. A handler is
/// called at most once: never, only when the post of its answer threw (no memory).
class pending_call {
public:
    explicit pending_call(deadline until) : until_(until) {}
    virtual ~pending_call() = default;
    pending_call(const pending_call&) = delete;
    pending_call& operator=(const pending_call&) = delete;

    /// Runs the work once. False when the account's lock was kept and the deadline has not passed
    /// (nothing was changed; it is to be tried again); otherwise the outcome is posted to the
    /// caller (store_failure for a lock kept until the deadline) and true.
    bool attempt() {
        if (try_once()) {
            return true;
        }
        if (std::chrono::steady_clock::now() < until_) {
            return false;
        }
        give_up();
        return true;
    }

    /// Posts store_failure to the caller without running the work (its deadline passed, or the
    /// store could not keep it waiting); nothing when its answer was posted already.
    virtual void give_up() = 0;

protected:
    /// Runs the work: true when it answered the caller, false when it found the account's lock
    /// kept (record_directory::lock_busy()) and posted nothing.
    virtual bool try_once() = 0;

private:
    deadline until_;
};

/// `Work` is called as work(ec) and returns what the handler gets after `ec`; for a handler of
/// (error_code) alone it returns no_result.
struct no_result {};

template <class Handler, class Work>
class call final : public pending_call {
public:
    call(deadline until, boost::asio::any_io_executor done, Handler handler, Work work)
        : pending_call(until), done_(std::move(done)), handler_(std::move(handler)), work_(std::move(work)) {}

    void give_up() override {
        if (!answered_) {
            answer(make_error_code(errc::store_failure), {});
        }
    }

private:
    using result_type = decltype(std::declval<Work&>()(std::declval<error_code&>()));

    bool try_once() override {
        if (answered_) {  // a post that threw took the handler with it: nothing left to tell
            return true;
        }
        error_code ec;
        result_type result{};
        try {
            result = work_(ec);
        } catch (...) {  // bad_alloc, or the CSPRNG / SHA-256 failing
            ec = make_error_code(errc::store_failure);
            result = {};
        }
        if (ec == store::record_directory::lock_busy()) {
            return false;
        }
        answer(ec, std::move(result));
        return true;
    }

    void answer(error_code ec, result_type result) {
        answered_ = true;  // the handler moves out here, whether or not the post below succeeds
        boost::asio::post(done_, [handler = std::move(handler_), ec, result = std::move(result)]() mutable {
            if constexpr (std::is_same_v<result_type, no_result>) {
                std::move(handler)(ec);
            } else {
                std::move(handler)(ec, std::move(result));
            }
        });
    }

    boost::asio::any_io_executor done_;
    Handler handler_;
    Work work_;
    bool answered_ = false;
};

/// The pause between a waiter's reads of the record and the lease: 50 to 150 ms, drawn anew each
/// time, so that the waiters of many processes do not read in step. A read is a few system calls
/// and a record's checksum, on the store's thread; one waiter per process and account.
std::chrono::milliseconds probe_pause() {
    return std::chrono::milliseconds(50 + static_cast<int>(sansio::jitter_draw() * 100));
}

/// What a waiter's read of the file store gives back (record_directory::probe).
struct probe_result {
    std::optional<stored_tokens> record;
    bool lease_free = false;
};

class file_token_store final : public token_store, public std::enable_shared_from_this<file_token_store> {
public:
    file_token_store(boost::asio::any_io_executor ex, std::filesystem::path directory,
                     std::chrono::milliseconds lock_bound)
        : ex_(std::move(ex)), directory_(std::move(directory)), lock_bound_(lock_bound) {
        // Queued first, so it is done before any load or save of this store. Best effort: an
        // exception escaping a task would end the process (the pool's thread calls terminate).
        boost::asio::post(worker_, [this] {
            try {
                directory_.prepare();
            } catch (...) {
            }
        });
    }

    // Every queued operation still runs (and posts its handler) before the thread is joined, and
    // so do the calls waiting for a lock (their timers are the pool's work, each one bounded by
    // its deadline); operations hold a raw `this` for that reason, and never the last reference
    // to the store, which would make the worker join itself.
    ~file_token_store() override { worker_.join(); }

    void async_load(std::string account, load_handler handler) override {
        submit(account, std::move(handler), [this, account](error_code& ec) {
            std::optional<stored_tokens> record;
            ec = directory_.load(account, record);
            return record;
        });
    }

    void async_save(std::string account, stored_tokens record, std::uint64_t expected_generation,
                    save_handler handler) override {
        submit(account, std::move(handler),
               [this, account, record = std::move(record), expected_generation](error_code& ec) {
                   ec = directory_.save(account, record, expected_generation);
                   return no_result{};
               });
    }

    boost::asio::any_io_executor get_executor() const override { return ex_; }

    void async_acquire(std::string account, std::string holder, std::uint64_t known_generation,
                       std::chrono::milliseconds ttl, acquire_handler handler) override {
        submit(account, std::move(handler),
               [this, account, holder = std::move(holder), known_generation, ttl](error_code& ec) {
                   lease_outcome out;
                   ec = directory_.acquire(account, holder, known_generation, ttl, out);
                   return out;
               });
    }

    void async_mark_sent(std::string account, std::string holder, std::uint64_t generation,
                         std::chrono::milliseconds ttl, lease_handler handler) override {
        submit(account, std::move(handler),
               [this, account, holder = std::move(holder), generation, ttl](error_code& ec) {
                   ec = directory_.touch(account, holder, generation, ttl, true);
                   return no_result{};
               });
    }

    void async_renew(std::string account, std::string holder, std::uint64_t generation,
                     std::chrono::milliseconds ttl, lease_handler handler) override {
        submit(account, std::move(handler),
               [this, account, holder = std::move(holder), generation, ttl](error_code& ec) {
                   ec = directory_.touch(account, holder, generation, ttl, false);
                   return no_result{};
               });
    }

    void async_commit(std::string account, std::string holder, stored_tokens record,
                      std::uint64_t expected_generation, save_handler handler) override {
        submit(account, std::move(handler),
               [this, account, holder = std::move(holder), record = std::move(record),
                expected_generation](error_code& ec) {
                   ec = directory_.commit(account, holder, record, expected_generation);
                   return no_result{};
               });
    }

    void async_release(std::string account, std::string holder, lease_handler handler) override {
        submit(account, std::move(handler), [this, account, holder = std::move(holder)](error_code&) {
            directory_.release(account, holder);
            return no_result{};
        });
    }

    void async_mark_reauthorization(std::string account, std::uint64_t generation,
                                    lease_handler handler) override {
        submit(account, std::move(handler), [this, account, generation](error_code& ec) {
            ec = directory_.mark_reauthorization(account, generation);
            return no_result{};
        });
    }

    /// Polls the record and the lease (record_directory::probe) on the store's thread, queued as
    /// any call of the account, every 50 to 150 ms: ends with the record once it moved past
    /// `known_generation`, and with nullopt once the lease is free (given back, its holder dead:
    /// the kernel dropped its flock; lapsed; on an older generation) unless this store holds a
    /// lease on the account, or at max_wait. A store destroyed meanwhile ends it with
    /// operation_aborted at its next poll.
    void async_wait_for_change(std::string account, std::uint64_t known_generation,
                               std::chrono::milliseconds max_wait, load_handler handler) override {
        store::start_polling_wait(
            ex_, known_generation, max_wait,
            [weak = weak_from_this(),
             account = std::move(account)](std::function<void(store::poll_answer)> done) {
                const auto self = weak.lock();
                if (!self) {
                    return done({boost::asio::error::operation_aborted, std::nullopt, false});
                }
                self->submit(
                    account,
                    [done](error_code ec, probe_result r) {
                        done({ec, std::move(r.record), r.lease_free});
                    },
                    [store = self.get(), account](error_code& ec) {
                        probe_result r;
                        ec = store->directory_.probe(account, r.record, r.lease_free);
                        return r;
                    });
            },
            probe_pause, std::move(handler));
    }

private:
    /// The calls of one account waiting for its lock, oldest first, and the timer of the next try.
    struct waiting_account {
        explicit waiting_account(boost::asio::thread_pool::executor_type ex) : timer(ex) {}
        std::deque<std::unique_ptr<pending_call>> calls;
        boost::asio::steady_timer timer;
        std::chrono::nanoseconds pause = lock_backoff::first;
    };

    /// Runs `work` on the private thread and posts its outcome to the caller's executor. A call
    /// whose account lock is kept by someone else (a process stopped under SIGSTOP or a debugger,
    /// or one in the middle of its own write) is tried again after a pause, on a timer, until
    /// lock_bound_ has passed since it was made (time queued behind an older call included), then
    /// fails with store_failure: the thread is never blocked on a lock, so the other accounts'
    /// calls go on meanwhile. The calls of an account run in the order they were made: one made
    /// while older ones wait for the lock waits behind them, loads included (a load must see a
    /// save made before it).
    template <class Handler, class Work>
    void submit(const std::string& account, Handler handler, Work work) {
        auto made =
            std::make_unique<call<Handler, Work>>(std::chrono::steady_clock::now() + lock_bound_,
                                                  tracked_executor(), std::move(handler), std::move(work));
        boost::asio::post(worker_, [this, account, made = std::move(made)]() mutable {
            try {
                if (const auto it = waiting_.find(account); it != waiting_.end()) {
                    it->second->calls.push_back(std::move(made));
                    return;
                }
                if (made->attempt()) {
                    return;
                }
                auto& waiting =
                    *waiting_.emplace(account, std::make_unique<waiting_account>(worker_.get_executor()))
                         .first->second;
                waiting.calls.push_back(std::move(made));
                try_later(account, waiting);
            } catch (...) {  // no memory to keep it waiting: it fails now, as do any it queued behind
                if (made) {
                    try {
                        made->give_up();
                    } catch (...) {  // no memory to post even the failure: its handler is gone uncalled
                    }
                }
                give_up_waiting(account);
            }
        });
    }

    void try_later(const std::string& account, waiting_account& waiting) {
        waiting.timer.expires_after(lock_backoff::jittered(waiting.pause));
        waiting.pause = lock_backoff::after(waiting.pause);
        waiting.timer.async_wait([this, account](error_code ec) {
            if (ec == boost::asio::error::operation_aborted) {
                return;  // its entry was given up (give_up_waiting): nothing waits on this timer
            }
            try {
                try_waiting(account);
            } catch (...) {
                give_up_waiting(account);
            }
        });
    }

    /// The account's waiting calls, oldest first, until one still finds the lock kept.
    void try_waiting(const std::string& account) {
        const auto it = waiting_.find(account);
        if (it == waiting_.end()) {
            return;  // given up after this timer had fired, before its handler ran
        }
        auto& waiting = *it->second;
        while (!waiting.calls.empty()) {
            if (!waiting.calls.front()->attempt()) {
                try_later(account, waiting);
                return;
            }
            waiting.calls.pop_front();
            waiting.pause = lock_backoff::first;
        }
        waiting_.erase(it);  // this handler's timer with it: asio has moved the handler out already
    }

    /// After an exception: the account's waiting calls fail with store_failure, and its entry goes
    /// (with a timer that may be armed: cancelled, its handler finds no entry and does nothing).
    void give_up_waiting(const std::string& account) noexcept {
        const auto it = waiting_.find(account);
        if (it == waiting_.end()) {
            return;
        }
        for (auto& waiting_call : it->second->calls) {
            try {
                waiting_call->give_up();
            } catch (...) {  // no memory to post even the failure: its handler is destroyed uncalled
            }
        }
        waiting_.erase(it);
    }

    // Keeps the caller's io_context from running out of work while the file I/O is pending.
    boost::asio::any_io_executor tracked_executor() const { return detail::track_work(ex_); }

    boost::asio::any_io_executor ex_;
    store::record_directory directory_;
    std::chrono::milliseconds lock_bound_;
    boost::asio::thread_pool worker_{1};
    /// Only the private thread touches it. After worker_, so that its timers (of worker_'s
    /// executor) go first; it is empty by then anyway, once the destructor has joined the thread.
    std::map<std::string, std::unique_ptr<waiting_account>> waiting_;
};

}  // namespace

std::shared_ptr<token_store> make_file_token_store(boost::asio::any_io_executor ex,
                                                   std::filesystem::path directory) {
    return std::make_shared<file_token_store>(std::move(ex), std::move(directory), store::default_lock_bound);
}

std::shared_ptr<token_store> store::make_file_token_store(boost::asio::any_io_executor ex,
                                                          std::filesystem::path directory,
                                                          std::chrono::milliseconds lock_bound) {
    return std::make_shared<file_token_store>(std::move(ex), std::move(directory), lock_bound);
}

}  // namespace apollo_oauth
