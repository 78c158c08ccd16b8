// Where the tool keeps token pairs, and the wrapper that tells the user about lease waits.
#include "store_choice.hpp"

#include "files.hpp"

#include <apollo_oauth/forwarding_token_store.hpp>
#include <apollo_oauth/token_store.hpp>
#if APOLLO_OAUTH_CLI_WITH_REDIS
#include <apollo_oauth/redis_token_store.hpp>
#endif

#include <boost/url/parse.hpp>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <string_view>

namespace apollo_oauth::cli {
namespace {

std::optional<std::string> environment(const char* name) {
    const char* value = std::getenv(name);
    return value && *value ? std::optional<std::string>(value) : std::nullopt;
}

bool starts_with(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

bool is_redis_url(std::string_view text) {
    return starts_with(text, "redis://") || starts_with(text, "rediss://");
}

// Whether a redis URL names a password (user:password@): parsed by Boost.URL, not by hand.
bool url_has_password(std::string_view text) {
    const auto url = boost::urls::parse_uri(text);
    return url && url->has_password() && !url->password().empty();
}

std::string trimmed_line(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
        text.pop_back();
    }
    return text;
}

}  // namespace

bool redis_store_built() {
    return APOLLO_OAUTH_CLI_WITH_REDIS != 0;
}

std::vector<option_spec> store_choice_options() {
    std::string store_help =
        "where the token pairs live (env APOLLO_STORE): file:DIR or DIR (the file store; replaces "
        "--token-dir), or redis://[user@]host[:port][/db][?key_prefix=P&min_replicas=N] / rediss://... "
        "(the Redis store; password from APOLLO_REDIS_PASSWORD or --redis-password-file, never argv; "
        "min_replicas: the replicas each write must reach, for a replicated Redis)";
    if (!redis_store_built()) {
        store_help +=
            ". NOT IN THIS BUILD: hiredis was not found when apollo-oauth was built, so "
            "only the file store is available";
    }
    return {
        {"store", "URL", store_help},
        {"redis-password-file", "FILE",
         "file holding the Redis password (env APOLLO_REDIS_PASSWORD_FILE; or set APOLLO_REDIS_PASSWORD)"},
    };
}

store_choice load_store_choice(const parsed_arguments& args, std::filesystem::path& token_dir) {
    store_choice choice;
    const auto from_argv = args.get("store");
    const auto text = from_argv ? from_argv : environment("APOLLO_STORE");
    if (!text) {
        return choice;
    }
    if (!is_redis_url(*text)) {
        if (!from_argv && args.get("token-dir")) {
            return choice;  // a --token-dir typed now wins over an exported APOLLO_STORE
        }
        if (starts_with(*text, "file:")) {
            token_dir = text->substr(5);
        } else if (text->find("://") != std::string::npos) {
            throw usage_error("--store takes file:DIR, a directory, redis:// or rediss://");
        } else {
            token_dir = *text;
        }
        if (token_dir.empty()) {
            throw usage_error("--store file: needs a directory");
        }
        return choice;
    }
    if (from_argv && url_has_password(*text)) {
        throw usage_error(
            "--store: a Redis password is not accepted on the command line, where other local users "
            "see it (ps, /proc) and shell history keeps it. Set APOLLO_REDIS_PASSWORD, pass "
            "--redis-password-file FILE, or put the whole URL in APOLLO_STORE.");
    }
    if (!redis_store_built()) {
        throw usage_error(
            "--store redis://: this apollo-oauth was built without the Redis store (hiredis was not "
            "found; Debian: libhiredis-dev); use the file store");
    }
    choice.redis_url = secret_string{std::string(*text)};
    const auto file_from_argv = args.get("redis-password-file");
    if (auto file = file_from_argv ? file_from_argv : environment("APOLLO_REDIS_PASSWORD_FILE")) {
        choice.redis_password = secret_string{trimmed_line(
            read_secret_file(*file, "Redis password",
                             file_from_argv ? "--redis-password-file" : "APOLLO_REDIS_PASSWORD_FILE"))};
    } else if (auto value = environment("APOLLO_REDIS_PASSWORD")) {
        choice.redis_password = secret_string{std::move(*value)};
    }
    if (auto ca = args.get("ca-file") ? args.get("ca-file") : environment("APOLLO_CA_FILE")) {
        choice.ca_file = *ca;
    }
    return choice;
}

std::string describe_store(const store_choice& choice, const std::filesystem::path& token_dir) {
    if (!choice.redis_url) {
        return token_dir.string();
    }
#if APOLLO_OAUTH_CLI_WITH_REDIS
    redis_options options;
    if (!parse_redis_url(choice.redis_url->reveal(), options)) {
        return std::string(options.use_tls ? "rediss://" : "redis://") + options.host + ":" +
               std::to_string(options.port) + "/" + std::to_string(options.database);
    }
#endif
    return "Redis";
}

std::shared_ptr<token_store> make_chosen_store(boost::asio::any_io_executor ex, const store_choice& choice,
                                               const std::filesystem::path& token_dir) {
    if (!choice.redis_url) {
        return make_file_token_store(std::move(ex), token_dir);
    }
#if APOLLO_OAUTH_CLI_WITH_REDIS
    redis_options options;
    if (parse_redis_url(choice.redis_url->reveal(), options)) {
        // The library's error never quotes the URL; neither does this one.
        throw usage_error(
            "--store: not a valid Redis URL (redis://[user@]host[:port][/db][?key_prefix=P&min_replicas=N], "
            "or "
            "rediss://)");
    }
    if (!choice.redis_password.empty()) {
        options.password = choice.redis_password;
    }
    if (!options.user.empty() && options.password.empty()) {
        throw usage_error(
            "--store: the Redis user needs a password (APOLLO_REDIS_PASSWORD or --redis-password-file); "
            "without one no AUTH is sent");
    }
    if (!choice.ca_file.empty()) {
        options.tls.ca_file = choice.ca_file;
    }
    return make_redis_token_store(std::move(ex), std::move(options));
#else
    throw usage_error("this apollo-oauth was built without the Redis store");
#endif
}

namespace {

// Notices a busy lease once; everything else goes to the inner store as it is.
class announcing_store final : public forwarding_token_store,
                               public std::enable_shared_from_this<announcing_store> {
public:
    announcing_store(std::shared_ptr<token_store> inner, std::function<void()> on_busy)
        : forwarding_token_store(std::move(inner)), on_busy_(std::move(on_busy)) {}

    void async_acquire(std::string account, std::string holder, std::uint64_t known_generation,
                       std::chrono::milliseconds ttl, acquire_handler handler) override {
        inner().async_acquire(
            std::move(account), std::move(holder), known_generation, ttl,
            [self = shared_from_this(), h = std::move(handler)](error_code ec, lease_outcome out) mutable {
                if (!ec && out.what == lease_outcome::kind::busy && !self->announced_.exchange(true)) {
                    self->on_busy_();
                }
                std::move(h)(ec, std::move(out));
            });
    }

private:
    std::function<void()> on_busy_;
    std::atomic<bool> announced_{false};
};

}  // namespace

std::shared_ptr<token_store> announce_lease_waits(std::shared_ptr<token_store> inner,
                                                  std::function<void()> on_busy) {
    return std::make_shared<announcing_store>(std::move(inner), std::move(on_busy));
}

}  // namespace apollo_oauth::cli
