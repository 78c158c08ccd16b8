// `token` and `refresh`: the stored pair, used and rotated under the account lock.
#include "commands.hpp"
#include "files.hpp"
#include "grant.hpp"
#include "output.hpp"
#include "run.hpp"
#include "session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <iostream>

namespace apollo_oauth::cli {
namespace {

namespace asio = boost::asio;

int run_token(const parsed_arguments& args) {
    const auto s = load_settings(args, secret_use::needed);
    const reporter out("token", s.json);
    auto cache_settings = cli_cache_config();
    cache_settings.expiry_margin = seconds_option(args, "min-validity", cache_settings.expiry_margin, true);
    const auto lock = lock_account(s);
    session ses(s, std::move(cache_settings));
    error_code failure;
    access_token token;
    std::optional<stored_tokens> record;
    run_to_completion<int>(ses.ioc, [&](asio::any_io_executor) -> asio::awaitable<int> {
        auto [ec, t] = co_await ses.cache.async_get(s.account, asio::as_tuple(asio::use_awaitable));
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
        return out.fail("no access token for account '" + s.account + "'", failure, {},
                        talking_to(s, {endpoint_role::token}));
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
    const auto lock = lock_account(s);
    session ses(s);
    diagnostics diag;
    error_code failure;
    std::string failed_step;
    stored_tokens rotated;
    // Through the client and the store rather than the cache: a refresh the user asked for must
    // happen even when the token is still valid, and its failure should carry the server's words.
    run_to_completion<int>(ses.ioc, [&](asio::any_io_executor) -> asio::awaitable<int> {
        auto [load_ec, record] = co_await load_record(*ses.store, s.account);
        if (load_ec || !record) {
            failure = load_ec ? load_ec : error_code(errc::unknown_account);
            failed_step = "cannot load the tokens of account '" + s.account + "'";
            co_return 0;
        }
        auto [ec, tokens] = co_await ses.oauth.async_refresh(record->tokens.refresh_token, args.all("scope"),
                                                             diag, asio::as_tuple(asio::use_awaitable));
        if (ec) {
            // invalid_grant on refresh: the grant is gone, only a new authorization helps.
            failure = ec == errc::invalid_grant ? error_code(errc::reauthorization_required) : ec;
            failed_step = "refreshing the tokens failed";
            co_return 0;
        }
        // A copy: clang 14 cannot capture a structured binding in a lambda.
        const std::uint64_t expected_generation = record->generation;
        rotated = stored_tokens{std::move(tokens), expected_generation + 1};
        // A named lambda: g++ 12 mishandles a capturing lambda inside a co_await full-expression.
        auto save = [&](auto handler) {
            ses.store->async_save(s.account, rotated, expected_generation, std::move(handler));
        };
        auto as_tuple = asio::as_tuple(asio::use_awaitable);
        auto [save_ec] = co_await asio::async_initiate<decltype(as_tuple), void(error_code)>(save, as_tuple);
        if (save_ec) {
            failure = save_ec;
            failed_step =
                "the server rotated the tokens but saving the new pair failed (the old pair is revoked)";
        }
        co_return 0;
    });
    if (failure) {
        return out.fail(failed_step, failure, diag, talking_to(s, {endpoint_role::token}));
    }
    if (s.json) {
        auto result = describe_tokens(s, rotated.tokens);
        result["generation"] = rotated.generation;
        out.print_json(result);
    } else {
        std::cout << "Refreshed account '" << s.account << "' " << summarize_tokens(rotated.tokens)
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
            "invocations for one account take turns on <token dir>/<account hash>.cli-lock, so that only\n"
            "one of them refreshes and the others use the pair it stored: Apollo revokes the old pair on\n"
            "every refresh, so two racing refreshes would lock the account out.",
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
