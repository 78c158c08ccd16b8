// The file store with its lock bound chosen (make_file_token_store uses default_lock_bound).
#pragma once

#include <apollo_oauth/token_store.hpp>

#include <chrono>
#include <filesystem>
#include <memory>

namespace apollo_oauth::store {

/// How long the file store keeps trying a call whose account lock someone else keeps, on a timer,
/// before it fails the call with errc::store_failure, instead of waiting for as long as a stopped
/// holder keeps it: a process under SIGSTOP or a debugger. A holder runs a read, a write and two
/// fsyncs; a store_failure is retryable (the cache tries again after its backoff, and retries a
/// commit). Well under the cache's stop_flush_timeout (10 s) and a third of the lease's ttl, so
/// that one such wait neither spends a shutdown's flush nor lets a lease lapse between renewals.
inline constexpr std::chrono::milliseconds default_lock_bound{2'000};

/// make_file_token_store, whose calls give up on an account lock kept by someone else `lock_bound`
/// after they were made (tests: a bound of a few hundred milliseconds rather than seconds).
std::shared_ptr<token_store> make_file_token_store(boost::asio::any_io_executor ex,
                                                   std::filesystem::path directory,
                                                   std::chrono::milliseconds lock_bound);

}  // namespace apollo_oauth::store
