// async_wait_for_change by polling: token_store's default (async_load every 100 ms, and at once
// when a commit or a release through the same store object wakes it) and the file store's (the
// record and the lease, read on its thread).
#pragma once

#include <apollo_oauth/token_store.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace apollo_oauth::store {

/// What one poll read.
struct poll_answer {
    error_code ec;  ///< an error ends nothing (the next poll tries again), but operation_aborted
    std::optional<stored_tokens> record;
    /// An acquire now would not be busy: the waiter ends with nullopt and asks for the lease again.
    bool lease_free = false;
};

/// Reads once, and calls its argument exactly once, from any thread.
using poll_step = std::function<void(std::function<void(poll_answer)>)>;

/// Polls at once, then after each `pause()` (the last one cut at max_wait), until a poll reads a
/// record above `known_generation` (or of that generation, in another state), completed with
/// it; until one finds the lease free, or max_wait has passed (one poll at its end), completed
/// with nullopt; or until total or terminal cancellation, or a poll answered operation_aborted,
/// completed with operation_aborted. The handler runs on a strand of `ex`, never inline.
void start_polling_wait(boost::asio::any_io_executor ex, std::uint64_t known_generation,
                        std::chrono::milliseconds max_wait, poll_step poll,
                        std::function<std::chrono::milliseconds()> pause, token_store::load_handler handler);

/// Polling waits that a writer of this process can make poll at once (token_store's default
/// coordination: a commit, or a lease given back, through the same store object). Thread-safe.
class wakeable_waits {
public:
    wakeable_waits();
    ~wakeable_waits();
    wakeable_waits(const wakeable_waits&) = delete;
    wakeable_waits& operator=(const wakeable_waits&) = delete;

    /// start_polling_wait, known under `account` until it completes.
    void start(std::string account, boost::asio::any_io_executor ex, std::uint64_t known_generation,
               std::chrono::milliseconds max_wait, poll_step poll,
               std::function<std::chrono::milliseconds()> pause, token_store::load_handler handler);

    /// Every wait on `account` polls now rather than at the end of its pause (one whose poll is on
    /// its way polls again as soon as that poll has answered).
    void wake(const std::string& account);

private:
    struct state;
    std::shared_ptr<state> state_;
};

}  // namespace apollo_oauth::store
