#include "app.hpp"

#include "metrics.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/url/parse.hpp>

#include <iostream>
#include <sstream>
#include <stdexcept>

namespace web_app {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using apollo_oauth::errc;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view default_tasks_body = R"({"contact_ids":["demo-contact"]})";

response html(http::status status, std::string body) {
    response res{status, 11};
    res.set(http::field::content_type, "text/html; charset=utf-8");
    // Pages show account data: never cached, never framed, nothing loaded from elsewhere.
    res.set(http::field::cache_control, "no-store");
    res.set("X-Frame-Options", "DENY");
    res.set("Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
    res.body() = std::move(body);
    return res;
}

response text(http::status status, std::string content_type, std::string body) {
    response res{status, 11};
    res.set(http::field::content_type, std::move(content_type));
    res.set(http::field::cache_control, "no-store");
    res.body() = std::move(body);
    return res;
}

response json_error(http::status status, std::string_view error, std::string_view message) {
    std::ostringstream body;
    body << R"({"error":")" << error << R"(","message":")" << message << "\"}";
    return text(status, "application/json", body.str());
}

response redirect(std::string location) {
    response res{http::status::found, 11};
    res.set(http::field::location, std::move(location));
    res.set(http::field::cache_control, "no-store");
    return res;
}

std::string session_cookie_header(const std::string& session) {
    // HttpOnly: no script reads it. Secure: HTTPS only. SameSite=Lax: sent on the top-level
    // redirect back from Apollo (a GET), not on cross-site POSTs.
    return std::string(session_cookie) + "=" + session + "; Path=/; Secure; HttpOnly; SameSite=Lax";
}

// "/accounts/{id}/tasks" -> id, or empty.
std::string account_of_tasks_path(std::string_view path) {
    constexpr std::string_view prefix = "/accounts/";
    constexpr std::string_view suffix = "/tasks";
    if (!path.starts_with(prefix) || !path.ends_with(suffix) ||
        path.size() <= prefix.size() + suffix.size()) {
        return {};
    }
    const auto id = path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
    return id.find('/') == std::string_view::npos ? std::string(id) : std::string();
}

std::string session_of(const request& req) {
    return cookie_value(req[http::field::cookie], session_cookie);
}

// A state-changing API call from a browser must not be forgeable by another site: a JSON content
// type cannot be sent cross-origin without a CORS preflight, which this server never grants.
bool is_json(const request& req) {
    return req[http::field::content_type].starts_with("application/json");
}

apollo_oauth::api_request bulk_create(const request& req) {
    apollo_oauth::api_request upstream;
    upstream.method = http::verb::post;
    upstream.target = "/v1/tasks/bulk_create";
    upstream.body = req.body().empty() ? std::string(default_tasks_body) : req.body();
    return upstream;
}

response from_upstream(const apollo_oauth::api_response& upstream) {
    response res = text(http::status::bad_gateway, "application/json", upstream.body);
    // Passed on as a number: int_to_status() knows only the registered codes, and Beast writes
    // status::unknown as "000", which no client parses (Cloudflare's 520 is not registered). A
    // final status outside RFC 9110's 200-599 is the upstream's fault: 502.
    if (upstream.status >= 200 && upstream.status <= 599) {
        res.result(upstream.status);
    }
    return res;
}

}  // namespace

app::app(apollo_oauth::client& oauth, apollo_oauth::token_cache& cache, apollo_oauth::api_client& api,
         app_settings settings)
    : oauth_(oauth),
      cache_(cache),
      api_(api),
      settings_(std::move(settings)),
      sessions_(settings_.sessions) {}

asio::awaitable<response> app::handle(request req, asio::ip::address peer) {
    const auto target = boost::urls::parse_origin_form(req.target());
    if (!target) {
        co_return text(http::status::bad_request, "text/plain", "bad request target\n");
    }
    const std::string_view path = target->encoded_path();
    const auto method = req.method();

    if (method == http::verb::post) {
        if (std::string account = account_of_tasks_path(path); !account.empty()) {
            co_return co_await create_tasks(req, std::move(account));
        }
        if (path == "/baseline/tasks") {
            co_return co_await baseline_tasks(req);
        }
    }
    if (method == http::verb::get) {
        if (path == "/") {
            co_return home(req);
        }
        if (path == "/connect") {
            co_return start_authorization(req, peer);
        }
        if (path == "/oauth/callback") {
            co_return co_await callback(req);
        }
        if (path == "/oauth/join") {
            co_return join(req);
        }
        if (path == "/healthz") {
            co_return text(http::status::ok, "text/plain", "ok\n");
        }
        if (path == "/metrics") {
            co_return metrics();
        }
    }
    co_return html(http::status::not_found, message_page("Not found", "There is no page here."));
}

// GET /: this session's accounts only (none without a session), and the demo account if any.
response app::home(const request& req) {
    return html(http::status::ok, home_page(sessions_.accounts(session_of(req)), demo_account_));
}

// GET /connect: a fresh pending authorization, kept in this browser's session, then off to Apollo.
// Nothing is kept anywhere else: a flood of /connect pushes out only its sender's authorizations.
response app::start_authorization(const request& req, const asio::ip::address& peer) {
    apollo_oauth::authorization_request what;
    what.scopes = settings_.scopes;
    auto started =
        apollo_oauth::start_authorization(oauth_.config(), std::move(what), std::chrono::system_clock::now());
    if (!started) {
        return html(http::status::internal_server_error,
                    message_page("Cannot start the authorization", started.error().message()));
    }
    const auto [session, created] = sessions_.remember(session_of(req), peer, std::move(started->pending));
    response res = redirect(std::move(started->url));
    if (created) {
        res.set(http::field::set_cookie, session_cookie_header(session));
    }
    return res;
}

// GET /oauth/callback?code=...&state=... (or ?error=...&state=...).
asio::awaitable<response> app::callback(const request& req) {
    const auto target = boost::urls::parse_origin_form(req.target());
    const auto state = target->params().find("state");
    if (state == target->params().end()) {
        co_return html(http::status::bad_request,
                       message_page("Not a valid callback", "The callback carries no state."));
    }
    // The state must have been issued to this browser session, and not used yet: another
    // session's callback finds nothing to use up.
    const std::string session = session_of(req);
    auto claimed = sessions_.claim(session, (*state).value);
    switch (claimed.outcome) {
        case callback_claim::no_session:
        case callback_claim::foreign:
            co_return html(
                http::status::forbidden,
                message_page("This authorization belongs to another browser",
                             "The callback does not match an authorization started in this browser "
                             "session, so it was refused. Start again from this browser."));
        case callback_claim::replayed:
            co_return html(http::status::bad_request,
                           message_page("This callback was already used",
                                        "An authorization can be completed once; this one was. Connect again "
                                        "to start a new one."));
        case callback_claim::accepted:
            break;
    }

    apollo_oauth::diagnostics diag;
    auto grant =
        apollo_oauth::verify_callback(claimed.pending, settings_.public_origin + std::string(req.target()),
                                      std::chrono::system_clock::now(), &diag);
    if (!apollo_oauth::callback_spends_state(grant)) {
        // Not this authorization's answer (malformed, expired, elsewhere): the real one may come.
        sessions_.give_back(claimed.session, std::move(claimed.pending));
    }
    if (!grant) {
        if (grant.error() == errc::access_denied) {
            co_return html(http::status::forbidden,
                           message_page("Access was denied",
                                        "The Apollo account was not connected: access was denied on "
                                        "Apollo's consent page."));
        }
        co_return html(http::status::bad_request,
                       message_page("The authorization failed", grant.error().message()));
    }
    auto [ec, tokens] = co_await oauth_.async_exchange_code(std::move(*grant), diag, use_tuple);
    if (ec) {
        co_return html(http::status::bad_gateway,
                       message_page("Apollo did not accept the authorization", ec.message()));
    }
    std::vector<std::string> scopes = tokens.scopes;
    std::optional<connected_account> account;
    try {
        account = co_await connect(std::move(tokens));
    } catch (const std::exception& e) {
        co_return html(http::status::bad_gateway,
                       message_page("The account could not be connected", e.what()));
    }
    // The account is this session's alone, and the session gets a new id: one planted in the
    // browser before the login (session fixation) no longer names it. The session is the record
    // the claim found, not the cookie's id looked up again: another tab's login may have replaced
    // that id meanwhile, and this account belongs to the session all the same.
    adopted joined = sessions_.adopt(claimed.session, *account, scopes);
    switch (joined.outcome) {
        case adoption::no_session:
            co_return session_ended();
        case adoption::to_confirm:
            // Another tab's login replaced the id this request came with: the browser joins the
            // account with the id it holds now (adopt()), at once, through this redirect.
            co_return redirect("/oauth/join?token=" + joined.id);
        case adoption::rotated:
            break;
    }
    response res = html(http::status::ok, connected_page(*account, scopes));
    res.set(http::field::set_cookie, session_cookie_header(joined.id));
    co_return res;
}

// GET /oauth/join?token=...: the account of a callback that finished after another login of its
// session had replaced the session's id (session_store::adopt), given to the session whose current
// id this request carries.
response app::join(const request& req) {
    const auto target = boost::urls::parse_origin_form(req.target());
    const auto token = target->params().find("token");
    auto joined =
        token == target->params().end() ? std::nullopt : sessions_.join(session_of(req), (*token).value);
    if (!joined) {
        return session_ended();
    }
    return html(http::status::ok, connected_page(joined->account, joined->scopes));
}

response app::session_ended() {
    return html(http::status::forbidden,
                message_page("This browser session ended",
                             "The session ended while the account was being connected. Connect "
                             "again from this browser."));
}

asio::awaitable<connected_account> app::connect(apollo_oauth::token_set tokens) {
    apollo_oauth::diagnostics diag;
    auto [pec, profile] = co_await oauth_.async_get_profile(tokens.access_token, diag, use_tuple);
    if (pec) {
        throw std::runtime_error("the profile could not be read: " + pec.message());
    }
    connected_account account{profile.id.empty() ? profile.email : profile.id, profile.name, profile.email};
    if (account.id.empty()) {
        throw std::runtime_error("the profile names no account (no id, no email)");
    }
    // Written to the store before it is served: from here on the cache owns the pair.
    auto [sec] = co_await cache_.async_store(account.id, std::move(tokens), use_tuple);
    if (sec) {
        // The cache keeps the pair in memory and retries the write; the account works meanwhile.
        std::cerr << "web_app: storing the tokens failed (" << sec.message() << "); the cache retries\n";
    }
    co_return account;
}

void app::set_demo_account(connected_account account) {
    demo_account_ = std::move(account);
}

// Who may act for `account`: the session that connected it, and, for the demo account, any
// session; an empty `account` asks for a session only (the baseline). Another session's account
// gets the answer an account that does not exist gets, so that no session learns which ids do.
std::optional<response> app::refusal(const request& req, std::string_view account) {
    const account_access access = sessions_.access(session_of(req), account);
    if (access == account_access::no_session) {
        return json_error(http::status::unauthorized, "no_session",
                          "no browser session: connect the account in this browser first");
    }
    const bool demo = demo_account_ && demo_account_->id == account;
    if (access == account_access::owned || account.empty() || demo) {
        return std::nullopt;
    }
    return json_error(http::status::not_found, "unknown_account", "no such connected account");
}

// POST /accounts/{id}/tasks: through api_client, so the token comes from the cache and the 401
// (invalidate, refresh once, retry) and 429 (wait Retry-After) policies apply.
asio::awaitable<response> app::create_tasks(const request& req, std::string account) {
    if (auto refused = refusal(req, account)) {
        co_return std::move(*refused);
    }
    if (!is_json(req)) {
        co_return json_error(http::status::unsupported_media_type, "unsupported_media_type",
                             "send Content-Type: application/json");
    }
    auto upstream = bulk_create(req);
    auto [ec, res] = co_await api_.async_request(std::move(account), std::move(upstream), use_tuple);
    if (ec == errc::unknown_account) {
        co_return json_error(http::status::not_found, "unknown_account", "no such connected account");
    }
    if (ec == errc::reauthorization_required) {
        co_return json_error(http::status::conflict, "reauthorization_required",
                             "the customer must connect the account again");
    }
    if (ec) {
        co_return json_error(http::status::bad_gateway, "upstream", ec.message());
    }
    co_return from_upstream(res);
}

// POST /baseline/tasks: the same upstream request with a fixed token, no cache, no policies: what
// this server does at most, for the load comparison. Benchmark only (README): any session may
// spend the token. The session check is the one the library-backed route makes, so that the
// comparison weighs the same work.
asio::awaitable<response> app::baseline_tasks(const request& req) {
    if (!settings_.baseline_token) {
        co_return json_error(http::status::not_found, "not_configured", "no baseline token");
    }
    if (auto refused = refusal(req, {})) {
        co_return std::move(*refused);
    }
    if (!is_json(req)) {
        co_return json_error(http::status::unsupported_media_type, "unsupported_media_type",
                             "send Content-Type: application/json");
    }
    auto upstream = bulk_create(req);
    auto [ec, res] =
        co_await oauth_.async_api_request(*settings_.baseline_token, std::move(upstream), use_tuple);
    if (ec) {
        co_return json_error(http::status::bad_gateway, "upstream", ec.message());
    }
    co_return from_upstream(res);
}

response app::metrics() const {
    std::string body = prometheus_text(cache_.metrics(), api_.metrics());
    body += gauge("web_app_sessions", "Browser sessions held.", sessions_.size());
    body += gauge("web_app_authorizations", "Authorizations held in sessions, pending or used.",
                  sessions_.authorizations());
    body += gauge("web_app_connected_accounts", "Accounts held in sessions (the demo account not counted).",
                  sessions_.connected_accounts());
    if (settings_.extra_metrics) {
        body += settings_.extra_metrics();
    }
    return text(http::status::ok, "text/plain; version=0.0.4; charset=utf-8", std::move(body));
}

}  // namespace web_app
