// The routes of a SaaS back end that connects its customers' Apollo accounts. Everything OAuth
// goes through apollo_oauth: the authorization values (start_authorization, verify_callback), the
// client, the token cache, the API client.
//
//   GET  /                     the accounts this browser session connected (and the demo account)
//   GET  /connect              start an authorization bound to this browser session
//   GET  /oauth/callback       the redirect URI: verify, exchange, store, give the account to
//                              the session, rotate the session id, show the profile; when
//                              another tab's login rotated the id meanwhile, 302 to /oauth/join
//   GET  /oauth/join           such a callback's account, given to the session whose current id
//                              the browser presents
//   POST /accounts/{id}/tasks  Apollo's POST /v1/tasks/bulk_create on behalf of account {id}, for
//                              the session that connected it (401 without a session, 404 for an
//                              account it did not connect, as for one that does not exist)
//   POST /baseline/tasks       benchmark only: the same upstream request with a fixed token and no
//                              cache, for any session
//   GET  /healthz              liveness
//   GET  /metrics              Prometheus text format
#pragma once

#include "https_server.hpp"
#include "pages.hpp"
#include "sessions.hpp"

#include <apollo_oauth/api_client.hpp>
#include <apollo_oauth/authorization.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/token_cache.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace web_app {

struct app_settings {
    std::string public_origin;        ///< "https://localhost:8443": the redirect URI's origin
    std::vector<std::string> scopes;  ///< requested at /connect
    /// POST /baseline/tasks sends this token (404 when unset). Benchmark only: any session may
    /// spend it.
    std::optional<apollo_oauth::secret_string> baseline_token;
    /// Extra lines for /metrics (the embedded emulator's counters), or empty.
    std::function<std::string()> extra_metrics;
    session_limits sessions;
};

class app {
public:
    /// Every reference must outlive the app.
    app(apollo_oauth::client& oauth, apollo_oauth::token_cache& cache, apollo_oauth::api_client& api,
        app_settings settings);

    /// The request handler for https_server; callable from any thread.
    boost::asio::awaitable<response> handle(request req, boost::asio::ip::address peer);

    /// Connects an account from tokens obtained elsewhere (the --demo-account start-up, or a
    /// callback): fetches the profile, stores the pair through the cache. Whoever calls it decides
    /// who may see and use the account.
    boost::asio::awaitable<connected_account> connect(apollo_oauth::token_set tokens);
    /// Makes `account` the demo account: listed to every visitor, usable by every session. For the
    /// emulator's --demo-account (load tests, demonstrations). Call before the server starts.
    void set_demo_account(connected_account account);

private:
    response home(const request& req);
    response start_authorization(const request& req, const boost::asio::ip::address& peer);
    boost::asio::awaitable<response> callback(const request& req);
    response join(const request& req);
    static response session_ended();
    boost::asio::awaitable<response> create_tasks(const request& req, std::string account);
    boost::asio::awaitable<response> baseline_tasks(const request& req);
    response metrics() const;
    std::optional<response> refusal(const request& req, std::string_view account);

    apollo_oauth::client& oauth_;
    apollo_oauth::token_cache& cache_;
    apollo_oauth::api_client& api_;
    app_settings settings_;
    session_store sessions_;
    std::optional<connected_account> demo_account_;  ///< set before the server starts, then read only
};

}  // namespace web_app
