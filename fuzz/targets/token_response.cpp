// Fuzz target: token and profile endpoint answers (RFC 6749 §5.1/§5.2, Apollo's profile) as the
// client classifies them. Input: one byte picks the HTTP status and the grant, the rest is the body.
#include "sansio/response_classification.hpp"
#include "token_checks.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace apollo_oauth;

namespace {

constexpr std::array<unsigned, 16> statuses = {200, 201, 204, 299, 301, 400, 401, 403,
                                               404, 429, 500, 502, 503, 100, 600, 0};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const unsigned status = statuses[data[0] % statuses.size()];
    const bool refreshing = (data[0] & 0x10) != 0;
    const std::string_view body{reinterpret_cast<const char*>(data) + 1, size - 1};
    const auto now = std::chrono::system_clock::time_point{std::chrono::seconds{1795824000}};

    const sansio::http_answer answer{.status = status, .body = body};
    token_set tokens;
    diagnostics diag;
    const auto ec = sansio::classify_token_answer(answer, fuzz::token_context(refreshing), now, tokens, diag);
    fuzz::check(diag.http_status == status, "http_status not kept");
    if (ec) {
        fuzz::check(tokens.access_token.empty() && tokens.refresh_token.empty(),
                    "tokens kept after an error");
    }
    fuzz::check_token_outcome(body, ec, tokens, diag);

    user_profile profile;
    diagnostics profile_diag;
    const auto profile_ec = sansio::classify_profile_answer(answer, now, profile, profile_diag);
    fuzz::check_diagnostic_sizes(profile_diag);
    if (status == 401) {
        fuzz::check(profile_ec == errc::unauthorized, "a 401 profile answer is not unauthorized");
    }
    return 0;
}
