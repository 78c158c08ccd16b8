// `login`: the whole browser dance for a person at a terminal. Prints (and with --open, opens) the
// authorize URL, receives the redirect on an HTTPS listener at the loopback redirect URI, checks
// the state, exchanges the code and stores the tokens.
#include "commands.hpp"
#include "files.hpp"
#include "grant.hpp"
#include "login_listener.hpp"
#include "output.hpp"
#include "pending.hpp"
#include "run.hpp"
#include "self_signed.hpp"
#include "session.hpp"
#include "signals.hpp"

#include <boost/algorithm/string/predicate.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/url/parse.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string_view>
#include <vector>

extern char** environ;

namespace apollo_oauth::cli {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::optional<std::string> find_in_path(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    for (std::size_t start = 0; start <= dirs.size();) {
        const auto end = std::min(dirs.find(':', start), dirs.size());
        const auto candidate = dirs.substr(start, end - start) + "/" + program;
        if (end > start && ::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
        start = end + 1;
    }
    return std::nullopt;
}

// This process's environment without the tool's own variables: APOLLO_CLIENT_SECRET and
// APOLLO_REDIS_PASSWORD are secrets, and no APOLLO_* setting is any business of a browser's.
std::vector<std::string> browser_environment() {
    std::vector<std::string> out;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        if (!std::string_view(*entry).starts_with("APOLLO_")) {
            out.emplace_back(*entry);
        }
    }
    return out;
}

// Starts the browser without waiting for it; its output does not mix with ours. Nothing but the
// three standard descriptors goes with it: the browser may outlive this process by hours, and
// whatever it inherited stays open as long (the listener's socket did, and kept its port taken).
// The listener is close-on-exec itself (login_listener.cpp); this also covers any descriptor
// opened without O_CLOEXEC by code this process does not control.
bool open_in_browser(const std::string& opener, const std::string& url) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
#endif
    std::string program = opener;
    std::string argument = url;
    char* argv[] = {program.data(), argument.data(), nullptr};
    auto environment = browser_environment();
    std::vector<char*> envp;
    for (auto& entry : environment) {
        envp.push_back(entry.data());
    }
    envp.push_back(nullptr);
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, opener.c_str(), &actions, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    return rc == 0;
}

struct listener_setup {
    tcp::endpoint endpoint;
    std::string origin;  // "https://127.0.0.1:8443"
    std::string path;    // "/callback"
};

// A loopback host: a name the resolver maps to loopback only ("localhost"), or a loopback address.
bool is_loopback(const boost::urls::url_view& url) {
    if (url.host_type() == boost::urls::host_type::name) {
        return boost::algorithm::iequals(url.encoded_host(), "localhost");
    }
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(url.host_address(), ec);
    return !ec && address.is_loopback();
}

listener_setup listener_for(const std::string& redirect_uri) {
    const auto target = boost::urls::parse_absolute_uri(redirect_uri);
    if (!target || target->scheme_id() != boost::urls::scheme::https || !is_loopback(*target)) {
        throw usage_error(
            "login receives the redirect itself, so the redirect URI must be https on a loopback "
            "address (https://127.0.0.1:PORT/PATH, https://[::1]:PORT/PATH or "
            "https://localhost:PORT/PATH); for other redirect URIs use `authorize-url` then "
            "`exchange`");
    }
    listener_setup out;
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(target->host_address(), ec);
    out.endpoint = tcp::endpoint(ec ? asio::ip::address(asio::ip::address_v4::loopback()) : address,
                                 target->has_port() ? target->port_number() : 443);
    out.origin = "https://" + std::string(target->encoded_authority());
    out.path = target->encoded_path().empty() ? "/" : std::string(target->encoded_path());
    return out;
}

int run_login(const parsed_arguments& args) {
    const auto s = load_settings(args, secret_use::needed);
    const reporter out("login", s.json);
    const auto timeout = seconds_option(args, "timeout", std::chrono::seconds(300), false);
    const auto where = listener_for(s.config.redirect_uris.front());

    listener_certificate certificate;
    const auto cert_file = args.get("listen-cert");
    const auto key_file = args.get("listen-key");
    if (cert_file.has_value() != key_file.has_value()) {
        throw usage_error("--listen-cert and --listen-key go together");
    }
    if (cert_file) {
        int error_number = 0;
        auto cert = read_small_file(*cert_file, &error_number);
        auto key = cert ? read_small_file(*key_file, &error_number) : std::nullopt;
        if (!cert || !key) {
            // The file's name is not quoted, as no option's value is (docs/cli.md).
            throw usage_error(std::string("cannot read the file named by ") +
                              (cert ? "--listen-key" : "--listen-cert") + ": " + std::strerror(error_number));
        }
        auto fingerprint = certificate_fingerprint(*cert);
        certificate = {std::move(*cert), std::move(*key), std::move(fingerprint)};
    } else {
        certificate = make_self_signed_certificate();
    }

    // Before a person is sent through the browser for a code whose tokens could not be saved.
    if (const int failed = check_record_readable(s, out)) {
        return failed;
    }
    auto made =
        start_authorization(s.config, {.scopes = args.all("scope")}, std::chrono::system_clock::now());
    if (!made) {
        return out.fail("cannot build the authorize URL", made.error());
    }
    // Also saved, so that a redirect that cannot reach this listener (a browser on another
    // machine) can still be completed with `apollo-oauth exchange --redirect-url URL`.
    {
        const pending_lock lock(s.token_dir, s.account);
        save_pending(s.token_dir, s.account, made->pending);
    }

    asio::io_context ioc;
    boost::system::result<authorization_grant> grant = error_code(errc::missing_code);
    diagnostics diag;
    auto judge = [&](std::string_view url) -> callback_verdict {
        diagnostics d;
        auto verified = verify_callback(made->pending, url, std::chrono::system_clock::now(), &d);
        if (!callback_spends_state(verified) && verified.error() != errc::state_expired) {
            // Not the answer to this login (an old tab, or a forged request): keep waiting.
            out.note("Ignored a redirect that does not match this login's state (" +
                     verified.error().message() + "); still waiting.");
            return {400, "This redirect does not belong to the pending apollo-oauth login.\n", false};
        }
        grant = std::move(verified);
        diag = std::move(d);
        if (!grant) {
            return {400, "Authorization failed: " + grant.error().message() + ". See the terminal.\n", true};
        }
        return {200, "apollo-oauth received the authorization. You can close this tab.\n", true};
    };
    login_listener listener(ioc, where.endpoint, certificate.cert_pem, certificate.key_pem, where.origin,
                            where.path, judge);

    // Set up before the URL is printed: a SIGINT or SIGTERM sent once a person or a script has
    // seen it cancels the wait, unless it was ignored when the process started (a background job,
    // nohup, `trap '' TERM`): that one stays ignored.
    asio::signal_set interrupt(ioc);
    handle_signals_not_ignored(interrupt, {SIGINT, SIGTERM});
    bool interrupted = false;
    interrupt.async_wait([&](boost::system::error_code ec, int) {
        if (!ec) {
            interrupted = true;
            listener.stop();
        }
    });

    const std::string callback = where.origin + where.path;
    if (s.json) {
        out.print_json({{"authorize_url", made->url},
                        {"listening", callback},
                        {"certificate_sha256", certificate.fingerprint},
                        {"timeout", timeout.count()}});
    } else {
        std::cout << made->url << std::endl;
    }
    const auto opener = find_in_path("xdg-open");
    if (args.has("open")) {
        if (!opener || !open_in_browser(*opener, made->url)) {
            out.note("Could not start a browser (xdg-open); open the URL above yourself.");
        }
    } else if (!s.json) {
        out.note(std::string("Open the URL above in your browser") + (opener ? " (or pass --open)" : "") +
                 ".");
    }
    if (!cert_file) {
        out.note(
            "The listener uses a self-signed certificate: your browser will warn once; its SHA-256 "
            "fingerprint is " +
            certificate.fingerprint + ".");
    }
    out.note("Waiting for the browser to be redirected to " + callback + " ... (" +
             (ignored_at_start(SIGINT) ? "" : "Ctrl-C to cancel, ") + "timeout " +
             std::to_string(timeout.count()) + " s)");
    const bool settled = run_to_completion<bool>(
        ioc, [&](asio::any_io_executor) { return listener.async_wait_for_callback(timeout); });
    if (!settled) {
        return out.fail(
            interrupted ? "cancelled"
                        : "timed out after " + std::to_string(timeout.count()) + " s waiting for the browser",
            exit_timeout);
    }
    try {
        // Its own state is used up; one an `authorize-url` saved meanwhile is not.
        const pending_lock lock(s.token_dir, s.account);
        remove_pending_of(s.token_dir, s.account, made->pending.state);
    } catch (const std::exception& e) {
        // The code in hand is worth more than the tidy-up: the server will refuse the state again.
        out.note(std::string("could not remove the pending authorization: ") + e.what());
    }
    if (!grant) {
        return out.fail("the authorization failed", grant.error(), diag);
    }
    out.note("Redirect received; exchanging the code.");
    return exchange_and_store(s, std::move(*grant), out);
}

}  // namespace

command login_command() {
    command_spec spec{
        .name = "login",
        .summary = "Authorize the account in a browser and store its tokens (the whole dance).",
        .description =
            "The redirect URI must be https on a loopback address (e.g. https://127.0.0.1:8443/callback,\n"
            "registered for the app): login listens there, checks the state of the redirect (constant\n"
            "time; a redirect with another state is answered 400 and ignored), exchanges the code and\n"
            "stores the tokens in the token directory. Without --listen-cert/--listen-key it makes a\n"
            "self-signed certificate and prints its fingerprint. The pending state is also saved, so a\n"
            "redirect that cannot reach the listener can be finished with `apollo-oauth exchange`.\n"
            "With --json, stdout gets one line when listening (authorize_url, listening,\n"
            "certificate_sha256) and one when done (account, scopes, expires_at).",
        .options = account_command_options(
            {{"scope", "SCOPE", "a scope to request (default: the app's registered scopes)", true},
             {"pkce", "", "send an RFC 7636 S256 code challenge"},
             {"open", "", "open the URL with xdg-open"},
             {"timeout", "SECONDS", "give up after this long (default 300)"},
             {"listen-cert", "FILE", "PEM certificate (chain) for the loopback listener"},
             {"listen-key", "FILE", "PEM private key for it"}}),
        .exit_codes = exit_code_table(false),
    };
    return {std::move(spec), &run_login};
}

}  // namespace apollo_oauth::cli
