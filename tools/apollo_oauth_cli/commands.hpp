// The subcommands: each has a spec (options, --help text, exit codes) and a run function that
// returns the process's exit code.
#pragma once

#include "arguments.hpp"

#include <string>
#include <vector>

namespace apollo_oauth::cli {

struct command {
    command_spec spec;
    int (*run)(const parsed_arguments& args);
};

command authorize_url_command();
command exchange_command();
command login_command();
command token_command();
command refresh_command();
command profile_command();
command request_command();
command emulator_command();

/// Every subcommand, in the order `apollo-oauth --help` lists them.
std::vector<command> all_commands();

}  // namespace apollo_oauth::cli
