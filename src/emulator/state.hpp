// The emulator's OAuth state: clients, codes, grants, tokens, counters and queued faults, behind
// one mutex. No I/O, so every rule of the protocol can be read in one place.
#pragma once

#include <apollo_oauth/emulator/server.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace apollo_oauth::emulator::detail {

/// Decoded query or form parameters. Parsing rejects a repeated name (RFC 6749 §3.1, §3.2), so
/// one value per name is enough.
using fields = std::map<std::string, std::string, std::less<>>;

/// An RFC 6749 §5.2 error. The description is fixed text: it never echoes request values.
struct oauth_error {
    std::string error;
    std::string description;
};

struct authorize_outcome {
    /// Set when the request cannot be redirected (RFC 6749 §4.1.2.1: unknown client, unregistered
    /// redirect URI): the reason, for a 400 page.
    std::optional<std::string> page_error;
    std::string location;  ///< otherwise: where to redirect (code or error)
};

struct issued_tokens {
    std::string access_token;
    std::string refresh_token;
    std::chrono::seconds expires_in{0};
    std::vector<std::string> scopes;
    std::int64_t created_at = 0;  ///< Unix seconds
};

struct token_outcome {
    std::optional<oauth_error> error;  ///< 400, or 401 when error is invalid_client
    issued_tokens tokens;              ///< when no error
};

struct bearer_outcome {
    bool valid = false;
    std::string error;        ///< RFC 6750 §3.1 code; empty for a request without credentials
    std::string description;  ///< fixed text, no token
};

class oauth_state;

/// Holds counters::refreshes_in_flight up while a refresh request is being answered.
class refresh_in_flight {
public:
    refresh_in_flight() = default;
    explicit refresh_in_flight(oauth_state* state) noexcept : state_(state) {}
    refresh_in_flight(refresh_in_flight&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
    refresh_in_flight& operator=(refresh_in_flight&& other) noexcept;
    refresh_in_flight(const refresh_in_flight&) = delete;
    refresh_in_flight& operator=(const refresh_in_flight&) = delete;
    ~refresh_in_flight() { release(); }
    void release() noexcept;

private:
    oauth_state* state_ = nullptr;
};

class oauth_state {
public:
    explicit oauth_state(server_config config);

    const server_config& config() const noexcept { return config_; }

    // Requests. `query` is nullopt when it could not be parsed (malformed escape, repeated name).
    authorize_outcome authorize(const std::optional<fields>& query);
    token_outcome token(const std::optional<fields>& form);
    /// Checks an Authorization header value (nullopt: no header). Counts a failure as a 401.
    bearer_outcome check_bearer(std::optional<std::string_view> authorization);

    // Counting, done on receipt so that faults do not hide requests.
    void count_connection();
    void count_authorize();
    void count_profile();
    void count_api();
    /// Counts a token request; for a refresh_token grant the result keeps refreshes_in_flight up.
    [[nodiscard]] refresh_in_flight count_token(std::optional<std::string_view> grant_type);
    counters stats() const;

    // Faults.
    void inject(fault f);
    void clear_faults();
    /// The first queued fault for `where` (or route::any), used up by one.
    std::optional<fault> take_fault(route where);

    // Test knobs.
    void deny_consent(bool deny);
    void set_expires_in(std::chrono::seconds expires_in);
    void revoke_access_token(const std::string& access_token);
    void expire_access_token(const std::string& access_token);
    void revoke_grant_of_refresh_token(const std::string& refresh_token);
    std::string newest_refresh_token_of(const std::string& refresh_token) const;
    grant_stats grant_stats_of(const std::string& refresh_token) const;
    std::vector<std::string> issued_secrets() const;

private:
    friend class refresh_in_flight;
    using steady_time = std::chrono::steady_clock::time_point;

    struct code_record {
        std::string client_id;
        std::string redirect_uri;
        std::vector<std::string> scopes;
        std::optional<std::string> code_challenge;
        std::string code_challenge_method;
        steady_time expires_at;
        bool used = false;
        std::optional<std::uint64_t> grant;  ///< the grant it was exchanged for
    };
    struct grant_record {
        std::string client_id;
        std::vector<std::string> scopes;
        std::string access_token;   ///< current
        std::string refresh_token;  ///< current
        grant_stats stats;
    };
    struct access_record {
        std::uint64_t grant = 0;
        steady_time expires_at;
        bool revoked = false;
    };
    struct refresh_record {
        std::uint64_t grant = 0;
        bool revoked = false;
    };

    const registered_client* find_client(std::string_view client_id) const;
    token_outcome exchange_code(const registered_client& client, const fields& form);
    token_outcome refresh(const registered_client& client, const fields& form);
    issued_tokens issue_pair(std::uint64_t grant_id);
    void revoke_grant(std::uint64_t grant_id);
    std::string new_secret();
    void refresh_finished() noexcept;

    const server_config config_;
    mutable std::mutex mutex_;
    bool deny_consent_ = false;
    std::chrono::seconds expires_in_;
    counters counters_;
    std::deque<fault> faults_;
    std::uint64_t next_grant_ = 1;
    std::unordered_map<std::string, code_record> codes_;
    std::unordered_map<std::uint64_t, grant_record> grants_;
    std::unordered_map<std::string, access_record> access_tokens_;
    std::unordered_map<std::string, refresh_record> refresh_tokens_;
    std::vector<std::string> secrets_;  ///< every secret configured, and issued when retain_revoked
};

}  // namespace apollo_oauth::emulator::detail
