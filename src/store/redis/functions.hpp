// The Redis Functions library that makes each coordination step atomic (checked on every
// connection, and loaded when missing: a restarted or failed-over server gets it back).
#pragma once

#include "store/redis/resp.hpp"

#include <string_view>

namespace apollo_oauth::redis {

/// The library's source ("#!lua name=apollo_oauth_v8 ...").
std::string_view function_library() noexcept;

/// Its name ("apollo_oauth_v8").
std::string_view function_library_name() noexcept;

/// Whether `listed`, a reply to FUNCTION LIST LIBRARYNAME function_library_name() WITHCODE, holds
/// this library with exactly this source (false for an error reply, or one of another shape).
bool lists_this_library(const reply& listed) noexcept;

}  // namespace apollo_oauth::redis
