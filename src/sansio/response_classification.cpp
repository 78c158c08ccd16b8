// The client's reading of token and profile endpoint answers.
#include "sansio/response_classification.hpp"

namespace apollo_oauth::sansio {

namespace {

void fill_retry_after(const http_answer& answer, std::chrono::system_clock::time_point now,
                      diagnostics& diag) {
    if (answer.retry_after) {
        diag.retry_after = parse_retry_after(*answer.retry_after, now);
    }
}

}  // namespace

error_code classify_token_answer(const http_answer& answer, const token_request_context& ctx,
                                 std::chrono::system_clock::time_point now, token_set& out,
                                 diagnostics& diag) {
    auto ec = parse_token_response(answer.status, answer.body, ctx, out, diag);
    fill_retry_after(answer, now, diag);
    if (ec == errc::unexpected_status && answer.status == 429) {
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
