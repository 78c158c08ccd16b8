#include "emulator/consent_page.hpp"

#include "emulator/crypto.hpp"

#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url.hpp>

#include <array>
#include <utility>

namespace apollo_oauth::emulator::detail {
namespace {

// Boost has no HTML escaping; the five characters that matter in text and quoted attributes.
std::string escape_html(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

// What each of Apollo's scopes lets the app do, in the words of a consent page.
std::string_view describe_scope(std::string_view scope) {
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 5> known{{
        {"read_user_profile", "See your name, email address and team"},
        {"app_scopes", "Read the scopes granted to this app"},
        {"contacts_search", "Search your contacts"},
        {"person_read", "Read people's details"},
        {"opportunity_write", "Create and update deals"},
    }};
    for (const auto& [name, text] : known) {
        if (name == scope) {
            return text;
        }
    }
    return "Use this permission";
}

constexpr std::string_view page_style = R"(<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;margin:0;color:#1f2430}
.card{max-width:440px;margin:64px auto;background:#fff;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08);padding:32px}
.brand{font-weight:700;font-size:20px;letter-spacing:.5px;color:#1d1f24;margin-bottom:24px}
.brand span{background:#ffd42b;border-radius:6px;padding:2px 8px;margin-right:6px}
h1{font-size:20px;margin:0 0 8px}
.who{color:#5b6270;font-size:14px;margin-bottom:20px}
ul{list-style:none;padding:0;margin:0 0 24px;border-top:1px solid #eceef2}
li{padding:10px 0;border-bottom:1px solid #eceef2;font-size:14px}
li code{display:block;color:#8a90a0;font-size:12px;margin-top:2px}
.actions{display:flex;gap:12px}
button{flex:1;font-size:15px;padding:10px 0;border-radius:8px;border:1px solid #c9ccd4;background:#fff;cursor:pointer}
button.approve{background:#2b5cff;border-color:#2b5cff;color:#fff;font-weight:600}
</style>)";

std::string page(std::string_view title, std::string_view body) {
    std::string html = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>";
    html += escape_html(title);
    html += "</title>";
    html += page_style;
    html += "</head><body><div class=\"card\"><div class=\"brand\"><span>A</span>Apollo (emulator)</div>";
    html += body;
    html += "</div></body></html>";
    return html;
}

}  // namespace

std::string consent_book::open(pending_consent pending) {
    const auto now = std::chrono::steady_clock::now();
    std::string token = random_token();
    const std::lock_guard lock(mutex_);
    drop_expired(now);
    pending_.insert_or_assign(token, entry{std::move(pending), now + lifetime_});
    return token;
}

std::variant<std::string, consent_refusal> consent_book::decide(std::string_view token,
                                                                std::string_view browser,
                                                                std::string_view decision) {
    if (token.empty()) {
        return consent_refusal::missing_token;
    }
    if (decision != "approve" && decision != "deny") {
        return consent_refusal::bad_decision;
    }
    const auto now = std::chrono::steady_clock::now();
    const std::lock_guard lock(mutex_);
    drop_expired(now);
    const auto it = pending_.find(std::string(token));
    if (it == pending_.end()) {
        return consent_refusal::unknown_token;
    }
    if (!secrets_equal(it->second.pending.browser, browser)) {
        return consent_refusal::other_browser;
    }
    std::string location = decision == "approve" ? std::move(it->second.pending.approve_location)
                                                 : std::move(it->second.pending.deny_location);
    pending_.erase(it);
    return location;
}

std::size_t consent_book::pending_count() const {
    const std::lock_guard lock(mutex_);
    return pending_.size();
}

void consent_book::drop_expired(std::chrono::steady_clock::time_point now) {
    std::erase_if(pending_, [now](const auto& item) { return item.second.expires_at <= now; });
}

// Written by hand: Boost 1.81 parses no Cookie header. "name=value" pairs separated by "; ".
std::string cookie_value(std::string_view header, std::string_view name) {
    while (!header.empty()) {
        const auto end = header.find(';');
        std::string_view pair = header.substr(0, end);
        header = end == std::string_view::npos ? std::string_view() : header.substr(end + 1);
        while (!pair.empty() && pair.front() == ' ') {
            pair.remove_prefix(1);
        }
        if (const auto eq = pair.find('='); eq != std::string_view::npos && pair.substr(0, eq) == name) {
            return std::string(pair.substr(eq + 1));
        }
    }
    return {};
}

std::string consent_page_html(const consent_view& view) {
    std::string body = "<h1>" + escape_html(view.app_name) + " wants to access your Apollo account</h1>";
    body += "<div class=\"who\">Signed in as " + escape_html(view.user_email) + "</div>";
    body += "<ul id=\"scopes\">";
    for (const auto& scope : view.scopes) {
        body += "<li class=\"scope\">" + escape_html(describe_scope(scope)) + "<code>" + escape_html(scope) +
                "</code></li>";
    }
    body += "</ul><form method=\"post\" action=\"/oauth/authorize\">";
    body += "<input type=\"hidden\" name=\"authenticity_token\" value=\"" +
            escape_html(view.authenticity_token) + "\">";
    body += "<div class=\"actions\">";
    body += "<button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button>";
    body +=
        "<button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\" "
        "class=\"approve\">Approve</button>";
    body += "</div></form>";
    return page("Authorize " + std::string(view.app_name), body);
}

std::string refusal_page_html(consent_refusal why) {
    std::string_view reason;
    switch (why) {
        case consent_refusal::missing_token:
            reason = "The consent form arrived without its anti-forgery value.";
            break;
        case consent_refusal::unknown_token:
            reason = "The consent form's anti-forgery value is not valid (forged, already used or expired).";
            break;
        case consent_refusal::other_browser:
            reason = "This consent form was shown to another browser.";
            break;
        case consent_refusal::bad_decision:
            reason = "The consent form must say approve or deny.";
            break;
    }
    return page("403 Forbidden", "<h1>403 Forbidden</h1><p>" + std::string(reason) + "</p>");
}

std::string access_denied_location(std::string_view redirect_uri, const std::string* state) {
    boost::urls::url url = boost::urls::parse_uri_reference(redirect_uri).value();
    const auto add = [&](std::string_view name, std::string_view value) {
        url.encoded_params().append({name, boost::urls::encode(value, boost::urls::unreserved_chars)});
    };
    add("error", "access_denied");
    add("error_description", "The user denied the authorization.");
    if (state != nullptr) {
        add("state", *state);
    }
    return std::string(url.buffer());
}

}  // namespace apollo_oauth::emulator::detail
