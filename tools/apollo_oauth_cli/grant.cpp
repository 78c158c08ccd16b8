// Code exchange and storage, shared by `login` and `exchange`.
#include "grant.hpp"

#include "files.hpp"
#include "run.hpp"
#include "session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <ctime>
#include <iostream>

namespace apollo_oauth::cli {

namespace asio = boost::asio;

std::string format_utc(std::chrono::system_clock::time_point t) {
    const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    ::gmtime_r(&seconds, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

boost::json::object describe_tokens(const settings& s, const token_set& tokens) {
    boost::json::object out{{"account", s.account},
                            {"scopes", to_json_array(tokens.scopes)},
                            {"expires_at", format_utc(tokens.expires_at)},
                            {"store", describe_store(s.store, s.token_dir)}};
    if (!s.store.redis_url) {
        out["token_dir"] = s.token_dir.string();
    }
    return out;
}

std::string summarize_tokens(const token_set& tokens) {
    std::string text = "(scopes:";
    for (const auto& scope : tokens.scopes) {
        text += " " + scope;
    }
    return text + "); access token valid until " + format_utc(tokens.expires_at);
}

int exchange_and_store(const settings& s, authorization_grant grant, const reporter& out) {
    session ses(s);
    diagnostics diag;
    error_code failure;
    std::string failed_step;
    token_set tokens;
    const auto unstored = run_session(ses, out, [&](asio::any_io_executor) -> asio::awaitable<int> {
        // Not cancelled by a first signal: the exchange's answer is a new grant, its only copy (the
        // code is spent once sent), so it is awaited and stored; a second signal still exits.
        co_await asio::this_coro::reset_cancellation_state(asio::disable_cancellation());
        auto [ec, t] = co_await ses.oauth.async_exchange_code(std::move(grant), diag,
                                                              asio::as_tuple(asio::use_awaitable));
        if (ec) {
            failure = ec;
            failed_step = "exchanging the authorization code failed";
            co_return 0;
        }
        tokens = t;
        auto [store_ec] =
            co_await ses.cache.async_store(s.account, std::move(t), asio::as_tuple(asio::use_awaitable));
        if (store_ec) {
            failure = store_ec;
            failed_step = "saving the tokens in " + describe_store(s.store, s.token_dir) + " failed";
        }
        co_return 0;
    });
    if (failure) {
        return out.fail(failed_step, failure, diag, talking_to(s, {endpoint_role::token}));
    }
    if (unstored) {
        return out.fail(unstored_pair_message(s), unstored);
    }
    if (out.json()) {
        out.print_json(describe_tokens(s, tokens));
    } else {
        std::cout << "Authorized account '" << s.account << "' " << summarize_tokens(tokens) << "; saved in "
                  << describe_store(s.store, s.token_dir) << std::endl;
    }
    return exit_ok;
}

}  // namespace apollo_oauth::cli
