// authorization_flow: authorize URLs out, callbacks in, with the pending states in between.
#include <apollo_oauth/authorization.hpp>

#include "sansio/encoding.hpp"
#include "sansio/random.hpp"
#include "sansio/token_protocol.hpp"
#include "sansio/url.hpp"

#include <boost/system/system_error.hpp>

#include <algorithm>
#include <deque>
#include <mutex>
#include <unordered_map>

namespace apollo_oauth {

namespace {

using steady = std::chrono::steady_clock;

// Memory bound: beyond this many remembered states the oldest is forgotten, so a flood of
// authorize requests that never come back cannot grow the map without limit.
constexpr std::size_t max_entries = 100'000;

struct pending_entry {
    steady::time_point expiry;
    std::string redirect_uri;
    secret_string code_verifier;
    std::vector<std::string> scopes;
    bool consumed = false;
};

// The map is keyed by SHA-256 of the state, not by the state: a lookup compares the presented
// value with stored keys (bucket and string comparisons that exit early), and timing them can
// then reveal only digest prefixes, which say nothing about a valid state. That is why no
// separate constant-time comparison of the state follows the lookup.
std::string lookup_key(std::string_view state) {
    return sansio::code_challenge_s256(state);
}

}  // namespace

struct authorization_flow::impl {
    // Only what the flow needs: the client secret is not copied here.
    std::string client_id;
    std::vector<std::string> redirect_uris;
    std::string authorize_url;
    bool use_pkce = false;
    std::chrono::seconds state_lifetime{};
    clock_function clock;

    mutable std::mutex mutex;
    std::unordered_map<std::string, pending_entry> entries;
    // Keys in insertion order, which is expiry order (steady clock, one lifetime for all). The
    // pointers stay valid because unordered_map never moves its nodes.
    std::deque<const std::string*> order;

    // Entries stay a further state_lifetime past their expiry, so that a late callback hears
    // state_expired (and a replay state_reused) rather than unknown_state; then they are dropped.
    void prune(steady::time_point now) {
        while (!order.empty() && entries.find(*order.front())->second.expiry + state_lifetime <= now) {
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
    impl_->client_id = std::move(config.client_id);
    impl_->redirect_uris = std::move(config.redirect_uris);
    impl_->authorize_url = std::move(config.endpoints.authorize_url);
    impl_->use_pkce = config.use_pkce;
    impl_->state_lifetime = config.state_lifetime;
    impl_->clock = clock ? std::move(clock) : clock_function(&steady::now);
}

authorization_flow::~authorization_flow() = default;

boost::system::result<authorization_url> authorization_flow::make_authorization_url(
    authorization_request request) {
    auto& self = *impl_;
    std::string redirect_uri;
    if (request.redirect_uri.empty()) {
        redirect_uri = self.redirect_uris.front();
    } else if (std::find(self.redirect_uris.begin(), self.redirect_uris.end(), request.redirect_uri) ==
               self.redirect_uris.end()) {
        return error_code(errc::redirect_uri_not_registered);
    } else {
        redirect_uri = std::move(request.redirect_uri);
    }
    if (!std::all_of(request.scopes.begin(), request.scopes.end(), sansio::is_valid_scope_token)) {
        return error_code(errc::invalid_argument);
    }

    std::string state = sansio::make_state();
    secret_string verifier;
    std::string challenge;
    if (self.use_pkce) {
        verifier = secret_string(sansio::make_code_verifier());
        challenge = sansio::code_challenge_s256(verifier.reveal());
    }
    auto url = sansio::build_authorize_url(
        self.authorize_url, self.client_id, redirect_uri, request.scopes, state,
        self.use_pkce ? std::optional<std::string_view>(challenge) : std::nullopt);
    if (!url) {
        return url.error();
    }

    std::string key = lookup_key(state);
    {
        std::lock_guard lock(self.mutex);
        const auto now = self.clock();
        self.prune(now);
        while (self.entries.size() >= max_entries) {
            self.drop_oldest();
        }
        auto [it, inserted] = self.entries.try_emplace(
            std::move(key), pending_entry{now + self.state_lifetime, std::move(redirect_uri),
                                          std::move(verifier), std::move(request.scopes)});
        if (inserted) {  // 256 random bits do not collide; if they ever did, the first one wins
            self.order.push_back(&it->first);
        }
    }
    return authorization_url{std::move(*url), std::move(state)};
}

boost::system::result<authorization_grant> authorization_flow::verify_callback(std::string_view redirected_url,
                                                                               diagnostics& diag) {
    return verify_callback(redirected_url, &diag);
}

boost::system::result<authorization_grant> authorization_flow::verify_callback(
    std::string_view redirected_url, diagnostics* diag) {
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

    authorization_grant grant;
    const std::string key = lookup_key(*params->state);
    {
        auto& self = *impl_;
        std::lock_guard lock(self.mutex);
        const auto now = self.clock();
        self.prune(now);
        const auto it = self.entries.find(key);
        if (it == self.entries.end()) {
            return error_code(errc::unknown_state);
        }
        pending_entry& entry = it->second;
        if (entry.consumed) {
            return error_code(errc::state_reused);
        }
        if (entry.expiry <= now) {
            return error_code(errc::state_expired);
        }
        // Checked before consuming: a callback that arrives somewhere else leaves the real one
        // able to complete.
        if (!sansio::same_redirect_location(params->base, entry.redirect_uri)) {
            return error_code(errc::redirect_uri_not_registered);
        }
        // Consumed whatever the callback says next: a state is good for one answer only. The entry
        // stays behind as a tombstone, so a replay is told state_reused.
        entry.consumed = true;
        grant.redirect_uri = std::move(entry.redirect_uri);
        grant.code_verifier = std::move(entry.code_verifier);
        grant.requested_scopes = std::move(entry.scopes);
    }

    if (params->error) {
        if (diag) {
            diag->error = sansio::diagnostic_text(*params->error);
            diag->error_description = sansio::diagnostic_text(params->error_description.value_or(""));
            diag->error_uri = sansio::diagnostic_text(params->error_uri.value_or(""));
        }
        return error_code(errc_from_oauth_error(*params->error));
    }
    if (!params->code || params->code->empty()) {
        return error_code(errc::missing_code);
    }
    grant.code = secret_string(std::move(*params->code));
    return grant;
}

std::size_t authorization_flow::pending_count() const {
    auto& self = *impl_;
    std::lock_guard lock(self.mutex);
    const auto now = self.clock();
    return static_cast<std::size_t>(
        std::count_if(self.entries.begin(), self.entries.end(),
                      [&](const auto& e) { return !e.second.consumed && now < e.second.expiry; }));
}

}  // namespace apollo_oauth
