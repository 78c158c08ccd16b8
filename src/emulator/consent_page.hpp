// The consent page mode (server_config::consent_page): what /oauth/authorize shows instead of
// consenting at once, and the decisions waiting for a click. No I/O here; routes.cpp serves it.
//
// The authorization is validated and its code minted when the page is shown (oauth_state does
// both in one step); the code stays here, known to nobody, until Approve releases the redirect
// that carries it. Deny or expiry drops it, and an unused code grants nothing.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace apollo_oauth::emulator::detail {

/// One authorization request waiting for the user.
struct pending_consent {
    std::string approve_location;  ///< redirect_uri?code=...&state=...
    std::string deny_location;     ///< redirect_uri?error=access_denied&...&state=...
    std::string browser;           ///< the browser cookie the page was shown to
};

/// Why a decision was refused (a 403 page, never a redirect: the request may be forged).
enum class consent_refusal {
    missing_token,  ///< no authenticity_token in the form
    unknown_token,  ///< forged, already used, or expired
    other_browser,  ///< the value belongs to a page shown to another browser
    bad_decision,   ///< decision is neither approve nor deny
};

/// The pending decisions, keyed by their anti-forgery value. Thread-safe.
class consent_book {
public:
    explicit consent_book(std::chrono::seconds lifetime) : lifetime_(lifetime) {}

    /// Keeps `pending` until decided or expired; returns its anti-forgery value (random, 43
    /// characters), which the page posts back.
    std::string open(pending_consent pending);

    /// Consumes the decision for `token` made in `browser`: the location to redirect to, or why
    /// not. A refused decision leaves the pending one in place (a forged post cannot cancel it).
    std::variant<std::string, consent_refusal> decide(std::string_view token, std::string_view browser,
                                                      std::string_view decision);

    std::size_t pending_count() const;

private:
    struct entry {
        pending_consent pending;
        std::chrono::steady_clock::time_point expires_at;
    };
    void drop_expired(std::chrono::steady_clock::time_point now);

    const std::chrono::seconds lifetime_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, entry> pending_;
};

/// The cookie naming the browser, so that a consent value works only where its page was shown.
inline constexpr std::string_view browser_cookie = "emulator_browser";

/// The value of cookie `name` in a Cookie header (RFC 6265 §4.2.1), or empty.
std::string cookie_value(std::string_view cookie_header, std::string_view name);

/// What the page shows.
struct consent_view {
    std::string_view app_name;
    std::string_view user_email;
    const std::vector<std::string>& scopes;
    std::string_view authenticity_token;
};

/// The HTML page: the app's name, who is signed in, the scopes, and Approve / Deny buttons
/// posting `authenticity_token` and `decision` to /oauth/authorize.
std::string consent_page_html(const consent_view& view);

/// The page for a refused decision.
std::string refusal_page_html(consent_refusal why);

/// `redirect_uri` with error=access_denied, a description and `state` (when sent) added.
std::string access_denied_location(std::string_view redirect_uri, const std::string* state);

}  // namespace apollo_oauth::emulator::detail
