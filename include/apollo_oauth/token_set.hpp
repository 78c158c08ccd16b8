// token_set: what the token endpoint returns (RFC 6749 §5.1, Apollo's fields).
#pragma once

#include <apollo_oauth/secret.hpp>

#include <chrono>
#include <iosfwd>
#include <string>
#include <vector>

namespace apollo_oauth {

struct token_set {
    secret_string access_token{};
    std::string token_type{};  ///< always "Bearer" (other types are rejected while parsing)
    /// Empty only when a code exchange returned none. A refresh response without one keeps the
    /// refresh token that was sent (RFC 6749 §6).
    secret_string refresh_token{};
    /// Granted scopes. When the response has no `scope` (RFC 6749 §5.1: the requested scope was
    /// granted), these are the requested ones; empty when nothing was requested either.
    std::vector<std::string> scopes{};
    /// Lifetime from the response; client_config::assumed_lifetime when the server sent none.
    std::chrono::seconds expires_in{0};
    /// Apollo's `created_at` (server clock, Unix seconds); the local send time when absent.
    std::chrono::system_clock::time_point created_at{};
    /// Local clock when the request was sent, plus expires_in: conservative against both latency
    /// and a skewed server clock, which is why created_at is not used for it.
    std::chrono::system_clock::time_point expires_at{};

    bool has_scope(std::string_view scope) const noexcept;
};

/// Prints scopes, type and expiry (control bytes as \xNN: no forged log line); tokens as [redacted].
std::ostream& operator<<(std::ostream& os, const token_set& t);

}  // namespace apollo_oauth
