// Pending authorizations: started (authorize URL out), verified (callback in), and
// authorization_flow, which holds them in memory between the two.
#include <apollo_oauth/authorization.hpp>

#include "sansio/encoding.hpp"
#include "sansio/random.hpp"
#include "sansio/token_protocol.hpp"
#include "sansio/url.hpp"

#include <apollo_oauth/detail/secure_wipe.hpp>

#include <boost/system/system_error.hpp>

#include <algorithm>
#include <deque>
#include <mutex>
#include <unordered_map>

namespace apollo_oauth {

namespace {

using steady = std::chrono::steady_clock;
using sys_time = std::chrono::system_clock::time_point;

// Memory bound: beyond this many remembered states the oldest is forgotten, so a flood of
// authorize requests that never come back cannot grow the map without limit.
constexpr std::size_t max_entries = 100'000;

struct pending_entry {
    pending_authorization pending;
    std::string session_digest;  ///< SHA-256 of authorization_request::session; empty: unbound
    bool consumed = false;
};

// The map is keyed by SHA-256 of the state, not by the state: a lookup compares the presented
// value with stored keys (bucket and string comparisons that exit early), and timing them can
// then reveal only digest prefixes, which say nothing about a valid state.
std::string lookup_key(std::string_view state) {
    return sansio::code_challenge_s256(state);
}

// The checks after parsing, shared by verify_callback and authorization_flow (which parses first
// to find the entry).
boost::system::result<authorization_grant> verify_parsed(const pending_authorization& pending,
                                                         sansio::callback_params& params, sys_time now,
                                                         diagnostics* diag) {
    if (!params.state || params.state->empty()) {
        return error_code(errc::missing_state);
    }
    if (!constant_time_equal(*params.state, pending.state)) {
        return error_code(errc::unknown_state);
    }
    if (pending.expires_at <= now) {
        return error_code(errc::state_expired);
    }
    if (!sansio::same_redirect_location(params.base, pending.redirect_uri) ||
        !sansio::keeps_redirect_query(params, pending.redirect_uri)) {
        return error_code(errc::redirect_uri_not_registered);
    }
    if (params.error) {
        if (diag) {
            diag->error = sansio::diagnostic_text(*params.error);
            diag->error_description = sansio::diagnostic_text(params.error_description.value_or(""));
            diag->error_uri = sansio::diagnostic_text(params.error_uri.value_or(""));
        }
        return error_code(errc_from_oauth_error(*params.error));
    }
    if (!params.code || params.code->empty()) {
        return error_code(errc::missing_code);
    }
    authorization_grant grant;
    grant.code = secret_string(std::move(*params.code));
    grant.redirect_uri = pending.redirect_uri;
    grant.code_verifier = pending.code_verifier;
    grant.requested_scopes = pending.scopes;
    return grant;
}

}  // namespace

boost::system::result<started_authorization> start_authorization(const client_config& config,
                                                                 authorization_request request,
                                                                 sys_time now) {
    if (config.redirect_uris.empty()) {
        return error_code(errc::invalid_configuration);
    }
    started_authorization out;
    pending_authorization& p = out.pending;
    if (request.redirect_uri.empty()) {
        p.redirect_uri = config.redirect_uris.front();
    } else if (std::find(config.redirect_uris.begin(), config.redirect_uris.end(), request.redirect_uri) ==
               config.redirect_uris.end()) {
        return error_code(errc::redirect_uri_not_registered);
    } else {
        p.redirect_uri = std::move(request.redirect_uri);
    }
    if (!std::all_of(request.scopes.begin(), request.scopes.end(), sansio::is_valid_scope_token)) {
        return error_code(errc::invalid_argument);
    }

    p.state = sansio::make_state();
    std::string challenge;
    if (config.use_pkce) {
        p.code_verifier = secret_string(sansio::make_code_verifier());
        challenge = sansio::code_challenge_s256(p.code_verifier.reveal());
    }
    auto url = sansio::build_authorize_url(
        config.endpoints.authorize_url, config.client_id, p.redirect_uri, request.scopes, p.state,
        config.use_pkce ? std::optional<std::string_view>(challenge) : std::nullopt);
    if (!url) {
        return url.error();
    }
    out.url = std::move(*url);
    p.scopes = std::move(request.scopes);
    p.expires_at = now + config.state_lifetime;
    return out;
}

boost::system::result<authorization_grant> verify_callback(const pending_authorization& pending,
                                                           std::string_view redirected_url, sys_time now,
                                                           diagnostics* diag) {
    if (diag) {
        diag->clear();
    }
    auto params = sansio::parse_callback(redirected_url);
    if (!params) {
        return params.error();
    }
    return verify_parsed(pending, *params, now, diag);
}

bool callback_spends_state(const boost::system::result<authorization_grant>& result) noexcept {
    if (result) {
        return true;
    }
    const error_code ec = result.error();
    return ec != errc::invalid_callback && ec != errc::missing_state && ec != errc::unknown_state &&
           ec != errc::state_expired && ec != errc::redirect_uri_not_registered;
}

struct authorization_flow::impl {
    // The configuration without its client secret: the flow never needs it.
    client_config config;
    clock_function clock;

    mutable std::mutex mutex;
    std::unordered_map<std::string, pending_entry> entries;
    // Keys in insertion order, which is expiry order (steady clock, one lifetime for all). The
    // pointers stay valid because unordered_map never moves its nodes.
    std::deque<const std::string*> order;

    // The flow measures time with its own clock (steady, so that a wall-clock step neither expires
    // nor revives states; injectable for tests) and carries that reading in the pending values'
    // time_point type. expires_at and `now` then come from the same clock, which is all
    // verify_callback compares; these values never leave the flow.
    sys_time now() const {
        return sys_time(std::chrono::duration_cast<sys_time::duration>(clock().time_since_epoch()));
    }

    // Entries stay a further state_lifetime past their expiry, so that a late callback hears
    // state_expired (and a replay state_reused) rather than unknown_state; then they are dropped.
    void prune(sys_time at) {
        while (!order.empty() &&
               entries.find(*order.front())->second.pending.expires_at + config.state_lifetime <= at) {
            drop_oldest();
        }
    }

    void drop_oldest() {
        entries.erase(entries.find(*order.front()));
        order.pop_front();
    }
};

authorization_flow::authorization_flow(client_config config, clock_function clock) {
    std::string what;
    if (auto ec = validate(config, &what)) {
        throw boost::system::system_error(ec, what);
    }
    impl_ = std::make_unique<impl>();
    config.client_secret = secret_string();
    impl_->config = std::move(config);
    impl_->clock = clock ? std::move(clock) : clock_function(&steady::now);
}

authorization_flow::~authorization_flow() = default;

boost::system::result<authorization_url> authorization_flow::make_authorization_url(
    authorization_request request) {
    auto& self = *impl_;
    // Secure by default (RFC 6749 §10.12): a state no browser session owns can be completed by
    // any browser it is sent to, so leaving the session out has to be said, not forgotten.
    if (request.session.empty() && !request.any_browser) {
        return error_code(errc::session_required);
    }
    if (!request.session.empty() && request.any_browser) {
        detail::secure_wipe(request.session.data(), request.session.size());
        return error_code(errc::invalid_argument);
    }
    // A session value is often the browser's session cookie: only its digest is kept.
    std::string session_digest = request.session.empty() ? std::string() : lookup_key(request.session);
    detail::secure_wipe(request.session.data(), request.session.size());
    auto started = start_authorization(self.config, std::move(request), self.now());
    if (!started) {
        return started.error();
    }
    authorization_url out{std::move(started->url), started->pending.state};
    std::string key = lookup_key(out.state);
    {
        std::lock_guard lock(self.mutex);
        self.prune(self.now());
        while (self.entries.size() >= max_entries) {
            self.drop_oldest();
        }
        auto [it, inserted] = self.entries.try_emplace(
            std::move(key), pending_entry{std::move(started->pending), std::move(session_digest)});
        if (inserted) {  // 256 random bits do not collide; if they ever did, the first one wins
            self.order.push_back(&it->first);
        }
    }
    return out;
}

boost::system::result<authorization_grant> authorization_flow::verify_callback(
    std::string_view redirected_url, diagnostics& diag) {
    return verify_in_session(redirected_url, std::nullopt, &diag);
}

boost::system::result<authorization_grant> authorization_flow::verify_callback(
    std::string_view redirected_url, diagnostics* diag) {
    return verify_in_session(redirected_url, std::nullopt, diag);
}

boost::system::result<authorization_grant> authorization_flow::verify_callback(
    std::string_view redirected_url, std::string_view session, diagnostics& diag) {
    return verify_in_session(redirected_url, session, &diag);
}

boost::system::result<authorization_grant> authorization_flow::verify_callback(
    std::string_view redirected_url, std::string_view session, diagnostics* diag) {
    return verify_in_session(redirected_url, session, diag);
}

boost::system::result<authorization_grant> authorization_flow::verify_in_session(
    std::string_view redirected_url, std::optional<std::string_view> session, diagnostics* diag) {
    if (diag) {
        diag->clear();
    }
    auto params = sansio::parse_callback(redirected_url);
    if (!params) {
        return params.error();
    }
    if (!params->state || params->state->empty()) {
        return error_code(errc::missing_state);
    }
    const std::string key = lookup_key(*params->state);
    // Hashed before the lock, as the state is: the mutex is every caller's.
    const std::optional<std::string> session_digest =
        session ? std::optional<std::string>(lookup_key(*session)) : std::nullopt;
    auto& self = *impl_;
    std::lock_guard lock(self.mutex);
    const auto now = self.now();
    self.prune(now);
    const auto it = self.entries.find(key);
    if (it == self.entries.end()) {
        return error_code(errc::unknown_state);
    }
    pending_entry& entry = it->second;
    // Made for a session: only that session's callback is its answer (another browser's is a
    // possible login CSRF, and leaves the state for the real one).
    if (!entry.session_digest.empty() &&
        !(session_digest && constant_time_equal(*session_digest, entry.session_digest))) {
        return error_code(errc::unknown_state);
    }
    if (entry.consumed) {
        return error_code(errc::state_reused);
    }
    auto result = verify_parsed(entry.pending, *params, now, diag);
    // The entry stays behind as a tombstone, so a replay is told state_reused; its verifier goes.
    if (callback_spends_state(result)) {
        entry.consumed = true;
        entry.pending.code_verifier = secret_string();
    }
    return result;
}

std::size_t authorization_flow::pending_count() const {
    auto& self = *impl_;
    std::lock_guard lock(self.mutex);
    const auto now = self.now();
    return static_cast<std::size_t>(std::count_if(
        self.entries.begin(), self.entries.end(),
        [&](const auto& e) { return !e.second.consumed && now < e.second.pending.expires_at; }));
}

}  // namespace apollo_oauth
