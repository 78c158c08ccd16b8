// async_wait_for_change by polling: token_store's default (async_load every 100 ms) and the file
// store's (the record and the lease, read on its thread).
#pragma once

#include <apollo_oauth/token_store.hpp>

#include <chrono>
#include <functional>
#include <optional>

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

}  // namespace apollo_oauth::store
