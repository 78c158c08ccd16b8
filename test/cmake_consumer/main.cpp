// Uses apollo_oauth as an application would: the whole authorization-code flow against the
// emulator, through nothing but the installed headers and the exported targets.
#include <apollo_oauth.hpp>
#include <apollo_oauth/emulator/server.hpp>

#ifdef APOLLO_OAUTH_CONSUMER_REDIS
#include <apollo_oauth/redis_token_store.hpp>
#endif

#include <boost/asio/io_context.hpp>

#include <iostream>

namespace asio = boost::asio;
using namespace apollo_oauth;

int main() {
    emulator::server apollo;
    const auto& app = apollo.config().clients.front();
    client_config config;
    config.client_id = app.client_id;
    config.client_secret = secret_string{app.client_secret};
    config.redirect_uris = app.redirect_uris;
    config.endpoints = {.authorize_url = apollo.authorize_url(),
                        .token_url = apollo.token_url(),
                        .profile_url = apollo.profile_url(),
                        .api_base = apollo.api_base()};
    config.tls.use_system_trust_store = false;
    config.tls.ca_pem = apollo.ca_pem();

    authorization_flow flow{config};
    auto url = flow.make_authorization_url({.scopes = {"read_user_profile"}, .any_browser = true});
    auto grant = url ? flow.verify_callback(apollo.consent(url->url)) : url.error();
    if (!grant) {
        std::cerr << "authorization failed: " << grant.error().message() << "\n";
        return 1;
    }

    asio::io_context ioc;
    client oauth{ioc.get_executor(), config};
    std::string email;
    oauth.async_exchange_code(std::move(*grant), [&](error_code ec, token_set tokens) {
        if (ec) {
            std::cerr << "code exchange failed: " << ec.message() << "\n";
            return;
        }
        oauth.async_get_profile(tokens.access_token, [&](error_code ec, user_profile profile) {
            if (ec) {
                std::cerr << "profile failed: " << ec.message() << "\n";
            }
            email = profile.email;
        });
    });
    ioc.run();

    if (email != apollo.config().consenting_user.email) {
        std::cerr << "unexpected profile email: '" << email << "'\n";
        return 1;
    }
    std::cout << "consumer: authorized, exchanged the code and read the profile of " << email << "\n";
#ifdef APOLLO_OAUTH_CONSUMER_REDIS
    // The Redis store links from the package too (made, not connected: it connects on first use).
    redis_options redis;
    if (const auto ec = parse_redis_url("redis://127.0.0.1:6379/0", redis);
        ec || !make_redis_token_store(ioc.get_executor(), redis)) {
        std::cerr << "the Redis store could not be made\n";
        return 1;
    }
    std::cout << "consumer: made a Redis token store\n";
#endif
    return 0;
}
