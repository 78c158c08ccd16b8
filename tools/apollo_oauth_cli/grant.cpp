// Code exchange and storage, shared by `login` and `exchange`.
#include "grant.hpp"

#include "files.hpp"
#include "run.hpp"
#include "session.hpp"

#include <apollo_oauth/private_files.hpp>

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

namespace {

// A record the store cannot read, reported with where it is and what to do about it. The file
// store's is named (<token dir>/<stem>.json, as docs/cli.md says); a Redis store's is the
// account's hash, named by the store only. `spent`: whether the code was sent before it was found.
int report_unreadable_record(const settings& s, const reporter& out, error_code ec, bool spent) {
    const std::string consequence = spent ? " (the code was exchanged, but the tokens it bought could not be "
                                            "saved over it and are lost)"
                                          : " (nothing was sent to the server: no new tokens could be saved "
                                            "over it)";
    if (ec == errc::corrupt_record && !s.store.redis_url) {
        const auto path = (s.token_dir / (file_store_account_stem(s.account) + ".json")).string();
        const std::string hint = "move it aside (mv " + path + " " + path +
                                 ".corrupt) and run this again: the account is then authorized afresh "
                                 "(docs/cli.md, \"A record that cannot be read\")";
        return out.fail_with_hint(
            "cannot read the stored record of account '" + s.account + "', " + path + consequence, ec, hint);
    }
    return out.fail("cannot read the stored record of account '" + s.account + "' in " +
                        describe_store(s.store, s.token_dir) + consequence,
                    ec);
}

}  // namespace

int check_record_readable(const settings& s, const reporter& out) {
    session ses(s);
    error_code failure;
    const auto unstored = run_session(ses, out, [&](asio::any_io_executor) -> asio::awaitable<int> {
        failure = (co_await load_record(*ses.store, s.account)).first;
        co_return 0;
    });
    if (failure) {
        return report_unreadable_record(s, out, failure, false);
    }
    return unstored ? out.fail(unstored_pair_message(s), unstored) : exit_ok;
}

int exchange_and_store(const settings& s, authorization_grant grant, const reporter& out) {
    session ses(s);
    diagnostics diag;
    error_code failure;
    enum class step { load, exchange, save } failed_step = step::load;
    token_set tokens;
    const auto unstored = run_session(ses, out, [&](asio::any_io_executor) -> asio::awaitable<int> {
        // Not cancelled by a first signal: the exchange's answer is a new grant, its only copy (the
        // code is spent once sent), so it is awaited and stored; a second signal still exits.
        co_await asio::this_coro::reset_cancellation_state(asio::disable_cancellation());
        // Read before the code is sent: a record the store cannot read makes it refuse the new pair,
        // which was then lost with the code that bought it.
        if (const error_code ec = (co_await load_record(*ses.store, s.account)).first) {
            failure = ec;
            co_return 0;
        }
        auto [ec, t] = co_await ses.oauth.async_exchange_code(std::move(grant), diag,
                                                              asio::as_tuple(asio::use_awaitable));
        if (ec) {
            failure = ec;
            failed_step = step::exchange;
            co_return 0;
        }
        tokens = t;
        auto [store_ec] =
            co_await ses.cache.async_store(s.account, std::move(t), asio::as_tuple(asio::use_awaitable));
        if (store_ec) {
            failure = store_ec;
            failed_step = step::save;
        }
        co_return 0;
    });
    if (failure) {
        switch (failed_step) {
            case step::load:
                return report_unreadable_record(s, out, failure, false);
            case step::exchange:
                return out.fail("exchanging the authorization code failed", failure, diag,
                                talking_to(s, {endpoint_role::token}));
            case step::save:
                // What the server said was a success: the store's failure is the store's alone.
                return failure == errc::corrupt_record
                           ? report_unreadable_record(s, out, failure, true)
                           : out.fail(
                                 "saving the tokens in " + describe_store(s.store, s.token_dir) + " failed",
                                 failure);
        }
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
