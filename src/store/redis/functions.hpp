// The Redis Functions library that makes each coordination step atomic (FUNCTION LOAD REPLACE on
// every connection: a restarted or failed-over server gets it back).
#pragma once

#include <string_view>

namespace apollo_oauth::redis {

/// The library's source ("#!lua name=apollo_oauth_v7 ...").
std::string_view function_library() noexcept;

}  // namespace apollo_oauth::redis
