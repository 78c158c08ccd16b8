// The client's reading of token and profile endpoint answers.
#include "sansio/response_classification.hpp"

namespace apollo_oauth::sansio {

namespace {

// Retry-After is read where it asks the client to wait: with 429 (RFC 6585) and 503 (RFC 9110
// §10.2.3). On another status (a 400 sent with one by a misconfigured proxy) it would stretch the
// cache's backoff to backoff_max for an answer that says nothing of load.
void fill_retry_after(const http_answer& answer, std::chrono::system_clock::time_point now,
                      diagnostics& diag) {
    if (answer.retry_after && (answer.status == 429 || answer.status == 503)) {
        diag.retry_after = parse_retry_after(*answer.retry_after, now);
    }
}

}  // namespace

error_code classify_token_answer(const http_answer& answer, const token_request_context& ctx,
                                 std::chrono::system_clock::time_point now, token_set& out,
                                 diagnostics& diag) {
    auto ec = parse_token_response(answer.status, answer.body, ctx, out, diag);
    fill_retry_after(answer, now, diag);
    // A 429 is a rate limit whatever its body says, as on the profile endpoint: an error object
    // sent with it (a gateway's {"error":"too_many_requests"}, or even "invalid_grant") stays in
    // diag, but taken as the answer it would be unknown_oauth_error, which the cache backs off
    // from without the Retry-After, or a grant given up for one that was never looked at.
    if (answer.status == 429) {
        ec = errc::rate_limited;
    }
    if (ec) {
        out = token_set{};
    }
    return ec;
}

error_code classify_profile_answer(const http_answer& answer, std::chrono::system_clock::time_point now,
                                   user_profile& out, diagnostics& diag) {
    auto ec = parse_profile_response(answer.status, answer.body, out, diag);
    if (answer.www_authenticate) {
        parse_www_authenticate(*answer.www_authenticate, diag);
    }
    fill_retry_after(answer, now, diag);
    return ec;
}

}  // namespace apollo_oauth::sansio
