// Options shared by the subcommands, and the client configuration built from them.
#include "settings.hpp"

#include "files.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <iostream>

namespace apollo_oauth::cli {
namespace {

std::optional<std::string> environment(const std::string& name) {
    const char* value = std::getenv(name.c_str());
    return value && *value ? std::optional<std::string>(value) : std::nullopt;
}

std::string trim_line_end(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) {
        s.pop_back();
    }
    return s;
}

secret_string read_secret_file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        std::cerr << "apollo-oauth: warning: the client secret file " << path
                  << " is readable by other users; chmod 600 it\n";
    }
    auto text = read_small_file(path);
    if (!text) {
        throw usage_error("cannot read the client secret file " + path);
    }
    secret_string secret{trim_line_end(std::move(*text))};
    if (secret.empty()) {
        throw usage_error("the client secret file " + path + " is empty");
    }
    return secret;
}

std::string required(const parsed_arguments& args, const std::string& option, const std::string& what) {
    auto value = option_or_environment(args, option);
    if (!value) {
        throw usage_error("no " + what + ": pass --" + option + " or set " + environment_name(option));
    }
    return *value;
}

}  // namespace

std::vector<option_spec> client_options() {
    return {
        {"client-id", "ID", "the app's client id (env APOLLO_CLIENT_ID)"},
        {"redirect-uri", "URI", "a redirect URI registered for the app (env APOLLO_REDIRECT_URI)"},
        {"client-secret-file", "FILE",
         "file holding the client secret (env APOLLO_CLIENT_SECRET_FILE; or set APOLLO_CLIENT_SECRET)"},
        {"authorize-url", "URL", "authorize endpoint (env APOLLO_AUTHORIZE_URL; default Apollo's)"},
        {"token-url", "URL", "token endpoint (env APOLLO_TOKEN_URL; default Apollo's)"},
        {"profile-url", "URL", "profile endpoint (env APOLLO_PROFILE_URL; default Apollo's)"},
        {"api-base", "URL", "API base URL (env APOLLO_API_BASE; default https://api.apollo.io)"},
        {"ca-file", "FILE", "extra PEM trust anchors, added to the system's (env APOLLO_CA_FILE)"},
    };
}

std::vector<option_spec> store_options() {
    return {
        {"token-dir", "DIR",
         "token directory (env APOLLO_TOKEN_DIR; default $XDG_STATE_HOME/apollo-oauth or "
         "~/.local/state/apollo-oauth)"},
        {"account", "NAME", "account whose tokens to use (env APOLLO_ACCOUNT; default \"default\")"},
    };
}

option_spec json_option() {
    return {"json", "", "machine-readable output: one JSON object on stdout (errors: one on stderr)"};
}

std::vector<option_spec> account_command_options(std::vector<option_spec> own) {
    own.push_back(json_option());
    for (auto part : {client_options(), store_options()}) {
        own.insert(own.end(), part.begin(), part.end());
    }
    return own;
}

std::string environment_name(const std::string& option) {
    std::string name = "APOLLO_" + option;
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return c == '-' ? '_' : static_cast<char>(std::toupper(c)); });
    return name;
}

std::optional<std::string> option_or_environment(const parsed_arguments& args, const std::string& option) {
    if (auto value = args.get(option)) {
        return value;
    }
    return environment(environment_name(option));
}

std::filesystem::path default_token_dir() {
    if (auto dir = environment("APOLLO_TOKEN_DIR")) {
        return *dir;
    }
    if (auto state = environment("XDG_STATE_HOME")) {
        return std::filesystem::path(*state) / "apollo-oauth";
    }
    if (auto home = environment("HOME")) {
        return std::filesystem::path(*home) / ".local" / "state" / "apollo-oauth";
    }
    throw usage_error("no token directory: pass --token-dir, or set APOLLO_TOKEN_DIR or HOME");
}

settings load_settings(const parsed_arguments& args, secret_use secret) {
    settings s;
    s.json = args.has("json");
    s.token_dir = args.get("token-dir") ? std::filesystem::path(*args.get("token-dir")) : default_token_dir();
    s.account = option_or_environment(args, "account").value_or("default");
    if (s.account.empty()) {
        throw usage_error("the account name may not be empty");
    }

    auto& c = s.config;
    c.client_id = required(args, "client-id", "client id");
    c.redirect_uris = {required(args, "redirect-uri", "redirect URI")};
    if (auto v = option_or_environment(args, "authorize-url")) {
        c.endpoints.authorize_url = *v;
    }
    if (auto v = option_or_environment(args, "token-url")) {
        c.endpoints.token_url = *v;
    }
    if (auto v = option_or_environment(args, "profile-url")) {
        c.endpoints.profile_url = *v;
    }
    if (auto v = option_or_environment(args, "api-base")) {
        c.endpoints.api_base = *v;
    }
    if (auto v = option_or_environment(args, "ca-file")) {
        c.tls.ca_file = *v;
    }

    if (secret == secret_use::needed) {
        if (auto file = option_or_environment(args, "client-secret-file")) {
            c.client_secret = read_secret_file(*file);
        } else if (auto value = environment("APOLLO_CLIENT_SECRET")) {
            c.client_secret = secret_string{std::move(*value)};
        } else {
            throw usage_error(
                "no client secret: set APOLLO_CLIENT_SECRET, or pass --client-secret-file FILE "
                "(or set APOLLO_CLIENT_SECRET_FILE)");
        }
    } else {
        // validate() wants one; commands that never reach the token endpoint do not send it.
        c.client_secret = secret_string{std::string_view("unused")};
    }
    std::string what;
    if (auto ec = validate(c, &what)) {
        throw usage_error("invalid configuration: " + what);
    }
    return s;
}

}  // namespace apollo_oauth::cli
