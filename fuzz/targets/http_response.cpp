// Fuzz target: a whole HTTP response as the transport reads it (Beast's parser with the client's
// default header and body limits, the stream ending where the input ends), then the client's
// classification of it as a token answer and as a profile answer.
#include "http/response_reading.hpp"
#include "token_checks.hpp"

#include <apollo_oauth/config.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace apollo_oauth;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes{reinterpret_cast<const char*>(data), size};
    const apollo_oauth::limits limits;
    http::response res;
    if (http::parse_response(bytes, limits.header_bytes, limits.token_body_bytes, res)) {
        return 0;
    }
    fuzz::check(res.body().size() <= limits.token_body_bytes, "body past the limit");
    const auto answer = http::answer_of(res);
    fuzz::check(answer.status == res.result_int() && answer.body.size() == res.body().size(),
                "answer_of does not view the response");
    const auto now = std::chrono::system_clock::time_point{std::chrono::seconds{1795824000}};

    token_set tokens;
    diagnostics diag;
    const auto ec = sansio::classify_token_answer(answer, fuzz::token_context(true), now, tokens, diag);
    fuzz::check_token_outcome(answer.body, ec, tokens, diag);
    if (answer.retry_after) {
        fuzz::check(!diag.retry_after || *diag.retry_after >= std::chrono::seconds{0},
                    "negative retry_after");
    }

    user_profile profile;
    diagnostics profile_diag;
    sansio::classify_profile_answer(answer, now, profile, profile_diag);
    fuzz::check_diagnostic_sizes(profile_diag);
    return 0;
}
