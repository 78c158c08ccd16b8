// apollo-oauth: a command-line OAuth 2.0 client for Apollo (or any standards-following server).
#include "arguments.hpp"
#include "commands.hpp"
#include "exit_codes.hpp"
#include "store_choice.hpp"

#include <boost/system/system_error.hpp>

#include <iostream>
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

int run(const std::vector<std::string>& argv) {
    if (argv.empty()) {
        std::cerr << usage();
        return exit_usage;
    }
    try {
        reject_secret_on_command_line(argv);
    } catch (const usage_error& e) {
        std::cerr << "apollo-oauth: " << e.what() << "\n";
        return exit_usage;
    }
    if (argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help") {
        std::cout << usage();
        return exit_ok;
    }
    for (const auto& c : all_commands()) {
        if (c.spec.name != argv[0]) {
            continue;
        }
        const std::vector<std::string> rest(argv.begin() + 1, argv.end());
        try {
            const auto args = parse_arguments(c.spec, rest);
            if (args.help_requested()) {
                std::cout << help_text(c.spec);
                return exit_ok;
            }
            return c.run(args);
        } catch (const usage_error& e) {
            std::cerr << "apollo-oauth " << c.spec.name << ": " << e.what() << "\n";
            return exit_usage;
        }
    }
    // Only the first word is echoed: it is not an option, so it carries no secret value.
    std::cerr << "apollo-oauth: unknown command '"
              << (argv[0].rfind("-", 0) == 0 ? argv[0].substr(0, argv[0].find('=')) : argv[0])
              << "' (commands: login, authorize-url, exchange, token, refresh, profile, request, emulator; "
                 "see `apollo-oauth --help`)\n";
    return exit_usage;
}

}  // namespace
}  // namespace apollo_oauth::cli

int main(int argc, char** argv) {
    try {
        return apollo_oauth::cli::run(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const boost::system::system_error& e) {
        // Library exceptions carry an error code and a field name, never a secret.
        std::cerr << "apollo-oauth: " << e.what() << "\n";
        const auto code = apollo_oauth::cli::exit_code_for(e.code());
        return code == apollo_oauth::cli::exit_ok ? apollo_oauth::cli::exit_failure : code;
    } catch (const std::exception& e) {
        std::cerr << "apollo-oauth: " << e.what() << "\n";
        return apollo_oauth::cli::exit_failure;
    }
}
