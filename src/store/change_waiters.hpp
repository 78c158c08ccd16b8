// async_wait_for_change for stores that see every write themselves (the memory store): callers
// waiting for an account's record to move past a generation, woken by the writes, or by a timer.
#pragma once

#include <apollo_oauth/token_store.hpp>

#include <memory>
#include <string>

namespace apollo_oauth::store {

class change_waiters {
public:
    explicit change_waiters(boost::asio::any_io_executor ex);

    /// Completes through a post with `current` when it is already past `known_generation` (or
    /// its state changed), else with nullopt at once when `lease_free` (the lease was given back
    /// or ran out before the wait began: its caller asks for it again), else when notify()
    /// brings such a record, else with nullopt after `max_wait`. Total and terminal cancellation
    /// complete it with operation_aborted.
    void wait(std::string account, std::uint64_t known_generation,
              const std::optional<stored_tokens>& current, bool lease_free,
              std::chrono::milliseconds max_wait, token_store::load_handler handler);

    /// `record` is now stored for `account`.
    void notify(const std::string& account, const stored_tokens& record);

    /// A holder gave the lease of `account` back without a commit: every wait on it completes
    /// with nullopt, so that its cache asks for the lease again now.
    void lease_given_back(const std::string& account);

private:
    struct state;
    std::shared_ptr<state> state_;
};

}  // namespace apollo_oauth::store
