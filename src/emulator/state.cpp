#include "emulator/state.hpp"

#include "emulator/crypto.hpp"

#include <boost/algorithm/string/predicate.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url.hpp>

#include <algorithm>
#include <initializer_list>

namespace apollo_oauth::emulator::detail {
namespace {

// Apollo adds this scope to every app and every authorization.
constexpr std::string_view default_scope = "read_user_profile";

std::optional<std::string_view> get(const fields& f, std::string_view name) {
    if (const auto it = f.find(name); it != f.end()) {
        return std::string_view(it->second);
    }
    return std::nullopt;
}

bool contains(const std::vector<std::string>& list, std::string_view value) {
    return std::find(list.begin(), list.end(), value) != list.end();
}

// RFC 6749 §3.3: space-delimited; runs of spaces are tolerated, duplicates dropped, order kept.
std::vector<std::string> split_scope(std::string_view scope) {
    std::vector<std::string> out;
    while (!scope.empty()) {
        const auto start = scope.find_first_not_of(' ');
        if (start == std::string_view::npos) {
            break;
        }
        scope.remove_prefix(start);
        const auto token = scope.substr(0, scope.find(' '));
        if (!contains(out, token)) {
            out.emplace_back(token);
        }
        scope.remove_prefix(token.size());
    }
    return out;
}

// redirect_uri keeps its own query (RFC 6749 §3.1.2); values are encoded so that only unreserved
// characters stay literal: a '+' in state must come back as a '+', not a space.
std::string redirect_to(
    std::string_view redirect_uri,
    std::initializer_list<std::pair<std::string_view, std::optional<std::string_view>>> params) {
    boost::urls::url url = boost::urls::parse_uri_reference(redirect_uri).value();
    for (const auto& [name, value] : params) {
        if (value) {
            url.encoded_params().append({name, boost::urls::encode(*value, boost::urls::unreserved_chars)});
        }
    }
    return std::string(url.buffer());
}

token_outcome token_error(std::string error, std::string description) {
    return {oauth_error{std::move(error), std::move(description)}, {}};
}

}  // namespace

refresh_in_flight& refresh_in_flight::operator=(refresh_in_flight&& other) noexcept {
    if (this != &other) {
        release();
        state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
}

void refresh_in_flight::release() noexcept {
    if (auto* state = std::exchange(state_, nullptr)) {
        state->refresh_finished();
    }
}

oauth_state::oauth_state(server_config config) : config_(std::move(config)), expires_in_(config_.expires_in) {
    for (const auto& client : config_.clients) {
        secrets_.push_back(client.client_secret);
    }
}

const registered_client* oauth_state::find_client(std::string_view client_id) const {
    for (const auto& client : config_.clients) {
        if (client.client_id == client_id) {
            return &client;
        }
    }
    return nullptr;
}

std::string oauth_state::new_secret() {
    std::string secret = random_token();
    if (config_.retain_revoked) {
        secrets_.push_back(secret);
    }
    return secret;
}

authorize_outcome oauth_state::authorize(const std::optional<fields>& query) {
    if (!query) {
        return {"The request has a malformed or repeated parameter.", {}};
    }
    const registered_client* client = nullptr;
    if (const auto id = get(*query, "client_id")) {
        client = find_client(*id);
    }
    if (client == nullptr) {
        return {"Unknown client_id.", {}};
    }
    const auto redirect_uri = get(*query, "redirect_uri");
    if (!redirect_uri || !contains(client->redirect_uris, *redirect_uri)) {
        return {"The redirect_uri is not registered for this application.", {}};
    }

    // From here on errors go back to the application through its redirect URI.
    const auto state = get(*query, "state");
    const auto fail = [&](std::string_view error, std::string_view description) {
        return authorize_outcome{std::nullopt, redirect_to(*redirect_uri, {{"error", error},
                                                                           {"error_description", description},
                                                                           {"state", state}})};
    };

    const auto response_type = get(*query, "response_type");
    if (!response_type) {
        return fail("invalid_request", "response_type is required.");
    }
    if (*response_type != "code") {
        return fail("unsupported_response_type", "Only response_type=code is supported.");
    }

    std::vector<std::string> scopes{std::string(default_scope)};
    const auto requested = split_scope(get(*query, "scope").value_or(""));
    for (const auto& scope : requested.empty() ? client->scopes : requested) {
        if (scope != default_scope && !contains(client->scopes, scope)) {
            return fail("invalid_scope", "The requested scope is not available to this application.");
        }
        if (!contains(scopes, scope)) {
            scopes.push_back(scope);
        }
    }

    std::optional<std::string> challenge;
    std::string method;
    if (const auto c = get(*query, "code_challenge")) {
        method = get(*query, "code_challenge_method").value_or("plain");  // RFC 7636 §4.3 default
        if (method != "S256" && method != "plain") {
            return fail("invalid_request", "code_challenge_method must be S256 or plain.");
        }
        if (c->size() < 43 || c->size() > 128) {
            return fail("invalid_request", "code_challenge must have 43 to 128 characters.");
        }
        challenge.emplace(*c);
    }

    const std::lock_guard lock(mutex_);
    if (deny_consent_) {
        return fail("access_denied", "The user denied the authorization.");
    }
    std::string code = new_secret();
    codes_.emplace(
        code, code_record{client->client_id, std::string(*redirect_uri), std::move(scopes),
                          std::move(challenge), std::move(method),
                          std::chrono::steady_clock::now() + config_.code_lifetime, false, std::nullopt});
    return {std::nullopt, redirect_to(*redirect_uri, {{"code", code}, {"state", state}})};
}

token_outcome oauth_state::token(const std::optional<fields>& form) {
    if (!form) {
        return token_error("invalid_request", "The request body has a malformed or repeated parameter.");
    }
    const auto grant_type = get(*form, "grant_type");
    if (!grant_type) {
        return token_error("invalid_request", "grant_type is required.");
    }
    const auto client_id = get(*form, "client_id");
    const auto client_secret = get(*form, "client_secret");
    if (!client_id || !client_secret) {
        return token_error("invalid_client", "Client authentication is required.");
    }
    const registered_client* client = find_client(*client_id);
    if (client == nullptr || !secrets_equal(*client_secret, client->client_secret)) {
        return token_error("invalid_client", "Client authentication failed.");
    }

    const std::lock_guard lock(mutex_);
    if (*grant_type == "authorization_code") {
        return exchange_code(*client, *form);
    }
    if (*grant_type == "refresh_token") {
        return refresh(*client, *form);
    }
    return token_error("unsupported_grant_type", "grant_type must be authorization_code or refresh_token.");
}

token_outcome oauth_state::exchange_code(const registered_client& client, const fields& form) {
    const auto code = get(form, "code");
    const auto redirect_uri = get(form, "redirect_uri");
    if (!code || !redirect_uri) {
        return token_error("invalid_request", "code and redirect_uri are required.");
    }
    const auto it = codes_.find(std::string(*code));
    if (it == codes_.end()) {
        return token_error("invalid_grant", "The authorization code is invalid.");
    }
    code_record& record = it->second;
    if (record.used) {
        // RFC 6749 §4.1.2: a code presented twice may have been stolen, so the tokens it granted
        // are revoked too, as Doorkeeper (Apollo's OAuth server) does.
        if (record.grant) {
            revoke_grant(*record.grant);
        }
        return token_error("invalid_grant", "The authorization code was already used.");
    }
    if (std::chrono::steady_clock::now() >= record.expires_at) {
        return token_error("invalid_grant", "The authorization code expired.");
    }
    if (record.client_id != client.client_id) {
        return token_error("invalid_grant", "The authorization code was issued to another client.");
    }
    if (record.redirect_uri != *redirect_uri) {
        return token_error("invalid_grant", "redirect_uri does not match the authorization request.");
    }
    if (record.code_challenge) {
        const auto verifier = get(form, "code_verifier");
        if (!verifier) {
            return token_error("invalid_grant", "code_verifier is required.");
        }
        const std::string computed =
            record.code_challenge_method == "S256" ? pkce_s256(*verifier) : std::string(*verifier);
        if (!secrets_equal(computed, *record.code_challenge)) {
            return token_error("invalid_grant", "The code_verifier does not match the code_challenge.");
        }
    }

    const std::uint64_t grant_id = next_grant_++;
    grants_.emplace(grant_id, grant_record{client.client_id, record.scopes, {}, {}, {}});
    if (config_.retain_revoked) {
        record.used = true;
        record.grant = grant_id;
    } else {
        codes_.erase(it);  // a replay is then an unknown code
    }
    return {std::nullopt, issue_pair(grant_id)};
}

token_outcome oauth_state::refresh(const registered_client& client, const fields& form) {
    const auto refresh_token = get(form, "refresh_token");
    const auto redirect_uri = get(form, "redirect_uri");
    if (!refresh_token) {
        return token_error("invalid_request", "refresh_token is required.");
    }
    if (!redirect_uri) {
        return token_error("invalid_request", "redirect_uri is required.");
    }
    const auto it = refresh_tokens_.find(std::string(*refresh_token));
    if (it != refresh_tokens_.end() && it->second.revoked) {
        grant_record& reused = grants_.at(it->second.grant);
        ++reused.stats.reuses;
        // A rotated token presented again: someone holds a copy. Rotating providers then revoke
        // the whole grant, the thief's pair and the legitimate one alike.
        if (config_.revoke_grant_on_refresh_token_reuse && !reused.stats.revoked) {
            revoke_grant(it->second.grant);
        }
    }
    if (it == refresh_tokens_.end() || it->second.revoked) {
        return token_error("invalid_grant", "The refresh token is invalid or was revoked.");
    }
    grant_record& grant = grants_.at(it->second.grant);
    if (grant.client_id != client.client_id) {
        return token_error("invalid_grant", "The refresh token was issued to another client.");
    }
    if (!contains(client.redirect_uris, *redirect_uri)) {
        return token_error("invalid_grant", "The redirect_uri is not registered for this application.");
    }
    auto scopes = split_scope(get(form, "scope").value_or(""));
    for (const auto& scope : scopes) {
        if (!contains(grant.scopes, scope)) {
            return token_error("invalid_scope", "The requested scope exceeds the scope of the grant.");
        }
    }

    // Rotation: the old pair dies in the same critical section that creates the new one, so no
    // request ever sees both pairs valid.
    const std::uint64_t grant_id = it->second.grant;
    if (config_.retain_revoked) {
        access_tokens_.at(grant.access_token).revoked = true;
        it->second.revoked = true;
    } else {
        access_tokens_.erase(grant.access_token);
        refresh_tokens_.erase(it);
    }
    if (!scopes.empty()) {
        grant.scopes = std::move(scopes);
    }
    ++grant.stats.refreshes;
    ++counters_.successful_refreshes;
    return {std::nullopt, issue_pair(grant_id)};
}

issued_tokens oauth_state::issue_pair(std::uint64_t grant_id) {
    grant_record& grant = grants_.at(grant_id);
    grant.access_token = new_secret();
    grant.refresh_token = new_secret();
    access_tokens_.emplace(grant.access_token,
                           access_record{grant_id, std::chrono::steady_clock::now() + expires_in_, false});
    refresh_tokens_.emplace(grant.refresh_token, refresh_record{grant_id, false});
    const auto now = std::chrono::system_clock::now();
    return {grant.access_token, grant.refresh_token, expires_in_, grant.scopes,
            std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()};
}

void oauth_state::revoke_grant(std::uint64_t grant_id) {
    // Earlier pairs were revoked when they were rotated, so the current pair is all that is left.
    grant_record& grant = grants_.at(grant_id);
    access_tokens_.at(grant.access_token).revoked = true;
    refresh_tokens_.at(grant.refresh_token).revoked = true;
    ++grant.stats.revocations;
    grant.stats.revoked = true;
}

bearer_outcome oauth_state::check_bearer(std::optional<std::string_view> authorization) {
    const std::lock_guard lock(mutex_);
    const auto reject = [this](std::string error, std::string description) {
        ++counters_.unauthorized_responses;
        return bearer_outcome{false, std::move(error), std::move(description)};
    };
    if (!authorization) {
        // RFC 6750 §3.1: a request without credentials gets no error code.
        return reject({}, "An access token is required.");
    }
    std::string_view value = *authorization;
    const auto space = value.find(' ');
    if (space == std::string_view::npos || !boost::algorithm::iequals(value.substr(0, space), "Bearer")) {
        return reject("invalid_request", "The Authorization header is not a Bearer token.");
    }
    value.remove_prefix(space);
    while (!value.empty() && value.front() == ' ') {
        value.remove_prefix(1);
    }
    while (!value.empty() && value.back() == ' ') {
        value.remove_suffix(1);
    }
    if (value.empty()) {
        return reject("invalid_request", "The Authorization header is not a Bearer token.");
    }
    const auto it = access_tokens_.find(std::string(value));
    if (it == access_tokens_.end()) {
        return reject("invalid_token", "The access token is invalid.");
    }
    if (it->second.revoked) {
        return reject("invalid_token", "The access token was revoked.");
    }
    if (std::chrono::steady_clock::now() >= it->second.expires_at) {
        return reject("invalid_token", "The access token expired.");
    }
    return {true, {}, {}};
}

void oauth_state::count_connection() {
    const std::lock_guard lock(mutex_);
    ++counters_.connections_accepted;
}

void oauth_state::count_authorize() {
    const std::lock_guard lock(mutex_);
    ++counters_.authorize_requests;
}

void oauth_state::count_profile() {
    const std::lock_guard lock(mutex_);
    ++counters_.profile_requests;
}

void oauth_state::count_api() {
    const std::lock_guard lock(mutex_);
    ++counters_.api_requests;
}

refresh_in_flight oauth_state::count_token(std::optional<std::string_view> grant_type) {
    const std::lock_guard lock(mutex_);
    ++counters_.token_requests;
    if (grant_type == "authorization_code") {
        ++counters_.authorization_code_grants;
    } else if (grant_type == "refresh_token") {
        ++counters_.refresh_token_grants;
        ++counters_.refreshes_in_flight;
        counters_.max_refreshes_in_flight =
            std::max(counters_.max_refreshes_in_flight, counters_.refreshes_in_flight);
        return refresh_in_flight(this);
    }
    return {};
}

void oauth_state::refresh_finished() noexcept {
    const std::lock_guard lock(mutex_);
    --counters_.refreshes_in_flight;
}

counters oauth_state::stats() const {
    const std::lock_guard lock(mutex_);
    return counters_;
}

void oauth_state::inject(fault f) {
    if (f.count == 0) {
        return;
    }
    const std::lock_guard lock(mutex_);
    faults_.push_back(std::move(f));
}

void oauth_state::clear_faults() {
    const std::lock_guard lock(mutex_);
    faults_.clear();
}

std::optional<fault> oauth_state::take_fault(route where) {
    const std::lock_guard lock(mutex_);
    for (auto it = faults_.begin(); it != faults_.end(); ++it) {
        if (it->where == route::any || it->where == where) {
            fault taken = *it;
            if (--it->count == 0) {
                faults_.erase(it);
            }
            return taken;
        }
    }
    return std::nullopt;
}

void oauth_state::deny_consent(bool deny) {
    const std::lock_guard lock(mutex_);
    deny_consent_ = deny;
}

void oauth_state::set_expires_in(std::chrono::seconds expires_in) {
    const std::lock_guard lock(mutex_);
    expires_in_ = expires_in;
}

void oauth_state::revoke_access_token(const std::string& access_token) {
    const std::lock_guard lock(mutex_);
    if (const auto it = access_tokens_.find(access_token); it != access_tokens_.end()) {
        it->second.revoked = true;
    }
}

void oauth_state::expire_access_token(const std::string& access_token) {
    const std::lock_guard lock(mutex_);
    if (const auto it = access_tokens_.find(access_token); it != access_tokens_.end()) {
        it->second.expires_at = std::chrono::steady_clock::now();
    }
}

void oauth_state::revoke_grant_of_refresh_token(const std::string& refresh_token) {
    const std::lock_guard lock(mutex_);
    if (const auto it = refresh_tokens_.find(refresh_token); it != refresh_tokens_.end()) {
        revoke_grant(it->second.grant);
    }
}

std::string oauth_state::newest_refresh_token_of(const std::string& refresh_token) const {
    const std::lock_guard lock(mutex_);
    if (const auto it = refresh_tokens_.find(refresh_token); it != refresh_tokens_.end()) {
        return grants_.at(it->second.grant).refresh_token;
    }
    return {};
}

grant_stats oauth_state::grant_stats_of(const std::string& refresh_token) const {
    const std::lock_guard lock(mutex_);
    if (const auto it = refresh_tokens_.find(refresh_token); it != refresh_tokens_.end()) {
        return grants_.at(it->second.grant).stats;
    }
    return {};
}

std::vector<std::string> oauth_state::issued_secrets() const {
    const std::lock_guard lock(mutex_);
    if (config_.retain_revoked) {
        return secrets_;
    }
    // Only what is still held: the rest was forgotten on purpose (server_config::retain_revoked).
    std::vector<std::string> held = secrets_;  // the client secrets
    for (const auto& [code, record] : codes_) {
        held.push_back(code);
    }
    for (const auto& [token, record] : access_tokens_) {
        held.push_back(token);
    }
    for (const auto& [token, record] : refresh_tokens_) {
        held.push_back(token);
    }
    return held;
}

}  // namespace apollo_oauth::emulator::detail
