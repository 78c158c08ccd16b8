// `authorize-url` and `exchange`: the browser dance split over two invocations, for a redirect
// that lands somewhere the tool does not listen (a registered https URI on a web server).
#include "commands.hpp"
#include "files.hpp"
#include "grant.hpp"
#include "output.hpp"
#include "pending.hpp"
#include "session.hpp"

#include <iostream>

namespace apollo_oauth::cli {
namespace {

// "-" reads the value from stdin, so a code or a redirected URL need not appear in argv.
std::string value_or_stdin(const std::string& value) {
    if (value != "-") {
        return value;
    }
    std::string line;
    std::getline(std::cin, line);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
        line.pop_back();
    }
    return line;
}

int run_authorize_url(const parsed_arguments& args) {
    const auto s = load_settings(args, secret_use::not_needed);
    const reporter out("authorize-url", s.json);
    auto made =
        start_authorization(s.config, {.scopes = args.all("scope")}, std::chrono::system_clock::now());
    if (!made) {
        return out.fail("cannot build the authorize URL", made.error());
    }
    {
        const pending_lock lock(s.token_dir, s.account);
        save_pending(s.token_dir, s.account, made->pending);
    }
    if (s.json) {
        out.print_json({{"url", made->url},
                        {"state", made->pending.state},
                        {"redirect_uri", made->pending.redirect_uri},
                        {"scopes", to_json_array(made->pending.scopes)},
                        {"pkce", args.has("pkce")},
                        {"account", s.account},
                        {"expires_in", s.config.state_lifetime.count()}});
    } else {
        std::cout << made->url << std::endl;
        out.note(
            "Open the URL above, approve, then run `apollo-oauth exchange --redirect-url -` and paste the "
            "URL "
            "the browser was redirected to (within " +
            std::to_string(s.config.state_lifetime.count() / 60) +
            " minutes). Read from stdin, its code stays out of `ps` and the shell's history.");
    }
    return exit_ok;
}

// What to pass, said once for every wrong combination: the user who has only a code learns where
// the state comes from, and that the whole URL is simpler.
constexpr const char* exchange_usage =
    "pass --redirect-url URL (the whole URL the browser was redirected to: simplest), or --code CODE "
    "with --state STATE. The state is the `state` parameter of that same redirect; it must match the "
    "one `apollo-oauth authorize-url` made and saved for this account (its --json output shows it as "
    "\"state\"), so run authorize-url first, open its URL, and copy the redirect's parameters";

int run_exchange(const parsed_arguments& args) {
    const auto s = load_settings(args, secret_use::needed);
    const reporter out("exchange", s.json);
    const auto redirect = args.get("redirect-url");
    const auto code = args.get("code");
    const auto state = args.get("state");
    if (redirect.has_value() == (code.has_value() || state.has_value()) ||
        code.has_value() != state.has_value()) {
        throw usage_error(code && !state ? std::string("--code needs --state: ") + exchange_usage
                                         : std::string(exchange_usage));
    }

    // Read before the lock: a value still to come on stdin must not keep other processes out.
    const std::string given = value_or_stdin(redirect ? *redirect : *code);
    // Before the pending state is used up: once the record can be read, the same redirect works.
    if (const int failed = check_record_readable(s, out)) {
        return failed;
    }
    boost::system::result<authorization_grant> grant = error_code(errc::unknown_state);
    diagnostics diag;
    {
        // Held while the pending record is read and consumed, so two exchanges cannot both use it.
        const pending_lock lock(s.token_dir, s.account);
        const auto pending = load_pending(s.token_dir, s.account);
        if (!pending) {
            return out.fail("no pending authorization for account '" + s.account + "' in " +
                                s.token_dir.string() + ": run `apollo-oauth authorize-url` first",
                            exit_authorization);
        }
        const std::string url = redirect ? given : redirect_url_with(*pending, given, *state);
        grant = verify_callback(*pending, url, std::chrono::system_clock::now(), &diag);
        if (callback_spends_state(grant)) {
            remove_pending(s.token_dir, s.account);
        }
    }
    if (!grant) {
        const auto ec = grant.error();
        return out.fail(ec == errc::unknown_state ? "the state does not match the pending authorization "
                                                    "(a stale or forged redirect)"
                                                  : "the redirect was not accepted",
                        ec, diag);
    }
    return exchange_and_store(s, std::move(*grant), out);
}

}  // namespace

command authorize_url_command() {
    command_spec spec{
        .name = "authorize-url",
        .summary = "Print the authorize URL to open in a browser, and remember its state for `exchange`.",
        .description =
            "The state (and PKCE verifier) are saved in <token dir>/<account hash>.pending.json (mode 0600,\n"
            "written atomically); a later authorize-url for the same account replaces them. They expire\n"
            "after 10 minutes and are good for one `exchange`.",
        .options = account_command_options(
            {{"scope", "SCOPE", "a scope to request (default: the app's registered scopes)", true},
             {"pkce", "", "send an RFC 7636 S256 code challenge (Apollo does not document PKCE)"}}),
        .exit_codes = exit_code_table(false),
    };
    return {std::move(spec), &run_authorize_url};
}

command exchange_command() {
    command_spec spec{
        .name = "exchange",
        .summary = "Exchange the code of a redirect received elsewhere, and store the tokens.",
        .description =
            "Checks the redirect against the state saved by `authorize-url` (constant-time comparison,\n"
            "expiry, redirect location, the server's error), then exchanges the code and stores the pair.\n"
            "Give the value \"-\" to read the URL or the code from stdin instead of the command line.",
        .options = account_command_options(
            {{"redirect-url", "URL", "the whole URL the browser was redirected to (the simplest way)"},
             {"code", "CODE", "the code parameter of the redirect (with --state)"},
             {"state", "STATE",
              "the state parameter of the same redirect (with --code): the state authorize-url made"}}),
        .exit_codes = exit_code_table(false),
    };
    return {std::move(spec), &run_exchange};
}

}  // namespace apollo_oauth::cli
