// `token` and `refresh`: the stored pair, used and rotated through the token cache (the store's
// lease makes one process at a time refresh).
#include "commands.hpp"
#include "files.hpp"
#include "grant.hpp"
#include "output.hpp"
#include "run.hpp"
#include "session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <iostream>
#include <tuple>

namespace apollo_oauth::cli {
namespace {

namespace asio = boost::asio;

int run_token(const parsed_arguments& args) {
    const auto s = load_settings(args, secret_use::needed);
    const reporter out("token", s.json);
    auto cache_settings = cli_cache_config();
    cache_settings.expiry_margin = seconds_option(args, "min-validity", cache_settings.expiry_margin, true);
    session ses(s, std::move(cache_settings));
    diagnostics diag;
    error_code failure;
    access_token token;
    std::optional<stored_tokens> record;
    const auto unstored = run_session(ses, out, [&](asio::any_io_executor) -> asio::awaitable<int> {
        auto [ec, t] = co_await ses.cache.async_get(s.account, diag, asio::as_tuple(asio::use_awaitable));
        if (ec) {
            failure = ec;
            co_return 0;
        }
        token = std::move(t);
        auto loaded = co_await load_record(*ses.store, s.account);
        record = std::move(loaded.second);
        co_return 0;
    });
    if (failure) {
        return out.fail("no access token for account '" + s.account + "'", failure, diag,
                        talking_to(s, {endpoint_role::token}));
    }
    if (unstored) {
        return out.fail(unstored_pair_message(s), unstored);
    }
    if (s.json) {
        boost::json::object result{{"access_token", token.value.reveal()}, {"token_type", "Bearer"}};
        if (record && record->generation == token.generation) {
            auto details = describe_tokens(s, record->tokens);
            result.insert(details.begin(), details.end());
        }
        out.print_json(result);
    } else {
        std::cout << token.value.reveal() << std::endl;
    }
    return exit_ok;
}

int run_refresh(const parsed_arguments& args) {
    const auto s = load_settings(args, secret_use::needed);
    const reporter out("refresh", s.json);
    auto cache_settings = cli_cache_config();
    cache_settings.refresh_scopes = args.all("scope");
    session ses(s, std::move(cache_settings));
    diagnostics diag;
    error_code failure;
    std::string failed_step;
    error_code read_back;
    std::optional<stored_tokens> rotated;
    // Through the cache, so the refresh holds the store's lease like any other: the current token
    // is dropped (invalidate), and the next get refreshes it, or adopts a pair another process
    // rotated meanwhile. A token expired already is refreshed by the first get itself.
    const auto unstored = run_session(ses, out, [&](asio::any_io_executor) -> asio::awaitable<int> {
        auto [ec, current] =
            co_await ses.cache.async_get(s.account, diag, asio::as_tuple(asio::use_awaitable));
        if (!ec && ses.cache.metrics().refreshes == 0) {
            ses.cache.invalidate(s.account, current);
            std::tie(ec, current) =
                co_await ses.cache.async_get(s.account, diag, asio::as_tuple(asio::use_awaitable));
        }
        if (ec) {
            failure = ec;
            failed_step = ec == errc::unknown_account
                              ? "cannot load the tokens of account '" + s.account + "'"
                              : std::string("refreshing the tokens failed");
            co_return 0;
        }
        std::tie(read_back, rotated) = co_await load_record(*ses.store, s.account);
        co_return 0;
    });
    if (failure) {
        return out.fail(failed_step, failure, diag, talking_to(s, {endpoint_role::token}));
    }
    if (unstored) {
        return out.fail(unstored_pair_message(s), unstored);
    }
    // The refresh is over and its pair stored (the cache commits before it answers): only the
    // report is missing. Told "authorize again" (exit 5, as for a record that is not there), a
    // person would throw away a grant that works.
    if (read_back) {
        return out.fail("account '" + s.account +
                            "' was refreshed and its new pair stored, but reading it back from " +
                            describe_store(s.store, s.token_dir) + " failed",
                        read_back);
    }
    if (!rotated) {
        return out.fail("the refreshed pair of account '" + s.account + "' is not in the store",
                        error_code(errc::unknown_account));
    }
    if (s.json) {
        auto result = describe_tokens(s, rotated->tokens);
        result["generation"] = rotated->generation;
        out.print_json(result);
    } else {
        std::cout << "Refreshed account '" << s.account << "' " << summarize_tokens(rotated->tokens)
                  << std::endl;
    }
    return exit_ok;
}

}  // namespace

command token_command() {
    command_spec spec{
        .name = "token",
        .summary = "Print a valid access token for the account, refreshing it first when it has expired.",
        .description =
            "Prints the bare token (or, with --json, the token with its scopes and expiry). Concurrent\n"
            "invocations for one account (processes, hosts sharing a Redis store) coordinate through the\n"
            "store's lease: one of them refreshes, the others wait and use the pair it stored (Apollo\n"
            "revokes the old pair on every refresh, so two racing refreshes would lock the account out).",
        .options = account_command_options(
            {{"min-validity", "SECONDS",
              "refresh when the token expires within this time (default 60; at most a quarter "
              "of its lifetime)"}}),
        .exit_codes = exit_code_table(false),
    };
    return {std::move(spec), &run_token};
}

command refresh_command() {
    command_spec spec{
        .name = "refresh",
        .summary = "Refresh the account's tokens now (Apollo rotates both and revokes the old pair).",
        .description = "With --scope, the new pair carries exactly those scopes (a subset of the grant's).",
        .options = account_command_options({{"scope", "SCOPE", "narrow the new pair to this scope", true}}),
        .exit_codes = exit_code_table(false),
    };
    return {std::move(spec), &run_refresh};
}

}  // namespace apollo_oauth::cli
