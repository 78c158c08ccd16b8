// apollo-oauth: a command-line OAuth 2.0 client for Apollo (or any standards-following server).
#include "arguments.hpp"
#include "commands.hpp"
#include "exit_codes.hpp"
#include "output.hpp"
#include "signals.hpp"
#include "store_choice.hpp"

#include <boost/system/system_error.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace apollo_oauth::cli {

std::vector<command> all_commands() {
    return {login_command(),   authorize_url_command(), exchange_command(), token_command(),
            refresh_command(), profile_command(),       request_command(),  emulator_command()};
}

namespace {

std::string usage() {
    std::string text =
        "usage: apollo-oauth COMMAND [options]\n\n"
        "A command-line OAuth 2.0 client for Apollo.io (or any standards-following OAuth 2.0 server).\n\n"
        "Commands:\n";
    for (const auto& c : all_commands()) {
        text += "  " + c.spec.name + std::string(15 - c.spec.name.size(), ' ') + c.spec.summary + "\n";
    }
    text +=
        "\nRun `apollo-oauth COMMAND --help` for its options. The client secret is read from\n"
        "APOLLO_CLIENT_SECRET or --client-secret-file, never from the command line; the Redis\n"
        "password (--store redis://...) from APOLLO_REDIS_PASSWORD or --redis-password-file.\n" +
        std::string(redis_store_built() ? ""
                                        : "This build has no Redis store (hiredis was not found): "
                                          "--store takes a directory only.\n") +
        "\nExit codes:\n" + exit_code_table(true);
    return text;
}

// Whether the failures are to be JSON: decided before the arguments are parsed, since parsing is
// one of the things that may fail. `--json` after `--` is a positional, not the flag.
bool wants_json(const std::vector<std::string>& argv) {
    for (const auto& arg : argv) {
        if (arg == "--") {
            return false;
        }
        if (arg == "--json") {
            return true;
        }
    }
    return false;
}

std::optional<command> find_command(const std::string& name) {
    for (auto& c : all_commands()) {
        if (c.spec.name == name) {
            return std::move(c);
        }
    }
    return std::nullopt;
}

int dispatch(const std::vector<std::string>& argv, const std::optional<command>& chosen,
             const reporter& out) {
    try {
        reject_secret_on_command_line(argv);
        if (argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help") {
            std::cout << usage();
            return exit_ok;
        }
        if (!chosen) {
            // Only the first word is echoed: it is not an option, so it carries no secret value.
            return out.fail(
                "unknown command '" +
                    (argv[0].rfind("-", 0) == 0 ? argv[0].substr(0, argv[0].find('=')) : argv[0]) +
                    "' (commands: login, authorize-url, exchange, token, refresh, profile, request, "
                    "emulator; see `apollo-oauth --help`)",
                exit_usage);
        }
        const auto args =
            parse_arguments(chosen->spec, std::vector<std::string>(argv.begin() + 1, argv.end()));
        if (args.help_requested()) {
            std::cout << help_text(chosen->spec);
            return exit_ok;
        }
        return chosen->run(args);
    } catch (const reported_exit& e) {
        return e.code;
    } catch (const usage_error& e) {
        return out.fail(e.what(), exit_usage);
    } catch (const boost::system::system_error& e) {
        // Library exceptions carry an error code and a field name, never a secret.
        const auto code = exit_code_for(e.code());
        return out.fail(e.what(), code == exit_ok ? exit_failure : code);
    } catch (const std::exception& e) {
        return out.fail(e.what(), exit_failure);
    }
}

// A result that never reached stdout (a full disk, /dev/full, a file system gone) is a failure: a
// script would otherwise take exit 0 with nothing written as the answer. Checked once, here, for
// every command: each prints its result before it returns.
int check_stdout(int code, const reporter& out) {
    std::cout.flush();
    if (std::cout) {
        return code;
    }
    // A success (and request's non-2xx answer, whose body is its result) becomes exit 1; a failure
    // reported already keeps its code and its one JSON object. (request --json reports its non-2xx
    // answer with this failure folded in, exit 1, so it does not get here with exit 7.)
    if (code == exit_ok || code == exit_http_status) {
        return out.fail(std::string(stdout_write_failure), exit_failure);
    }
    // (request's exit 8 says itself that its response could not be written.)
    if (!out.json() && code != exit_unstored_pair) {
        out.note("apollo-oauth: writing to standard output failed as well");
    }
    return code;
}

// A standard descriptor the tool was started without (`>&-`) is taken by /dev/null before anything
// else is opened, the other way round (stdin opened for writing, stdout and stderr for reading), so
// that using it fails as on a closed descriptor (EBADF) and check_stdout reports the result as not
// written. Before, the first file, socket or event descriptor the tool opened took the number, and
// what was meant for stdout went into whatever held it by then: `request --json >&-` was seen
// writing the API's answer into its connection to the API, and `token`'s access token could go the
// same way. False when /dev/null cannot be opened.
bool hold_closed_standard_descriptors() {
    for (const int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
        if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) {
            continue;
        }
        // The lowest free number is taken: this one, as those below it are open.
        if (::open("/dev/null", fd == STDIN_FILENO ? O_WRONLY : O_RDONLY) != fd) {
            return false;
        }
    }
    return true;
}

int run(const std::vector<std::string>& argv) {
    if (argv.empty()) {
        std::cerr << usage();
        return exit_usage;
    }
    const auto chosen = find_command(argv[0]);
    // Every failure goes through one reporter: one JSON object on stderr with --json.
    const reporter out(chosen ? chosen->spec.name : std::string(), wants_json(argv));
    return check_stdout(dispatch(argv, chosen, out), out);
}

}  // namespace
}  // namespace apollo_oauth::cli

int main(int argc, char** argv) {
    if (!apollo_oauth::cli::hold_closed_standard_descriptors()) {
        std::cerr << "apollo-oauth: a standard descriptor is closed and /dev/null cannot be opened\n";
        return apollo_oauth::cli::exit_failure;
    }
    // Before any signal_set replaces them: the dispositions the parent chose (see signals.hpp).
    apollo_oauth::cli::record_inherited_signal_dispositions();
    try {
        return apollo_oauth::cli::run(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const std::exception& e) {
        // Only when reporting itself failed (no memory for the message).
        std::cerr << "apollo-oauth: " << e.what() << "\n";
        return apollo_oauth::cli::exit_failure;
    }
}
