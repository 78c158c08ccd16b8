// Fuzz target: the response headers the client reads itself, Retry-After (RFC 9110 §10.2.3) and
// WWW-Authenticate: Bearer (RFC 6750 §3).
#include "fuzz_check.hpp"
#include "sansio/token_protocol.hpp"

#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace apollo_oauth;
using namespace std::chrono;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input{reinterpret_cast<const char*>(data), size};
    // A fixed "now" keeps a crash reproducible: Sun, 29 Nov 2026 00:00:00 GMT.
    const system_clock::time_point now{seconds{1795824000}};

    if (auto delay = sansio::parse_retry_after(input, now)) {
        fuzz::check(*delay >= seconds{0} && *delay <= sansio::max_retry_after,
                    "Retry-After delay out of range");
        // What api_client does with it: must not overflow.
        fuzz::check(milliseconds(*delay).count() >= 0, "Retry-After in milliseconds overflows");
        std::uint64_t digits = 0;
        const auto [end, ec] = std::from_chars(input.data(), input.data() + input.size(), digits);
        if (ec == std::errc{} && end == input.data() + input.size() && digits < 1'000'000) {
            fuzz::check(delay->count() == static_cast<std::int64_t>(digits), "delay-seconds not kept as is");
        }
    }

    diagnostics diag;
    sansio::parse_www_authenticate(input, diag);
    fuzz::check_diagnostic_sizes(diag);
    return 0;
}
