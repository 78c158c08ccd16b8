// What the client makes of an HTTP answer from the token or profile endpoint: status, body and the
// two headers it reads, in; a result or an error with diagnostics, out. Pure, so the client and
// the fuzz targets run the very same code.
#pragma once

#include "sansio/token_protocol.hpp"

#include <apollo_oauth/error.hpp>
#include <apollo_oauth/token_set.hpp>
#include <apollo_oauth/user_profile.hpp>

#include <chrono>
#include <optional>
#include <string_view>

namespace apollo_oauth::sansio {

/// The parts of a response the classification reads (views into the response).
struct http_answer {
    unsigned status = 0;
    std::string_view body{};
    std::optional<std::string_view> retry_after{};
    std::optional<std::string_view> www_authenticate{};
};

/// parse_token_response, plus: diag.retry_after from Retry-After (relative to `now`) on a 429 or a
/// 503, and a 429 is errc::rate_limited whatever its body (an RFC 6749 error object in it still
/// fills diag.error and diag.error_description). On error `out` is left empty.
error_code classify_token_answer(const http_answer& answer, const token_request_context& ctx,
                                 std::chrono::system_clock::time_point now, token_set& out,
                                 diagnostics& diag);

/// parse_profile_response, plus: a WWW-Authenticate: Bearer header's error fills diag, and
/// diag.retry_after comes from Retry-After on a 429 or a 503.
error_code classify_profile_answer(const http_answer& answer, std::chrono::system_clock::time_point now,
                                   user_profile& out, diagnostics& diag);

}  // namespace apollo_oauth::sansio
