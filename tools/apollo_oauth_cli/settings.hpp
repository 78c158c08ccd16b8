// Options shared by the subcommands, and the client configuration built from them (flags first,
// then APOLLO_* environment variables, then Apollo's defaults).
#pragma once

#include "arguments.hpp"
#include "store_choice.hpp"

#include <apollo_oauth/config.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace apollo_oauth::cli {

/// --client-id, --redirect-uri, --client-secret-file, endpoint overrides, --ca-file.
std::vector<option_spec> client_options();
/// --token-dir, --account, --store, --redis-password-file.
std::vector<option_spec> store_options();
/// --json.
option_spec json_option();

/// `own`, then --json, client_options() and store_options(): the options of a command that acts
/// for an account.
std::vector<option_spec> account_command_options(std::vector<option_spec> own);

/// The environment variable that backs an option: "token-dir" -> APOLLO_TOKEN_DIR.
std::string environment_name(const std::string& option);

/// The option's value from the command line, else from its environment variable.
std::optional<std::string> option_or_environment(const parsed_arguments& args, const std::string& option);

enum class secret_use { needed, not_needed };

struct settings {
    client_config config;
    /// The file store's directory (unless `store` names Redis), and always the pending
    /// authorization's.
    std::filesystem::path token_dir;
    store_choice store;
    std::string account;
    bool json = false;
};

/// Builds the settings. The client secret comes from APOLLO_CLIENT_SECRET or --client-secret-file
/// (APOLLO_CLIENT_SECRET_FILE), never from argv. Throws usage_error for missing or invalid values.
settings load_settings(const parsed_arguments& args, secret_use secret);

/// $APOLLO_TOKEN_DIR, else $XDG_STATE_HOME/apollo-oauth, else ~/.local/state/apollo-oauth.
std::filesystem::path default_token_dir();

}  // namespace apollo_oauth::cli
