// token_store: where the token cache persists each account's token pair.
//
// Apollo revokes the old pair on every refresh, so the newest refresh token is the only key to a
// customer's grant: the cache writes it here *before* anyone sees the new access token. Records
// carry a generation number (1 for the first pair stored for an account, +1 per rotation) and
// writes are compare-and-set on it, so a slow writer holding an older pair can never overwrite a
// newer one. The lease operations let a store shared by several processes (Redis, say) decide
// who refreshes an account now; single-process stores grant every lease.
#pragma once

#include <apollo_oauth/error.hpp>
#include <apollo_oauth/token_set.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace apollo_oauth {

struct stored_tokens {
    token_set tokens;
    std::uint64_t generation = 0;
};

/// The persistence interface. Implementations must be thread-safe. Handlers may be invoked on any
/// thread but never inline from the initiating call (the cache calls these without holding its
/// locks, and relies on that).
class token_store {
public:
    using load_handler = boost::asio::any_completion_handler<void(error_code, std::optional<stored_tokens>)>;
    using save_handler = boost::asio::any_completion_handler<void(error_code)>;
    using lease_handler = boost::asio::any_completion_handler<void(error_code, bool)>;

    virtual ~token_store() = default;

    /// The account's record, or nullopt when there is none.
    /// Errors: errc::store_failure (I/O), errc::corrupt_record (unreadable record).
    virtual void async_load(std::string account, load_handler handler) = 0;

    /// Writes `record` when the stored generation equals `expected_generation` (0: no record yet).
    /// Errors: errc::generation_conflict when another generation is stored (nothing is written),
    /// errc::store_failure (I/O: nothing or the complete record is written, never a torn one),
    /// errc::invalid_argument when record.generation is not above expected_generation (a store
    /// never goes back) or a token is not valid UTF-8.
    virtual void async_save(std::string account, stored_tokens record, std::uint64_t expected_generation,
                            save_handler handler) = 0;

    /// Asks for the right to refresh `account` for `ttl` on behalf of `holder`. Completes with
    /// true when granted (or already held by `holder`). The default grants always: right for a
    /// store used by one process, where the cache already coalesces refreshes.
    virtual void async_acquire_lease(std::string account, std::string holder, std::chrono::milliseconds ttl,
                                     lease_handler handler);

    /// Gives a lease back early. The default does nothing.
    virtual void release_lease(const std::string& account, const std::string& holder);
};

/// Keeps records in memory (tests, and processes that accept re-authorization after a restart).
/// Completes on `ex` through a post.
std::shared_ptr<token_store> make_memory_token_store(boost::asio::any_io_executor ex);

/// One file per account in `directory` (created 0700 if missing; a directory writable by group or
/// others, or owned by another user than this one or root, is refused with store_failure on every
/// call), each written atomically: a
/// temporary file in the same directory, fsync, rename over the old one, fsync of the directory.
/// Files are mode 0600; a process killed at any instant leaves the old or the new record, never
/// a torn one. The blocking file work runs on a private thread, never on the caller's executor;
/// handlers run on `ex`. A process-local mutex serialises compare-and-set per store object; an
/// advisory lock (flock) on each record serialises it across processes sharing the directory.
std::shared_ptr<token_store> make_file_token_store(boost::asio::any_io_executor ex,
                                                   std::filesystem::path directory);

}  // namespace apollo_oauth
