// `profile` and `request`: calls on behalf of the account (a 401 or an expired token makes the
// cache refresh, under the store's lease: one process at a time refreshes).
#include "commands.hpp"
#include "files.hpp"
#include "output.hpp"
#include "run.hpp"
#include "session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <iostream>
#include <iterator>

namespace apollo_oauth::cli {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

// Server text for a terminal: control bytes (an escape sequence could rewrite the screen) as \xNN.
std::string printable(std::string_view text) {
    std::string out;
    for (const unsigned char c : text.substr(0, 1024)) {
        if (c < 0x20 || c == 0x7f) {
            static constexpr char hex[] = "0123456789abcdef";
            out += {'\\', 'x', hex[c >> 4], hex[c & 15]};
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

// A JSON document is embedded as JSON, anything else as a string.
boost::json::value body_as_json(const std::string& body) {
    boost::system::error_code ec;
    auto value = boost::json::parse(body, ec);
    return ec ? boost::json::value(body) : value;
}

int run_profile(const parsed_arguments& args) {
    const auto s = load_settings(args, secret_use::needed);
    const reporter out("profile", s.json);
    session ses(s);
    diagnostics diag;
    error_code failure;
    endpoint_role failed_at = endpoint_role::token;
    user_profile profile;
    // The profile lives at profile_url, outside api_base, so this is api_client's 401 policy by
    // hand: on a 401 that blames the token, invalidate it (the cache refreshes) and try once more.
    // Another 401 (insufficient_scope, invalid_request) is reported as it is: a refresh would
    // rotate the grant for nothing.
    const auto unstored = run_session(ses, out, [&](asio::any_io_executor) -> asio::awaitable<int> {
        for (int attempt = 0; attempt < 2; ++attempt) {
            auto [ec, token] = co_await ses.cache.async_get(s.account, asio::as_tuple(asio::use_awaitable));
            if (ec) {
                failure = ec;
                co_return 0;
            }
            auto [pec, p] =
                co_await ses.oauth.async_get_profile(token.value, diag, asio::as_tuple(asio::use_awaitable));
            failure = pec;
            failed_at = endpoint_role::profile;
            profile = std::move(p);
            if (pec != errc::unauthorized || !diag.blames_the_token()) {
                co_return 0;
            }
            ses.cache.invalidate(s.account, token);
        }
        co_return 0;
    });
    if (failure) {
        return out.fail("fetching the profile failed", failure, diag, talking_to(s, {failed_at}));
    }
    if (unstored) {
        return out.fail(unstored_pair_message(s), unstored);
    }
    if (s.json) {
        out.print_json({{"account", s.account},
                        {"id", profile.id},
                        {"email", profile.email},
                        {"name", profile.name},
                        {"team_id", profile.team_id},
                        {"profile", body_as_json(profile.json)}});
    } else {
        std::cout << profile.name << " <" << profile.email << "> id " << profile.id << " team "
                  << profile.team_id << std::endl;
    }
    return exit_ok;
}

std::string read_data(const std::string& data) {
    if (data == "-") {
        return {std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    }
    if (!data.empty() && data[0] == '@') {
        int error_number = 0;
        auto text = read_small_file(data.substr(1), &error_number);
        if (!text) {
            // The file's name is not quoted, as no option's value is (docs/cli.md).
            throw usage_error(std::string("cannot read the file named by --data @FILE: ") +
                              std::strerror(error_number));
        }
        return *text;
    }
    return data;
}

header_list parse_headers(const std::vector<std::string>& headers) {
    header_list out;
    for (const auto& h : headers) {
        const auto colon = h.find(':');
        if (colon == std::string::npos || colon == 0) {
            throw usage_error("--header wants \"Name: value\"");
        }
        auto value = h.substr(colon + 1);
        value.erase(0, std::min(value.find_first_not_of(' '), value.size()));
        out.emplace_back(h.substr(0, colon), std::move(value));
    }
    return out;
}

// The API client takes an origin-form target ("/v1/..."), appended to the API base: a path
// without its leading slash, or a whole URL, is said to be wrong here, with the fix.
std::string checked_path(const std::string& path, const std::string& api_base) {
    if (path.rfind("https://", 0) == 0 || path.rfind("http://", 0) == 0) {
        throw usage_error("PATH is the path below the API base (" + api_base +
                          "), not a whole URL: give only the part from its first '/' on, e.g. "
                          "/v1/tasks/bulk_create (set the API's origin with --api-base or --base-url)");
    }
    if (path.empty() || path.front() != '/') {
        throw usage_error("PATH must start with '/': it is appended to the API base (" + api_base +
                          "), so write /" + path + " rather than " + path);
    }
    return path;
}

int run_request(const parsed_arguments& args) {
    const auto s = load_settings(args, secret_use::needed);
    const reporter out("request", s.json);
    std::string method = args.positionals()[0];
    std::transform(method.begin(), method.end(), method.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    api_request request;
    request.method = http::string_to_verb(method);
    if (request.method == http::verb::unknown) {
        throw usage_error("unknown HTTP method " + args.positionals()[0]);
    }
    request.target = checked_path(args.positionals()[1], s.config.endpoints.api_base);
    if (auto data = args.get("data")) {
        request.body = read_data(*data);
    }
    request.headers = parse_headers(args.all("header"));

    session ses(s);
    error_code failure;
    api_response response;
    diagnostics diag;  // what the API said: the status, a 401's Bearer challenge, a Retry-After
    const auto unstored = run_session(ses, out, [&](asio::any_io_executor) -> asio::awaitable<int> {
        auto [ec, res] = co_await ses.api.async_request(s.account, std::move(request), diag,
                                                        asio::as_tuple(asio::use_awaitable));
        failure = ec;
        response = std::move(res);
        co_return 0;
    });
    if (failure) {
        return out.fail(method + " " + args.positionals()[1] + " failed", failure, {},
                        talking_to(s, {endpoint_role::api, endpoint_role::token}));
    }
    // The response first, even when the rotated pair could not be stored: the request has had its
    // effect, and a script that retries on a non-zero exit must see that it did.
    const bool ok = response.status >= 200 && response.status < 300;
    if (s.json) {
        out.print_json({{"status", response.status}, {"body", body_as_json(response.body)}});
    } else {
        std::cout << response.body;
        if (!response.body.empty() && response.body.back() != '\n') {
            std::cout << "\n";
        }
        std::cout.flush();
    }
    // A non-2xx answer is also a failure (exit 7), reported as every failure is: one line on
    // stderr, one JSON object with --json. The challenge says why a token was refused (RFC 6750
    // §3: invalid_token, insufficient_scope and the scope wanted): its control bytes escaped.
    std::string status_line = "HTTP " + std::to_string(response.status);
    if (const auto challenge = response.header("WWW-Authenticate")) {
        status_line += " (WWW-Authenticate: " + printable(*challenge) + ")";
    }
    if (unstored) {
        // With --json, stdout's status says it; the one failure object on stderr is this one.
        if (!ok && !s.json) {
            out.note("apollo-oauth request: " + status_line);
        }
        // Where its response went: stdout, unless writing it failed (a full disk, a closed stdout;
        // both paths above flushed it). Still exit 8, not main's exit 1 for an unwritten result:
        // the request has had its effect, and that is what a script must not miss.
        const std::string response_went =
            std::cout ? "its response is on stdout" : "its response could not be written to standard output";
        return out.fail(exit_unstored_pair,
                        "the request itself completed with status " + std::to_string(response.status) + " (" +
                            response_went + ": do not send it again); however, " + unstored_pair_message(s),
                        unstored);
    }
    if (!ok) {
        if (s.json && !std::cout) {
            // The result (status and body) never reached stdout (print_json flushed it): the run
            // fails as one whose result cannot be written does, exit 1, and its one JSON object
            // says both, with the API's answer in `server`, written nowhere else. (Reporting the
            // status here and leaving the write failure to main's check_stdout gave two objects.)
            return out.fail(std::string(stdout_write_failure) + "; the API answered " + status_line,
                            exit_failure, diag);
        }
        // The JSON object carries what the API said as `server` (http_status, a 401 challenge's
        // error and scope, retry_after); the text line has the status and challenge already.
        return out.fail(status_line, exit_http_status, s.json ? diag : diagnostics{});
    }
    return exit_ok;
}

}  // namespace

command profile_command() {
    command_spec spec{
        .name = "profile",
        .summary = "Print the profile of the user who authorized the account (GET profile URL).",
        .options = account_command_options({}),
        .exit_codes = exit_code_table(false),
    };
    return {std::move(spec), &run_profile};
}

command request_command() {
    command_spec spec{
        .name = "request",
        .positionals = "METHOD PATH",
        .min_positionals = 2,
        .max_positionals = 2,
        .summary = "Send an API request for the account: METHOD <api base>PATH with its Bearer token.",
        .description =
            "Example: apollo-oauth request POST /v1/tasks/bulk_create --data '{\"tasks\":[]}'\n"
            "A 401 that blames the token (no error, or invalid_token) refreshes and retries once; a\n"
            "401 with another error (insufficient_scope, ...) is reported as it is. A 429 is retried after\n"
            "Retry-After (at most 30 s, twice). Prints the response body (--json: status and body).\n"
            "A non-2xx answer exits 7, its status on stderr (--json: one JSON object, as every failure).",
        .options = account_command_options(
            {{"data", "JSON", "request body (application/json); @FILE reads a file, - reads stdin"},
             {"header", "\"NAME: VALUE\"", "extra request header", true}}),
        .exit_codes = exit_code_table(true),
    };
    return {std::move(spec), &run_request};
}

}  // namespace apollo_oauth::cli
