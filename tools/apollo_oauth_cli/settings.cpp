// Options shared by the subcommands, and the client configuration built from them.
#include "settings.hpp"

#include "files.hpp"

#include <boost/url/parse.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>

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

// `source`: the option or variable that named the file, for messages (which never quote the name).
secret_string read_client_secret(const std::string& path, const std::string& source) {
    secret_string secret{trim_line_end(read_secret_file(path, "client secret", source))};
    if (secret.empty()) {
        throw usage_error("the client secret file named by " + source + " is empty");
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

// Where each endpoint is below a --base-url origin: Apollo's own paths (the emulator's too), with a
// plain path for the authorize page, since a server never sees a fragment route.
struct endpoint_option {
    const char* option;
    std::string endpoints::*field;
    const char* path;
};
const endpoint_option endpoint_options[] = {
    {"authorize-url", &endpoints::authorize_url, "/oauth/authorize"},
    {"token-url", &endpoints::token_url, "/api/v1/oauth/token"},
    {"profile-url", &endpoints::profile_url, "/api/v1/users/api_profile"},
    {"api-base", &endpoints::api_base, ""},
};

// "https://host[:port]" from a --base-url value; usage_error for anything with a path, query,
// fragment or user information, which one origin for four endpoints cannot honour.
std::string origin_of(const std::string& value, const std::string& source) {
    const auto url = boost::urls::parse_absolute_uri(value);
    const bool origin_only = url && url->scheme_id() == boost::urls::scheme::https && url->has_authority() &&
                             !url->host().empty() && !url->has_userinfo() && !url->has_query() &&
                             !url->has_fragment() && (url->path().empty() || url->path() == "/");
    if (!origin_only) {
        throw usage_error(source +
                          " wants an https origin such as https://auth.example.com or "
                          "https://127.0.0.1:8443, with no path: the endpoints get Apollo's paths below it");
    }
    return "https://" + std::string(url->encoded_authority());
}

// Each endpoint: its own option, else --base-url, else its own environment variable, else
// APOLLO_BASE_URL, else Apollo's default. Options before the environment, so that a --base-url
// typed now wins over an APOLLO_TOKEN_URL exported long ago.
void set_endpoints(const parsed_arguments& args, endpoints& out) {
    const auto base_option = args.get("base-url");
    const auto base_option_origin =
        base_option ? std::optional(origin_of(*base_option, "--base-url")) : std::nullopt;
    const auto base_environment = environment("APOLLO_BASE_URL");
    const auto base_environment_origin =
        base_environment ? std::optional(origin_of(*base_environment, "APOLLO_BASE_URL")) : std::nullopt;
    for (const auto& e : endpoint_options) {
        if (auto v = args.get(e.option)) {
            out.*e.field = *v;
        } else if (base_option_origin) {
            out.*e.field = *base_option_origin + e.path;
        } else if (auto env = environment(environment_name(e.option))) {
            out.*e.field = *env;
        } else if (base_environment_origin) {
            out.*e.field = *base_environment_origin + e.path;
        }
    }
}

}  // namespace

std::vector<option_spec> client_options() {
    return {
        {"client-id", "ID", "the app's client id (env APOLLO_CLIENT_ID)"},
        {"redirect-uri", "URI", "a redirect URI registered for the app (env APOLLO_REDIRECT_URI)"},
        {"client-secret-file", "FILE",
         "file holding the client secret (env APOLLO_CLIENT_SECRET_FILE; or set APOLLO_CLIENT_SECRET)"},
        {"base-url", "URL",
         "one origin for all four endpoints, with Apollo's paths: URL/oauth/authorize, "
         "URL/api/v1/oauth/token, URL/api/v1/users/api_profile, API base URL (env APOLLO_BASE_URL); "
         "the four options below each override one"},
        {"authorize-url", "URL", "authorize endpoint (env APOLLO_AUTHORIZE_URL; default Apollo's)"},
        {"token-url", "URL", "token endpoint (env APOLLO_TOKEN_URL; default Apollo's)"},
        {"profile-url", "URL", "profile endpoint (env APOLLO_PROFILE_URL; default Apollo's)"},
        {"api-base", "URL", "API base URL (env APOLLO_API_BASE; default https://api.apollo.io)"},
        {"ca-file", "FILE", "extra PEM trust anchors, added to the system's (env APOLLO_CA_FILE)"},
    };
}

std::vector<option_spec> store_options() {
    std::vector<option_spec> options{
        {"token-dir", "DIR",
         "token directory (env APOLLO_TOKEN_DIR; default $XDG_STATE_HOME/apollo-oauth or "
         "~/.local/state/apollo-oauth)"},
        {"account", "NAME", "account whose tokens to use (env APOLLO_ACCOUNT; default \"default\")"},
    };
    auto store = store_choice_options();
    options.insert(options.end(), store.begin(), store.end());
    return options;
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
    s.store = load_store_choice(args, s.token_dir);
    s.account = option_or_environment(args, "account").value_or("default");
    if (s.account.empty()) {
        throw usage_error("the account name may not be empty");
    }

    auto& c = s.config;
    c.client_id = required(args, "client-id", "client id");
    c.redirect_uris = {required(args, "redirect-uri", "redirect URI")};
    set_endpoints(args, c.endpoints);
    c.use_pkce = args.has("pkce");
    if (auto v = option_or_environment(args, "ca-file")) {
        c.tls.ca_file = *v;
    }

    if (secret == secret_use::needed) {
        if (auto file = args.get("client-secret-file")) {
            c.client_secret = read_client_secret(*file, "--client-secret-file");
        } else if (auto env_file = environment("APOLLO_CLIENT_SECRET_FILE")) {
            c.client_secret = read_client_secret(*env_file, "APOLLO_CLIENT_SECRET_FILE");
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
