// `emulator`: the embedded Apollo emulator as a standalone server, for trying the tool (and
// testing it) with no Apollo account. Runs until SIGINT or SIGTERM.
//
// The test client's secret is written to a 0600 file in a private temporary directory rather than
// printed: it is throw-away, but a tool that prints secrets teaches scripts to capture them, and
// the file works as is with --client-secret-file / APOLLO_CLIENT_SECRET_FILE.
//
// Commands on stdin (one per line; each answer is one line on stdout, JSON with --json):
//   stats                 the request counters (token requests, refresh grants, ...)
//   expires-in SECONDS    lifetime of the tokens issued from now on
//   deny-consent on|off   later authorizations answer error=access_denied (on) or consent (off)
//   dump-secrets FILE     writes every secret the emulator issued or holds to FILE (0600), one a
//                         line, for tests that check nothing leaked; never to stdout
#include "commands.hpp"
#include "files.hpp"
#include "output.hpp"
#include "settings.hpp"
#include "signals.hpp"

#include <apollo_oauth/emulator/server.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/describe/class.hpp>
#include <boost/json/value_from.hpp>

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>

// Lets boost::json::value_from turn the counters into an object, field names as keys.
namespace apollo_oauth::emulator {
BOOST_DESCRIBE_STRUCT(counters, (),
                      (authorize_requests, token_requests, authorization_code_grants, refresh_token_grants,
                       successful_refreshes, refreshes_in_flight, max_refreshes_in_flight, profile_requests,
                       api_requests, unauthorized_responses, connections_accepted))
}  // namespace apollo_oauth::emulator

namespace apollo_oauth::cli {
namespace {

namespace asio = boost::asio;

// A private 0700 directory holding the client secret file; removed on exit.
class secret_directory {
public:
    secret_directory() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "apollo-oauth-emulator-XXXXXX").string();
        if (!::mkdtemp(pattern.data())) {
            throw std::system_error(errno, std::generic_category(), "mkdtemp");
        }
        dir_ = pattern;
    }
    ~secret_directory() {
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }
    secret_directory(const secret_directory&) = delete;
    secret_directory& operator=(const secret_directory&) = delete;
    const std::filesystem::path& path() const { return dir_; }

private:
    std::filesystem::path dir_;
};

class control_channel {
public:
    control_channel(asio::io_context& ioc, emulator::server& server, const reporter& out)
        : input_(ioc), server_(server), out_(out) {}

    // stdin may be a file or /dev/null, which epoll refuses: then there is no control channel.
    void start() {
        const int fd = ::dup(STDIN_FILENO);
        boost::system::error_code ec;
        input_.assign(fd, ec);
        if (ec) {
            ::close(fd);
            return;
        }
        read_next();
    }

private:
    void read_next() {
        asio::async_read_until(input_, buffer_, '\n', [this](boost::system::error_code ec, std::size_t) {
            if (ec) {
                return;  // EOF: keep serving, without commands
            }
            std::istream in(&buffer_);
            std::string line;
            std::getline(in, line);
            handle(line);
            read_next();
        });
    }

    void answer(boost::json::object json, const std::string& text) {
        if (out_.json()) {
            out_.print_json(json);
        } else {
            std::cout << text << std::endl;
        }
    }

    void handle(const std::string& line) {
        std::istringstream words(line);
        std::string verb;
        words >> verb;
        if (verb.empty()) {
            return;
        }
        if (verb == "stats") {
            auto counters = boost::json::value_from(server_.stats()).as_object();
            std::ostringstream text;
            for (const auto& [name, value] : counters) {
                text << name << " " << value << "\n";
            }
            answer({{"stats", std::move(counters)}}, text.str());
        } else if (long seconds = -1; verb == "expires-in" && (words >> seconds) && seconds >= 0) {
            server_.set_expires_in(std::chrono::seconds(seconds));
            answer({{"expires_in", seconds}},
                   "tokens issued from now on expire in " + std::to_string(seconds) + " s");
        } else if (std::string mode;
                   verb == "deny-consent" && (words >> mode) && (mode == "on" || mode == "off")) {
            server_.deny_consent(mode == "on");
            answer({{"deny_consent", mode == "on"}}, "deny-consent " + mode);
        } else if (std::string path; verb == "dump-secrets" && (words >> path)) {
            std::string all;
            for (const auto& secret : server_.issued_secrets()) {
                all += secret + "\n";
            }
            const std::filesystem::path file(path);
            write_private_file(file.has_parent_path() ? file.parent_path() : ".", file.filename().string(),
                               all);
            answer({{"secrets_file", path}}, "secrets written to " + path);
        } else {
            answer(
                {{"error",
                  "unknown command; try: stats | expires-in SECONDS | deny-consent on|off | dump-secrets "
                  "FILE"}},
                "unknown command; try: stats | expires-in SECONDS | deny-consent on|off | dump-secrets FILE");
        }
    }

    asio::posix::stream_descriptor input_;
    asio::streambuf buffer_;
    emulator::server& server_;
    const reporter& out_;
};

int run_emulator(const parsed_arguments& args) {
    const reporter out("emulator", args.has("json"));
    emulator::server_config config;
    config.expires_in = seconds_option(args, "expires-in", config.expires_in, true);
    auto& app = config.clients.front();
    for (const auto& uri : args.all("redirect-uri")) {
        app.redirect_uris.push_back(uri);
    }

    asio::io_context ioc;
    // An ignored SIGINT stays ignored: a script's background emulator outlives a Ctrl-C meant for
    // the script, and is stopped with SIGTERM.
    asio::signal_set stop(ioc);
    handle_signals_not_ignored(stop, {SIGINT, SIGTERM});
    stop.async_wait([&](boost::system::error_code, int) { ioc.stop(); });

    secret_directory secrets;
    emulator::server server(config);
    const auto secret_file = secrets.path() / "client_secret";
    write_private_file(secrets.path(), "client_secret", app.client_secret + "\n");

    if (out.json()) {
        out.print_json({{"base_url", server.base_url()},
                        {"port", server.port()},
                        {"authorize_url", server.authorize_url()},
                        {"token_url", server.token_url()},
                        {"profile_url", server.profile_url()},
                        {"api_base", server.api_base()},
                        {"ca_file", server.ca_file()},
                        {"client_id", app.client_id},
                        {"client_secret_file", secret_file.string()},
                        {"redirect_uris", to_json_array(app.redirect_uris)},
                        {"scopes", to_json_array(app.scopes)},
                        {"expires_in", config.expires_in.count()}});
    } else {
        std::cout << "Apollo emulator running at " << server.base_url() << "\n"
                  << "  authorize URL       " << server.authorize_url() << "\n"
                  << "  token URL           " << server.token_url() << "\n"
                  << "  profile URL         " << server.profile_url() << "\n"
                  << "  API base            " << server.api_base() << "\n"
                  << "  CA certificate      " << server.ca_file() << "\n"
                  << "  client id           " << app.client_id << "\n"
                  << "  client secret file  " << secret_file.string() << "\n"
                  << "  redirect URIs      ";
        for (const auto& uri : app.redirect_uris) {
            std::cout << " " << uri;
        }
        std::cout << "\nTry:\n  export APOLLO_CLIENT_ID=" << app.client_id
                  << " APOLLO_CLIENT_SECRET_FILE=" << secret_file.string()
                  << " APOLLO_CA_FILE=" << server.ca_file() << " APOLLO_BASE_URL=" << server.base_url();
        // login needs the redirect URI too: the first one given, which the README's line names.
        if (const auto given = args.all("redirect-uri"); !given.empty()) {
            std::cout << " APOLLO_REDIRECT_URI=" << given.front();
        }
        std::cout << "\n"
                  << "Commands on stdin: stats | expires-in SECONDS | deny-consent on|off | dump-secrets "
                     "FILE. Ctrl-C stops.\n"
                  << std::flush;
    }

    control_channel control(ioc, server, out);
    control.start();
    ioc.run();
    return exit_ok;
}

}  // namespace

command emulator_command() {
    command_spec spec{
        .name = "emulator",
        .summary =
            "Run the Apollo emulator (an Apollo-compatible HTTPS server on 127.0.0.1) until SIGINT/SIGTERM.",
        .description =
            "Prints its URLs, CA certificate file, test client id, the file holding the client secret\n"
            "(mode 0600, removed on exit) and the registered redirect URIs; with --json as one JSON\n"
            "object on one line. The port is chosen by the system. Commands on stdin, one a line:\n"
            "  stats                 print the request counters (token requests, refresh grants, ...)\n"
            "  expires-in SECONDS    lifetime of tokens issued from now on\n"
            "  deny-consent on|off   make later authorizations answer error=access_denied, or not\n"
            "  dump-secrets FILE     write every secret it issued to FILE (0600), for leak checks",
        .options = {{"expires-in", "SECONDS", "lifetime of issued access tokens (default 2592000, 30 days)"},
                    {"redirect-uri", "URI", "register this redirect URI for the test client too", true},
                    json_option()},
        .exit_codes = exit_code_table(false),
    };
    return {std::move(spec), &run_emulator};
}

}  // namespace apollo_oauth::cli
