// The file store with its lock bound chosen (make_file_token_store uses default_lock_wait).
#pragma once

#include <apollo_oauth/token_store.hpp>

#include <chrono>
#include <filesystem>
#include <memory>

namespace apollo_oauth::store {

/// make_file_token_store, whose calls give up on an account lock kept by someone else `lock_bound`
/// after they were made (tests: a bound of a few hundred milliseconds rather than seconds).
std::shared_ptr<token_store> make_file_token_store(boost::asio::any_io_executor ex,
                                                   std::filesystem::path directory,
                                                   std::chrono::milliseconds lock_bound);

}  // namespace apollo_oauth::store
