#include "pages.hpp"

namespace web_app {
namespace {

constexpr std::string_view style = R"(<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#fafafa;color:#222;margin:0}
header{background:#14213d;color:#fff;padding:14px 28px;font-weight:600}
main{max-width:720px;margin:32px auto;padding:0 16px}
table{border-collapse:collapse;width:100%;margin:16px 0}
td,th{text-align:left;padding:8px;border-bottom:1px solid #ddd}
a.button{display:inline-block;background:#2b5cff;color:#fff;padding:10px 18px;border-radius:6px;text-decoration:none}
.card{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:20px 24px}
code{background:#f0f0f0;padding:1px 4px;border-radius:3px}
</style>)";

std::string layout(std::string_view title, std::string_view body) {
    std::string html = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>";
    html += escape(title);
    html += "</title>";
    html += style;
    html += "</head><body><header>Example CRM &middot; Apollo accounts</header><main>";
    html += body;
    html += "</main></body></html>";
    return html;
}

}  // namespace

// Boost has no HTML escaping; the five characters that matter in text and quoted attributes.
std::string escape(std::string_view text) {
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

namespace {

std::string account_rows(const std::vector<connected_account>& accounts) {
    std::string rows;
    for (const auto& a : accounts) {
        rows += "<tr><td>" + escape(a.name) + "</td><td>" + escape(a.email) + "</td><td><code>" +
                escape(a.id) + "</code></td></tr>";
    }
    return rows;
}

}  // namespace

std::string home_page(const std::vector<connected_account>& accounts,
                      const std::optional<connected_account>& demo) {
    std::string body = "<h1>Your connected Apollo accounts</h1>";
    if (accounts.empty()) {
        body += "<p id=\"no-accounts\">No account is connected in this browser yet.</p>";
    } else {
        body += "<table id=\"accounts\"><tr><th>Name</th><th>Email</th><th>Account id</th></tr>" +
                account_rows(accounts) + "</table>";
    }
    if (demo) {
        // Not one of this visitor's: the operator's (--demo-account), shown to everyone.
        body +=
            "<h2>Demo account</h2><p>Connected by the operator at start-up (<code>--demo-account</code>, "
            "emulator only), shared by every visitor: a demonstration and load-test mode.</p>"
            "<table id=\"demo-account\"><tr><th>Name</th><th>Email</th><th>Account id</th></tr>" +
            account_rows({*demo}) + "</table>";
    }
    body += "<p><a class=\"button\" id=\"connect\" href=\"/connect\">Connect an Apollo account</a></p>";
    return layout("Connected Apollo accounts", body);
}

std::string connected_page(const connected_account& account, const std::vector<std::string>& scopes) {
    std::string body = "<div class=\"card\" id=\"connected\"><h1>Apollo account connected</h1>";
    body += "<p>Connected as <strong id=\"profile-name\">" + escape(account.name) +
            "</strong> &lt;<span id=\"profile-email\">" + escape(account.email) + "</span>&gt;</p>";
    body += "<p>Account id <code id=\"account-id\">" + escape(account.id) + "</code></p><p>Granted scopes: ";
    for (std::size_t i = 0; i < scopes.size(); ++i) {
        body += (i ? ", " : "") + std::string("<code>") + escape(scopes[i]) + "</code>";
    }
    body += "</p><p>Its tokens are in the token cache: <code>POST /accounts/" + escape(account.id) +
            "/tasks</code> now calls Apollo on its behalf, for this browser session only.</p></div><p><a "
            "href=\"/\">Your accounts</a></p>";
    return layout("Apollo account connected", body);
}

std::string message_page(std::string_view title, std::string_view message) {
    return layout(title, "<div class=\"card\" id=\"message\"><h1>" + escape(title) +
                             "</h1><p id=\"reason\">" + escape(message) +
                             "</p></div><p><a href=\"/\">Back to the accounts</a> &middot; <a "
                             "href=\"/connect\">Connect again</a></p>");
}

}  // namespace web_app
